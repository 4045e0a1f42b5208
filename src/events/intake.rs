//! The request side: numbering records and putting them in the journal before the response.
//!
//! Acknowledged means durable: a prediction's response carries its `inference_log_id` only once
//! the record is in the journal (a `SegmentLog` in the outbox folder), that is in the kernel, so
//! that a process crash (`kill -9`) cannot take it. One write(2) serves many requests: each
//! request hands its record to the committer thread and awaits one reply; the committer takes
//! everything pending, appends it with one write, then wakes every waiter. No fsync per
//! request: the journal is flushed every `events.fsync_interval`, which bounds what a power
//! loss (not a process crash) can take.
//!
//! From the journal, the records go on in memory to the writer's bounded queue (`try_send`);
//! the writer advances the journal's cursor once every sink has them (or its outbox does).
//! When the queue is full, records stay in the journal only, and from then on every record
//! does until the writer has read the journal up to its end, so the order of `seq` survives.
//! The same reading replays, at the next start, what a crash left past the cursor.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::outbox::{drop_reason, Position, SegmentLog};
use super::Record;

/// The journal's name in the outbox folder.
pub const JOURNAL: &str = "journal";
/// The drop `reason` of records refused at `events.journal_max_bytes`.
const JOURNAL_FULL: &str = "journal_full";

/// Before the journal, only records that found the queue full were logged, in `overflow/`, in
/// the same format: an outbox folder from then has it become the journal, so that an upgrade
/// replays them.
pub fn adopt_overflow_log(outbox_dir: &std::path::Path) -> std::io::Result<()> {
    let old = outbox_dir.join("overflow");
    let new = outbox_dir.join(JOURNAL);
    if old.is_dir() && !new.exists() {
        std::fs::rename(old, new)?;
    }
    Ok(())
}

/// The record was not put in the journal (counted in `modelgate_events_dropped_total`): the
/// prediction is answered without an `inference_log_id`.
#[derive(Debug, thiserror::Error)]
#[error("inference record not kept ({reason})")]
pub struct NotKept {
    pub reason: &'static str,
}

/// A journaled record on its way to the writer, with where the journal ends after it.
pub struct Journaled {
    pub record: Record,
    pub end: Position,
}

/// Records handed over by requests and not yet written.
struct Pending {
    next_seq: u64,
    records: Vec<(Record, oneshot::Sender<Result<(), NotKept>>)>,
    closed: bool,
}

pub struct Intake {
    pending: Mutex<Pending>,
    /// Wakes the committer when records are pending (or it should stop).
    arrived: Condvar,
    /// Records stay in the journal only (not the queue) until the writer has caught up.
    /// Held while the committer appends and dispatches, so that the writer's check that the
    /// journal is drained cannot race an append.
    overflowing: Mutex<bool>,
    queue: mpsc::Sender<Journaled>,
    journal: Arc<SegmentLog>,
    fsync_interval: Duration,
}

