//! Where records go, and the lane each sink gets: direct writes while it is well and its
//! outbox empty, the outbox otherwise.
//!
//! Adding a sink means implementing [`Sink`] and passing it to `Events::open`; the queue,
//! outbox, replay, metrics and shutdown are shared.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;

use super::outbox::SegmentLog;
use super::Record;
use crate::resilience::{CallError, Dependency};

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// A destination of inference records.
pub trait Sink: Send + Sync + 'static {
    /// Names the sink in metrics, logs and the outbox folder.
    fn name(&self) -> &'static str;
    /// The dependency every write goes through (timeout, breaker, health).
    fn dependency(&self) -> &Arc<Dependency>;
    /// How long a write of one batch (`events.batch_size` records) may take.
    fn timeout(&self) -> Duration;
    /// Writes `records`, in order. Replays re-send records after a crash or a lost answer, so
    /// a sink either ignores records it already has (by `id`) or documents that its readers
    /// deduplicate.
    fn write<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// One sink with its outbox log.
pub struct Lane {
    sink: Arc<dyn Sink>,
    log: Arc<SegmentLog>,
    /// Wakes the lane's drainer when records are put in its outbox.
    outboxed: Notify,
    batch_size: usize,
}

impl Lane {
    pub fn new(sink: Arc<dyn Sink>, log: SegmentLog, batch_size: usize) -> Lane {
        let name = sink.name();
        metrics::counter!(crate::metrics::EVENTS_WRITTEN, "sink" => name).increment(0);
        metrics::counter!(crate::metrics::EVENTS_OUTBOXED, "sink" => name).increment(0);
        metrics::counter!(crate::metrics::EVENTS_REPLAYED, "sink" => name).increment(0);
        Lane {
            sink,
            log: Arc::new(log),
            outboxed: Notify::new(),
            batch_size: batch_size.max(1),
        }
    }

    pub fn name(&self) -> &'static str {
        self.sink.name()
    }

    /// Records per writer batch (`events.batch_size`).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn log(&self) -> &Arc<SegmentLog> {
        &self.log
    }

    pub async fn until_outboxed(&self) {
        self.outboxed.notified().await
    }

    /// One guarded write: the sink's timeout for each batch's worth of records (a replay
    /// writes several at once) and its dependency's breaker.
    pub async fn send(&self, records: &[Record]) -> Result<(), CallError<SinkError>> {
        let batches = records.len().div_ceil(self.batch_size).max(1);
        let timeout = self.sink.timeout() * u32::try_from(batches).unwrap_or(u32::MAX);
        let dependency = self.sink.dependency();
        dependency
            .call_within(timeout, self.sink.write(records))
            .await
    }

    /// Hands `records` to the sink, or to its outbox when the sink fails or older records are
    /// still waiting there (so that the sink receives them in order).
    pub async fn deliver(&self, records: &[Record]) {
        if self.log.is_empty() {
            match self.send(records).await {
                Ok(()) => {
                    metrics::counter!(crate::metrics::EVENTS_WRITTEN, "sink" => self.name())
                        .increment(records.len() as u64);
                    return;
                }
                // A known-bad sink (open circuit) was already reported by health.
                Err(CallError::Open { .. }) => {}
                // Once per outage: records keep going to the outbox until it is drained.
                Err(error) => {
                    tracing::warn!(sink = self.name(), %error, "event sink failed; its records go to the outbox until it is back")
                }
            }
        }
        let payloads: Vec<Vec<u8>> = records.iter().map(Record::to_json).collect();
        if keep(&self.log, payloads, true, self.name()).await > 0 {
            self.outboxed.notify_one();
        }
    }
}

/// Appends `payloads` to `log` off the async workers (fsync blocks), counting what it cannot
/// keep; returns how many it kept.
pub async fn keep(
    log: &Arc<SegmentLog>,
    payloads: Vec<Vec<u8>>,
    sync: bool,
    sink: &'static str,
) -> usize {
    let count = payloads.len();
    let log = log.clone();
    let appended = tokio::task::spawn_blocking(move || log.append(&payloads, sync)).await;
    let stored = match appended {
        Ok(Ok(appended)) => {
            if appended.refused > 0 {
                tracing::warn!(
                    sink,
                    dropped = appended.refused,
                    "outbox full: records dropped"
                );
                metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => "outbox_full")
                    .increment(appended.refused as u64);
            }
            appended.stored
        }
        Ok(Err(error)) => {
            tracing::error!(sink, %error, dropped = count, "cannot write the outbox: records dropped");
            let reason = super::outbox::drop_reason(&error);
            metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => reason)
                .increment(count as u64);
            0
        }
        Err(_) => {
            metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => "outbox_error")
                .increment(count as u64);
            0
        }
    };
    metrics::counter!(crate::metrics::EVENTS_OUTBOXED, "sink" => sink).increment(stored as u64);
    stored
}
