//! Accepting connections when the process may be out of file descriptors.
//!
//! `accept` fails with `EMFILE`/`ENFILE` while descriptors are used up; retrying at once would
//! spin a core. The loop pauses instead (doubling up to a second, back to the minimum after a
//! success) and logs a rate-limited line.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::notice::Notice;

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// A listener whose accept never fails: it waits out errors instead.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    pause: Duration,
    notice: Notice,
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener,
            pause: FIRST_PAUSE,
            notice: Notice::default(),
        }
    }

    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.pause = FIRST_PAUSE;
                    return accepted;
                }
                // The peer gave up between SYN and accept: nothing to wait out.
                Err(err) if is_peer_gone(&err) => continue,
                Err(err) => {
                    metrics::counter!(crate::metrics::ACCEPT_ERRORS).increment(1);
                    if let Some(count) = self.notice.due() {
                        tracing::error!(
                            error = %err,
                            failures = count,
                            "cannot accept connections (rate-limited line: failures counts those since the last one); see modelgate_connections_open and server.max_connections"
                        );
                    }
                    tokio::time::sleep(self.pause).await;
                    self.pause = (self.pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    }
}

fn is_peer_gone(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
    )
}
