//! L2: Redis as a cache of validated keys shared by every instance, and the pub/sub channel
//! that carries revocations between instances.
//!
//! Redis is optional and never waited on: reads have a deadline of tens of milliseconds and
//! sit behind the `redis` breaker, writes are spawned and never awaited by a request, and the
//! connection is made lazily in the background. Entries are keyed by the key's SHA-256,
//! never the key.

mod invalidation;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use crate::auth::Principal;
use crate::config::RedisConfig;
use crate::resilience::{BreakerConfig, CallError, Dependency};

pub use invalidation::spawn_listener;

const KEY_PREFIX: &str = "modelgate:auth:v1:";
/// Revoked key hashes are published here; every instance evicts them from its L1.
pub const REVOCATIONS_CHANNEL: &str = "modelgate:auth:v1:revoked";

fn entry_key(key_hash: &str) -> String {
    format!("{KEY_PREFIX}{key_hash}")
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
    #[error("cannot read redis.tls_ca_file {path}: {message}")]
    CaFile { path: String, message: String },
}

/// How the certificate of a `rediss://` server is checked.
pub(crate) enum TlsTrust {
    /// Against the system's trust store.
    System,
    /// Against the CA certificates of `redis.tls_ca_file` (PEM), and nothing else.
    Ca(Vec<u8>),
    /// Not at all (`redis.tls_insecure`).
    Insecure,
}

/// The trust `config` asks for; shared with `modelgate doctor` so it checks what serving uses.
pub(crate) fn tls_trust(config: &RedisConfig) -> Result<TlsTrust, CacheError> {
    if config.tls_insecure {
        return Ok(TlsTrust::Insecure);
    }
    match &config.tls_ca_file {
        Some(path) => std::fs::read(path)
            .map(TlsTrust::Ca)
            .map_err(|e| CacheError::CaFile {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        None => Ok(TlsTrust::System),
    }
}

/// The Redis client for `url`: `rediss://` verifies the server's certificate against the
/// system's roots, or `redis.tls_ca_file`, unless verification is explicitly turned off.
fn client(config: &RedisConfig, url: &str) -> Result<redis::Client, CacheError> {
    // The client's own error text can echo the URL, password included; say only what kind.
    let kind = |e: redis::RedisError| CacheError::Url(format!("{:?}", e.kind()));
    if !url.to_ascii_lowercase().starts_with("rediss://") {
        return redis::Client::open(url).map_err(kind);
    }
    match tls_trust(config)? {
        TlsTrust::Insecure => {
            tracing::warn!(
                "redis.tls_insecure is set: the Redis server's TLS certificate is NOT verified; \
                 anyone on the network path can impersonate it and read API key hashes"
            );
            let insecure = if url.contains('#') {
                url.to_string()
            } else {
                format!("{url}#insecure")
            };
            redis::Client::open(insecure).map_err(kind)
        }
        TlsTrust::Ca(root_cert) => {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(url, certificates).map_err(kind)
        }
        TlsTrust::System => redis::Client::open(url).map_err(kind),
    }
}

/// The shared auth cache. Cheap to clone.
#[derive(Clone)]
pub struct SharedCache {
    client: redis::Client,
    connection: ConnectionManager,
    redis: Arc<Dependency>,
    write_timeout: Duration,
    ttl: Duration,
}

impl SharedCache {
    /// Prepares the client without connecting: nothing here waits on Redis.
    pub fn new(
        config: &RedisConfig,
        url: &str,
        breaker: BreakerConfig,
        ttl: Duration,
    ) -> Result<SharedCache, CacheError> {
        let client = client(config, url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.write_timeout))
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| CacheError::Url(format!("{:?}", e.kind())))?;
        Ok(SharedCache {
            client,
            connection,
            redis: Arc::new(Dependency::new("redis", config.command_timeout, breaker)),
            write_timeout: config.write_timeout,
            ttl,
        })
    }

    pub fn dependency(&self) -> &Arc<Dependency> {
        &self.redis
    }

    /// The shared, self-reconnecting connection, for other Redis users (rate limits, events):
    /// they call through [`SharedCache::dependency`] so that Redis has one breaker and one
    /// health state.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The cached principal, or `None` on a miss and on any Redis trouble (which the breaker
    /// and the dependency's status record).
    pub async fn get(&self, key_hash: &str) -> Option<Principal> {
        let mut connection = self.connection.clone();
        let key = entry_key(key_hash);
        let raw: String = self
            .redis
            .call(async move { connection.get::<_, Option<String>>(key).await })
            .await
            .ok()
            .flatten()?;
        serde_json::from_str(&raw).ok()
    }

    /// Health probe: one PING under the same timeout and breaker as a request-path read.
    pub async fn ping(&self) -> Result<(), CallError<redis::RedisError>> {
        let mut connection = self.connection.clone();
        self.redis
            .call(async move { redis::cmd("PING").query_async::<()>(&mut connection).await })
            .await
    }

    /// Stores `principal` in the background; the caller never waits.
    pub fn put(&self, key_hash: &str, principal: &Principal) {
        let Ok(value) = serde_json::to_string(principal) else {
            return;
        };
        let key = entry_key(key_hash);
        let ttl = self.ttl.as_secs().max(1);
        self.spawn_write(move |mut c| async move { c.set_ex::<_, _, ()>(key, value, ttl).await });
    }

    /// Deletes the entry and tells every instance to forget the key; in the background.
    pub fn revoke(&self, key_hash: &str) {
        let key = entry_key(key_hash);
        let hash = key_hash.to_string();
        self.spawn_write(move |mut c| async move {
            c.del::<_, ()>(key).await?;
            c.publish::<_, _, ()>(REVOCATIONS_CHANNEL, hash).await
        });
    }

    /// Like [`SharedCache::revoke`], but waits (bounded), for one-shot processes such as the CLI.
    pub async fn revoke_now(&self, key_hash: &str) -> Result<(), String> {
        let mut c = self.connection.clone();
        let key = entry_key(key_hash);
        let hash = key_hash.to_string();
        let work = async move {
            c.del::<_, ()>(key).await?;
            c.publish::<_, _, ()>(REVOCATIONS_CHANNEL, hash).await
        };
        match tokio::time::timeout(self.write_timeout * 4, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("Redis refused the revocation ({:?})", e.kind())),
            Err(_) => Err("Redis did not answer in time".into()),
        }
    }

    /// Runs a write off the request path under the write timeout and the breaker.
    fn spawn_write<F, Fut>(&self, write: F)
    where
        F: FnOnce(ConnectionManager) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = redis::RedisResult<()>> + Send,
    {
        let connection = self.connection.clone();
        let redis = self.redis.clone();
        let timeout = self.write_timeout;
        tokio::spawn(async move {
            let _ = redis.call_within(timeout, write(connection)).await;
        });
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }
}
