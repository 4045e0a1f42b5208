//! The per-request time budget. The HTTP layer starts it; every dependency call clamps its
//! own timeout to what is left, so no chain of calls can outlive the request's budget.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with a budget of `budget` from now.
pub async fn with_budget<F: Future>(budget: Duration, work: F) -> F::Output {
    DEADLINE.scope(Instant::now() + budget, work).await
}

/// Time left in the current request's budget; unlimited outside a request (background work
/// has its own timeouts).
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// `timeout`, or less if the request's budget ends sooner.
pub fn clamp(timeout: Duration) -> Duration {
    remaining().map_or(timeout, |left| left.min(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outside_a_request_nothing_is_clamped() {
        assert_eq!(remaining(), None);
        assert_eq!(clamp(Duration::from_secs(3)), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn inside_a_request_the_budget_bounds_timeouts() {
        with_budget(Duration::from_millis(100), async {
            let clamped = clamp(Duration::from_secs(3));
            assert!(clamped <= Duration::from_millis(100));
            assert_eq!(clamp(Duration::from_millis(5)), Duration::from_millis(5));
            tokio::time::sleep(Duration::from_millis(120)).await;
            assert_eq!(clamp(Duration::from_secs(3)), Duration::ZERO);
        })
        .await;
    }
}
