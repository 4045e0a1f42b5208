//! The request side: numbering records and putting them in the journal before the response.
//!
//! Acknowledged means durable: a prediction's response carries its `inference_log_id` only once
//! the record is in the journal (a `SegmentLog` in the outbox folder), that is in the kernel, so
//! that a process crash (`kill -9`) cannot take it. One write(2) serves every request pending (group
//! commit): the request that finds no write under way leads, writes what is pending (its own
//! record and everyone's who arrived meanwhile) and answers them; those who arrived during its
//! write wait, and the oldest of them is told to lead the next round. No thread in between:
//! handing every record to a writer thread and back cost two wakeups per request, more than the
//! write itself. No fsync per request: a small thread flushes the journal every
//! `events.fsync_interval`, which bounds what a power loss (not a process crash) can take.
//!
//! From the journal, the records go on in memory to the writer's bounded queue (`try_send`);
//! the writer advances the journal's cursor once every sink has them (or its outbox does).
//! When the queue is full, records stay in the journal only, and from then on every record
//! does until the writer has read the journal up to its end, so the order of `seq` survives.
//! The same reading replays, at the next start, what a crash left past the cursor.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::outbox::{drop_reason, Position, SegmentLog};
use super::Record;

/// The journal's name in the outbox folder.
pub const JOURNAL: &str = "journal";
/// The drop `reason` of records refused at `events.journal_max_bytes`.
const JOURNAL_FULL: &str = "journal_full";
/// The record was not written because the intake is closed (shutting down) or gone.
const CLOSED: NotKept = NotKept {
    reason: "outbox_error",
};

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

/// What a waiting request is told.
enum Turn {
    /// Its record was written (or could not be).
    Done(Result<(), NotKept>),
    /// Its record is not written yet and no one is writing: it leads the next round.
    Lead,
}

/// A record handed over and not yet written.
struct Waiting {
    record: Record,
    /// `None` for the leader's own record (it learns its outcome from the round itself).
    reply: Option<oneshot::Sender<Turn>>,
}

struct Pending {
    next_seq: u64,
    records: Vec<Waiting>,
    /// A request is writing a round: newcomers wait for it instead of writing.
    leading: bool,
    closed: bool,
}

pub struct Intake {
    pending: Mutex<Pending>,
    /// Records stay in the journal only (not the queue) until the writer has caught up.
    /// Held while a round appends and dispatches, so that the writer's check that the journal
    /// is drained cannot race an append.
    overflowing: Mutex<bool>,
    /// Wakes the flusher when the intake closes.
    closing: Condvar,
    queue: mpsc::Sender<Journaled>,
    journal: Arc<SegmentLog>,
    fsync_interval: Duration,
}

/// A waiting request's side of its turn. Dropped unanswered (its request was cancelled, e.g.
/// the client went away) after being told to lead, it still leads: otherwise no one would.
struct Follower<'a> {
    intake: &'a Intake,
    seq: u64,
    turn: oneshot::Receiver<Turn>,
}

impl Drop for Follower<'_> {
    fn drop(&mut self) {
        // Closing first: a `Lead` sent from now on fails and goes to the next in line.
        self.turn.close();
        if let Ok(Turn::Lead) = self.turn.try_recv() {
            let _ = self.intake.lead(self.seq);
        }
    }
}

impl Intake {
    /// Starts the flusher thread. Records an earlier run left in the journal are replayed (by
    /// the writer) before newer ones.
    pub fn start(
        queue: mpsc::Sender<Journaled>,
        journal: Arc<SegmentLog>,
        fsync_interval: Duration,
    ) -> std::io::Result<Arc<Intake>> {
        let intake = Arc::new(Intake {
            pending: Mutex::new(Pending {
                next_seq: 1,
                records: Vec::new(),
                leading: false,
                closed: false,
            }),
            overflowing: Mutex::new(!journal.is_empty()),
            closing: Condvar::new(),
            queue,
            journal,
            fsync_interval,
        });
        let flusher = intake.clone();
        std::thread::Builder::new()
            .name("events-journal".into())
            .spawn(move || flusher.flush_until_closed())?;
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
        let (seq, follower) = {
            let mut pending = self.pending();
            if pending.closed {
                return Err(CLOSED);
            }
            let seq = pending.next_seq;
            pending.next_seq += 1;
            record.seq = seq;
            // The first to find no round under way leads; its own record needs no reply.
            let (reply, turn) = if pending.leading {
                let (reply, turn) = oneshot::channel();
                (Some(reply), Some(turn))
            } else {
                pending.leading = true;
                (None, None)
            };
            pending.records.push(Waiting { record, reply });
            (
                seq,
                turn.map(|turn| Follower {
                    intake: self,
                    seq,
                    turn,
                }),
            )
        };
        metrics::counter!(crate::metrics::EVENTS_ENQUEUED).increment(1);
        if let Some(mut follower) = follower {
            match (&mut follower.turn).await {
                Ok(Turn::Done(kept)) => return kept,
                Ok(Turn::Lead) => {}
                // The intake is gone: nothing was written.
                Err(_) => return Err(CLOSED),
            }
        }
        self.lead(seq)
    }

