//! The in-process tier: one GCRA state per key, in this instance's memory.
//!
//! Hand-rolled over moka rather than `governor`: governor's keyed limiter has one quota for
//! every key, while ours differ per key (and per tier); and the local tier must speak the same
//! arithmetic as the Redis script ([`Quota`]) so that headers mean the same whichever tier
//! answered, and so that it can be charged for requests Redis admitted (see [`LocalLimiter::charge`]).
//! The state is a TAT in an atomic: admission is a compare-and-swap, no lock, no await.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::policy::EvictionPolicy;

use super::gcra::{Decision, Quota};

/// Idle keys are forgotten after the longest period (`Period::Hour`): a TAT is never more than
/// one period ahead, so by then it has passed, and a forgotten key (a full allowance) is exactly
/// what the key would have had.
const IDLE: Duration = Duration::from_secs(3600);

pub struct LocalLimiter {
    /// TATs are microseconds since this instant: monotonic, immune to wall-clock steps.
    epoch: Instant,
    keys: Cache<String, Arc<AtomicU64>>,
}

impl LocalLimiter {
    /// Holds at most `capacity` keys; past that the least recently used is forgotten (it gets
    /// a full allowance back, the one way this tier can err towards admitting).
    pub fn new(capacity: u64) -> LocalLimiter {
        LocalLimiter {
            epoch: Instant::now(),
            keys: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(IDLE)
                // LRU, not moka's default TinyLFU: TinyLFU may refuse to admit a new key under
                // pressure, and a key that is never stored is never limited.
                .eviction_policy(EvictionPolicy::lru())
                .build(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    async fn state(&self, key_id: &str) -> Arc<AtomicU64> {
        // TAT 0 is the epoch: always in the past, i.e. a full allowance.
        self.keys
            .get_with_by_ref(key_id, async { Arc::new(AtomicU64::new(0)) })
            .await
    }

    /// Admits or refuses one request of `key_id` under `quota`.
    pub async fn check(&self, key_id: &str, quota: Quota) -> Decision {
        let state = self.state(key_id).await;
        let now = self.now();
        let mut tat = state.load(Ordering::Acquire);
        loop {
            let Some(next) = quota.admit(tat, now) else {
                return quota.decision(false, tat, now);
            };
            match state.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return quota.decision(true, next, now),
                Err(current) => tat = current,
            }
        }
    }

    /// How long until `key_id` would be admitted again, when it would be refused now; `None`
    /// when it would be admitted. Counts nothing, and remembers no new key.
    pub async fn refusal(&self, key_id: &str, quota: Quota) -> Option<Duration> {
        let tat = self.keys.get(key_id).await?.load(Ordering::Acquire);
        let now = self.now();
        match quota.admit(tat, now) {
            Some(_) => None,
            None => Some(quota.decision(false, tat, now).retry_after),
        }
    }

    /// Counts a request the global tier admitted, so that if Redis fails this instance goes on
    /// from its own recent use instead of handing every busy key a fresh allowance.
    pub async fn charge(&self, key_id: &str, quota: Quota) {
        let state = self.state(key_id).await;
        let now = self.now();
        // The closure always returns `Some`, so the update always happens.
        let _ = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
            Some(quota.charge(tat, now))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::{Period, RateLimit};

    fn quota(requests: u32, per: Period) -> Quota {
        Quota::new(RateLimit { requests, per })
    }

    async fn admitted(limiter: &LocalLimiter, key: &str, quota: Quota, tries: u32) -> u32 {
        let mut count = 0;
        for _ in 0..tries {
            if limiter.check(key, quota).await.allowed {
                count += 1;
            }
        }
        count
    }

    #[tokio::test]
    async fn keys_are_limited_independently_with_their_own_quotas() {
        let limiter = LocalLimiter::new(100);
        assert_eq!(
            admitted(&limiter, "a", quota(3, Period::Minute), 10).await,
            3
        );
        assert_eq!(
            admitted(&limiter, "b", quota(5, Period::Minute), 10).await,
            5
        );
        assert_eq!(
            admitted(&limiter, "a", quota(3, Period::Minute), 1).await,
            0
        );
    }

    #[tokio::test]
    async fn concurrent_requests_never_exceed_the_burst() {
        let limiter = Arc::new(LocalLimiter::new(100));
        let q = quota(50, Period::Hour);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { admitted(&limiter, "k", q, 20).await })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("task");
        }
        assert_eq!(total, 50);
    }

    #[tokio::test]
    async fn refusal_looks_without_counting() {
        let limiter = LocalLimiter::new(100);
        let q = quota(2, Period::Minute);
        assert_eq!(limiter.refusal("k", q).await, None);
        assert_eq!(admitted(&limiter, "k", q, 1).await, 1);
        assert_eq!(limiter.refusal("k", q).await, None);
        assert_eq!(admitted(&limiter, "k", q, 1).await, 1);
        let wait = limiter.refusal("k", q).await;
        assert!(wait.is_some_and(|w| w > Duration::from_secs(29) && w <= Duration::from_secs(30)));
        for _ in 0..10 {
            let again = limiter.refusal("k", q).await;
            assert!(again.is_some() && again <= wait, "looking does not count");
        }
    }

    #[tokio::test]
    async fn charges_use_up_the_allowance_without_being_refused() {
        let limiter = LocalLimiter::new(100);
        let q = quota(4, Period::Hour);
        for _ in 0..3 {
            limiter.charge("k", q).await;
        }
        assert_eq!(admitted(&limiter, "k", q, 4).await, 1);
        for _ in 0..100 {
            limiter.charge("k", q).await;
        }
        let refused = limiter.check("k", q).await;
        assert!(!refused.allowed);
        assert!(
            refused.reset <= Duration::from_secs(3600),
            "charging saturates at one period"
        );
    }
}
