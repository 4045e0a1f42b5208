//! Reloads: the models folder read again, each changed model loaded and checked beside the
//! serving one, then the whole set swapped at once. A version that fails never serves and is
//! not tried again until its files change or someone asks for a reload (SIGHUP, the admin
//! endpoint); a poll would otherwise log the same failure forever.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::catalog::{Catalog, Entries, Entry, LoadError, Problem, KEPT_VERSIONS};
use super::load::load_checked;
use super::{folder, Model};

/// Who asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `models.poll_interval`: only changed files are tried.
    Poll,
    /// SIGHUP or `POST /api/v1/admin/models/reload`: refused versions are tried again too.
    Asked,
}

/// What a reload did to one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Unchanged,
    Added,
    Swapped,
    Removed,
    /// The new version failed to load or its checks; the previous one (if any) serves.
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Added => "added",
            Outcome::Swapped => "swapped",
            Outcome::Removed => "removed",
            Outcome::Refused => "refused",
        }
    }
}

/// One model's line of a reload's report.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub model: String,
    pub outcome: Outcome,
    /// The version serving after the reload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version serving before, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/v1/admin/models/reload`'s answer, in model order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub models: Vec<Change>,
}

/// Sets `modelgate_model_version_info` for `model`: 1 while it serves, 0 once replaced.
pub(super) fn publish_version(model: &Model, value: f64) {
    let info = model.version();
    metrics::gauge!(crate::metrics::MODEL_VERSION_INFO, "model" => model.id().to_string(), "version" => info.version.clone(), "source" => info.source.as_str())
        .set(value);
}

fn serving_version(entry: Option<&Arc<Entry>>) -> Option<String> {
    entry
        .and_then(|e| e.versions.first())
        .map(|m| m.version().version.clone())
}

/// One model's line of the report, from its entries before and after.
pub(super) fn change(
    model: &str,
    outcome: Outcome,
    old: Option<&Arc<Entry>>,
    new: Option<&Arc<Entry>>,
) -> Change {
    Change {
        model: model.to_string(),
        outcome,
        version: serving_version(new),
        previous_version: (outcome != Outcome::Unchanged)
            .then(|| serving_version(old))
            .flatten(),
        error: new
            .and_then(|e| e.problem.as_ref())
            .map(|p| p.error.clone()),
    }
}

impl Catalog {
    /// Reads the models folder again and swaps in what changed. Asked for (rather than
    /// polled), it also asks the registries again and retries refused versions.
    pub async fn reload(self: &Arc<Self>, trigger: Trigger) -> Result<Report, LoadError> {
        let mut models = self.reload_folder(trigger).await?;
        if trigger == Trigger::Asked {
            for change in self.sync_registries(trigger).await {
                models.retain(|c| c.model != change.model);
                models.push(change);
            }
        }
        models.sort_by(|a, b| a.model.cmp(&b.model));
        Ok(Report { models })
    }

    async fn reload_folder(self: &Arc<Self>, trigger: Trigger) -> Result<Vec<Change>, LoadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let dir = self.dir().to_path_buf();
        let scan_dir = dir.clone();
        let found = tokio::task::spawn_blocking(move || folder::scan(&scan_dir))
            .await
            .map_err(std::io::Error::other)
            .and_then(|scanned| scanned)
            .map_err(|e| LoadError::Folder {
                path: dir,
                message: e.to_string(),
            })?;
        let before = self.entries();
        let mut next = Entries::new();
        let mut changes = Vec::new();
        for (id, model_dir) in found {
            let old = before.get(&id);
            // A refusal of these files is retried only when asked; what the registry said is
            // retried by the registry's own poll.
            let settled = old.filter(|old| {
                let refused_files = old.problem.as_ref().is_some_and(|p| !p.from_registry);
                old.stamp == model_dir.stamp && (!refused_files || trigger == Trigger::Poll)
            });
            if let Some(old) = settled {
                changes.push(change(&id, Outcome::Unchanged, Some(old), Some(old)));
                next.insert(id, old.clone());
                continue;
            }
            // A registry model keeps its registry version; only its manifest is read again.
            let wanted = old
                .and_then(|e| e.versions.first())
                .and_then(|m| m.registry_version().cloned());
            let (load_id, path, cache) = (
                id.clone(),
                model_dir.path.clone(),
                self.registry().cache().clone(),
            );
            let loaded = tokio::task::spawn_blocking(move || {
                load_checked(&load_id, &path, &cache, wanted.as_ref())
            })
            .await;
            let (source, candidate) = match loaded {
                Ok(loaded) => (loaded.source, loaded.model),
                Err(_) => (None, Err("loading stopped unexpectedly".into())),
            };
            let (mut entry, outcome) = next_entry(old, candidate, model_dir.stamp);
            entry.source = source;
            let entry = Arc::new(entry);
            let change = change(&id, outcome, old, Some(&entry));
            log_change(&change, old, Some(&entry));
            changes.push(change);
            next.insert(id, entry);
        }
        for (id, old) in before.iter().filter(|(id, _)| !next.contains_key(*id)) {
            let change = change(id, Outcome::Removed, Some(old), None);
            log_change(&change, Some(old), None);
            changes.push(change);
        }
        self.replace(next);
        Ok(changes)
    }
}

