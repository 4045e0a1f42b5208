//! The Redis tier: one GCRA state per key shared by every instance, updated by a Lua script
//! so that the read, the decision and the write are one atomic step.

use std::sync::Arc;

use super::gcra::{Decision, Quota};
use crate::redis::{Connection, Redis};
use crate::resilience::{CallError, Dependency};

/// Where a key's GCRA state lives: named by the key's id (never the key itself), which is a
/// hash tag, so that a Cluster keeps the script's one key on one slot whatever is added later.
/// (v1 had no tag; its entries expire by themselves within one window.)
pub fn state_key(key_id: &str) -> String {
    format!("modelgate:rl:v2:{{{key_id}}}")
}

pub struct GlobalLimiter {
    connection: Connection,
    /// Redis's one breaker and health state, shared with its other users.
    redis: Arc<Dependency>,
    /// Sent as EVALSHA; loaded (once per Redis server) when Redis answers NOSCRIPT.
    script: redis::Script,
}

impl GlobalLimiter {
    pub fn new(redis: &Redis) -> GlobalLimiter {
        GlobalLimiter {
            connection: redis.connection(),
            redis: redis.dependency().clone(),
            script: redis::Script::new(include_str!("gcra.lua")),
        }
    }

    /// Admits or refuses one request of `key_id` under `quota`, within Redis's request-path
    /// timeout (clamped to the request's deadline); an open breaker answers at once.
    pub async fn check(
        &self,
        key_id: &str,
        quota: Quota,
    ) -> Result<Decision, CallError<redis::RedisError>> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(state_key(key_id));
        invocation.arg(quota.interval_us()).arg(quota.window_us());
        let (allowed, tat, now): (bool, u64, u64) = self
            .redis
            .call(async move { invocation.invoke_async(&mut connection).await })
            .await?;
        Ok(quota.decision(allowed, tat, now))
    }
}
