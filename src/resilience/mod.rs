//! Deadlines, circuit breakers and the guarded wrapper every remote call goes through.

mod breaker;
pub mod deadline;

use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};

/// Why a guarded call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker is open: the dependency is known bad, so nothing was sent.
    #[error("{dependency} is unavailable (circuit open)")]
    Open { dependency: &'static str },
    #[error("{dependency} did not answer within {}ms", timeout.as_millis())]
    Timeout {
        dependency: &'static str,
        timeout: Duration,
    },
    #[error("{dependency} failed: {source}")]
    Failed { dependency: &'static str, source: E },
}

/// What is known about a dependency right now, for health and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyStatus {
    pub name: &'static str,
    pub breaker: BreakerState,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Observations {
    last_success: Option<DateTime<Utc>>,
    last_error: Option<(String, DateTime<Utc>)>,
    latency: Option<Duration>,
}

/// One remote dependency: its timeout, its breaker and what its calls have shown.
#[derive(Debug)]
pub struct Dependency {
    name: &'static str,
    timeout: Duration,
    breaker: CircuitBreaker,
    seen: Mutex<Observations>,
    /// Announces breaker transitions, so health re-evaluates at once rather than at its next probe.
    changes: watch::Sender<BreakerState>,
}

impl Dependency {
    pub fn new(name: &'static str, timeout: Duration, breaker: BreakerConfig) -> Dependency {
        metrics::gauge!(crate::metrics::BREAKER_STATE, "dependency" => name).set(0.0);
        Dependency {
            name,
            timeout,
            breaker: CircuitBreaker::new(breaker),
            seen: Mutex::new(Observations::default()),
            changes: watch::Sender::new(BreakerState::Closed),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The timeout a request-path call gets (before the request's own budget clamps it).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Wakes on every breaker transition.
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.changes.subscribe()
    }

    /// Runs `operation` under the dependency's timeout (clamped to the request's budget) and
    /// breaker. While the breaker is open this returns at once without polling `operation`.
    pub async fn call<T, E, F>(&self, operation: F) -> Result<T, CallError<E>>
    where
        E: Display,
        F: Future<Output = Result<T, E>>,
    {
        self.call_within(self.timeout, operation).await
    }

    /// Like [`Dependency::call`] with another timeout (e.g. background writes, which may take
    /// longer than a read on the request path).
    pub async fn call_within<T, E, F>(
        &self,
        timeout: Duration,
        operation: F,
    ) -> Result<T, CallError<E>>
    where
        E: Display,
        F: Future<Output = Result<T, E>>,
    {
        if !self.breaker.try_acquire() {
            metrics::histogram!(crate::metrics::DEPENDENCY_CALLS, "dependency" => self.name, "outcome" => "open")
                .record(0.0);
            return Err(CallError::Open {
                dependency: self.name,
            });
        }
        let timeout = deadline::clamp(timeout);
        let started = Instant::now();
        let outcome = match tokio::time::timeout(timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(CallError::Failed {
                dependency: self.name,
                source,
            }),
            Err(_) => Err(CallError::Timeout {
                dependency: self.name,
                timeout,
            }),
        };
        let outcome_label = match &outcome {
            Ok(_) => "ok",
            Err(CallError::Timeout { .. }) => "timeout",
            Err(_) => "error",
        };
        metrics::histogram!(crate::metrics::DEPENDENCY_CALLS, "dependency" => self.name, "outcome" => outcome_label)
            .record(started.elapsed().as_secs_f64());
        self.observe(
            started.elapsed(),
            outcome.as_ref().err().map(|e| e.to_string()),
        );
        outcome
    }

    fn observe(&self, latency: Duration, error: Option<String>) {
        let success = error.is_none();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.latency = Some(latency);
            match &error {
                None => seen.last_success = Some(Utc::now()),
                Some(message) => seen.last_error = Some((message.clone(), Utc::now())),
            }
        }
        metrics::gauge!(crate::metrics::DEPENDENCY_UP, "dependency" => self.name).set(if success {
            1.0
        } else {
            0.0
        });
        // Transitions are logged once by health, which knows what they cost users.
        if let Some(state) = self.breaker.record(success) {
            let value = match state {
                BreakerState::Closed => 0.0,
                BreakerState::HalfOpen => 1.0,
                BreakerState::Open => 2.0,
            };
            metrics::gauge!(crate::metrics::BREAKER_STATE, "dependency" => self.name).set(value);
            self.changes.send_replace(state);
        }
    }

    pub fn status(&self) -> DependencyStatus {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        DependencyStatus {
            name: self.name,
            breaker: self.breaker.state(),
            last_success: seen.last_success,
            last_error: seen.last_error.as_ref().map(|(m, _)| m.clone()),
            last_error_at: seen.last_error.as_ref().map(|(_, at)| *at),
            latency_ms: seen.latency.map(|d| d.as_secs_f64() * 1e3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dependency(timeout_ms: u64) -> Dependency {
        Dependency::new(
            "test",
            Duration::from_millis(timeout_ms),
            BreakerConfig {
                consecutive_failures: 2,
                cooldown: Duration::from_secs(60),
                ..BreakerConfig::default()
            },
        )
    }

    #[tokio::test]
    async fn success_passes_through_and_is_recorded() {
        let dep = dependency(100);
        let value: Result<u8, CallError<String>> = dep.call(async { Ok(7) }).await;
        assert_eq!(value.ok(), Some(7));
        assert!(dep.status().last_success.is_some());
        assert_eq!(dep.status().breaker, BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_hung_call_times_out_and_then_the_breaker_answers_alone() {
        let dep = dependency(30);
        for _ in 0..2 {
            let started = Instant::now();
            let result: Result<(), CallError<String>> = dep.call(std::future::pending()).await;
            assert!(matches!(result, Err(CallError::Timeout { .. })));
            assert!(started.elapsed() < Duration::from_millis(500));
        }
        assert_eq!(dep.status().breaker, BreakerState::Open);
        let polled = std::sync::atomic::AtomicBool::new(false);
        let result: Result<(), CallError<String>> = dep
            .call(async {
                polled.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(CallError::Open { .. })));
        assert!(
            !polled.load(std::sync::atomic::Ordering::SeqCst),
            "open breaker must not call"
        );
        assert!(dep
            .status()
            .last_error
            .is_some_and(|e| e.contains("did not answer")));
    }

    #[tokio::test]
    async fn the_request_budget_shortens_the_timeout() {
        let dep = dependency(10_000);
        let started = Instant::now();
        let result: Result<(), CallError<String>> =
            deadline::with_budget(Duration::from_millis(40), dep.call(std::future::pending()))
                .await;
        assert!(matches!(result, Err(CallError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_millis(1000));
    }
}
