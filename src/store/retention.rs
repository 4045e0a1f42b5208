//! Retention of the inference log: rows older than `events.retention` are removed in the
//! background, in steps small enough that the events writer never waits long for the table.
//!
//! SQLite deletes in batches of [`BATCH`] rows, one short transaction each, with a pause
//! between them (SQLite has one writer at a time: a long `DELETE` would stall every insert).
//! PostgreSQL drops whole day partitions (see `partitions`), plus batches from the DEFAULT
//! partition, which holds only rows outside every day.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio::task::JoinHandle;

use super::{Backend, GuardedStore, Store, StoreError};
use crate::resilience::CallError;

/// Rows per `DELETE`: a few milliseconds of the writer's lock.
const BATCH: i64 = 2000;
/// Between two batches, so that queued inserts get the lock.
const PAUSE: Duration = Duration::from_millis(20);
/// A pruning step may take longer than a request-path query.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

impl Store {
    /// Deletes at most [`BATCH`] rows created before `cutoff` (SQLite; on PostgreSQL only from
    /// the DEFAULT partition); returns how many went.
    pub async fn prune_inference_logs_batch(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (table, key) = match self.backend {
            Backend::Sqlite => ("inference_logs", "rowid"),
            Backend::Postgres => ("inference_logs_default", "ctid"),
        };
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN \
             (SELECT {key} FROM {table} WHERE created_at < $1 LIMIT $2)"
        );
        let done = sqlx::query(&sql)
            .bind(cutoff.timestamp_millis())
            .bind(BATCH)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Bytes the inference log takes on disk: PostgreSQL, the table with its partitions,
    /// indexes and TOAST; SQLite, the database file's pages in use (the log is nearly all of
    /// it, and walking its pages to be exact would cost a full scan).
    pub async fn inference_logs_bytes(&self) -> Result<u64, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT (page_count - freelist_count) * page_size \
                 FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
            }
            Backend::Postgres => {
                "SELECT (pg_total_relation_size('inference_logs') + COALESCE((SELECT \
                 SUM(pg_total_relation_size(inhrelid)) FROM pg_inherits \
                 WHERE inhparent = 'inference_logs'::regclass), 0))::BIGINT"
            }
        };
        let bytes: i64 = sqlx::query(sql).fetch_one(&self.pool).await?.try_get(0)?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }
}

/// Prunes every `interval` while `retention` is not zero, and publishes the table's size.
/// Runs until aborted.
pub fn spawn_pruner(
    store: GuardedStore,
    retention: Duration,
    interval: Duration,
) -> JoinHandle<()> {
    metrics::counter!(crate::metrics::EVENTS_PRUNED).increment(0);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !retention.is_zero() {
                if let Err(error) = prune(&store, retention).await {
                    tracing::warn!(%error, "pruning inference_logs failed; will retry");
                }
            }
            match store.guarded(|s| s.inference_logs_bytes()).await {
                Ok(bytes) => metrics::gauge!(crate::metrics::EVENTS_TABLE_BYTES).set(bytes as f64),
                Err(error) => tracing::debug!(%error, "cannot measure inference_logs"),
            }
        }
    })
}

/// One pruning pass: everything older than `retention`, a batch at a time.
async fn prune(store: &GuardedStore, retention: Duration) -> Result<(), CallError<StoreError>> {
    // A window longer than the calendar reaches back keeps everything.
    let Some(cutoff) = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|window| Utc::now().checked_sub_signed(window))
    else {
        return Ok(());
    };
    let mut pruned = 0u64;
    if store.backend() == Backend::Postgres {
        let dropped = store.guarded(|s| s.drop_partitions_before(cutoff)).await?;
        metrics::counter!(crate::metrics::EVENTS_PRUNED).increment(dropped);
        pruned += dropped;
    }
    loop {
        let batch = store
            .guarded(|s| s.prune_inference_logs_batch(cutoff))
            .await?;
        pruned += batch;
        metrics::counter!(crate::metrics::EVENTS_PRUNED).increment(batch);
        if batch < BATCH as u64 {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    if pruned > 0 {
        tracing::info!(pruned, cutoff = %cutoff, "inference_logs pruned to events.retention");
    }
    Ok(())
}

impl GuardedStore {
    /// A background maintenance step under the `database` guard, with a longer timeout.
    async fn guarded<'a, T, F, Fut>(&'a self, step: F) -> Result<T, CallError<StoreError>>
    where
        F: FnOnce(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + 'a,
    {
        self.dependency()
            .call_within(STEP_TIMEOUT, step(self.raw()))
            .await
    }
}
