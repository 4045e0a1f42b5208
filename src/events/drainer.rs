//! Replays one sink's outbox, in order, whenever the sink takes writes again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::sink::Lane;

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);
/// A replay write carries this many writer batches: replay is one write at a time (that keeps
/// the order), so its rate is the write size over the sink's round trip.
const BATCHES_PER_REPLAY: usize = 8;

/// Runs until `stop`. Each batch goes through the sink's dependency (so an open breaker costs
/// nothing and a half-open one gets its trial); the cursor moves only once the sink confirmed,
/// so a crash mid-drain sends a batch again rather than losing it.
pub async fn run(lane: Arc<Lane>, mut stop: watch::Receiver<bool>) {
    let mut pause = FIRST_PAUSE;
    let mut replayed = 0u64;
    while !super::stopping(&stop) {
        if lane.log().is_empty() {
            if replayed > 0 {
                tracing::info!(
                    sink = lane.name(),
                    replayed,
                    "outbox drained: the sink has every record again"
                );
                replayed = 0;
            }
            tokio::select! {
                () = lane.until_outboxed() => {}
                () = super::stopped(&mut stop) => {}
            }
            continue;
        }
        let reader = lane.log().clone();
        let most = lane.batch_size() * BATCHES_PER_REPLAY;
        let batch = match tokio::task::spawn_blocking(move || reader.read(most)).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(error)) => {
                tracing::error!(sink = lane.name(), %error, "cannot read the outbox");
                wait(&mut stop, &mut pause).await;
                continue;
            }
            Err(_) => return,
        };
        let records = super::decode(&batch);
        if !records.is_empty() {
            if let Err(error) = lane.send(&records).await {
                tracing::debug!(sink = lane.name(), %error, "outbox replay failed; will retry");
                wait(&mut stop, &mut pause).await;
                continue;
            }
        }
        pause = FIRST_PAUSE;
        let committer = lane.log().clone();
        let end = batch.end;
        match tokio::task::spawn_blocking(move || committer.commit(end)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(sink = lane.name(), %error, "cannot advance the outbox cursor; records may be sent twice");
                wait(&mut stop, &mut pause).await;
                continue;
            }
            Err(_) => return,
        }
        replayed += records.len() as u64;
        metrics::counter!(crate::metrics::EVENTS_REPLAYED, "sink" => lane.name())
            .increment(records.len() as u64);
    }
}

/// Pauses before the next attempt, longer each time the sink is still away.
async fn wait(stop: &mut watch::Receiver<bool>, pause: &mut Duration) {
    tokio::select! {
        () = tokio::time::sleep(*pause) => {}
        () = super::stopped(stop) => {}
    }
    *pause = (*pause * 2).min(LONGEST_PAUSE);
}