    /// Writes the pending round (which holds the record `own`) and hands the lead on.
    /// Synchronous, so that a cancelled request cannot leave a round half done.
    fn lead(&self, own: u64) -> Result<(), NotKept> {
        let mut kept = Err(CLOSED);
        loop {
            let round = std::mem::take(&mut self.pending().records);
            if let Some(outcome) = self.commit(round, own) {
                kept = outcome;
            }
            if self.hand_off() {
                return kept;
            }
        }
    }

    /// Tells the oldest request still waiting to lead the next round, or gives the lead up
    /// when nothing is pending. `false`: what is pending belongs to requests that are gone,
    /// and the caller writes it itself.
    fn hand_off(&self) -> bool {
        let mut pending = self.pending();
        for waiting in pending.records.iter_mut() {
            if let Some(reply) = waiting.reply.take() {
                if reply.send(Turn::Lead).is_ok() {
                    return true;
                }
            }
        }
        if pending.records.is_empty() {
            pending.leading = false;
            return true;
        }
        false
    }

    /// Stops taking records; the flusher flushes what was written and ends.
    pub fn close(&self) {
        self.pending().closed = true;
        self.closing.notify_one();
    }

    /// Flushes the journal to disk every `fsync_interval` (appends do not wait for the disk),
    /// and once more when the intake closes.
    fn flush_until_closed(&self) {
        loop {
            let closed = {
                let pending = self.pending();
                pending.closed
                    || self
                        .closing
                        .wait_timeout(pending, self.fsync_interval)
                        .map(|(guard, _)| guard.closed)
                        .unwrap_or_else(|p| p.into_inner().0.closed)
            };
            if let Err(error) = self.journal.sync() {
                tracing::error!(%error, "cannot flush the events journal to disk");
            }
            if closed {
                return;
            }
        }
    }

