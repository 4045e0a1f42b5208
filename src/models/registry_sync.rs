//! Registry models: each asks its registry, every `poll_interval` of its `[source]`, which
//! version its alias (or stage) names. A version not seen before is downloaded into the cache,
//! loaded and checked beside the serving one, then swapped in like a folder change; one that
//! fails is not fetched again until the alias moves or a reload is asked for. The registry is
//! never on a request's path: while it is down, the loaded versions keep serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cache::CachedVersion;
use super::catalog::{Catalog, Problem};
use super::load::load_checked;
use super::mlflow::{ResolvedVersion, ValidSource};
use super::reload::{change, log_change, next_entry, Change, Outcome, Trigger};
use crate::resilience::CallError;

/// How often the poller looks for models whose poll is due (the shortest `poll_interval`).
const TICK: Duration = Duration::from_secs(1);

/// Polls each registry model when its interval is due, until aborted.
pub fn spawn(catalog: Arc<Catalog>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut due: BTreeMap<String, Instant> = BTreeMap::new();
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let sources = catalog.registry_sources();
            due.retain(|id, _| sources.iter().any(|(other, _)| other == id));
            for (id, source) in sources {
                let now = Instant::now();
                // Due within half a tick counts as due: the interval is kept, not rounded up.
                if due.get(&id).is_some_and(|at| *at > now + TICK / 2) {
                    continue;
                }
                due.insert(id.clone(), now + source.poll_interval);
                catalog.sync(&id, &source, Trigger::Poll).await;
            }
        }
    })
}

/// What asking the registry about one model showed.
enum Answer {
    /// The version to try.
    Try(CachedVersion, ResolvedVersion),
    /// Nothing to do: refused before, or the registry is known down.
    Nothing,
    /// The registry names the version serving: what it said before no longer holds.
    Serving,
    /// Worth showing on the model (e.g. the alias is gone, or no version could be had).
    Problem(String),
}

impl Catalog {
    /// `(id, source)` of every model whose graph comes from a registry.
    fn registry_sources(&self) -> Vec<(String, ValidSource)> {
        self.entries()
            .iter()
            .filter_map(|(id, e)| Some((id.clone(), e.source.clone()?)))
            .collect()
    }

    /// Asks every registry about its models now; the changes made.
    pub(super) async fn sync_registries(self: &Arc<Self>, trigger: Trigger) -> Vec<Change> {
        let mut changes = Vec::new();
        for (id, source) in self.registry_sources() {
            changes.extend(self.sync(&id, &source, trigger).await);
        }
        changes
    }

