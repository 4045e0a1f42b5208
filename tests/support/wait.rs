//! Waiting for what happens in the background, with a deadline that separates "slow" from
//! "never".

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Calls `check` every `every` until it returns `Some`; fails with `what` once `patience` is
/// over.
pub async fn poll<T>(
    patience: Duration,
    every: Duration,
    what: impl Display,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(done) = check().await {
            return done;
        }
        assert!(started.elapsed() < patience, "{what}");
        tokio::time::sleep(every).await;
    }
}
