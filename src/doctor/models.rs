//! The models folder: every model loads and passes its checks, as `modelgate serve` requires.

use std::sync::Arc;
use std::time::Duration;

use super::{detached, Check, DependencyReport};
use crate::config::Config;
use crate::models::{Catalog, Registry};

/// Loading is local work, slower than a network step in a debug build or on a busy machine;
/// `--timeout` is meant for remote answers, so here it is only ever raised.
const LEAST_TIME: Duration = Duration::from_secs(10);

pub(crate) async fn check(config: &Config, timeout: Duration) -> DependencyReport {
    let dir = &config.models_dir;
    let registry = Arc::new(Registry::new(&config.models, config.breaker.clone()));
    let shown = dir.display().to_string();
    let timeout = timeout.max(LEAST_TIME);
    let mut check = Check::new("models", true, &shown, vec!["load"], timeout);
    let folder = dir.to_path_buf();
    let load = async move {
        match detached(move || Catalog::open(&folder, registry)).await {
            Some(Ok(catalog)) => {
                let ids: Vec<String> = catalog
                    .serving()
                    .iter()
                    .map(|m| m.id().to_string())
                    .collect();
                let loaded = format!("{} model(s) loaded: {}", ids.len(), ids.join(", "));
                // After a successful open only registry models can still wait (for a version
                // `serve` fetches in the background; the mlflow check says whether it can).
                match (catalog.is_empty(), catalog.readiness()) {
                    (true, _) => Err(format!("no model in {}", catalog.dir().display())),
                    (false, Ok(())) => Ok(((), loaded)),
                    (false, Err(waiting)) => Ok(((), format!("{loaded}; waiting: {waiting}"))),
                }
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("loading the models stopped unexpectedly".into()),
        }
    };
    let silence = "loading the models took too long (a slow or hung file system?)";
    check.run("load", silence, load).await;
    check.finish()
}
