//! The background writer: takes records from the queue (then the overflow log) in order,
//! in batches, and hands each batch to every sink's lane.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::intake::Intake;
use super::sink::Lane;
use super::Record;

pub struct Writer {
    pub queue: mpsc::Receiver<Record>,
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
            tokio::select! {
                received = self.queue.recv_many(&mut batch, self.batch_size) => {
                    if received == 0 {
                        break;
                    }
                    self.fill(&mut batch, &mut stop).await;
                    self.write(&mut batch).await;
                }
                () = tokio::time::sleep(self.flush_interval) => {}
                () = super::stopped(&mut stop) => {}
            }
            if self.queue.is_empty() {
                self.replay_overflow().await;
            }
        }
        self.queue.close();
        while !self.queue.is_empty() {
            self.queue.recv_many(&mut batch, self.batch_size).await;
            self.write(&mut batch).await;
        }
        self.replay_overflow().await;
    }

    /// Lets a batch that is not full yet fill for `flush_interval`, then takes what has come.
    /// One timer per batch: waiting on the queue instead woke this task (and armed a timer)
    /// for every single record, which under load cost more than writing them.
    async fn fill(&mut self, batch: &mut Vec<Record>, stop: &mut watch::Receiver<bool>) {
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

    /// Writes what overflowed the queue, in order, once the queue itself is empty.
    async fn replay_overflow(&self) {
        if !self.intake.is_overflowing() {
            return;
        }
        let log = self.intake.overflow().clone();
        loop {
            let reader = log.clone();
            let size = self.batch_size;
            let batch = match tokio::task::spawn_blocking(move || reader.read(size)).await {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot read the outbox overflow log; retrying later");
                    return;
                }
                Err(_) => return,
            };
            if batch.payloads.is_empty() && batch.skipped == 0 {
                if self.intake.finish_overflow() {
                    tracing::info!("events queue caught up with its overflow");
                    return;
                }
                continue;
            }
            let mut records = super::decode(&batch);
            self.write(&mut records).await;
            let committer = log.clone();
            let end = batch.end;
            if let Ok(Err(error)) = tokio::task::spawn_blocking(move || committer.commit(end)).await
            {
                tracing::error!(%error, "cannot advance the outbox overflow log; its records may be written twice");
                return;
            }
        }
    }
}
