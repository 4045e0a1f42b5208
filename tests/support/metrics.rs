//! Reading `/metrics`: once, or until a condition holds.

use std::time::Duration;

use super::wait::poll;
use super::TestApp;

/// The `/metrics` text of the server at `base`.
pub async fn metrics_at(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Polls `/metrics` of `base` until `done(metrics)` holds (or fails after `patience`).
pub async fn wait_for_metrics(
    client: &reqwest::Client,
    base: &str,
    patience: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let failure = format!("{what} not reached within {patience:?}");
    poll(patience, Duration::from_millis(50), failure, async || {
        let metrics = metrics_at(client, base).await;
        done(&metrics).then_some(metrics)
    })
    .await
}

/// The value of the Prometheus sample whose line starts with `series` (0 when absent).
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

impl TestApp {
    pub async fn metrics(&self) -> String {
        metrics_at(&self.client, &self.url("")).await
    }

    /// [`wait_for_metrics`] on this app.
    pub async fn wait_for_metrics(
        &self,
        patience: Duration,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        wait_for_metrics(&self.client, &self.url(""), patience, what, done).await
    }
}
