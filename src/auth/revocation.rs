//! Revocations between instances: a revoked key's hash is published on Redis, and every
//! instance (or the CLI's revocation) evicts it from its L1 at once.

use std::time::Duration;

use super::KeyCache;
use crate::redis::Redis;

/// Revoked key hashes are published here; every instance evicts them from its L1.
pub const REVOCATIONS_CHANNEL: &str = "modelgate:auth:v1:revoked";

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keeps a subscription open for the life of the process, reconnecting with backoff, and
/// evicts every announced key hash from `local`. With Redis down, revocations from elsewhere
/// reach this instance only through the L1 TTL.
pub fn spawn_listener(redis: Redis, local: KeyCache) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match redis.subscribe(REVOCATIONS_CHANNEL).await {
                Ok(mut subscription) => {
                    tracing::info!("listening for key revocations on Redis");
                    backoff = Duration::from_millis(100);
                    while let Some(key_hash) = subscription.next().await {
                        local.evict(&key_hash).await;
                    }
                    tracing::warn!("revocation subscription lost; reconnecting");
                }
                Err(reason) => tracing::debug!(%reason, "cannot subscribe to revocations yet"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}