impl Intake {
    /// Starts the committer thread. Records an earlier run left in the journal are replayed
    /// (by the writer) before newer ones.
    pub fn start(
        queue: mpsc::Sender<Journaled>,
        journal: Arc<SegmentLog>,
        fsync_interval: Duration,
    ) -> std::io::Result<Arc<Intake>> {
        let intake = Arc::new(Intake {
            pending: Mutex::new(Pending {
                next_seq: 1,
                records: Vec::new(),
                closed: false,
            }),
            arrived: Condvar::new(),
            overflowing: Mutex::new(!journal.is_empty()),
            queue,
            journal,
            fsync_interval,
        });
        let committer = intake.clone();
        std::thread::Builder::new()
            .name("events-journal".into())
            .spawn(move || committer.run())?;
        Ok(intake)
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn overflow_state(&self) -> MutexGuard<'_, bool> {
        self.overflowing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers `record` and returns once it is in the journal (or could not be put there).
    pub async fn submit(&self, mut record: Record) -> Result<(), NotKept> {
        let (reply, kept) = oneshot::channel();
        {
            let mut pending = self.pending();
            if pending.closed {
                return Err(NotKept {
                    reason: "outbox_error",
                });
            }
            record.seq = pending.next_seq;
            pending.next_seq += 1;
            pending.records.push((record, reply));
        }
        self.arrived.notify_one();
        metrics::counter!(crate::metrics::EVENTS_ENQUEUED).increment(1);
        // A dropped reply means the committer is gone: nothing was written.
        kept.await.unwrap_or(Err(NotKept {
            reason: "outbox_error",
        }))
    }

    /// Stops the committer once what is pending is written (and flushed).
    pub fn close(&self) {
        self.pending().closed = true;
        self.arrived.notify_one();
    }

    /// The committer: one append (one write) per round of pending records, and a flush to disk
    /// every `fsync_interval` when something was written.
    fn run(&self) {
        let mut synced = Instant::now();
        loop {
            let (records, closed) = {
                let mut pending = self.pending();
                while pending.records.is_empty() && !pending.closed {
                    let left = self.fsync_interval.saturating_sub(synced.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    pending = self
                        .arrived
                        .wait_timeout(pending, left)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                (std::mem::take(&mut pending.records), pending.closed)
            };
            if !records.is_empty() {
                self.commit(records);
            }
            if closed || synced.elapsed() >= self.fsync_interval {
                if let Err(error) = self.journal.sync() {
                    tracing::error!(%error, "cannot flush the events journal to disk");
                }
                synced = Instant::now();
            }
            if closed && self.pending().records.is_empty() {
                return;
            }
        }
    }

    fn commit(&self, records: Vec<(Record, oneshot::Sender<Result<(), NotKept>>)>) {
        let payloads: Vec<Vec<u8>> = records.iter().map(|(record, _)| record.to_json()).collect();
        let mut overflowing = self.overflow_state();
        let appended = match self.journal.append(&payloads, false) {
            Ok(appended) => appended,
            Err(error) => {
                let reason = drop_reason(&error);
                tracing::error!(%error, dropped = records.len(), "cannot write the events journal: records dropped, predictions answered without inference_log_id");
                metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => reason)
                    .increment(records.len() as u64);
                for (_, reply) in records {
                    let _ = reply.send(Err(NotKept { reason }));
                }
                return;
            }
        };
        if appended.refused > 0 {
            tracing::warn!(
                dropped = appended.refused,
                "events journal full (events.journal_max_bytes): records dropped, predictions answered without inference_log_id"
            );
            metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => JOURNAL_FULL)
                .increment(appended.refused as u64);
        }
        let mut replies = Vec::with_capacity(records.len());
        for ((record, reply), end) in records.into_iter().zip(appended.ends) {
            let Some(end) = end else {
                replies.push((
                    reply,
                    Err(NotKept {
                        reason: JOURNAL_FULL,
                    }),
                ));
                continue;
            };
            replies.push((reply, Ok(())));
            if *overflowing {
                metrics::counter!(crate::metrics::EVENTS_OVERFLOW).increment(1);
                continue;
            }
            match self.queue.try_send(Journaled { record, end }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        "events queue full: records wait in the journal until the writer catches up"
                    );
                    metrics::counter!(crate::metrics::EVENTS_OVERFLOW).increment(1);
                    *overflowing = true;
                }
                // The writer has stopped (shutting down): the next start replays the journal.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        drop(overflowing);
        for (reply, kept) in replies {
            let _ = reply.send(kept);
        }
    }

    pub fn journal(&self) -> &Arc<SegmentLog> {
        &self.journal
    }

    pub fn is_overflowing(&self) -> bool {
        *self.overflow_state()
    }

    /// Ends overflow mode if the writer has consumed the whole journal. Appends happen under
    /// the same lock, so none can slip in between the check and the switch.
    pub fn finish_overflow(&self) -> bool {
        let mut overflowing = self.overflow_state();
        if self.journal.is_empty() {
            *overflowing = false;
        }
        !*overflowing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::outbox::Budget;
    use crate::events::record::sample;

    fn journal(dir: &std::path::Path, cap: u64) -> Arc<SegmentLog> {
        let budget = Arc::new(Budget::unpublished(cap));
        Arc::new(SegmentLog::open(&dir.join(JOURNAL), 1 << 20, budget).expect("journal"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_record_is_in_the_journal_before_submit_returns_and_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        // No writer reads the queue: what survives is what the journal holds.
        let (queue, _unread) = mpsc::channel(4);
        let intake = Intake::start(queue, journal(dir.path(), 1 << 20), Duration::from_secs(60))
            .expect("start");
        let submits = (0..64).map(|_| intake.submit(sample(0)));
        let kept = futures::future::join_all(submits).await;
        assert!(kept.iter().all(Result::is_ok));
        assert!(intake.is_overflowing(), "the queue (4) overflowed");
        // A second reader of the same files, as a restart after kill -9 would be.
        let reopened = journal(dir.path(), 1 << 20);
        let batch = reopened.read(1000).expect("read");
        let seqs: Vec<u64> = batch
            .payloads
            .iter()
            .map(|p| Record::from_json(p).expect("record").seq)
            .collect();
        assert_eq!(seqs, (1..=64).collect::<Vec<_>>());
        intake.close();
    }

    #[tokio::test]
    async fn a_record_the_journal_cannot_hold_is_not_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let (queue, _unread) = mpsc::channel(4);
        let intake =
            Intake::start(queue, journal(dir.path(), 10), Duration::from_secs(60)).expect("start");
        let refused = intake.submit(sample(0)).await.expect_err("over the cap");
        assert_eq!(refused.reason, JOURNAL_FULL);
        intake.close();
    }

    /// An outbox folder from before the journal: what overflowed then is replayed now.
    #[test]
    fn an_older_overflow_log_becomes_the_journal() {
        let dir = tempfile::tempdir().expect("dir");
        let budget = Arc::new(Budget::unpublished(1 << 20));
        let old = SegmentLog::open(&dir.path().join("overflow"), 1 << 20, budget).expect("old");
        old.append(&[sample(7).to_json()], true).expect("append");
        drop(old);
        adopt_overflow_log(dir.path()).expect("adopt");
        assert!(!dir.path().join("overflow").exists());
        let batch = journal(dir.path(), 1 << 20).read(10).expect("read");
        let seqs: Vec<u64> = batch
            .payloads
            .iter()
            .map(|p| Record::from_json(p).expect("record").seq)
            .collect();
        assert_eq!(seqs, [7]);
        // A second start finds nothing left to adopt and keeps the journal.
        adopt_overflow_log(dir.path()).expect("again");
        assert!(dir.path().join(JOURNAL).is_dir());
    }
}
