//! Sink: the `inference_logs` table, through the `database` dependency.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::sink::{Sink, SinkError};
use super::Record;
use crate::resilience::Dependency;
use crate::store::Store;

pub struct DatabaseSink {
    store: Store,
    dependency: Arc<Dependency>,
    timeout: Duration,
}

impl DatabaseSink {
    pub fn new(store: Store, dependency: Arc<Dependency>, timeout: Duration) -> DatabaseSink {
        DatabaseSink {
            store,
            dependency,
            timeout,
        }
    }
}

impl Sink for DatabaseSink {
    fn name(&self) -> &'static str {
        "database"
    }

    fn dependency(&self) -> &Arc<Dependency> {
        &self.dependency
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Idempotent: rows already stored are skipped (`ON CONFLICT (id) DO NOTHING`).
    fn write<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.store
                .insert_inference_logs(records)
                .await
                .map_err(SinkError::from)
        })
    }
}
