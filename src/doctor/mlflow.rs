//! The MLflow registries the models name: dns, tcp, tls for `https://`, one authenticated
//! round trip, then what `serve` would ask: which version each model's alias (or stage) names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::net;
use super::tls::Asked;
use super::{Check, DependencyReport};
use crate::config::Config;
use crate::models::configured_sources;
use crate::models::mlflow::{Credentials, MlflowClient, ValidSource};
use crate::resilience::{BreakerConfig, Dependency};

/// One report per tracking server the models name (none: "not configured").
pub(crate) async fn check(config: &Config, timeout: Duration) -> Vec<DependencyReport> {
    let dir = config.models_dir.clone();
    let found = match super::detached(move || configured_sources(&dir)).await {
        Some(Ok(found)) => found,
        // The models check reports an unreadable folder.
        Some(Err(_)) | None => Vec::new(),
    };
    let mut by_server: BTreeMap<String, Vec<(String, ValidSource)>> = BTreeMap::new();
    let mut invalid = Vec::new();
    for (id, source) in found {
        match source {
            Ok(source) => by_server
                .entry(source.tracking_uri.clone())
                .or_default()
                .push((id, source)),
            Err(e) => invalid.push(format!("model {id}: [source]: {e}")),
        }
    }
    let mut reports = Vec::new();
    if !invalid.is_empty() {
        let mut check = Check::new("mlflow", false, "", Vec::new(), timeout);
        check.fail("source", None, invalid.join("; "));
        reports.push(check.finish());
    }
    for (url, models) in by_server {
        reports.push(server(&url, &models, timeout).await);
    }
    if reports.is_empty() {
        reports.push(DependencyReport::not_configured(
            "mlflow",
            "no model names a registry in its [source]",
        ));
    }
    reports
}

async fn server(
    url: &str,
    models: &[(String, ValidSource)],
    timeout: Duration,
) -> DependencyReport {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            let mut check = Check::new("mlflow", false, url, Vec::new(), timeout);
            check.fail("url", None, format!("the tracking URI does not parse: {e}"));
            return check.finish();
        }
    };
    let steps = net::http_steps(&parsed, &["roundtrip", "resolve"]);
    let mut check = Check::new("mlflow", false, url, steps, timeout);
    let asked = Asked {
        by: "the tracking URI says https://",
        ca_hint: "the registry needs a certificate from a public CA",
    };
    if net::reach_http(&mut check, &parsed, &asked).await.is_none() {
        return check.finish();
    }
    let dependency = Arc::new(Dependency::new("mlflow", timeout, BreakerConfig::default()));
    let client = match MlflowClient::new(url, Credentials::from_env(), dependency) {
        Ok(client) => client,
        Err(e) => {
            check.fail("roundtrip", None, e.to_string());
            return check.finish();
        }
    };
    let silence = "connected, but the registry sent no HTTP answer: it is hung or overloaded";
    let roundtrip = async {
        match client.probe().await {
            Ok(()) => Ok((
                (),
                "the registry answered an authenticated search".to_string(),
            )),
            Err(e) => Err(e.to_string()),
        }
    };
    if check.run("roundtrip", silence, roundtrip).await.is_none() {
        return check.finish();
    }
    let resolve = async {
        let mut named = Vec::new();
        let mut failed = Vec::new();
        for (id, source) in models {
            match client.resolve(&source.name, &source.selector).await {
                Ok(version) => named.push(format!(
                    "model {id}: {:?} {} is version {}",
                    source.name, source.selector, version.version
                )),
                Err(e) => failed.push(format!("model {id}: {e}")),
            }
        }
        match failed.is_empty() {
            true => Ok(((), named.join("; "))),
            false => Err(failed.join("; ")),
        }
    };
    check.run("resolve", silence, resolve).await;
    check.finish()
}
