//! L2: Redis as a cache of validated keys shared by every instance.
//!
//! Never waited on beyond Redis's request-path deadline: reads go through the `redis`
//! dependency (deadline, breaker) and answer "miss" on any trouble, writes are spawned. Entries
//! are keyed by the key's SHA-256, never the key.

use std::time::Duration;

use redis::AsyncCommands;

use super::revocation::REVOCATIONS_CHANNEL;
use super::Principal;
use crate::redis::{ExchangeError, Redis};

const KEY_PREFIX: &str = "modelgate:auth:v1:";

fn entry_key(key_hash: &str) -> String {
    format!("{KEY_PREFIX}{key_hash}")
}

/// The shared auth cache. Cheap to clone.
#[derive(Clone)]
pub struct SharedTier {
    redis: Redis,
    ttl: Duration,
}

impl SharedTier {
    /// Entries live `ttl` (`auth.shared_ttl`).
    pub fn new(redis: Redis, ttl: Duration) -> SharedTier {
        SharedTier { redis, ttl }
    }

    /// The cached principal, or `None` on a miss and on any Redis trouble (which the breaker
    /// and the dependency's status record).
    pub async fn get(&self, key_hash: &str) -> Option<Principal> {
        let mut connection = self.redis.connection();
        let key = entry_key(key_hash);
        let raw: String = self
            .redis
            .dependency()
            .call(async move { connection.get::<_, Option<String>>(key).await })
            .await
            .ok()
            .flatten()?;
        serde_json::from_str(&raw).ok()
    }

    /// Stores `principal` in the background; the caller never waits.
    pub fn put(&self, key_hash: &str, principal: &Principal) {
        let Ok(value) = serde_json::to_string(principal) else {
            return;
        };
        let key = entry_key(key_hash);
        let ttl = self.ttl.as_secs().max(1);
        self.redis
            .spawn_write(move |mut c| async move { c.set_ex::<_, _, ()>(key, value, ttl).await });
    }

    /// Deletes the entry and tells every instance to forget the key; in the background.
    pub fn revoke(&self, key_hash: &str) {
        let key = entry_key(key_hash);
        let hash = key_hash.to_string();
        self.redis.spawn_write(move |mut c| async move {
            c.del::<_, ()>(key).await?;
            c.publish::<_, _, ()>(REVOCATIONS_CHANNEL, hash).await
        });
    }

    /// Like [`SharedTier::revoke`], but waits (bounded), for one-shot processes such as the CLI.
    pub async fn revoke_now(&self, key_hash: &str) -> Result<(), ExchangeError> {
        let key = entry_key(key_hash);
        let hash = key_hash.to_string();
        self.redis
            .write_now(move |mut c| async move {
                c.del::<_, ()>(key).await?;
                c.publish::<_, _, ()>(REVOCATIONS_CHANNEL, hash).await
            })
            .await
    }
}
