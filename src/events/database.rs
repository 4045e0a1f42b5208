//! Sink: the `inference_logs` table, through the store's `database` guard.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::sink::{Sink, SinkError};
use super::Record;
use crate::resilience::Dependency;
use crate::store::{GuardedStore, InferenceLogRow};

pub struct DatabaseSink {
    store: GuardedStore,
    timeout: Duration,
}

impl DatabaseSink {
    pub fn new(store: GuardedStore, timeout: Duration) -> DatabaseSink {
        DatabaseSink { store, timeout }
    }
}

impl Sink for DatabaseSink {
    fn name(&self) -> &'static str {
        "database"
    }

    fn dependency(&self) -> &Arc<Dependency> {
        self.store.dependency()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Idempotent: rows already stored are skipped (`ON CONFLICT (id) DO NOTHING`). Unguarded
    /// here because the lane runs every write through [`Sink::dependency`].
    fn write<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let rows: Vec<InferenceLogRow<'_>> = records.iter().map(row).collect();
            self.store
                .insert_inference_logs_unguarded(&rows)
                .await
                .map_err(SinkError::from)
        })
    }
}

/// The table's row for `record`, borrowing its text.
fn row(record: &Record) -> InferenceLogRow<'_> {
    InferenceLogRow {
        id: record.id,
        instance: &record.instance,
        seq: record.seq,
        api_key_id: &record.api_key_id,
        model_id: &record.model_id,
        model_version: &record.model_version,
        inputs: record.inputs.as_str(),
        outputs: record.outputs.as_str(),
        truncated: record.truncated,
        latency_ms: record.latency_ms,
        status: record.status.as_str(),
        protocol: record.protocol.as_str(),
        created_at: record.created_at,
    }
}
