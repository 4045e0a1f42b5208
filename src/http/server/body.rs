//! The request body as the connection sees it: read within the request's deadline, and
//! followed so that a response sent before the body was read says `Connection: close`.
//!
//! Without a deadline a client that announces 1000 bytes and sends one holds the connection
//! (and a handler) forever. Without `Connection: close` a response that leaves part of the
//! body unread (an early 401 or 429) ends with hyper closing the connection, which a client
//! reusing it cannot tell from a keep-alive one: its next request fails. A small rest of a
//! body that is already on its way is read and discarded instead, so that the connection
//! stays open; anything else gets `Connection: close`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// The body did not arrive within the request's deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the request deadline ({0:?})")]
pub struct BodyTimeout(pub Duration);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest rest of a body read and discarded to keep a connection open…
const DRAIN_LIMIT: u64 = 64 * 1024;
/// …when it arrives within this (it was sent with the headers, or is not coming).
const DRAIN_WAIT: Duration = Duration::from_millis(10);

/// Whether a body was read to its end, and its unread rest once the handler dropped it.
#[derive(Debug)]
pub struct Progress<B> {
    finished: AtomicBool,
    rest: Mutex<Option<B>>,
}

impl<B: Body + Unpin> Progress<B> {
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Whether the connection can take another request: the body was read to its end, or
    /// its rest (up to [`DRAIN_LIMIT`]) arrives within [`DRAIN_WAIT`] and is discarded.
    pub async fn drained(&self) -> bool {
        if self.finished() {
            return true;
        }
        let rest = self
            .rest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        // Still held (a handler that answered and streams on) counts as unread.
        let Some(mut rest) = rest else { return false };
        if rest.size_hint().upper().is_none_or(|len| len > DRAIN_LIMIT) {
            return false;
        }
        let drain = async {
            while let Some(frame) = rest.frame().await {
                if frame.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(DRAIN_WAIT, drain)
            .await
            .unwrap_or(false)
    }
}

/// A request body bounded by a deadline.
pub struct Deadlined<B: Body + Unpin> {
    /// Taken on drop when unread, for [`Progress::drained`].
    inner: Option<B>,
    progress: Arc<Progress<B>>,
    budget: Duration,
    ends: Instant,
    /// Created at the first wait, so that bodies already in hand cost no timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B: Body + Unpin> Deadlined<B> {
    /// `inner` with `budget` from now, and its progress (finished at once when it is empty).
    pub fn new(inner: B, budget: Duration) -> (Deadlined<B>, Arc<Progress<B>>) {
        let progress = Arc::new(Progress {
            finished: AtomicBool::new(inner.is_end_stream()),
            rest: Mutex::new(None),
        });
        let body = Deadlined {
            inner: Some(inner),
            progress: progress.clone(),
            budget,
            ends: Instant::now() + budget,
            sleep: None,
        };
        (body, progress)
    }
}

impl<B> Body for Deadlined<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.progress.finished() {
            return Poll::Ready(None);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.progress.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if inner.is_end_stream() {
                    self.progress.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Pending => {
                let ends = self.ends;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(ends.into())));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        metrics::counter!(crate::metrics::CONNECTION_TIMEOUTS, "phase" => "body")
                            .increment(1);
                        Poll::Ready(Some(Err(Box::new(BodyTimeout(self.budget)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.progress.finished() || self.inner.as_ref().is_none_or(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), B::size_hint)
    }
}

impl<B: Body + Unpin> Drop for Deadlined<B> {
    fn drop(&mut self) {
        if !self.progress.finished() {
            *self
                .progress
                .rest
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = self.inner.take();
        }
    }
}

/// Whether `err`, or an error it wraps, is a [`BodyTimeout`].
pub fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTimeout>() {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use http_body_util::{Full, StreamBody};

    use super::*;

    #[tokio::test]
    async fn a_whole_body_is_read_and_marked_finished() {
        let (body, progress) = Deadlined::new(
            Full::new(Bytes::from_static(b"abc")),
            Duration::from_secs(1),
        );
        assert!(!progress.finished());
        let bytes = body.collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"abc");
        assert!(progress.finished());
    }

    #[tokio::test]
    async fn a_body_that_stalls_ends_in_a_timeout_at_the_deadline() {
        let stalled = StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, BoxError>>());
        let (body, progress) = Deadlined::new(stalled, Duration::from_millis(50));
        let started = Instant::now();
        let err = body.collect().await.expect_err("a timeout");
        assert!(is_timeout(err.as_ref()));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!progress.finished());
    }

    #[tokio::test]
    async fn a_rest_that_is_there_is_drained_one_that_stalls_is_not() {
        let (body, progress) = Deadlined::new(
            Full::new(Bytes::from_static(b"abc")),
            Duration::from_secs(1),
        );
        drop(body);
        assert!(!progress.finished());
        assert!(progress.drained().await, "the rest was at hand");
        let stalled = StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, BoxError>>());
        let (body, progress) = Deadlined::new(stalled, Duration::from_secs(1));
        drop(body);
        assert!(!progress.drained().await);
    }
}
