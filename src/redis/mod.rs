//! Redis: the process's one connection, its `redis` dependency (deadline, breaker, health
//! state) and the health probe. Its users (the auth cache's L2 tier and revocations, the
//! global rate limits, the events' stream sink) each get a clone of the [`Redis`] handle from
//! `app.rs`, so that Redis has one breaker and one health state however many features use it.
//!
//! Redis is optional and never waited on: the connection is made lazily in the background,
//! request-path calls go through the dependency (tens of milliseconds, breaker), and writes
//! are spawned under the write timeout.
//!
//! This is the seam where Redis Cluster will plug in: a cluster connection behind the same
//! handle, chosen from the configuration here, with no change to the modules that use it.

mod tls;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};

use crate::config::RedisConfig;
use crate::resilience::{BreakerConfig, CallError, Dependency};

pub(crate) use tls::{tls_trust, TlsTrust};

/// Why the Redis client cannot be prepared: the configuration, not the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
    #[error("cannot read redis.tls_ca_file {path}: {message}")]
    CaFile { path: String, message: String },
}

/// Why a one-shot exchange (off the request path, waited on but bounded) failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The kind only: the client's own text can echo the URL, password included.
    #[error("Redis refused ({0:?})")]
    Refused(redis::ErrorKind),
    #[error("Redis did not answer in time")]
    TimedOut,
}

/// The shared Redis connection. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    connection: ConnectionManager,
    dependency: Arc<Dependency>,
    write_timeout: Duration,
}

impl Redis {
    /// Prepares the client without connecting: nothing here waits on Redis.
    pub fn new(
        config: &RedisConfig,
        url: &str,
        breaker: BreakerConfig,
    ) -> Result<Redis, ClientError> {
        let client = tls::client(config, url)?;
        // One attempt per connection, no retries inside the client: its retries (seconds of
        // backoff) made a refused password look like "did not answer within 25ms" until they
        // ran out. A failed attempt fails the calls waiting on it with its real cause (e.g.
        // authentication failed), and the next call starts a new one; our breaker and the
        // health probe already pace those calls while Redis is down.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.write_timeout))
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| ClientError::Url(format!("{:?}", e.kind())))?;
        Ok(Redis {
            client,
            connection,
            dependency: Arc::new(Dependency::new("redis", config.command_timeout, breaker)),
            write_timeout: config.write_timeout,
        })
    }

    /// Every call goes through this: one breaker and one health state for all of Redis.
    pub fn dependency(&self) -> &Arc<Dependency> {
        &self.dependency
    }

    /// The shared, self-reconnecting connection; call it through [`Redis::dependency`].
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Health probe: one PING under the same timeout and breaker as a request-path read.
    pub async fn ping(&self) -> Result<(), CallError<redis::RedisError>> {
        let mut connection = self.connection.clone();
        self.dependency
            .call(async move { redis::cmd("PING").query_async::<()>(&mut connection).await })
            .await
    }

    /// Runs a write off the request path under the write timeout and the breaker; the caller
    /// never waits.
    pub fn spawn_write<F, Fut>(&self, write: F)
    where
        F: FnOnce(ConnectionManager) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = redis::RedisResult<()>> + Send,
    {
        let connection = self.connection.clone();
        let dependency = self.dependency.clone();
        let timeout = self.write_timeout;
        tokio::spawn(async move {
            let _ = dependency.call_within(timeout, write(connection)).await;
        });
    }

    /// Like [`Redis::spawn_write`], but waits (bounded), for one-shot processes such as the CLI.
    pub async fn write_now<F, Fut>(&self, write: F) -> Result<(), ExchangeError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<()>>,
    {
        self.bounded(write(self.connection.clone())).await
    }

    /// A pub/sub connection (its own, as RESP2 requires) subscribed to `channel`.
    pub async fn subscribe(&self, channel: &str) -> Result<PubSub, ExchangeError> {
        self.bounded(async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await
    }

    /// `work` within a few write timeouts: long enough for a connection to be made.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ExchangeError> {
        match tokio::time::timeout(self.write_timeout * 4, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ExchangeError::Refused(e.kind())),
            Err(_) => Err(ExchangeError::TimedOut),
        }
    }
}
