//! A circuit breaker: once a dependency is known bad, calls fail in microseconds without
//! touching the network; after a cooldown one trial call decides whether it is back.
//!
//! Hand-rolled (about a hundred lines) because the crates on offer either hide the state
//! that health and metrics need, or bring a policy framework far larger than this.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Opens after this many failures in a row.
    pub consecutive_failures: u32,
    /// Or when at least this share of the calls in the window failed...
    pub failure_ratio: f64,
    /// ...and the window holds at least this many calls.
    pub min_calls: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long the breaker stays open before one trial call is let through.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// One trial call is in flight; everyone else is refused until it reports, or until
    /// `retry_at` in case the trial's caller was cancelled and never reports.
    HalfOpen {
        retry_at: Instant,
    },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    consecutive: u32,
    window_start: Instant,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            config,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                consecutive: 0,
                window_start: Instant::now(),
                calls: 0,
                failures: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go out now. In half-open, only the first caller gets `true`.
    pub fn try_acquire(&self) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.phase {
            Phase::Closed => true,
            Phase::Open { until: due } | Phase::HalfOpen { retry_at: due } if now >= due => {
                inner.phase = Phase::HalfOpen {
                    retry_at: now + self.config.cooldown,
                };
                true
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => false,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.lock().phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Records an outcome; returns the new state when it changed.
    pub fn record(&self, success: bool) -> Option<BreakerState> {
        let now = Instant::now();
        let mut inner = self.lock();
        if now.duration_since(inner.window_start) >= self.config.window {
            inner.window_start = now;
            inner.calls = 0;
            inner.failures = 0;
        }
        inner.calls += 1;
        if success {
            inner.consecutive = 0;
        } else {
            inner.consecutive += 1;
            inner.failures += 1;
        }
        let next = match (&inner.phase, success) {
            (Phase::HalfOpen { .. }, true) => Some(Phase::Closed),
            (Phase::HalfOpen { .. }, false) => Some(Phase::Open {
                until: now + self.config.cooldown,
            }),
            (Phase::Closed, false) if self.should_trip(&inner) => Some(Phase::Open {
                until: now + self.config.cooldown,
            }),
            _ => None,
        };
        let next = next?;
        let state = match next {
            Phase::Closed => {
                inner.consecutive = 0;
                inner.calls = 0;
                inner.failures = 0;
                inner.window_start = now;
                BreakerState::Closed
            }
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        inner.phase = next;
        Some(state)
    }

    fn should_trip(&self, inner: &Inner) -> bool {
        inner.consecutive >= self.config.consecutive_failures
            || (inner.calls >= self.config.min_calls
                && f64::from(inner.failures) / f64::from(inner.calls) >= self.config.failure_ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cooldown_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            min_calls: 10,
            window: Duration::from_secs(60),
            cooldown: Duration::from_millis(cooldown_ms),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_calls() {
        let b = breaker(60_000);
        assert_eq!(b.record(false), None);
        assert_eq!(b.record(false), None);
        assert_eq!(b.record(false), Some(BreakerState::Open));
        assert!(!b.try_acquire());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_run_of_failures() {
        let b = breaker(60_000);
        b.record(false);
        b.record(false);
        b.record(true);
        b.record(false);
        b.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn opens_on_failure_ratio_over_enough_calls() {
        let b = breaker(60_000);
        for i in 0..10 {
            // alternate, never 3 in a row: 5 of 10 fail on the 10th call
            b.record(i % 2 == 0);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn half_open_lets_one_trial_through_and_closes_on_success() {
        let b = breaker(20);
        for _ in 0..3 {
            b.record(false);
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.try_acquire(), "trial after cooldown");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.try_acquire(), "only one trial at a time");
        assert_eq!(b.record(true), Some(BreakerState::Closed));
        assert!(b.try_acquire());
    }

    #[test]
    fn failed_trial_reopens() {
        let b = breaker(20);
        for _ in 0..3 {
            b.record(false);
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.try_acquire());
        assert_eq!(b.record(false), Some(BreakerState::Open));
        assert!(!b.try_acquire());
    }
}
