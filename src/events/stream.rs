//! Sink: a Redis Stream (`events.stream`), through the shared Redis connection and the one
//! `redis` dependency, so Redis keeps one breaker and one health state.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::sink::{Sink, SinkError};
use super::Record;
use crate::redis::{Connection, Redis};
use crate::resilience::Dependency;

pub struct StreamSink {
    connection: Connection,
    dependency: Arc<Dependency>,
    stream: String,
    max_len: u64,
    timeout: Duration,
}

impl StreamSink {
    pub fn new(redis: &Redis, stream: String, max_len: u64, timeout: Duration) -> StreamSink {
        StreamSink {
            connection: redis.connection(),
            dependency: redis.dependency().clone(),
            stream,
            max_len,
            timeout,
        }
    }
}

impl Sink for StreamSink {
    fn name(&self) -> &'static str {
        "stream"
    }

    fn dependency(&self) -> &Arc<Dependency> {
        &self.dependency
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One pipelined `XADD … MAXLEN ~ n * id <id> record <json>` per record. Not idempotent:
    /// a replay can add a record twice, and consumers deduplicate by `id`.
    fn write<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<(), SinkError>> {
        let mut pipe = redis::pipe();
        for record in records {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("id")
                .arg(record.id.to_string())
                .arg("record")
                .arg(record.to_json())
                .ignore();
        }
        let mut connection = self.connection.clone();
        Box::pin(async move {
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(SinkError::from)
        })
    }
}
