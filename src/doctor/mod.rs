//! `modelgate doctor`: checks every configured dependency layer by layer (name, connection,
//! TLS, credentials, a real round trip) and names the most likely cause of the first failure,
//! as an experienced operator would.
//!
//! Dependencies are checked concurrently and every step has its own timeout, so a silent
//! dependency costs about one timeout and the doctor never hangs.

mod auth_service;
mod database;
mod mlflow;
mod models;
mod net;
mod redis;
mod render;
mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{redact, Config};

pub use render::human;

/// Exit status when only optional dependencies failed (0: all good, 1: a required one failed).
pub const EXIT_DEGRADED: u8 = 3;
const EXIT_FAILED: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Only optional dependencies failed: modelgate serves, with less.
    Degraded,
    /// A required dependency failed: modelgate cannot serve.
    Failed,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub status: Status,
    pub timeout_ms: u128,
    pub dependencies: Vec<DependencyReport>,
}

#[derive(Debug, Serialize)]
pub struct DependencyReport {
    pub name: &'static str,
    pub required: bool,
    pub configured: bool,
    /// The configured location, passwords replaced by `***`.
    pub url: Option<String>,
    pub ok: bool,
    /// The outcome in plain words: the most likely cause when a step failed.
    pub verdict: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub step: &'static str,
    /// `None` when the step did not run because an earlier one failed.
    pub ok: Option<bool>,
    pub ms: Option<f64>,
    pub detail: String,
}

impl Report {
    /// 0 all good, 1 a required dependency failed, 3 only optional ones failed.
    pub fn exit_status(&self) -> u8 {
        match self.status {
            Status::Ok => 0,
            Status::Degraded => EXIT_DEGRADED,
            Status::Failed => EXIT_FAILED,
        }
    }

    /// Names of the required (or optional) dependencies that failed.
    pub fn failed(&self, required: bool) -> Vec<&'static str> {
        self.dependencies
            .iter()
            .filter(|d| !d.ok && d.required == required)
            .map(|d| d.name)
            .collect()
    }
}

/// Checks every dependency `config` names, each step bounded by `timeout`.
pub async fn diagnose(config: &Config, timeout: Duration) -> Report {
    let (database, redis, auth_service, models, registries) = tokio::join!(
        database::check(&config.database, timeout),
        redis::check(&config.redis, timeout),
        auth_service::check(&config.auth, timeout),
        models::check(config, timeout),
        mlflow::check(config, timeout),
    );
    let mut dependencies = vec![database];
    dependencies.extend(redis);
    dependencies.extend([auth_service, models]);
    dependencies.extend(registries);
    let mut report = Report {
        status: Status::Ok,
        timeout_ms: timeout.as_millis(),
        dependencies,
    };
    report.status = if !report.failed(true).is_empty() {
        Status::Failed
    } else if !report.failed(false).is_empty() {
        Status::Degraded
    } else {
        Status::Ok
    };
    report
}

impl DependencyReport {
    fn not_configured(name: &'static str, what: &str) -> DependencyReport {
        DependencyReport {
            name,
            required: false,
            configured: false,
            url: None,
            ok: true,
            verdict: format!("not configured ({what})"),
            steps: Vec::new(),
        }
    }
}

/// The steps of one dependency as they run, each under the timeout. Callers stop at the first
/// failure; `finish` lists the planned steps that did not run as skipped.
pub(crate) struct Check {
    report: DependencyReport,
    planned: Vec<&'static str>,
    timeout: Duration,
    started: Instant,
}

/// What a step found when it passed: a value for the next steps and a line for the operator.
type Passed<T> = Result<(T, String), String>;

impl Check {
    fn new(
        name: &'static str,
        required: bool,
        url: &str,
        planned: Vec<&'static str>,
        timeout: Duration,
    ) -> Check {
        Check {
            report: DependencyReport {
                name,
                required,
                configured: true,
                url: Some(redact::url_secrets(url)),
                ok: true,
                verdict: String::new(),
                steps: Vec::new(),
            },
            planned,
            timeout,
            started: Instant::now(),
        }
    }

    /// Runs one step; on a timeout its cause is `silence`. `None` means it failed: stop.
    async fn run<T>(
        &mut self,
        step: &'static str,
        silence: &str,
        work: impl Future<Output = Passed<T>>,
    ) -> Option<T> {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "no answer within {}: {silence}",
                humantime::format_duration(self.timeout)
            )),
        };
        let ms = millis(started.elapsed());
        match outcome {
            Ok((value, detail)) => {
                self.record(step, Some(true), Some(ms), detail);
                Some(value)
            }
            Err(cause) => {
                self.fail(step, Some(ms), cause);
                None
            }
        }
    }

    /// A step that passed without doing anything (e.g. no name to resolve).
    fn pass(&mut self, step: &'static str, detail: impl Into<String>) {
        self.record(step, Some(true), Some(0.0), detail.into());
    }

    /// Records a failed step; its cause becomes the dependency's verdict.
    fn fail(&mut self, step: &'static str, ms: Option<f64>, cause: String) {
        self.report.ok = false;
        self.report.verdict = cause.clone();
        self.record(step, Some(false), ms, cause);
    }

    fn record(&mut self, step: &'static str, ok: Option<bool>, ms: Option<f64>, detail: String) {
        self.report.steps.push(Step {
            step,
            ok,
            ms,
            detail,
        });
    }

    /// The report: planned steps that did not run are listed as skipped.
    fn finish(mut self) -> DependencyReport {
        let done: Vec<&str> = self.report.steps.iter().map(|s| s.step).collect();
        let skipped: Vec<&'static str> = self
            .planned
            .iter()
            .copied()
            .filter(|step| !done.contains(step))
            .collect();
        for step in skipped {
            self.record(step, None, None, "skipped: an earlier step failed".into());
        }
        if self.report.ok {
            self.report.verdict = format!(
                "healthy: every check passed in {:.1} ms",
                millis(self.started.elapsed())
            );
        }
        self.report
    }
}

fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Runs blocking work (name resolution, file loading) on a detached thread: if it hangs past
/// the step's timeout, the process can still exit, which the runtime's blocking pool (joined
/// at shutdown) would not allow.
async fn detached<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver.await.ok()
}

/// Replaces every occurrence of `secret` in text that came from a server.
fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "***"),
        _ => text.to_string(),
    }
}
