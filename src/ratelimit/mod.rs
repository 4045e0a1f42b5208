//! Per-key rate limits (GCRA) on the prediction routes.
//!
//! With Redis, the limit is global: every instance decides against one shared state per key
//! (`global`), within Redis's request-path timeout and behind its breaker. When Redis cannot
//! answer (slow, silent, refusing, breaker open), each instance decides alone (`local`) with
//! `ratelimit.local_share` of the key's limit: never failing open, and costing nothing once
//! the breaker is open. Without Redis the local tier is the only one and grants the whole
//! limit. While Redis answers it is authoritative; the local tier is only charged for what
//! it admitted, so that a fallback starts from this instance's recent use.
//!
//! The same local GCRA also throttles client addresses that fail authentication too often
//! (`failed_auth`).

mod failed_auth;
mod gcra;
mod global;
mod local;

use std::sync::Arc;

pub use failed_auth::FailedAuthThrottle;
pub use gcra::{Decision, Quota};
pub use global::state_key;

use crate::config::RateLimitConfig;
use crate::redis::Redis;
use crate::resilience::CallError;
use crate::vocabulary::RateLimit;
use global::GlobalLimiter;
use local::LocalLimiter;

/// The rate limiter of one instance. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    global: Option<GlobalLimiter>,
    local: LocalLimiter,
    local_share: f64,
    default: Option<RateLimit>,
}

fn record(tier: &'static str, decision: Decision) -> Decision {
    let outcome = if decision.allowed {
        "allowed"
    } else {
        "limited"
    };
    metrics::counter!(crate::metrics::RATELIMIT_DECISIONS, "tier" => tier, "outcome" => outcome)
        .increment(1);
    decision
}

impl RateLimiter {
    /// Global through `redis` when given (sharing its connection, breaker and health), else
    /// local with the whole limit.
    pub fn new(config: &RateLimitConfig, redis: Option<&Redis>) -> RateLimiter {
        RateLimiter {
            inner: Arc::new(Inner {
                global: redis.map(GlobalLimiter::new),
                local: LocalLimiter::new(config.local_capacity),
                local_share: config.local_share,
                default: config.default,
            }),
        }
    }

    /// Admits or refuses one request of `key_id`, whose own limit is `limit`; `None` when the
    /// key has no limit (and no default applies).
    pub async fn check(&self, key_id: &str, limit: Option<RateLimit>) -> Option<Decision> {
        let inner = &self.inner;
        let quota = Quota::new(limit.or(inner.default)?);
        let Some(global) = &inner.global else {
            return Some(record("local", inner.local.check(key_id, quota).await));
        };
        let share = quota.share(inner.local_share);
        match global.check(key_id, quota).await {
            Ok(decision) => {
                if decision.allowed {
                    inner.local.charge(key_id, share).await;
                }
                Some(record("global", decision))
            }
            Err(error) => {
                let reason = match error {
                    CallError::Open { .. } => "open",
                    CallError::Timeout { .. } => "timeout",
                    CallError::Failed { .. } => "error",
                };
                metrics::counter!(crate::metrics::RATELIMIT_FALLBACKS, "reason" => reason)
                    .increment(1);
                Some(record("local", inner.local.check(key_id, share).await))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Period;

    fn limiter(default: Option<RateLimit>) -> RateLimiter {
        let config = RateLimitConfig {
            default,
            ..RateLimitConfig::default()
        };
        RateLimiter::new(&config, None)
    }

    #[tokio::test]
    async fn keys_without_a_limit_are_not_limited_unless_a_default_is_set() {
        assert_eq!(limiter(None).check("k", None).await, None);
        let three = RateLimit {
            requests: 3,
            per: Period::Minute,
        };
        let defaulted = limiter(Some(three));
        let decision = defaulted.check("k", None).await;
        assert_eq!(decision.map(|d| d.quota.limit()), Some(3));
        let own = RateLimit {
            requests: 9,
            per: Period::Second,
        };
        let decision = defaulted.check("other", Some(own)).await;
        assert_eq!(
            decision.map(|d| d.quota.limit()),
            Some(9),
            "the key's own limit wins"
        );
    }

    #[tokio::test]
    async fn without_redis_the_whole_limit_is_enforced_locally() {
        let limiter = limiter(None);
        let limit = Some(RateLimit {
            requests: 4,
            per: Period::Hour,
        });
        let mut allowed = 0;
        for _ in 0..10 {
            if limiter.check("k", limit).await.is_some_and(|d| d.allowed) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 4);
    }
}
