//! The accept loop: HTTP/1 and h2c connections with a time limit on every phase and a cap on their
//! number, so that clients holding connections open cannot make the server unreachable.
//!
//! - `accept`: accepting through descriptor exhaustion (pause, rate-limited line);
//! - `limit`: the cap on open connections and the descriptor limit it derives from;
//! - `preface`: HTTP/1 or HTTP/2 (prior knowledge), told by the first bytes in time;
//! - `phase`: the header-read and keep-alive idle timeouts (hyper's timer, made ours);
//! - `body`: the body-read deadline, and `Connection: close` after a body left unread;
//! - `notice`: rate-limited log lines for per-connection events.
//!
//! A connection over the cap gets a canned 503 with `Connection: close` and is closed at
//! once: the client learns at once, and the descriptor is free again. On shutdown the loop
//! stops accepting, asks every connection to finish its request in flight and close, and
//! completes when all have (the caller bounds that wait by `shutdown_grace`).

mod accept;
pub mod body;
mod limit;
mod notice;
mod phase;
mod preface;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Version};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

pub use accept::Acceptor;
pub use limit::{derive_cap, raise_fd_limit, ConnectionLimit};
use notice::Notice;

/// What the canned answer over the cap says: no body of ours to build, no request read.
const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 219\r\n\
\r\n\
{\"type\":\"urn:modelgate:problem:too_many_connections\",\"title\":\"Too many connections\",\"status\":503,\"detail\":\"The server has as many connections open as it allows; retry on a new connection.\",\"code\":\"too_many_connections\"}";

/// The time limits of a listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
    /// The request deadline, which also bounds reading the body.
    pub body: Duration,
}

/// One listener: where it accepts, its cap, its timeouts and what it serves.
pub struct Listener {
    pub acceptor: Acceptor,
    pub limit: ConnectionLimit,
    pub timeouts: Timeouts,
    pub router: Router,
    /// Where refusals over the cap are counted and logged (the public listener only).
    pub counted: bool,
}

impl Listener {
    /// `limit` may be shared with another listener (the public and gRPC ones share theirs:
    /// one budget of descriptors).
    pub fn new(
        listener: TcpListener,
        limit: ConnectionLimit,
        timeouts: Timeouts,
        router: Router,
        counted: bool,
    ) -> Listener {
        Listener {
            acceptor: Acceptor::new(listener),
            limit,
            timeouts,
            router,
            counted,
        }
    }

    /// Serves until `shutdown` completes, then until every connection has closed.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Listener {
            mut acceptor,
            limit,
            timeouts,
            router,
            counted,
        } = self;
        let refusals = Notice::default();
        // Every connection holds a receiver: `stop` tells them to finish, and when the last
        // one is dropped `stop.closed()` completes.
        let (stop, stopping) = watch::channel(false);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, remote) = tokio::select! {
                () = shutdown.as_mut() => break,
                accepted = acceptor.accept() => accepted,
            };
            let Some(open) = limit.try_open() else {
                refuse(stream, counted, &refusals);
                continue;
            };
            let router = router.clone();
            let stopping = stopping.clone();
            tokio::spawn(async move {
                connection(stream, remote, router, timeouts, stopping).await;
                drop(open);
            });
        }
        drop(acceptor);
        drop(stopping);
        let _ = stop.send(true);
        stop.closed().await;
    }
}

/// Answers a connection over the cap and closes it, without waiting for anything.
fn refuse(stream: TcpStream, counted: bool, refusals: &Notice) {
    // A fresh socket's send buffer takes the few bytes; if not, closing is answer enough.
    let _ = stream.try_write(OVER_CAP);
    drop(stream);
    if !counted {
        return;
    }
    metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
    if let Some(count) = refusals.due() {
        tracing::warn!(
            refused = count,
            "connection limit reached: new connections are answered 503 and closed (rate-limited line: refused counts those since the last one); see server.max_connections"
        );
    }
}

/// Most requests in flight on one HTTP/2 connection: each is a task and a body buffer, and
/// one connection must not hold what the connection cap means to share.
const H2_MAX_STREAMS: u32 = 64;

/// Most bytes of headers an HTTP/2 request may carry, as for HTTP/1 (`limits.rs`).
const H2_MAX_HEADER_BYTES: u32 = 16 * 1024;

/// Serves one connection, HTTP/1 or HTTP/2 with prior knowledge (h2c), until it closes, a
/// timeout ends it, or shutdown asks it to finish.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    mut stopping: watch::Receiver<bool>,
) {
    // Small responses go out at once instead of waiting for more to send.
    let _ = stream.set_nodelay(true);
    let (version, first, stream) = match preface::sniff(stream, timeouts.header_read).await {
        Ok(sniffed) => sniffed,
        Err(expired) => {
            if let Some(phase) = expired {
                metrics::counter!(crate::metrics::CONNECTION_TIMEOUTS, "phase" => phase.label())
                    .increment(1);
            }
            return;
        }
    };
    let (io, timer) = phase::watch(stream, first, timeouts.header_read, timeouts.idle);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        handle(router.clone(), remote, timeouts.body, request)
    });
    let io = TokioIo::new(io);
    match version {
        preface::Version::Http1 => {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(timer)
                .header_read_timeout(timeouts.header_read)
                .keep_alive(true);
            let conn = builder.serve_connection(io, service);
            until_done(conn, std::future::pending(), &mut stopping).await;
        }
        preface::Version::Http2 => {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_concurrent_streams(H2_MAX_STREAMS)
                .max_header_list_size(H2_MAX_HEADER_BYTES);
            let conn = builder.serve_connection(io, service);
            until_done(conn, timer.quiet(), &mut stopping).await;
        }
    }
}

/// Drives `conn` until it ends; on shutdown, or once `quiet` completes, asks it to finish
/// what it has in flight and close.
async fn until_done<C: GracefulConnection>(
    conn: C,
    quiet: impl Future<Output = ()>,
    stopping: &mut watch::Receiver<bool>,
) {
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        // Errors here are the client's doing (timeouts, resets, malformed requests): one per
        // connection, so they are counted (timeouts) rather than logged.
        _ = conn.as_mut() => return,
        _ = stopping.wait_for(|stop| *stop) => {},
        () = quiet => {},
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// One request: the client's address for handlers, the body under its deadline, and
/// `Connection: close` when the response leaves part of the body unread.
async fn handle(
    router: Router,
    remote: SocketAddr,
    body_budget: Duration,
    request: Request<Incoming>,
) -> Result<axum::response::Response, Infallible> {
    let (mut parts, incoming) = request.into_parts();
    // HTTP/2 ends a stream, not the connection, and forbids the header.
    let may_close = parts.version < Version::HTTP_2;
    parts.extensions.insert(ConnectInfo(remote));
    let (body, progress) = body::Deadlined::new(incoming, body_budget);
    let request = Request::from_parts(parts, axum::body::Body::new(body));
    let mut response = router.oneshot(request).await?;
    if may_close && !progress.drained().await {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_answer_says_its_length() {
        let text = std::str::from_utf8(OVER_CAP).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let declared: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(declared, body.len());
        serde_json::from_str::<serde_json::Value>(body).expect("JSON body");
    }
}
