//! Telling HTTP/2 with prior knowledge (h2c: gRPC, and REST clients that speak it) from
//! HTTP/1 by a connection's first bytes, within the header-read timeout.
//!
//! hyper-util's auto builder does the same but waits for the bytes without a limit, so a
//! client that connects and sends nothing would hold its connection for good.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::phase::Expired;

/// The start of the HTTP/2 connection preface; no HTTP/1 method begins `PRI `.
const H2_START: &[u8] = b"PRI ";

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
}

/// Reads the first bytes of `io` (no more than tell the versions apart) and returns them, for
/// hyper to read first (`phase::watch`). `Err(Some(phase))`: nothing decisive came within `timeout` (nothing
/// at all: `Idle`, a start: `Header`); `Err(None)`: the peer left.
pub async fn sniff<I: AsyncRead + Unpin>(
    mut io: I,
    timeout: Duration,
) -> Result<(Version, Vec<u8>, I), Option<Expired>> {
    let mut first = Vec::with_capacity(H2_START.len());
    let read = async {
        // `first` is only appended to, so what came before a timeout is still there.
        let mut chunk = [0u8; H2_START.len()];
        // Until a byte rules HTTP/2 out (an HTTP/1 request as short as `GET` must not wait for
        // bytes it will never send) or the whole `PRI ` is in; usually one read.
        while first.len() < H2_START.len() && H2_START.starts_with(&first) {
            let wanted = H2_START.len() - first.len();
            let n = io.read(&mut chunk[..wanted]).await.ok()?;
            if n == 0 {
                return None;
            }
            first.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Some(())) => {}
        Ok(None) => return Err(None),
        Err(_) if first.is_empty() => return Err(Some(Expired::Idle)),
        Err(_) => return Err(Some(Expired::Header)),
    }
    let version = if first == H2_START {
        Version::Http2
    } else {
        Version::Http1
    };
    Ok((version, first, io))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    /// The version, and what was read then and after: the whole of `sent`.
    async fn sniffed(sent: &[u8]) -> Option<(Version, Vec<u8>)> {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(sent).await.expect("write");
        drop(client);
        let (version, mut first, mut io) = sniff(server, PATIENCE).await.ok()?;
        io.read_to_end(&mut first).await.expect("read");
        Some((version, first))
    }

    #[tokio::test]
    async fn the_preface_is_http2_and_no_byte_is_lost() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(
            sniffed(preface).await,
            Some((Version::Http2, preface.to_vec()))
        );
        let get = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(sniffed(get).await, Some((Version::Http1, get.to_vec())));
        let put = b"PUT /x HTTP/1.1\r\n\r\n";
        assert_eq!(sniffed(put).await, Some((Version::Http1, put.to_vec())));
    }

    #[tokio::test]
    async fn silence_ends_at_the_timeout_and_a_peer_that_leaves_is_none() {
        let (_client, server) = tokio::io::duplex(64);
        let started = std::time::Instant::now();
        let silent = sniff(server, Duration::from_millis(50)).await;
        assert_eq!(silent.err(), Some(Some(Expired::Idle)));
        assert!(started.elapsed() < PATIENCE);
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PR").await.expect("write");
        let partial = sniff(server, Duration::from_millis(50)).await;
        assert_eq!(partial.err(), Some(Some(Expired::Header)));
        assert_eq!(sniffed(b"PR").await, None);
    }
}
