//! Inference records: one per prediction, written off the request path to every sink (the
//! `inference_logs` table, the Redis stream), through a durable outbox when a sink is away.
//!
//! ```text
//! request ─▶ round leader ─ write ─▶ journal      (the response waits for this write only)
//!                └─ try_send ─▶ queue ─▶ writer ─┬─▶ lane "database" ─▶ sink | outbox ─▶ drainer ─▶ sink
//!      (queue full, restart) journal ─┘          └─▶ lane "stream"   ─▶ sink | outbox ─▶ drainer ─▶ sink
//! ```
//! See docs/events.md for the record, the guarantees and the outbox format.

mod database;
mod drainer;
mod intake;
pub mod outbox;
mod record;
mod sink;
mod stream;
mod usage;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::EventsConfig;
use intake::Intake;
use outbox::{Batch, Budget, Outbox, OutboxError};

pub use intake::NotKept;

pub use database::DatabaseSink;
pub use record::{Payload, Protocol, Record, RecordStatus};
pub use sink::{Sink, SinkError};
pub use stream::StreamSink;
pub use usage::UsageSink;

/// What the predict handler knows about one prediction.
pub struct Prediction<'a> {
    pub id: Uuid,
    pub api_key_id: &'a str,
    pub model_id: &'a str,
    pub model_version: &'a str,
    pub inputs: &'a serde_json::Value,
    pub outputs: &'a serde_json::Value,
    pub latency_ms: f64,
    pub status: RecordStatus,
    pub protocol: Protocol,
}

struct Inner {
    instance: String,
    intake: Arc<Intake>,
    max_payload_bytes: usize,
    budget: Arc<Budget>,
    /// Taken by [`Events::start`]: the parts the background tasks own.
    parts: std::sync::Mutex<Option<writer::Writer>>,
    _outbox: Outbox,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.intake.close();
    }
}

/// The request path's handle; cheap to clone. Disabled, it records nothing.
#[derive(Clone, Default)]
pub struct Events {
    inner: Option<Arc<Inner>>,
}

impl Events {
    pub fn disabled() -> Events {
        Events { inner: None }
    }

    /// Opens the outbox (replaying what an earlier run left in it once started) and prepares
    /// the queue. Nothing here waits on a sink.
    pub fn open(config: &EventsConfig, sinks: Vec<Arc<dyn Sink>>) -> Result<Events, OutboxError> {
        if !config.enabled {
            return Ok(Events::disabled());
        }
        let outbox = Outbox::open(
            &config.outbox_dir,
            config.outbox_max_bytes,
            config.outbox_segment_bytes,
        )?;
        let lanes = sinks
            .into_iter()
            .map(|sink| {
                Ok(Arc::new(sink::Lane::new(
                    sink.clone(),
                    outbox.log(sink.name())?,
                    config.batch_size,
                )))
            })
            .collect::<Result<Vec<_>, OutboxError>>()?;
        let (sender, queue) = mpsc::channel(config.queue_capacity.max(1));
        let io = |source| OutboxError::Io {
            path: config.outbox_dir.display().to_string(),
            source,
        };
        intake::adopt_overflow_log(&config.outbox_dir).map_err(io)?;
        let journal = Arc::new(outbox.log_within(
            intake::JOURNAL,
            Arc::new(Budget::unpublished(config.journal_max_bytes)),
        )?);
        let intake = Intake::start(sender, journal, config.fsync_interval).map_err(io)?;
        let instance = instance_name();
        tracing::info!(%instance, outbox = %config.outbox_dir.display(), pending_bytes = outbox.budget().used(), "inference records on");
        let writer = writer::Writer {
            queue,
            intake: intake.clone(),
            lanes,
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval,
        };
        Ok(Events {
            inner: Some(Arc::new(Inner {
                instance,
                intake,
                max_payload_bytes: config.max_payload_bytes,
                budget: outbox.budget().clone(),
                parts: std::sync::Mutex::new(Some(writer)),
                _outbox: outbox,
            })),
        })
    }

    /// Records one prediction, returning once the record is in the journal (one shared write,
    /// see `intake`). `Err`: it could not be kept (counted), so its id must not be handed out.
    /// Records off: `Ok`, nothing recorded.
    pub async fn record(&self, prediction: Prediction<'_>) -> Result<(), NotKept> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let (inputs, inputs_cut) = Payload::capture(prediction.inputs, inner.max_payload_bytes);
        let (outputs, outputs_cut) = Payload::capture(prediction.outputs, inner.max_payload_bytes);
        inner
            .intake
            .submit(Record {
                id: prediction.id,
                instance: inner.instance.clone(),
                seq: 0,
                api_key_id: prediction.api_key_id.to_string(),
                model_id: prediction.model_id.to_string(),
                model_version: prediction.model_version.to_string(),
                inputs,
                outputs,
                truncated: inputs_cut || outputs_cut,
                latency_ms: prediction.latency_ms,
                status: prediction.status,
                protocol: prediction.protocol,
                created_at: chrono::Utc::now(),
            })
            .await
    }

    /// The outbox's fill, for health; `None` when records are off.
    pub fn outbox_budget(&self) -> Option<Arc<Budget>> {
        self.inner.as_ref().map(|inner| inner.budget.clone())
    }

    /// Starts the writer and one drainer per sink (once; later calls start nothing).
    pub fn start(&self) -> EventTasks {
        let (stop, stopping) = watch::channel(false);
        let mut tasks = EventTasks {
            stop,
            writer: None,
            drainers: Vec::new(),
        };
        let Some(inner) = &self.inner else {
            return tasks;
        };
        let taken = inner.parts.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(writer) = taken else {
            return tasks;
        };
        for lane in &writer.lanes {
            tasks
                .drainers
                .push(tokio::spawn(drainer::run(lane.clone(), stopping.clone())));
        }
        tasks.writer = Some(tokio::spawn(writer.run(stopping)));
        tasks
    }
}

/// The running writer and drainers.
pub struct EventTasks {
    stop: watch::Sender<bool>,
    writer: Option<JoinHandle<()>>,
    drainers: Vec<JoinHandle<()>>,
}

impl EventTasks {
    /// Writes out what is queued, to the sinks or the outbox, within `grace`; what is still in
    /// the outbox then is replayed by the next start.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(true);
        if let Some(writer) = self.writer {
            if tokio::time::timeout(grace, writer).await.is_err() {
                tracing::warn!(
                    grace_s = grace.as_secs_f64(),
                    "events not all written within the grace period; queued records are lost"
                );
            }
        }
        for drainer in self.drainers {
            drainer.abort();
        }
    }
}

/// Whether the tasks were told to stop (or their owner is gone).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Completes when the tasks are told to stop (or their owner is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The records in `batch`; undecodable ones are counted with the damaged ones and skipped.
fn decode(batch: &Batch) -> Vec<Record> {
    let mut skipped = batch.skipped;
    let records = batch
        .payloads
        .iter()
        .filter_map(|payload| match Record::from_json(payload) {
            Ok(record) => Some(record),
            Err(error) => {
                tracing::warn!(%error, "outbox record is not a record; skipped");
                skipped += 1;
                None
            }
        })
        .collect();
    metrics::counter!(crate::metrics::EVENTS_CORRUPT).increment(skipped as u64);
    records
}

/// Host name plus a random suffix: unique per process, recognisable in records.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "modelgate".into());
    // The last 12 hex digits of a UUIDv7 are random (the first ones are the time).
    let id = Uuid::now_v7().simple().to_string();
    format!("{host}-{}", &id[20..])
}
