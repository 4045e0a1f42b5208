//! Dependency health, observed rather than polled per request: background probes and breaker
//! transitions keep one state per dependency; `/health`, `/metrics`, the status page and alerts
//! read that state from memory. Each change is logged once.

mod alerts;
mod check;
mod disk;
mod probe;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;

pub use alerts::spawn as spawn_alerts;
pub use check::{Check, CheckReport};
pub use disk::DiskWatch;
pub use probe::Probe;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
            Status::Disabled => "disabled",
        }
    }

    /// The value of the status gauges: 0 healthy, 1 degraded, 2 unhealthy.
    fn gauge(self) -> f64 {
        match self {
            Status::Healthy | Status::Disabled => 0.0,
            Status::Degraded => 1.0,
            Status::Unhealthy => 2.0,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `/health` says, all from memory.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub status: Status,
    pub since: DateTime<Utc>,
    pub services: BTreeMap<&'static str, Status>,
    pub checks: BTreeMap<&'static str, CheckReport>,
}

struct Overall {
    status: Status,
    since: DateTime<Utc>,
}

/// Every dependency's check and the verdict over all of them.
pub struct Health {
    checks: Vec<Arc<Check>>,
    /// Known dependencies this deployment does not use.
    disabled: Vec<&'static str>,
    overall: Mutex<Overall>,
}

impl Health {
    pub fn new(checks: Vec<Check>, disabled: Vec<&'static str>) -> Health {
        let health = Health {
            checks: checks.into_iter().map(Arc::new).collect(),
            disabled,
            overall: Mutex::new(Overall {
                status: Status::Healthy,
                since: Utc::now(),
            }),
        };
        for check in &health.checks {
            health.evaluate(check);
        }
        health.publish_gauges();
        health
    }

    fn overall(&self) -> std::sync::MutexGuard<'_, Overall> {
        self.overall.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        self.overall().status
    }

    pub fn checks(&self) -> &[Arc<Check>] {
        &self.checks
    }

    pub fn overall_since(&self) -> DateTime<Utc> {
        self.overall().since
    }

    /// The verdict of this moment, re-derived (memory only) rather than as the monitor last
    /// left it, so that readiness follows a model's arrival at once.
    pub fn current_status(&self) -> Status {
        for check in &self.checks {
            self.evaluate(check);
        }
        self.status()
    }

    /// The current state. Breaker changes are also pushed by the monitor; re-deriving here
    /// (memory only) means a reader never sees a state older than the breaker's.
    pub fn snapshot(&self) -> Snapshot {
        self.current_status();
        let (status, since) = {
            let overall = self.overall();
            (overall.status, overall.since)
        };
        let mut checks: BTreeMap<&'static str, CheckReport> =
            self.checks.iter().map(|c| (c.name(), c.report())).collect();
        for name in &self.disabled {
            checks.insert(name, Check::disabled_report());
        }
        Snapshot {
            status,
            since,
            services: checks.iter().map(|(name, c)| (*name, c.status)).collect(),
            checks,
        }
    }

    /// Re-derives `check`'s status and the overall one, logging each change once.
    pub fn evaluate(&self, check: &Check) {
        if let Some(change) = check.evaluate() {
            let error = check.last_error().unwrap_or_default();
            let impact = check.impact_now(change.to);
            if change.to > change.from {
                tracing::warn!(dependency = check.name(), from = %change.from, to = %change.to, %error, impact, "{} is {}", check.name(), change.to);
            } else {
                tracing::info!(dependency = check.name(), from = %change.from, to = %change.to, impact, "{} is {}", check.name(), change.to);
            }
            metrics::gauge!(crate::metrics::DEPENDENCY_STATUS, "dependency" => check.name())
                .set(change.to.gauge());
        }
        let verdict = self.verdict();
        let mut overall = self.overall();
        if verdict != overall.status {
            let causes = self.not_healthy().join(",");
            if verdict > overall.status {
                tracing::warn!(from = %overall.status, to = %verdict, causes, "modelgate is {verdict}");
            } else {
                tracing::info!(from = %overall.status, to = %verdict, causes, "modelgate is {verdict}");
            }
            metrics::gauge!(crate::metrics::HEALTH_STATUS).set(verdict.gauge());
            overall.status = verdict;
            overall.since = Utc::now();
        }
    }

    /// Unhealthy when something predictions cannot do without is down; degraded when anything
    /// else is (requests still succeed, some slower or, for uncached keys, with 503).
    fn verdict(&self) -> Status {
        let statuses = self.checks.iter().map(|c| (c.required(), c.status()));
        statuses.fold(Status::Healthy, |worst, (required, status)| {
            let weight = match status {
                Status::Unhealthy if required => Status::Unhealthy,
                Status::Unhealthy | Status::Degraded => Status::Degraded,
                Status::Healthy | Status::Disabled => Status::Healthy,
            };
            worst.max(weight)
        })
    }

    fn not_healthy(&self) -> Vec<&'static str> {
        let checks = self.checks.iter();
        checks
            .filter(|c| c.status() != Status::Healthy)
            .map(|c| c.name())
            .collect()
    }

    fn publish_gauges(&self) {
        for check in &self.checks {
            metrics::gauge!(crate::metrics::DEPENDENCY_STATUS, "dependency" => check.name())
                .set(check.status().gauge());
        }
        metrics::gauge!(crate::metrics::HEALTH_STATUS).set(self.status().gauge());
    }

    /// Probes every dependency each `interval`, and re-evaluates one at once whenever its
    /// breaker changes state (requests feed health too). The tasks run until aborted.
    pub fn spawn_monitor(self: &Arc<Self>, interval: Duration) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for check in &self.checks {
            let (health, probed) = (self.clone(), check.clone());
            tasks.push(tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    probed.probe_once().await;
                    health.evaluate(&probed);
                }
            }));
            if let Some(dependency) = check.probe().dependency() {
                let (health, watched) = (self.clone(), check.clone());
                let mut changes = dependency.subscribe();
                tasks.push(tokio::spawn(async move {
                    while changes.changed().await.is_ok() {
                        health.evaluate(&watched);
                    }
                }));
            }
        }
        tasks
    }
}
