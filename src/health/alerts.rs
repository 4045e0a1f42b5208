//! The alert webhook: one JSON POST per overall or per-dependency change that has held for the
//! debounce period, delivered with retries in the background.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;

use super::{Health, Status};
use crate::config::AlertsConfig;

/// What the webhook receives. `text` makes it a valid Slack (and Mattermost) incoming message.
#[derive(Debug, Clone, Serialize)]
struct Alert {
    text: String,
    service: &'static str,
    instance: String,
    version: &'static str,
    /// `overall` for the service's verdict, `dependency` for one dependency.
    kind: &'static str,
    subject: &'static str,
    status: Status,
    previous: Status,
    since: DateTime<Utc>,
    error: Option<String>,
    impact: Option<String>,
}

/// One thing whose state is announced.
struct Observed {
    kind: &'static str,
    subject: &'static str,
    status: Status,
    since: DateTime<Utc>,
    error: Option<String>,
    impact: Option<String>,
}

fn observe(health: &Health) -> Vec<Observed> {
    let snapshot = health.snapshot();
    let overall = Observed {
        kind: "overall",
        subject: "modelgate",
        status: snapshot.status,
        since: snapshot.since,
        error: None,
        impact: None,
    };
    let dependencies = snapshot
        .checks
        .into_iter()
        .filter(|(_, check)| check.status != Status::Disabled)
        .map(|(name, check)| Observed {
            kind: "dependency",
            subject: name,
            status: check.status,
            since: check.since.unwrap_or(snapshot.since),
            error: check.last_error,
            impact: Some(check.impact),
        });
    std::iter::once(overall).chain(dependencies).collect()
}

fn message(instance: &str, seen: &Observed, previous: Status) -> String {
    let mark = match seen.status {
        Status::Healthy => ":large_green_circle:",
        Status::Degraded => ":large_yellow_circle:",
        Status::Unhealthy | Status::Disabled => ":red_circle:",
    };
    let mut text = format!(
        "{mark} [{instance}] {} is {} (was {previous}) since {}",
        seen.subject,
        seen.status,
        seen.since.format("%H:%M:%SZ")
    );
    if seen.status != Status::Healthy {
        if let Some(error) = &seen.error {
            text.push_str(&format!(". Error: {error}"));
        }
        if let Some(impact) = &seen.impact {
            text.push_str(&format!(". Impact: {impact}"));
        }
    }
    text
}

/// Watches `health` and posts each debounced change to the configured webhook, if any.
pub fn spawn(
    health: Arc<Health>,
    config: &AlertsConfig,
    instance: String,
) -> Option<JoinHandle<()>> {
    let url = config.webhook_url.clone()?;
    let (debounce, retries) = (config.debounce, config.retries);
    let client = reqwest::Client::builder().timeout(config.timeout).build();
    let client = match client {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(error = %err, "alert webhook disabled: cannot build its HTTP client");
            return None;
        }
    };
    let tick = (debounce / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    Some(tokio::spawn(async move {
        // Everything starts announced as healthy, so a dependency that is down from the start
        // is announced once its state has held for the debounce.
        let mut announced: HashMap<&'static str, Status> = HashMap::new();
        loop {
            tokio::time::sleep(tick).await;
            for seen in observe(&health) {
                let previous = *announced.get(seen.subject).unwrap_or(&Status::Healthy);
                let held = (Utc::now() - seen.since).to_std().unwrap_or_default();
                if seen.status == previous || held < debounce {
                    continue;
                }
                announced.insert(seen.subject, seen.status);
                let alert = Alert {
                    text: message(&instance, &seen, previous),
                    service: "modelgate",
                    instance: instance.clone(),
                    version: env!("CARGO_PKG_VERSION"),
                    kind: seen.kind,
                    subject: seen.subject,
                    status: seen.status,
                    previous,
                    since: seen.since,
                    error: seen.error,
                    impact: seen.impact,
                };
                tokio::spawn(deliver(client.clone(), url.clone(), alert, retries));
            }
        }
    }))
}

/// Posts `alert`, retrying after 1 s, 2 s, 4 s… The URL is never logged: it holds a token.
async fn deliver(client: reqwest::Client, url: String, alert: Alert, retries: u32) {
    let mut pause = Duration::from_secs(1);
    for attempt in 0..=retries {
        let outcome = client.post(&url).json(&alert).send().await;
        let failure = match outcome {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(subject = alert.subject, status = %alert.status, "alert delivered");
                return;
            }
            Ok(response) => format!("webhook answered {}", response.status()),
            Err(err) => err.without_url().to_string(),
        };
        if attempt == retries {
            tracing::warn!(subject = alert.subject, status = %alert.status, error = failure, attempts = attempt + 1, "alert not delivered");
            return;
        }
        tracing::debug!(
            subject = alert.subject,
            error = failure,
            "alert delivery failed; retrying"
        );
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}
