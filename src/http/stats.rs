//! Request numbers of the last minute, computed in-process for `GET /status/stats`.
//!
//! Prometheus holds the long history; this answers "what is happening right now" without one.
//! A ring of 60 one-second buckets, each a set of atomic counters: recording a request is a
//! few relaxed atomic adds and never allocates or locks. A bucket is claimed for a new second
//! by the first request of that second (compare-and-swap on its stamp), which zeroes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Seconds the numbers cover.
pub const WINDOW_S: u64 = 60;

/// Upper bounds of the latency histogram, in microseconds; one more bucket holds the rest.
/// Fine below a few milliseconds, where this service's requests live.
const BOUNDS_US: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000,
];

/// Stamp of a bucket being zeroed for a new second; requests meeting it are not counted.
const CLAIMING: u64 = u64::MAX;
/// Stamp of a bucket that has never held a second.
const UNUSED: u64 = u64::MAX - 1;

struct Bucket {
    /// The second (since the ring's start) the counters belong to.
    second: AtomicU64,
    requests: AtomicU64,
    errors_5xx: AtomicU64,
    max_us: AtomicU64,
    latency: [AtomicU64; BOUNDS_US.len() + 1],
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            second: AtomicU64::new(UNUSED),
            requests: AtomicU64::new(0),
            errors_5xx: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Makes the bucket hold `second`; false when it cannot (being claimed, or already newer).
    fn claim(&self, second: u64) -> bool {
        let stamp = self.second.load(Ordering::Acquire);
        if stamp == second {
            return true;
        }
        if stamp == CLAIMING || (stamp != UNUSED && stamp > second) {
            return false;
        }
        if self
            .second
            .compare_exchange(stamp, CLAIMING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another request claimed it first: fine if for the same second.
            return self.second.load(Ordering::Acquire) == second;
        }
        self.requests.store(0, Ordering::Relaxed);
        self.errors_5xx.store(0, Ordering::Relaxed);
        self.max_us.store(0, Ordering::Relaxed);
        for count in &self.latency {
            count.store(0, Ordering::Relaxed);
        }
        self.second.store(second, Ordering::Release);
        true
    }
}

/// The last minute of requests; share it behind an `Arc`.
pub struct RequestStats {
    started: Instant,
    buckets: [Bucket; WINDOW_S as usize],
}

/// What `GET /status/stats` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub window_s: u64,
    pub requests: u64,
    pub requests_per_s: f64,
    /// None without requests: there is no latency to speak of.
    pub p99_ms: Option<f64>,
    /// Share of requests answered 5xx (0 without requests).
    pub error_ratio: f64,
    pub errors_5xx: u64,
}

impl RequestStats {
    pub fn new() -> RequestStats {
        RequestStats {
            started: Instant::now(),
            buckets: std::array::from_fn(|_| Bucket::new()),
        }
    }

    /// Counts one answered request.
    pub fn record(&self, latency: Duration, status_5xx: bool) {
        self.record_at(self.started.elapsed(), latency, status_5xx);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(self.started.elapsed())
    }

