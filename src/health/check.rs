//! One dependency's health: its probe, its current state and what that state costs users.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::probe::{Outcome, Probe};
use super::Status;
use crate::resilience::BreakerState;

/// A configured dependency under watch.
pub struct Check {
    name: &'static str,
    required: bool,
    /// What users lose while this dependency is not healthy.
    impact: &'static str,
    probe: Probe,
    state: Mutex<CheckState>,
}

struct CheckState {
    status: Status,
    since: DateTime<Utc>,
    /// The last probe's failure; `None` once a probe succeeds.
    probe_error: Option<String>,
    /// Whether that failure leaves the dependency working, only worse ([`Outcome::Degraded`]).
    probe_degraded: bool,
}

/// A check as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub status: Status,
    /// Whether predictions can be served at all without it.
    pub required: bool,
    pub latency_ms: Option<f64>,
    pub since: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub breaker: Option<BreakerState>,
    pub impact: String,
}

/// A change of a check's status, for logs and alerts.
pub struct Transition {
    pub from: Status,
    pub to: Status,
}

impl Check {
    pub fn new(name: &'static str, required: bool, impact: &'static str, probe: Probe) -> Check {
        let check = Check {
            name,
            required,
            impact,
            probe,
            state: Mutex::new(CheckState {
                status: Status::Healthy,
                since: Utc::now(),
                probe_error: None,
                probe_degraded: false,
            }),
        };
        if let Some(outcome) = check.probe.immediate() {
            check.remember(outcome);
        }
        check
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn required(&self) -> bool {
        self.required
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CheckState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn since(&self) -> DateTime<Utc> {
        self.lock().since
    }

    /// Probes once and remembers what it showed.
    pub async fn probe_once(&self) {
        let outcome = self.probe.run().await;
        self.remember(outcome);
    }

    fn remember(&self, outcome: Outcome) {
        let mut state = self.lock();
        let (error, degraded) = match outcome {
            Outcome::Up => (None, false),
            Outcome::Degraded(error) => (Some(error), true),
            Outcome::Down(error) => (Some(error), false),
            Outcome::NotTried => return,
        };
        state.probe_error = error;
        state.probe_degraded = degraded;
    }

    /// Recomputes the status from the breaker and the last probe; reports a change.
    pub fn evaluate(&self) -> Option<Transition> {
        // Local checks cost nothing to redo, so every read sees the state of the moment.
        if let Some(outcome) = self.probe.immediate() {
            self.remember(outcome);
        }
        let breaker = self.probe.dependency().map(|d| d.status().breaker);
        let mut state = self.lock();
        let status = match (breaker, &state.probe_error) {
            (Some(BreakerState::Open), _) => Status::Unhealthy,
            (_, Some(_)) if state.probe_degraded => Status::Degraded,
            (_, Some(_)) => Status::Unhealthy,
            (Some(BreakerState::HalfOpen), None) => Status::Degraded,
            _ => Status::Healthy,
        };
        if status == state.status {
            return None;
        }
        let transition = Transition {
            from: state.status,
            to: status,
        };
        state.status = status;
        state.since = Utc::now();
        Some(transition)
    }

    /// The sentence shown beside the status: nothing lost while healthy.
    pub fn impact_now(&self, status: Status) -> String {
        if status == Status::Healthy {
            "none".into()
        } else {
            self.probe.impact(self.impact)
        }
    }

    /// The most recent error: the dependency's own record, else the probe's.
    pub fn last_error(&self) -> Option<String> {
        let recorded = self.probe.dependency().and_then(|d| d.status().last_error);
        recorded.or_else(|| self.lock().probe_error.clone())
    }

    pub fn report(&self) -> CheckReport {
        let (status, since, probe_error) = {
            let state = self.lock();
            (state.status, state.since, state.probe_error.clone())
        };
        let seen = self.probe.dependency().map(|d| d.status());
        CheckReport {
            status,
            required: self.required,
            latency_ms: seen.as_ref().and_then(|s| s.latency_ms),
            since: Some(since),
            last_success: seen.as_ref().and_then(|s| s.last_success),
            last_error: seen
                .as_ref()
                .and_then(|s| s.last_error.clone())
                .or(probe_error),
            last_error_at: seen.as_ref().and_then(|s| s.last_error_at),
            breaker: seen.map(|s| s.breaker),
            impact: self.impact_now(status),
        }
    }

    /// How an unconfigured dependency is shown.
    pub fn disabled_report() -> CheckReport {
        CheckReport {
            status: Status::Disabled,
            required: false,
            latency_ms: None,
            since: None,
            last_success: None,
            last_error: None,
            last_error_at: None,
            breaker: None,
            impact: "not configured".into(),
        }
    }
}
