//! The background writer: takes records from the queue (then, when it overflowed or after a
//! restart, from the journal) in order, in batches, hands each batch to every sink's lane, and
//! then moves the journal's cursor past them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::intake::{Intake, Journaled};
use super::outbox::Position;
use super::sink::Lane;
use super::Record;

pub struct Writer {
    pub queue: mpsc::Receiver<Journaled>,
    pub intake: Arc<Intake>,
    pub lanes: Vec<Arc<Lane>>,
    pub batch_size: usize,
    pub flush_interval: Duration,
}

impl Writer {
    /// Runs until `stop`, then writes out what is queued (to sinks or the outbox) and returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(self.batch_size);
        while !super::stopping(&stop) {
            if self.queue.is_empty() {
                self.replay_journal().await;
            }
            tokio::select! {
                received = self.queue.recv_many(&mut batch, self.batch_size) => {
                    if received == 0 {
                        break;
                    }
                    self.fill(&mut batch, &mut stop).await;
                    self.write_queued(&mut batch).await;
                }
                () = tokio::time::sleep(self.flush_interval) => {}
                () = super::stopped(&mut stop) => {}
            }
        }
        self.queue.close();
        while !self.queue.is_empty() {
            self.queue.recv_many(&mut batch, self.batch_size).await;
            self.write_queued(&mut batch).await;
        }
        self.replay_journal().await;
    }

    /// Writes records taken from the queue, then confirms them in the journal.
    async fn write_queued(&self, batch: &mut Vec<Journaled>) {
        let Some(end) = batch.last().map(|journaled| journaled.end) else {
            return;
        };
        let mut records: Vec<Record> = batch.drain(..).map(|j| j.record).collect();
        self.write(&mut records).await;
        self.confirm(end).await;
    }

    /// Moves the journal's cursor to `end`: every sink (or its outbox) has what is before it.
    async fn confirm(&self, end: Position) -> bool {
        let journal = self.intake.journal().clone();
        match tokio::task::spawn_blocking(move || journal.commit(end)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot advance the events journal; its records may be written twice");
                false
            }
            Err(_) => false,
        }
    }

    /// Lets a batch that is not full yet fill for `flush_interval`, then takes what has come.
    /// One timer per batch: waiting on the queue instead woke this task (and armed a timer)
    /// for every single record, which under load cost more than writing them.
    async fn fill(&mut self, batch: &mut Vec<Journaled>, stop: &mut watch::Receiver<bool>) {
        if batch.len() >= self.batch_size {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(self.flush_interval) => {}
            // Shutting down: write what there is now.
            () = super::stopped(stop) => return,
        }
        while batch.len() < self.batch_size {
            match self.queue.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
    }

    async fn write(&self, batch: &mut Vec<Record>) {
        let lanes = self.lanes.iter().map(|lane| lane.deliver(batch));
        futures::future::join_all(lanes).await;
        batch.clear();
        metrics::gauge!(crate::metrics::EVENTS_QUEUE_DEPTH).set(self.queue.len() as f64);
    }

    /// Writes what is in the journal only (the queue was full, or a crash left it), in order,
    /// once the queue itself is empty.
    async fn replay_journal(&self) {
        if !self.intake.is_overflowing() {
            return;
        }
        let log = self.intake.journal().clone();
        loop {
            let reader = log.clone();
            let size = self.batch_size;
            let batch = match tokio::task::spawn_blocking(move || reader.read(size)).await {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot read the events journal; retrying later");
                    return;
                }
                Err(_) => return,
            };
            if batch.payloads.is_empty() && batch.skipped == 0 {
                if self.intake.finish_overflow() {
                    tracing::info!("events writer caught up with the journal");
                    return;
                }
                continue;
            }
            let mut records = super::decode(&batch);
            self.write(&mut records).await;
            if !self.confirm(batch.end).await {
                return;
            }
        }
    }
}
