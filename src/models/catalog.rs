//! The models being served and their loaded versions.
//!
//! Requests read the whole set through one atomic pointer ([`ArcSwap`]): a lookup takes no
//! lock and hands out an `Arc` of one version, so a request finishes on the version it started
//! with while a reload builds the next set beside it and swaps it in whole. Only reloads write
//! (`reload.rs`), one at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::load::load_checked;
use super::mlflow::ValidSource;
use super::{folder, Model, Registry};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read models folder {path}: {message}")]
    Folder { path: PathBuf, message: String },
    #[error("model {id} ({path}): {message}")]
    Model {
        id: String,
        path: PathBuf,
        message: String,
    },
}

/// How many versions of a model stay loaded: the serving one and the one before it.
pub(super) const KEPT_VERSIONS: usize = 2;

/// One configured model.
#[derive(Clone)]
pub(super) struct Entry {
    /// Newest first: the serving version, then the previous one (rollback and pinning).
    pub versions: Vec<Arc<Model>>,
    /// Whether readiness waits for this model: it was there at start, or has served since.
    pub required: bool,
    /// Why the newest candidate is not serving.
    pub problem: Option<Problem>,
    /// The folder's stamp when it was last tried, whether its version serves or failed.
    pub stamp: u64,
    /// The registry the manifest names, for a model whose graph comes from one.
    pub source: Option<ValidSource>,
    /// The registry version last tried (serving or refused): a poll fetches only another one.
    pub tried: Option<String>,
}

/// A version that failed to load or its checks, and therefore does not serve.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub error: String,
    pub since: DateTime<Utc>,
    /// Whether it came from the registry's answer (a refused registry version, a missing
    /// alias, no version to be had), and so ends once the registry names the serving version.
    #[serde(skip)]
    pub from_registry: bool,
}

/// Why a lookup found no version to score with.
#[derive(Debug)]
pub enum Unavailable {
    NoSuchModel,
    NoSuchVersion,
    /// The model is configured but has no loaded version; the reason says why.
    NotReady(String),
}

/// What the models check of `/health` shows.
pub enum Verdict {
    Up,
    /// Every required model serves, but some version was refused.
    Degraded(String),
    /// A required model cannot answer.
    Down(String),
}

pub(super) type Entries = BTreeMap<String, Arc<Entry>>;

pub struct Catalog {
    dir: PathBuf,
    registry: Arc<Registry>,
    live: ArcSwap<Entries>,
    /// One reload at a time: the poll, SIGHUP and the admin endpoint may ask at once.
    pub(super) reloading: tokio::sync::Mutex<()>,
}

