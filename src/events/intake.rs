//! The request side: numbering records and handing them over without ever waiting.
//!
//! A record goes into a bounded in-memory queue (`try_send`). When the queue is full, it is
//! appended to the overflow log on disk right here, under a std mutex, without fsync: a write
//! to the page cache (microseconds), no await, and only while the writer is behind. From the
//! first overflow on, every record goes to the overflow log until the writer has caught up
//! with both, so the order of `seq` survives. Why not a second channel to another task: that
//! task would be one more queue in front of the same disk, either bounded (and full in the
//! same overload) or unbounded (and memory the cap does not limit).

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::outbox::SegmentLog;
use super::Record;

/// The overflow log's name in the outbox folder.
pub const OVERFLOW: &str = "overflow";

struct State {
    next_seq: u64,
    /// Records go to the overflow log, not the queue, until the writer has caught up.
    overflowing: bool,
}

pub struct Intake {
    state: Mutex<State>,
    queue: mpsc::Sender<Record>,
    overflow: Arc<SegmentLog>,
}

impl Intake {
    pub fn new(queue: mpsc::Sender<Record>, overflow: Arc<SegmentLog>) -> Intake {
        // Records left in the overflow log by an earlier run are replayed before newer ones.
        let overflowing = !overflow.is_empty();
        Intake {
            state: Mutex::new(State {
                next_seq: 1,
                overflowing,
            }),
            queue,
            overflow,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers `record` and queues it, or appends it to the overflow log; never waits.
    pub fn submit(&self, mut record: Record) {
        let mut state = self.lock();
        record.seq = state.next_seq;
        state.next_seq += 1;
        metrics::counter!(crate::metrics::EVENTS_ENQUEUED).increment(1);
        if !state.overflowing {
            match self.queue.try_send(record) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    tracing::warn!(
                        "events queue full: records go to the outbox until the writer catches up"
                    );
                    state.overflowing = true;
                    record = back;
                }
                // The writer has stopped (shutting down): the next start replays it.
                Err(mpsc::error::TrySendError::Closed(back)) => record = back,
            }
        }
        metrics::counter!(crate::metrics::EVENTS_OVERFLOW).increment(1);
        match self.overflow.append(&[record.to_json()], false) {
            Ok(appended) if appended.refused > 0 => {
                metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => "outbox_full")
                    .increment(1);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "cannot write the outbox: record dropped");
                metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => "outbox_error")
                    .increment(1);
            }
        }
    }

    pub fn overflow(&self) -> &Arc<SegmentLog> {
        &self.overflow
    }

    pub fn is_overflowing(&self) -> bool {
        self.lock().overflowing
    }

    /// Ends overflow mode if the writer has consumed the whole overflow log. Appends happen
    /// under the same lock, so none can slip in between the check and the switch.
    pub fn finish_overflow(&self) -> bool {
        let mut state = self.lock();
        if self.overflow.is_empty() {
            state.overflowing = false;
        }
        !state.overflowing
    }
}