    /// Appends one round with one write and answers its waiters; returns the outcome of the
    /// record `own` when the round holds it.
    fn commit(&self, round: Vec<Waiting>, own: u64) -> Option<Result<(), NotKept>> {
        if round.is_empty() {
            return None;
        }
        let payloads: Vec<Vec<u8>> = round.iter().map(|w| w.record.to_json()).collect();
        let mut overflowing = self.overflow_state();
        let outcomes: Vec<Result<Position, NotKept>> = match self.journal.append(&payloads, false) {
            Ok(appended) => {
                if appended.refused > 0 {
                    tracing::warn!(
                            dropped = appended.refused,
                            "events journal full (events.journal_max_bytes): records dropped, predictions answered without inference_log_id"
                        );
                    metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => JOURNAL_FULL)
                        .increment(appended.refused as u64);
                }
                appended
                    .ends
                    .into_iter()
                    .map(|end| {
                        end.ok_or(NotKept {
                            reason: JOURNAL_FULL,
                        })
                    })
                    .collect()
            }
            Err(error) => {
                let reason = drop_reason(&error);
                tracing::error!(%error, dropped = round.len(), "cannot write the events journal: records dropped, predictions answered without inference_log_id");
                metrics::counter!(crate::metrics::EVENTS_DROPPED, "reason" => reason)
                    .increment(round.len() as u64);
                round.iter().map(|_| Err(NotKept { reason })).collect()
            }
        };
        let mut replies = Vec::with_capacity(round.len());
        let mut own_outcome = None;
        for (waiting, outcome) in round.into_iter().zip(outcomes) {
            let seq = waiting.record.seq;
            let kept = outcome.map(|end| self.dispatch(waiting.record, end, &mut overflowing));
            match waiting.reply {
                Some(reply) => replies.push((reply, kept)),
                None if seq == own => own_outcome = Some(kept),
                // A cancelled request's record: written, but no one waits for the answer.
                None => {}
            }
        }
        drop(overflowing);
        for (reply, kept) in replies {
            let _ = reply.send(Turn::Done(kept));
        }
        own_outcome
    }

    /// Passes a journaled record on to the writer's queue, unless records go through the
    /// journal only (overflow), which a full queue starts.
    fn dispatch(&self, record: Record, end: Position, overflowing: &mut bool) {
        if *overflowing {
            metrics::counter!(crate::metrics::EVENTS_OVERFLOW).increment(1);
            return;
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
        let (intake, _unread) = started(dir.path(), 1 << 20, 4);
        let submits = (0..64).map(|_| intake.submit(sample(0)));
        let kept = futures::future::join_all(submits).await;
        assert!(kept.iter().all(Result::is_ok));
        assert!(intake.is_overflowing(), "the queue (4) overflowed");
        // A second reader of the same files, as a restart after kill -9 would be.
        assert_eq!(journal_seqs(dir.path()), (1..=64).collect::<Vec<_>>());
        intake.close();
    }

    #[tokio::test]
    async fn a_record_the_journal_cannot_hold_is_not_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let (intake, _unread) = started(dir.path(), 10, 4);
        let refused = intake.submit(sample(0)).await.expect_err("over the cap");
        assert_eq!(refused.reason, JOURNAL_FULL);
        intake.close();
    }

    /// An intake on a journal in `dir` with a queue of `queue` records no writer reads.
    fn started(
        dir: &std::path::Path,
        cap: u64,
        queue: usize,
    ) -> (Arc<Intake>, mpsc::Receiver<Journaled>) {
        let (sender, unread) = mpsc::channel(queue);
        let intake =
            Intake::start(sender, journal(dir, cap), Duration::from_secs(60)).expect("start");
        (intake, unread)
    }

    fn journal_seqs(dir: &std::path::Path) -> Vec<u64> {
        let batch = journal(dir, 1 << 20).read(1000).expect("read");
        batch
            .payloads
            .iter()
            .map(|p| Record::from_json(p).expect("record").seq)
            .collect()
    }

    /// Many requests at once on several threads: rounds are shared, none is lost or reordered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_share_rounds_and_keep_their_order() {
        let dir = tempfile::tempdir().expect("dir");
        let (intake, mut writer) = started(dir.path(), 1 << 20, 1000);
        let requests: Vec<_> = (0..400)
            .map(|_| {
                let intake = intake.clone();
                tokio::spawn(async move { intake.submit(sample(0)).await })
            })
            .collect();
        for request in requests {
            request.await.expect("task").expect("kept");
        }
        assert_eq!(journal_seqs(dir.path()), (1..=400).collect::<Vec<_>>());
        let mut queued = Vec::new();
        while let Ok(journaled) = writer.try_recv() {
            queued.push(journaled.record.seq);
        }
        assert_eq!(queued, (1..=400).collect::<Vec<_>>());
        assert!(!intake.pending().leading, "the lead was given up");
        intake.close();
    }

    /// A request that went away before its turn to lead is passed over; its record is still
    /// written, by the next in line.
    #[tokio::test]
    async fn a_request_gone_before_its_turn_is_passed_over() {
        let dir = tempfile::tempdir().expect("dir");
        let (intake, _unread) = started(dir.path(), 1 << 20, 16);
        intake.pending().leading = true; // a round is being written
        let mut gone = Box::pin(intake.submit(sample(0)));
        let mut next = Box::pin(intake.submit(sample(0)));
        assert!(futures::poll!(&mut gone).is_pending());
        assert!(futures::poll!(&mut next).is_pending());
        drop(gone);
        assert!(intake.hand_off(), "the lead goes to the next request");
        next.await.expect("kept");
        assert_eq!(journal_seqs(dir.path()), [1, 2]);
        assert!(!intake.pending().leading);
        intake.close();
    }

    /// A request told to lead that goes away before it runs again still writes the round, so
    /// the requests behind it are answered.
    #[tokio::test]
    async fn a_request_gone_after_being_told_to_lead_still_leads() {
        let dir = tempfile::tempdir().expect("dir");
        let (intake, _unread) = started(dir.path(), 1 << 20, 16);
        intake.pending().leading = true;
        let mut told = Box::pin(intake.submit(sample(0)));
        let mut behind = Box::pin(intake.submit(sample(0)));
        assert!(futures::poll!(&mut told).is_pending());
        assert!(futures::poll!(&mut behind).is_pending());
        assert!(intake.hand_off());
        drop(told);
        behind.await.expect("kept");
        assert_eq!(journal_seqs(dir.path()), [1, 2]);
        assert!(!intake.pending().leading);
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
        assert_eq!(journal_seqs(dir.path()), [7]);
        // A second start finds nothing left to adopt and keeps the journal.
        adopt_overflow_log(dir.path()).expect("again");
        assert!(dir.path().join(JOURNAL).is_dir());
    }
}
