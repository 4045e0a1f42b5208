//! What "is it up?" means for each kind of dependency.

use std::sync::Arc;

use super::disk::DiskWatch;
use crate::auth::RemoteAuth;
use crate::events::outbox::Budget;
use crate::models::{Catalog, Verdict};
use crate::redis::Redis;
use crate::resilience::{CallError, Dependency};
use crate::store::GuardedStore;

/// One dependency's probe. Probes of remote dependencies go through the same [`Dependency`]
/// as requests (same timeout, same breaker): a probe fails exactly when a request would, and a
/// successful probe is the trial that closes an open breaker without a user paying for it.
pub enum Probe {
    Database(GuardedStore),
    Redis(Box<Redis>),
    AuthService(RemoteAuth),
    /// Whether every model that must serve has a version, and whether one was refused.
    Models(Arc<Catalog>),
    /// The model registries the models come from (one round trip to each); the catalog says
    /// which registry versions serve meanwhile.
    Mlflow(Arc<Catalog>),
    /// The events outbox's fill, from memory: down while records are being dropped.
    Outbox(Arc<Budget>),
    /// Free space where records are written, and whether the database refused them for lack
    /// of it (from memory and `statvfs`).
    Disk(Box<DiskWatch>),
}

/// A probe's answer.
pub enum Outcome {
    Up,
    /// Working, with a problem worth showing (e.g. a model version that was refused).
    Degraded(String),
    Down(String),
    /// The breaker refused the call: nothing new was learnt.
    NotTried,
}

impl<E: std::fmt::Display> From<Result<(), CallError<E>>> for Outcome {
    fn from(result: Result<(), CallError<E>>) -> Self {
        match result {
            Ok(()) => Outcome::Up,
            Err(CallError::Open { .. }) => Outcome::NotTried,
            Err(err) => Outcome::Down(err.to_string()),
        }
    }
}

impl Probe {
    pub fn dependency(&self) -> Option<&Arc<Dependency>> {
        match self {
            Probe::Database(store) => Some(store.dependency()),
            Probe::Redis(redis) => Some(redis.dependency()),
            Probe::AuthService(remote) => Some(remote.dependency()),
            Probe::Mlflow(catalog) => Some(catalog.registry().dependency()),
            Probe::Models(_) | Probe::Outbox(_) | Probe::Disk(_) => None,
        }
    }

    /// What users lose while this dependency is not healthy: `base`, and for the registry
    /// which versions keep serving meanwhile.
    pub fn impact(&self, base: &'static str) -> String {
        match self {
            Probe::Mlflow(catalog) => {
                let serving = catalog.registry_versions().join("; ");
                match serving.is_empty() {
                    true => base.to_string(),
                    false => format!("{base}; serving {serving}"),
                }
            }
            _ => base.to_string(),
        }
    }

    /// The outcome of probes that need no I/O, known as soon as the check exists.
    pub fn immediate(&self) -> Option<Outcome> {
        match self {
            Probe::Models(models) => Some(match models.verdict() {
                Verdict::Up => Outcome::Up,
                Verdict::Degraded(problem) => Outcome::Degraded(problem),
                Verdict::Down(problem) => Outcome::Down(problem),
            }),
            Probe::Outbox(budget) if budget.is_full() => Some(Outcome::Down(format!(
                "outbox full ({} of {} bytes)",
                budget.used(),
                budget.cap()
            ))),
            Probe::Outbox(_) => Some(Outcome::Up),
            Probe::Disk(disk) => Some(match disk.check() {
                Ok(()) => Outcome::Up,
                Err(error) => Outcome::Down(error),
            }),
            _ => None,
        }
    }

    pub async fn run(&self) -> Outcome {
        if let Some(outcome) = self.immediate() {
            return outcome;
        }
        match self {
            Probe::Database(store) => store.ping().await.into(),
            Probe::Redis(redis) => redis.ping().await.into(),
            Probe::AuthService(remote) => remote.probe().await.into(),
            Probe::Mlflow(catalog) => catalog.registry().probe().await.into(),
            Probe::Models(_) | Probe::Outbox(_) | Probe::Disk(_) => Outcome::NotTried,
        }
    }
}