    /// `at` is the time since the ring started (explicit so tests control the clock).
    fn record_at(&self, at: Duration, latency: Duration, status_5xx: bool) {
        let second = at.as_secs();
        let bucket = &self.buckets[(second % WINDOW_S) as usize];
        if !bucket.claim(second) {
            return;
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let slot = BOUNDS_US
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BOUNDS_US.len());
        bucket.latency[slot].fetch_add(1, Ordering::Relaxed);
        bucket.max_us.fetch_max(micros, Ordering::Relaxed);
        if status_5xx {
            bucket.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
        bucket.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot_at(&self, at: Duration) -> Snapshot {
        let now = at.as_secs();
        let oldest = now.saturating_sub(WINDOW_S - 1);
        let mut requests = 0;
        let mut errors_5xx = 0;
        let mut max_us = 0;
        let mut latency = [0u64; BOUNDS_US.len() + 1];
        for bucket in &self.buckets {
            let stamp = bucket.second.load(Ordering::Acquire);
            if stamp == CLAIMING || stamp == UNUSED || stamp < oldest || stamp > now {
                continue;
            }
            requests += bucket.requests.load(Ordering::Relaxed);
            errors_5xx += bucket.errors_5xx.load(Ordering::Relaxed);
            max_us = max_us.max(bucket.max_us.load(Ordering::Relaxed));
            for (sum, count) in latency.iter_mut().zip(&bucket.latency) {
                *sum += count.load(Ordering::Relaxed);
            }
        }
        // The window is the current (partial) second and the 59 before it, or less while
        // the process is younger than that.
        let elapsed = at.as_secs_f64();
        let span = elapsed
            .min((WINDOW_S - 1) as f64 + elapsed.fract())
            .max(1.0);
        Snapshot {
            window_s: WINDOW_S,
            requests,
            requests_per_s: requests as f64 / span,
            p99_ms: percentile_us(&latency, max_us, 0.99).map(|us| us / 1e3),
            error_ratio: if requests == 0 {
                0.0
            } else {
                errors_5xx as f64 / requests as f64
            },
            errors_5xx,
        }
    }
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats::new()
    }
}

/// The `q` quantile of a histogram, in microseconds: the rank is located in its bucket and
/// interpolated linearly between the bucket's bounds, then capped by the slowest request seen
/// (so sub-bound traffic does not read as the bound, and the open last bucket has an end).
fn percentile_us(counts: &[u64], max_us: u64, q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The smallest rank with at least q of the requests at or below it (1-based).
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut below = 0;
    for (slot, count) in counts.iter().enumerate() {
        if *count == 0 || below + count < rank {
            below += count;
            continue;
        }
        let lower = if slot == 0 { 0 } else { BOUNDS_US[slot - 1] } as f64;
        let upper = BOUNDS_US.get(slot).map_or(max_us as f64, |b| *b as f64);
        let share = (rank - below) as f64 / *count as f64;
        return Some((lower + (upper - lower) * share).min(max_us as f64));
    }
    Some(max_us as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    #[test]
    fn empty_window_has_no_latency_and_no_errors() {
        let stats = RequestStats::new();
        let snap = stats.snapshot_at(at(30.0));
        assert_eq!(snap.requests, 0);
        assert_eq!(snap.p99_ms, None);
        assert_eq!(snap.error_ratio, 0.0);
        assert_eq!(snap.requests_per_s, 0.0);
    }

    #[test]
    fn rate_is_over_the_window_once_the_process_is_older_than_it() {
        let stats = RequestStats::new();
        for second in 100..160 {
            for _ in 0..3 {
                stats.record_at(at(second as f64 + 0.5), MS, false);
            }
        }
        let snap = stats.snapshot_at(at(159.99));
        assert_eq!(snap.requests, 180);
        assert!((snap.requests_per_s - 3.0).abs() < 0.01, "{snap:?}");
    }

    #[test]
    fn rate_of_a_young_process_is_over_its_age() {
        let stats = RequestStats::new();
        for _ in 0..20 {
            stats.record_at(at(4.0), MS, false);
        }
        let snap = stats.snapshot_at(at(5.0));
        assert!((snap.requests_per_s - 4.0).abs() < 1e-9, "{snap:?}");
    }

    #[test]
    fn seconds_older_than_the_window_drop_out() {
        let stats = RequestStats::new();
        stats.record_at(at(10.2), MS, true);
        stats.record_at(at(69.5), MS, false);
        assert_eq!(stats.snapshot_at(at(69.9)).requests, 2);
        // Second 10 left the window; second 70 reuses its bucket and starts from zero.
        let snap = stats.snapshot_at(at(70.1));
        assert_eq!((snap.requests, snap.errors_5xx), (1, 0));
        stats.record_at(at(70.3), MS, false);
        assert_eq!(stats.snapshot_at(at(70.4)).requests, 2);
    }

    #[test]
    fn error_ratio_counts_5xx_only_in_the_window() {
        let stats = RequestStats::new();
        for i in 0..40 {
            stats.record_at(at(20.0), MS, i % 4 == 0);
        }
        let snap = stats.snapshot_at(at(21.0));
        assert_eq!(snap.errors_5xx, 10);
        assert!((snap.error_ratio - 0.25).abs() < 1e-9);
    }

    #[test]
    fn p99_finds_the_slow_tail() {
        let stats = RequestStats::new();
        // 990 fast requests and 10 slow ones: p99 is the last of the fast ones' bucket.
        for _ in 0..990 {
            stats.record_at(at(5.0), Duration::from_micros(400), false);
        }
        for _ in 0..10 {
            stats.record_at(at(5.0), Duration::from_millis(300), false);
        }
        let p99 = stats.snapshot_at(at(5.5)).p99_ms.expect("p99");
        assert!((0.25..=0.5).contains(&p99), "{p99}");
        // Twenty slow ones push the 99th percentile into the slow bucket (250-500 ms),
        // capped by the slowest request seen.
        for _ in 0..10 {
            stats.record_at(at(5.0), Duration::from_millis(300), false);
        }
        let p99 = stats.snapshot_at(at(5.5)).p99_ms.expect("p99");
        assert!((250.0..=300.0).contains(&p99), "{p99}");
    }

    #[test]
    fn p99_interpolates_within_a_bucket_and_never_exceeds_the_slowest() {
        // 100 requests in the 1-2.5 ms bucket: rank 99 is 99% of the way through it.
        let mut counts = [0u64; BOUNDS_US.len() + 1];
        counts[3] = 100;
        let p99 = percentile_us(&counts, 2_400, 0.99).expect("p99");
        assert!((p99 - 2_400.0).abs() < 1e-9, "capped at the slowest: {p99}");
        let p50 = percentile_us(&counts, 2_400, 0.50).expect("p50");
        assert!((p50 - 1_750.0).abs() < 1e-9, "{p50}");
        // Beyond the last bound, the slowest request is the only upper end there is.
        let mut counts = [0u64; BOUNDS_US.len() + 1];
        counts[BOUNDS_US.len()] = 1;
        assert_eq!(percentile_us(&counts, 9_000_000, 0.99), Some(9_000_000.0));
    }

    #[test]
    fn one_request_is_its_own_p99() {
        let stats = RequestStats::new();
        stats.record_at(at(1.0), Duration::from_micros(1_234), false);
        let p99 = stats.snapshot_at(at(1.5)).p99_ms.expect("p99");
        assert!((p99 - 1.234).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn a_late_writer_does_not_reopen_a_newer_second() {
        let stats = RequestStats::new();
        stats.record_at(at(65.0), MS, false);
        // A request timed in second 5 (same bucket) finishing after second 65 began.
        stats.record_at(at(5.0), MS, true);
        let snap = stats.snapshot_at(at(65.5));
        assert_eq!((snap.requests, snap.errors_5xx), (1, 0));
    }
}
