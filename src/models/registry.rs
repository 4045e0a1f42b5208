//! The MLflow registries models come from, as one dependency (`mlflow`: one breaker, one
//! health check) with a client per tracking server, and the local cache of their versions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::cache::ModelCache;
use super::mlflow::{Credentials, DownloadLimits, MlflowClient, MlflowError, ValidSource};
use crate::config::ModelsConfig;
use crate::resilience::{BreakerConfig, CallError, Dependency};

pub struct Registry {
    dependency: Arc<Dependency>,
    limits: DownloadLimits,
    cache: ModelCache,
    /// By tracking URI; built when a model first names one.
    clients: Mutex<BTreeMap<String, MlflowClient>>,
}

impl Registry {
    pub fn new(config: &ModelsConfig, breaker: BreakerConfig) -> Registry {
        Registry {
            dependency: Arc::new(Dependency::new("mlflow", config.registry_timeout, breaker)),
            limits: DownloadLimits {
                timeout: config.download_timeout,
                max_bytes: config.download_max_bytes,
            },
            cache: ModelCache::new(&config.cache_dir),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn dependency(&self) -> &Arc<Dependency> {
        &self.dependency
    }

    pub fn cache(&self) -> &ModelCache {
        &self.cache
    }

    /// The client of the registry at `tracking_uri`, with MLflow's own credential variables.
    pub fn client(&self, tracking_uri: &str) -> Result<MlflowClient, MlflowError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(tracking_uri) {
            return Ok(client.clone());
        }
        let client = MlflowClient::new(
            tracking_uri,
            Credentials::from_env(),
            self.dependency.clone(),
        )?
        .with_download_limits(self.limits);
        clients.insert(tracking_uri.to_string(), client.clone());
        Ok(client)
    }

    /// One round trip to every registry in use; the first failure.
    pub async fn probe(&self) -> Result<(), CallError<MlflowError>> {
        let clients: Vec<MlflowClient> = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for client in clients {
            client.probe().await?;
        }
        Ok(())
    }
}

/// The registry source of every model of `dir` that names one, by model id, or why its
/// `[source]` cannot be used. For `doctor`, which checks what `serve` would ask.
pub fn configured_sources(
    dir: &std::path::Path,
) -> std::io::Result<Vec<(String, Result<ValidSource, String>)>> {
    let mut sources = Vec::new();
    for (id, model_dir) in super::folder::scan(dir)? {
        let Ok((_, manifest)) = super::Manifest::read(&model_dir.path) else {
            continue;
        };
        if let Some(source) = manifest.source {
            sources.push((id, source.validate().map_err(|e| e.to_string())));
        }
    }
    Ok(sources)
}
