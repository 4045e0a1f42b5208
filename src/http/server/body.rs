//! The request body as the connection sees it: read within the request's deadline, and
//! followed so that a response sent before the body was read says `Connection: close`.
//!
//! Without a deadline a client that announces 1000 bytes and sends one holds the connection
//! (and a handler) forever. Without `Connection: close` a response that leaves part of the
//! body unread (an early 401 or 429) ends with hyper closing the connection, which a client
//! reusing it cannot tell from a keep-alive one: its next request fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The body did not arrive within the request's deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the request deadline ({0:?})")]
pub struct BodyTimeout(pub Duration);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a body was read to its end.
#[derive(Debug, Default)]
pub struct Progress {
    finished: AtomicBool,
}

impl Progress {
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }
}

/// A request body bounded by a deadline.
pub struct Deadlined<B> {
    inner: B,
    progress: Arc<Progress>,
    budget: Duration,
    ends: Instant,
    /// Created at the first wait, so that bodies already in hand cost no timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B: Body> Deadlined<B> {
    /// `inner` with `budget` from now, and its progress (finished at once when it is empty).
    pub fn new(inner: B, budget: Duration) -> (Deadlined<B>, Arc<Progress>) {
        let progress = Arc::new(Progress::default());
        if inner.is_end_stream() {
            progress.finish();
        }
        let body = Deadlined {
            inner,
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
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.progress.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if self.inner.is_end_stream() {
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
        self.progress.finished() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    #[tokio::test]
    async fn a_whole_body_is_read_and_marked_finished() {
        let (body, progress) = Deadlined::new(Full::new(Bytes::from_static(b"abc")), Duration::from_secs(1));
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
        let err = body.collect().await.err().expect("a timeout");
        assert!(is_timeout(err.as_ref()));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!progress.finished());
    }
}
