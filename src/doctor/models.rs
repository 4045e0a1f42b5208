//! The models folder: every model loads and passes its checks, as `modelgate serve` requires.

use std::path::Path;
use std::time::Duration;

use super::{detached, Check, DependencyReport};
use crate::models::Catalog;

/// Loading is local work, slower than a network step in a debug build or on a busy machine;
/// `--timeout` is meant for remote answers, so here it is only ever raised.
const LEAST_TIME: Duration = Duration::from_secs(10);

pub(crate) async fn check(dir: &Path, timeout: Duration) -> DependencyReport {
    let shown = dir.display().to_string();
    let timeout = timeout.max(LEAST_TIME);
    let mut check = Check::new("models", true, &shown, vec!["load"], timeout);
    let folder = dir.to_path_buf();
    let load = async move {
        match detached(move || Catalog::open(&folder)).await {
            Some(Ok(catalog)) => {
                let ids: Vec<String> = catalog
                    .serving()
                    .iter()
                    .map(|m| m.id().to_string())
                    .collect();
                Ok((
                    (),
                    format!("{} model(s) loaded: {}", ids.len(), ids.join(", ")),
                ))
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("loading the models stopped unexpectedly".into()),
        }
    };
    let silence = "loading the models took too long (a slow or hung file system?)";
    check.run("load", silence, load).await;
    check.finish()
}