impl Catalog {
    /// Loads and checks every model of `dir`. A failure stops the start, since an operator
    /// starting a server expects every model in its folder to serve, except for a registry
    /// model: it starts from its cached version, or without one (not ready) until the registry
    /// provides one.
    pub fn open(dir: &Path, registry: Arc<Registry>) -> Result<Catalog, LoadError> {
        let found = folder::scan(dir).map_err(|e| LoadError::Folder {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut entries = Entries::new();
        for (id, model_dir) in found {
            let loaded = load_checked(&id, &model_dir.path, registry.cache(), None);
            let source = loaded.source.clone();
            let (versions, problem) = match loaded.into_result() {
                Ok(model) => {
                    tracing::info!(model = %id, version = %model.version().version, source = model.version().source.as_str(), engine = model.engine(), "model loaded");
                    super::reload::publish_version(&model, 1.0);
                    (vec![Arc::new(model)], None)
                }
                Err(refusal) if refusal.source.is_some() => {
                    tracing::warn!(model = %id, error = %refusal.message, "registry model not ready: it serves once a version arrives from the registry");
                    let problem = Problem {
                        error: refusal.message,
                        since: Utc::now(),
                        from_registry: true,
                    };
                    (Vec::new(), Some(problem))
                }
                Err(refusal) => {
                    return Err(LoadError::Model {
                        id: id.clone(),
                        path: model_dir.path.clone(),
                        message: refusal.message,
                    })
                }
            };
            let tried = versions
                .first()
                .and_then(|m: &Arc<Model>| m.registry_version())
                .map(|v| v.version.clone());
            let entry = Entry {
                versions,
                required: true,
                problem,
                stamp: model_dir.stamp,
                source,
                tried,
            };
            entries.insert(id, Arc::new(entry));
        }
        Ok(Catalog {
            dir: dir.to_path_buf(),
            registry,
            live: ArcSwap::from_pointee(entries),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether a model of the folder takes its graph from a registry.
    pub fn uses_registry(&self) -> bool {
        self.live.load().values().any(|e| e.source.is_some())
    }

    pub(super) fn entries(&self) -> Arc<Entries> {
        self.live.load_full()
    }

    pub(super) fn replace(&self, entries: Entries) {
        self.live.store(Arc::new(entries));
    }

    /// The version that serves `id` now.
    pub fn current(&self, id: &str) -> Result<Arc<Model>, Unavailable> {
        let entries = self.live.load();
        let entry = entries.get(id).ok_or(Unavailable::NoSuchModel)?;
        entry.versions.first().cloned().ok_or_else(|| {
            Unavailable::NotReady(match &entry.problem {
                Some(problem) => problem.error.clone(),
                None => "no version has loaded yet".into(),
            })
        })
    }

    /// A loaded version of `id`, the serving one first when two carry the same name.
    pub fn pinned(&self, id: &str, version: &str) -> Result<Arc<Model>, Unavailable> {
        let entries = self.live.load();
        let entry = entries.get(id).ok_or(Unavailable::NoSuchModel)?;
        let found = entry
            .versions
            .iter()
            .find(|m| m.version().version == version);
        found.cloned().ok_or(Unavailable::NoSuchVersion)
    }

    /// Every loaded version of `id`, newest first, and why a newer one is not among them.
    pub fn versions(&self, id: &str) -> Option<(Vec<Arc<Model>>, Option<Problem>)> {
        let entries = self.live.load();
        let entry = entries.get(id)?;
        Some((entry.versions.clone(), entry.problem.clone()))
    }

    /// The serving version of every model that has one.
    pub fn serving(&self) -> Vec<Arc<Model>> {
        let entries = self.live.load();
        entries
            .values()
            .filter_map(|e| e.versions.first().cloned())
            .collect()
    }

    /// "model 21 version 3 (fetched 2026-12-04T08:20:00Z)" for each registry version serving.
    pub fn registry_versions(&self) -> Vec<String> {
        let entries = self.live.load();
        let serving = entries
            .iter()
            .filter_map(|(id, e)| Some((id, e.versions.first()?)));
        serving
            .filter(|(_, m)| m.registry_version().is_some())
            .map(|(id, m)| {
                let at = m
                    .version()
                    .loaded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                format!("model {id} version {} (fetched {at})", m.version().version)
            })
            .collect()
    }

    /// How many models are configured (served or not).
    pub fn len(&self) -> usize {
        self.live.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `Err` names the first model that readiness waits for and why.
    pub fn readiness(&self) -> Result<(), String> {
        match self.verdict() {
            Verdict::Down(reason) => Err(reason),
            Verdict::Up | Verdict::Degraded(_) => Ok(()),
        }
    }

    pub fn verdict(&self) -> Verdict {
        let entries = self.live.load();
        if entries.is_empty() {
            return Verdict::Down("no model is configured".into());
        }
        let mut refused = Vec::new();
        for (id, entry) in entries.iter() {
            let problem = entry.problem.as_ref().map_or("", |p| p.error.as_str());
            match entry.versions.first() {
                None if entry.required => {
                    return Verdict::Down(format!("model {id} has no loaded version: {problem}"))
                }
                None => refused.push(format!("model {id} does not serve: {problem}")),
                Some(serving) if entry.problem.is_some() => refused.push(format!(
                    "model {id}: {problem}; version {} keeps serving",
                    serving.version().version
                )),
                Some(_) => {}
            }
        }
        match refused.is_empty() {
            true => Verdict::Up,
            false => Verdict::Degraded(refused.join("; ")),
        }
    }
}
