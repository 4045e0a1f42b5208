//! Listening for revocations published by other instances (or the CLI).

use std::time::Duration;

use futures::StreamExt;

use super::{SharedCache, REVOCATIONS_CHANNEL};
use crate::auth::KeyCache;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keeps a subscription open for the life of the process, reconnecting with backoff, and
/// evicts every announced key hash from `local`. With Redis down, revocations from elsewhere
/// reach this instance only through the L1 TTL.
pub fn spawn_listener(cache: SharedCache, local: KeyCache) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match subscribe(&cache).await {
                Ok(mut pubsub) => {
                    tracing::info!("listening for key revocations on Redis");
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        if let Ok(key_hash) = message.get_payload::<String>() {
                            local.evict(&key_hash).await;
                        }
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

async fn subscribe(cache: &SharedCache) -> Result<redis::aio::PubSub, String> {
    let connect = async {
        let mut pubsub = cache.client().get_async_pubsub().await?;
        pubsub.subscribe(REVOCATIONS_CHANNEL).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(cache.write_timeout * 4, connect).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(e)) => Err(format!("{:?}", e.kind())),
        Err(_) => Err("timed out".into()),
    }
}
