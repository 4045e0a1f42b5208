//! Redis: the process's one connection, its `redis` dependency (deadline, breaker, health
//! state) and the health probe. Its users (the auth cache's L2 tier and revocations, the
//! global rate limits, the events' stream sink) each get a clone of the [`Redis`] handle from
//! `app.rs`, so that Redis has one breaker and one health state however many features use it.
//!
//! Redis is optional and never waited on: the connection is made lazily in the background,
//! request-path calls go through the dependency (tens of milliseconds, breaker), and writes
//! are spawned under the write timeout.
//!
//! Redis is a single server or, with `redis.cluster`, a Cluster named by its seed nodes; the
//! choice is made here, and the users hold the same [`Connection`] either way. On a Cluster
//! every key a command touches must live in one slot: keys that must be read or written
//! together carry a hash tag (`{…}`).

mod connection;
mod subscription;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};

use crate::config::RedisConfig;
use crate::resilience::{BreakerConfig, CallError, Dependency};

pub use connection::Connection;
pub use subscription::Subscription;
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

/// What new connections are made from (boxed: the two differ in size, and are used only to
/// subscribe).
#[derive(Clone)]
enum Client {
    Single(Box<redis::Client>),
    Cluster(Box<(ClusterClient, ClusterConfig)>),
}

/// The shared Redis connection. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    connection: Connection,
    dependency: Arc<Dependency>,
    write_timeout: Duration,
}

impl Redis {
    /// Prepares the client without connecting: nothing here waits on Redis. With
    /// `redis.cluster`, `url` is one seed node or a comma-separated list of them.
    pub fn new(
        config: &RedisConfig,
        url: &str,
        breaker: BreakerConfig,
    ) -> Result<Redis, ClientError> {
        let (client, connection) = if config.cluster {
            let seeds = crate::config::redis_url::nodes(url);
            let client = tls::cluster_client(config, &seeds)?;
            // Per connection, not on the client: a connection's config replaces the client's
            // response timeout (with none, when it sets none).
            let timeouts = ClusterConfig::new()
                .set_connection_timeout(config.connect_timeout)
                .set_response_timeout(config.write_timeout);
            let connection = client.get_pending_async_connection_with_config(timeouts.clone());
            (
                Client::Cluster(Box::new((client, timeouts))),
                Connection::Cluster(connection),
            )
        } else {
            let client = tls::client(config, url)?;
            // One attempt per connection, no retries inside the client: its retries (seconds
            // of backoff) made a refused password look like "did not answer within 25ms" until
            // they ran out. A failed attempt fails the calls waiting on it with its real cause
            // (e.g. authentication failed), and the next call starts a new one; our breaker and
            // the health probe already pace those calls while Redis is down.
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.write_timeout))
                .set_number_of_retries(0);
            let connection =
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
                    .map_err(|e| ClientError::Url(format!("{:?}", e.kind())))?;
            (
                Client::Single(Box::new(client)),
                Connection::Single(connection),
            )
        };
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
    pub fn connection(&self) -> Connection {
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
        F: FnOnce(Connection) -> Fut + Send + 'static,
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
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<()>>,
    {
        self.bounded(write(self.connection.clone())).await
    }

    /// A subscription to `channel` on a connection of its own: a dedicated pub/sub
    /// connection on a single server; on a Cluster, a RESP3 cluster connection, which receives
    /// the channel's messages as pushes and subscribes again after a failover.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, ExchangeError> {
        match &self.client {
            Client::Single(client) => {
                self.bounded(async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(channel).await?;
                    Ok(Subscription::single(pubsub))
                })
                .await
            }
            Client::Cluster(cluster) => {
                let (client, timeouts) = cluster.as_ref();
                let (pushes, received) = tokio::sync::mpsc::unbounded_channel();
                let config = timeouts.clone().set_push_sender(pushes);
                self.bounded(async {
                    let mut connection = client.get_async_connection_with_config(config).await?;
                    connection.subscribe(channel).await?;
                    Ok(Subscription::cluster(connection, received))
                })
                .await
            }
        }
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