    /// Asks the registry which version `source` names and, when it is new, fetches, checks
    /// and swaps it in.
    async fn sync(
        self: &Arc<Self>,
        id: &str,
        source: &ValidSource,
        trigger: Trigger,
    ) -> Option<Change> {
        let (wanted, resolved) = match self.ask(id, source, trigger).await {
            Answer::Try(wanted, resolved) => (wanted, resolved),
            Answer::Nothing => return None,
            Answer::Serving => return self.settle(id).await,
            Answer::Problem(problem) => return self.note(id, problem).await,
        };
        let cache = self.registry().cache().clone();
        let cached = {
            let (cache, id, wanted) = (cache.clone(), id.to_string(), wanted.clone());
            tokio::task::spawn_blocking(move || cache.load(&id, &wanted)).await
        };
        if !matches!(cached, Ok(Ok(Some(_)))) {
            let client = self.registry().client(&source.tracking_uri).ok()?;
            let graph = match client.fetch_graph(&resolved).await {
                Ok(graph) => graph,
                // The artifact itself cannot be used: refused, and not fetched again until
                // the alias moves.
                Err(CallError::Failed { source: e, .. }) if !e.is_outage() => {
                    return self.install(id, &wanted, Err(e.to_string())).await;
                }
                Err(e) => {
                    return self
                        .note(
                            id,
                            format!("version {} could not be downloaded: {e}", wanted.version),
                        )
                        .await
                }
            };
            let (store, owned_id, version) = (cache.clone(), id.to_string(), wanted.clone());
            let stored =
                tokio::task::spawn_blocking(move || store.store(&owned_id, &version, &graph)).await;
            if let Err(e) = stored.map_err(std::io::Error::other).and_then(|r| r) {
                let problem = format!(
                    "cannot write version {} to the model cache: {e}",
                    wanted.version
                );
                return self.note(id, problem).await;
            }
        }
        let (load_id, dir, version) = (id.to_string(), self.dir().join(id), wanted.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            load_checked(&load_id, &dir, &cache, Some(&version)).model
        })
        .await
        .unwrap_or_else(|_| Err("loading stopped unexpectedly".into()));
        self.install(id, &wanted, loaded).await
    }

    async fn ask(&self, id: &str, source: &ValidSource, trigger: Trigger) -> Answer {
        let client = match self.registry().client(&source.tracking_uri) {
            Ok(client) => client,
            Err(e) => return Answer::Problem(e.to_string()),
        };
        let entry = self.entries().get(id).cloned();
        let serving = entry.as_ref().and_then(|e| e.versions.first().cloned());
        let resolved = match client.resolve(&source.name, &source.selector).await {
            Ok(resolved) => resolved,
            // Known down: health says so already, and nothing new was learnt.
            Err(CallError::Open { .. }) => return Answer::Nothing,
            Err(CallError::Failed { source: e, .. }) if !e.is_outage() => {
                return Answer::Problem(e.to_string())
            }
            // An outage costs a serving model nothing: the mlflow check shows it.
            Err(_) if serving.is_some() => return Answer::Nothing,
            Err(e) => return Answer::Problem(format!("the registry cannot be asked: {e}")),
        };
        let wanted = CachedVersion {
            name: resolved.name.clone(),
            version: resolved.version.clone(),
        };
        if serving.as_ref().and_then(|m| m.registry_version()) == Some(&wanted) {
            return Answer::Serving;
        }
        let tried = entry.as_ref().and_then(|e| e.tried.as_deref());
        if trigger == Trigger::Poll && tried == Some(wanted.version.as_str()) {
            return Answer::Nothing;
        }
        Answer::Try(wanted, resolved)
    }

    /// Swaps in (or refuses) the loaded candidate for `wanted`.
    async fn install(
        self: &Arc<Self>,
        id: &str,
        wanted: &CachedVersion,
        candidate: Result<super::Model, String>,
    ) -> Option<Change> {
        let _one_at_a_time = self.reloading.lock().await;
        let before = self.entries();
        // Removed from the folder meanwhile: nothing to install into.
        let old = before.get(id)?;
        let (mut entry, outcome) = next_entry(Some(old), candidate, old.stamp);
        entry.tried = Some(wanted.version.clone());
        if let Some(problem) = &mut entry.problem {
            problem.from_registry = true;
        }
        let entry = Arc::new(entry);
        let change = change(id, outcome, Some(old), Some(&entry));
        log_change(&change, Some(old), Some(&entry));
        let mut next = (*before).clone();
        next.insert(id.to_string(), entry.clone());
        self.replace(next);
        if outcome == Outcome::Swapped || outcome == Outcome::Added {
            self.remember_current(id, wanted, &entry.versions).await;
        }
        Some(change)
    }

    /// Shows `problem` on the model without changing what serves.
    async fn note(&self, id: &str, problem: String) -> Option<Change> {
        let problem = Problem {
            error: problem,
            since: Utc::now(),
            from_registry: true,
        };
        self.set_problem(id, Some(problem)).await
    }

    /// Clears what the registry said before, now that it names the serving version again.
    async fn settle(&self, id: &str) -> Option<Change> {
        self.set_problem(id, None).await
    }

    async fn set_problem(&self, id: &str, problem: Option<Problem>) -> Option<Change> {
        let _one_at_a_time = self.reloading.lock().await;
        let before = self.entries();
        let old = before.get(id)?;
        let unchanged = match (&old.problem, &problem) {
            (Some(old), Some(new)) => old.error == new.error,
            // Only the registry's own problems end when it names the serving version.
            (Some(old), None) => !old.from_registry,
            (None, new) => new.is_none(),
        };
        if unchanged {
            return None;
        }
        match &problem {
            Some(problem) => {
                tracing::warn!(model = id, problem = %problem.error, "registry model not updated")
            }
            None => tracing::info!(model = id, "the registry names the serving version again"),
        }
        let mut entry = super::catalog::Entry::clone(old);
        entry.problem = problem;
        let mut next = (*before).clone();
        next.insert(id.to_string(), Arc::new(entry));
        self.replace(next);
        None
    }

    /// Records the serving version in the cache (what a start without the registry serves),
    /// and lets go of the cached versions no longer loaded.
    async fn remember_current(
        &self,
        id: &str,
        serving: &CachedVersion,
        loaded: &[Arc<super::Model>],
    ) {
        let keep: Vec<CachedVersion> = loaded
            .iter()
            .filter_map(|m| m.registry_version().cloned())
            .collect();
        let (cache, id_owned, serving) = (
            self.registry().cache().clone(),
            id.to_string(),
            serving.clone(),
        );
        let done =
            tokio::task::spawn_blocking(move || cache.set_current(&id_owned, &serving, &keep))
                .await;
        if let Err(error) = done.map_err(std::io::Error::other).and_then(|r| r) {
            tracing::warn!(model = id, %error, "cannot record the serving version in the model cache; a start without the registry may serve an older one");
        }
    }
}
