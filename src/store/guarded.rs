//! The store as a running server uses it: every call under the `database` dependency's
//! deadline and circuit breaker.
//!
//! The raw [`Store`] is private to [`GuardedStore`], so code that only holds a guarded store
//! (handlers, auth, events, health) has no way to reach the database unguarded; the guard
//! offers the same operations instead. The raw store stays public for one-shot processes
//! (`modelgate keys …`, tests), which open their own.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{ApiKeyRecord, Backend, InferenceLogRow, Outcome, Revocation, Store, StoreError};
use crate::config::DatabaseConfig;
use crate::resilience::{BreakerConfig, CallError, Dependency};

/// What a guarded store call returns: the answer, or why none came (open circuit, timeout,
/// or the store's own error).
pub type Guarded<T> = Result<T, CallError<StoreError>>;

/// The store behind its dependency guard (`database`: timeout `database.timeout`, the shared
/// breaker settings). Cheap to clone; clones share the pool and the breaker.
#[derive(Clone)]
pub struct GuardedStore {
    store: Store,
    database: Arc<Dependency>,
}

impl GuardedStore {
    /// Opens (and migrates) the store and puts it behind the `database` dependency.
    pub async fn open(
        config: &DatabaseConfig,
        breaker: BreakerConfig,
    ) -> Result<GuardedStore, StoreError> {
        let store = Store::open(config).await?;
        Ok(GuardedStore {
            store,
            database: Arc::new(Dependency::new("database", config.timeout, breaker)),
        })
    }

    /// The guard itself, for health (status, breaker transitions) and for the events lane.
    pub fn dependency(&self) -> &Arc<Dependency> {
        &self.database
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// The raw store, for this module's own background tasks (which guard their calls).
    pub(super) fn raw(&self) -> &Store {
        &self.store
    }

    /// Where an SQLite store keeps its file; `None` for a server.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.store.sqlite_file()
    }

    /// Whether the last inference-log write was refused for want of disk space.
    pub fn disk_full(&self) -> bool {
        self.store.disk_full.is_full()
    }

    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The health probe's round trip: the same timeout and breaker as a request, so a passing
    /// probe is the trial that closes an open circuit.
    pub async fn ping(&self) -> Guarded<()> {
        self.database.call(self.store.ping()).await
    }

    pub async fn insert_key(&self, key: &ApiKeyRecord, key_hash: &str) -> Guarded<()> {
        self.database
            .call(self.store.insert_key(key, key_hash))
            .await
    }

    pub async fn find_key_by_hash(&self, key_hash: &str) -> Guarded<Option<ApiKeyRecord>> {
        self.database
            .call(self.store.find_key_by_hash(key_hash))
            .await
    }

    pub async fn list_keys(&self) -> Guarded<Vec<ApiKeyRecord>> {
        self.database.call(self.store.list_keys()).await
    }

    pub async fn count_keys(&self) -> Guarded<i64> {
        self.database.call(self.store.count_keys()).await
    }

    pub async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Guarded<Revocation> {
        self.database.call(self.store.revoke_key(id, at)).await
    }

    /// See [`Store::take_credit`].
    pub async fn take_credit(&self, id: &str) -> Guarded<Option<i64>> {
        self.database.call(self.store.take_credit(id)).await
    }

    /// See [`Store::add_credits`].
    pub async fn add_credits(&self, id: &str, amount: i64) -> Guarded<Option<i64>> {
        self.database.call(self.store.add_credits(id, amount)).await
    }

    /// See [`Store::deployment_secret`].
    pub async fn deployment_secret(&self, name: &str, candidate: &str) -> Guarded<String> {
        self.database
            .call(self.store.deployment_secret(name, candidate))
            .await
    }

    pub async fn inference_owner(&self, id: &str) -> Guarded<Option<String>> {
        self.database.call(self.store.inference_owner(id)).await
    }

    pub async fn record_outcome(&self, outcome: &Outcome) -> Guarded<()> {
        self.database.call(self.store.record_outcome(outcome)).await
    }

    /// The one unguarded operation, for the events lane only: the lane runs every sink's write
    /// through the sink's dependency (here [`GuardedStore::dependency`]) with a timeout scaled
    /// to the batch (`events::sink::Lane::send`); guarding here as well would count each
    /// write twice in the breaker.
    pub async fn insert_inference_logs_unguarded(
        &self,
        rows: &[InferenceLogRow<'_>],
    ) -> Result<(), StoreError> {
        let result = self.store.insert_inference_logs(rows).await;
        self.store.disk_full.observe(&result);
        result
    }
}