/// The entry a candidate makes: serving when it loaded and differs from the serving version,
/// else the old entry with the refusal (or nothing) noted.
pub(super) fn next_entry(
    old: Option<&Arc<Entry>>,
    candidate: Result<Model, String>,
    stamp: u64,
) -> (Entry, Outcome) {
    let serving = old.and_then(|e| e.versions.first());
    match (candidate, old) {
        // Files rewritten with what already serves (or reverted after a refusal): keep it.
        (Ok(model), Some(old)) if serving.is_some_and(|s| s.same_as(&model)) => {
            let entry = Entry {
                problem: None,
                stamp,
                ..Entry::clone(old)
            };
            (entry, Outcome::Unchanged)
        }
        (Ok(model), _) => {
            let tried = model.registry_version().map(|v| v.version.clone());
            let mut versions = vec![Arc::new(model)];
            versions.extend(old.iter().flat_map(|e| e.versions.iter().cloned()));
            versions.truncate(KEPT_VERSIONS);
            let outcome = match serving {
                Some(_) => Outcome::Swapped,
                None => Outcome::Added,
            };
            let entry = Entry {
                versions,
                required: true,
                problem: None,
                stamp,
                source: old.and_then(|e| e.source.clone()),
                tried,
            };
            (entry, outcome)
        }
        (Err(error), old) => {
            let problem = Some(Problem {
                error: format!("a new version was refused: {error}"),
                since: Utc::now(),
                from_registry: false,
            });
            let entry = match old {
                Some(old) => Entry {
                    problem,
                    stamp,
                    ..Entry::clone(old)
                },
                None => Entry {
                    versions: Vec::new(),
                    required: false,
                    problem,
                    stamp,
                    source: None,
                    tried: None,
                },
            };
            (entry, Outcome::Refused)
        }
    }
}

/// Logs a change once, and counts it and the serving versions in the metrics.
pub(super) fn log_change(change: &Change, old: Option<&Arc<Entry>>, new: Option<&Arc<Entry>>) {
    let model = change.model.as_str();
    let (version, previous) = (
        change.version.as_deref().unwrap_or("none"),
        change.previous_version.as_deref().unwrap_or("none"),
    );
    match change.outcome {
        Outcome::Unchanged => return,
        Outcome::Added => tracing::info!(model, version, "model added"),
        Outcome::Swapped => {
            tracing::info!(model, version, previous, "model version swapped in")
        }
        Outcome::Removed => tracing::info!(model, previous, "model removed: its folder is gone"),
        Outcome::Refused => {
            let error = change.error.as_deref().unwrap_or_default();
            tracing::warn!(model, serving = version, %error, "new model version refused; it will not serve")
        }
    }
    metrics::counter!(crate::metrics::MODEL_SWAPS, "model" => model.to_string(), "outcome" => change.outcome.as_str())
        .increment(1);
    if matches!(change.outcome, Outcome::Refused) {
        return;
    }
    if let Some(replaced) = old.and_then(|e| e.versions.first()) {
        publish_version(replaced, 0.0);
    }
    if let Some(serving) = new.and_then(|e| e.versions.first()) {
        publish_version(serving, 1.0);
    }
}

/// Reloads every `interval` (none when zero) and on each SIGHUP, until aborted. SIGHUP is
/// caught from the moment this returns, so that it cannot end the process once serving.
pub fn spawn(catalog: Arc<Catalog>, interval: Duration) -> JoinHandle<()> {
    let mut hangups = hangups();
    tokio::spawn(async move {
        let mut ticks = (!interval.is_zero()).then(|| {
            let first = tokio::time::Instant::now() + interval;
            let mut ticks = tokio::time::interval_at(first, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        loop {
            let tick = async {
                match ticks.as_mut() {
                    Some(ticks) => drop(ticks.tick().await),
                    None => std::future::pending().await,
                }
            };
            let trigger = tokio::select! {
                () = tick => Trigger::Poll,
                () = next_hangup(&mut hangups) => Trigger::Asked,
            };
            if let Err(error) = catalog.reload(trigger).await {
                tracing::warn!(%error, ?trigger, "models not reloaded; the loaded ones keep serving");
            }
        }
    })
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload models with POST /api/v1/admin/models/reload");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// Completes on the next SIGHUP; never when they cannot be received.
async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangups.as_mut() {
        if signal.recv().await.is_some() {
            return;
        }
    }
    #[cfg(not(unix))]
    let _ = hangups;
    std::future::pending().await
}
