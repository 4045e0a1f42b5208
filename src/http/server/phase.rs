//! Time limits on the phases of a connection between requests: waiting for a request, and
//! reading its headers.
//!
//! hyper has one timer for both: its header-read timeout starts as soon as it waits for a
//! request, so a keep-alive connection idle for longer than the header timeout is closed. We
//! want a short header timeout (slowloris) and a long idle one (clients reusing connections), so
//! hyper gets a timer of our own: its sleeps end at the header timeout counted from the first
//! byte of the request, or, while no byte has come, at the idle timeout (at the header timeout
//! for a connection's first request, since a client that opens a connection and sends nothing
//! is holding it, not idling). [`Watched`] tells the timer when bytes arrive.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// No byte has arrived since the timer was last armed.
const NOTHING_YET: u64 = u64::MAX;

/// What one connection's reads and timer share.
#[derive(Debug)]
struct Activity {
    /// When the connection was accepted; times below are nanoseconds since then.
    opened: Instant,
    /// When the first byte arrived since the timer was last armed, or [`NOTHING_YET`].
    first_byte: AtomicU64,
    /// How many times hyper armed the timer, i.e. started waiting for a request.
    armed: AtomicU64,
    /// When the latest byte arrived: what an HTTP/2 connection's idle timeout counts from.
    last_byte: AtomicU64,
}

impl Activity {
    fn since_open(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.opened).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn first_byte(&self) -> Option<Instant> {
        match self.first_byte.load(Ordering::Acquire) {
            NOTHING_YET => None,
            nanos => Some(self.opened + Duration::from_nanos(nanos)),
        }
    }
}

/// Which limit ended a wait for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Some of the request's headers came, not all of them in time.
    Header,
    /// Nothing came (a new connection that sent nothing, or an idle keep-alive one).
    Idle,
}

impl Expired {
    pub fn label(self) -> &'static str {
        match self {
            Expired::Header => "header",
            Expired::Idle => "idle",
        }
    }
}

/// One connection's timer and the I/O wrapper that feeds it; `first` are bytes already read
/// from `io` (to tell its protocol), which hyper reads again first.
pub fn watch<I>(
    io: I,
    first: Vec<u8>,
    header: Duration,
    idle: Duration,
) -> (Watched<I>, PhaseTimer) {
    let activity = Arc::new(Activity {
        opened: Instant::now(),
        first_byte: AtomicU64::new(NOTHING_YET),
        armed: AtomicU64::new(0),
        last_byte: AtomicU64::new(0),
    });
    let timer = PhaseTimer {
        activity: activity.clone(),
        header,
        idle,
    };
    let watched = Watched {
        io,
        activity,
        first,
        replayed: 0,
    };
    (watched, timer)
}

/// The connection's socket, noting when bytes arrive.
#[derive(Debug)]
pub struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
    /// Read before hyper took over; handed to it first.
    first: Vec<u8>,
    replayed: usize,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = if self.replayed < self.first.len() {
            let rest = &self.first[self.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.replayed += n;
            Poll::Ready(Ok(()))
        } else {
            Pin::new(&mut self.io).poll_read(cx, buf)
        };
        if buf.filled().len() > before {
            let now = self.activity.since_open(Instant::now());
            self.activity.last_byte.store(now, Ordering::Release);
            // Only the first byte since the timer was armed counts; later ones keep it.
            let _ = self.activity.first_byte.compare_exchange(
                NOTHING_YET,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The timer hyper uses for its header-read timeout on one connection.
#[derive(Debug, Clone)]
pub struct PhaseTimer {
    activity: Arc<Activity>,
    header: Duration,
    idle: Duration,
}

impl PhaseTimer {
    /// hyper arms its header timer each time it starts waiting for a request.
    fn arm(&self) -> PhaseSleep {
        self.activity
            .first_byte
            .store(NOTHING_YET, Ordering::Release);
        let first_request = self.activity.armed.fetch_add(1, Ordering::AcqRel) == 0;
        let armed = Instant::now();
        let wait = if first_request {
            self.header
        } else {
            self.idle
        };
        PhaseSleep {
            activity: self.activity.clone(),
            header: self.header,
            quiet_until: armed + wait,
            sleep: Box::pin(tokio::time::sleep_until(armed.into())),
            expired: None,
        }
    }
}

impl PhaseTimer {
    /// Completes once no byte has arrived for the idle timeout: HTTP/2 multiplexes requests
    /// on one connection and never waits for "the next request", so hyper's timer does not
    /// apply and this bounds a connection that has gone quiet instead.
    pub async fn quiet(&self) {
        loop {
            let last = self.activity.last_byte.load(Ordering::Acquire);
            let until = self.activity.opened + Duration::from_nanos(last) + self.idle;
            if Instant::now() >= until {
                metrics::counter!(crate::metrics::CONNECTION_TIMEOUTS, "phase" => Expired::Idle.label())
                    .increment(1);
                return;
            }
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

impl Timer for PhaseTimer {
    fn sleep(&self, _: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.arm())
    }

    // hyper asks for `now + header_read_timeout`; the deadline is ours to compute.
    fn sleep_until(&self, _: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.arm())
    }
}

/// One wait for a request.
pub struct PhaseSleep {
    activity: Arc<Activity>,
    header: Duration,
    /// When the wait ends if no byte comes.
    quiet_until: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Option<Expired>,
}

impl PhaseSleep {
    fn deadline(&self) -> (Instant, Expired) {
        match self.activity.first_byte() {
            Some(first) => (first + self.header, Expired::Header),
            None => (self.quiet_until, Expired::Idle),
        }
    }
}

impl Future for PhaseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.expired.is_some() {
            return Poll::Ready(());
        }
        // hyper polls this each time the connection wakes, so a byte's arrival moves the
        // deadline before the next sleep.
        let (deadline, phase) = self.deadline();
        if self.sleep.deadline() != deadline.into() {
            self.sleep.as_mut().reset(deadline.into());
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired = Some(phase);
                metrics::counter!(crate::metrics::CONNECTION_TIMEOUTS, "phase" => phase.label())
                    .increment(1);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Sleep for PhaseSleep {}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const HEADER: Duration = Duration::from_millis(100);
    const IDLE: Duration = Duration::from_millis(400);

    async fn pending_for(sleep: &mut Pin<Box<dyn Sleep>>, at_least: Duration) -> Duration {
        let started = Instant::now();
        sleep.as_mut().await;
        let took = started.elapsed();
        assert!(
            took >= at_least,
            "ended after {took:?}, before {at_least:?}"
        );
        took
    }

    #[tokio::test]
    async fn a_first_request_gets_the_header_timeout_later_ones_the_idle_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let (_watched, timer) = watch(server, Vec::new(), HEADER, IDLE);
        let mut first = timer.sleep_until(Instant::now());
        let took = pending_for(&mut first, HEADER).await;
        assert!(took < IDLE, "first wait took {took:?}");
        let mut second = timer.sleep_until(Instant::now());
        pending_for(&mut second, IDLE).await;
        drop(client);
    }

    #[tokio::test]
    async fn a_byte_starts_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut watched, timer) = watch(server, Vec::new(), HEADER, IDLE);
        let _first = timer.sleep_until(Instant::now());
        let mut second = timer.sleep_until(Instant::now());
        tokio::time::sleep(Duration::from_millis(150)).await;
        client.write_all(b"G").await.expect("write");
        let mut byte = [0u8; 1];
        watched.read_exact(&mut byte).await.expect("read");
        let took = pending_for(&mut second, HEADER).await;
        assert!(
            took < IDLE,
            "ended {took:?} after the byte, not at the header timeout"
        );
    }
}
