//! Startup: builds the whole service from a [`Config`] and serves it until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::{revocation, Authenticator, RemoteAuth, SharedTier};
use crate::config::{Config, ConfigError};
use crate::events::outbox::OutboxError;
use crate::events::{DatabaseSink, Events, Sink, StreamSink, UsageSink};
use crate::health::{self, Check, Health, Probe};
use crate::http::client_addr::TrustedProxies;
use crate::http::{self, AppState, Lifecycle};
use crate::models::{LoadError, ModelRegistry};
use crate::ratelimit::{FailedAuthThrottle, RateLimiter};
use crate::redis::{ClientError, Redis};
use crate::resilience::Dependency;
use crate::store::{GuardedStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Models(#[from] LoadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Redis(#[from] ClientError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl StartError {
    /// Problems the operator fixes in configuration or model files (exit status 2).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StartError::Config(_) | StartError::Models(_) | StartError::Redis(_)
        )
    }
}

/// A built service, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    pub async fn build(config: Config) -> Result<App, StartError> {
        config.require_models_dir()?;
        // Installed before anything records, so that no early sample is lost.
        crate::metrics::handle();
        let models = ModelRegistry::load_dir(&config.models_dir)?;
        let store = GuardedStore::open(&config.database, config.breaker.clone()).await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let mut auth = Authenticator::new(store.clone(), &config.auth);
        if let Some(url) = &config.auth.service_url {
            let dependency = Arc::new(Dependency::new(
                "auth_service",
                config.auth.service_timeout,
                config.breaker.clone(),
            ));
            auth = auth.with_remote(RemoteAuth::new(url, &config.auth.service_id, dependency));
        }
        // The process's one Redis connection, breaker and health state, for all its users.
        let redis = match &config.redis.url {
            Some(url) => Some(Redis::new(&config.redis, url, config.breaker.clone())?),
            None => None,
        };
        if let Some(redis) = &redis {
            revocation::spawn_listener(redis.clone(), auth.local_cache());
            auth = auth.with_shared_tier(SharedTier::new(redis.clone(), config.auth.shared_ttl));
        }
        let ratelimit = RateLimiter::new(&config.ratelimit, redis.as_ref());
        let events = open_events(&config, &store, redis.as_ref())?;
        let health = Arc::new(health_checks(
            &config,
            &store,
            redis.as_ref(),
            &auth,
            &models,
            &events,
        ));
        let state = AppState::new(http::Services {
            redis,
            ratelimit,
            failed_auth: FailedAuthThrottle::new(&config.auth),
            trusted_proxies: TrustedProxies::new(config.server.trusted_networks()),
            events,
            auth,
            health,
            config: Arc::new(config),
            store,
            models,
            lifecycle: Arc::new(Lifecycle::new()),
            stats: Arc::new(http::stats::RequestStats::new()),
        });
        Ok(App { listener, state })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish within the
    /// configured grace period.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App { listener, state } = self;
        let mut background = state
            .health
            .spawn_monitor(state.config.health.probe_interval);
        background.extend(health::spawn_alerts(
            state.health.clone(),
            &state.config.alerts,
            state.config.listen.to_string(),
        ));
        let events = state.events.start();
        let grace = state.config.shutdown_grace;
        let lifecycle = state.lifecycle.clone();
        let store = state.store.clone();
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let router = http::router(state);
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            lifecycle.start_draining();
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = stopping_tx.send(());
        });
        let grace_over = async move {
            match stopping_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = server => result,
            () = grace_over => {
                tracing::warn!(grace_s = grace.as_secs_f64(), "grace period over; abandoning in-flight requests");
                Ok(())
            }
        };
        events.shutdown(grace).await;
        for task in background {
            task.abort();
        }
        store.close().await;
        result
    }
}

/// The inference records' sinks: the database always, the Redis stream when Redis is set.
fn open_events(
    config: &Config,
    store: &GuardedStore,
    redis: Option<&Redis>,
) -> Result<Events, OutboxError> {
    let events = &config.events;
    let mut sinks: Vec<Arc<dyn Sink>> = vec![Arc::new(DatabaseSink::new(
        store.clone(),
        config.database.timeout,
    ))];
    if let Some(redis) = redis {
        sinks.push(Arc::new(StreamSink::new(
            redis,
            events.stream.clone(),
            events.stream_maxlen,
            config.redis.write_timeout,
        )));
    }
    if let Some(url) = &config.auth.service_url {
        sinks.push(Arc::new(UsageSink::new(
            url,
            &config.auth.service_id,
            config.auth.service_timeout,
            config.breaker.clone(),
        )));
    }
    Events::open(events, sinks)
}

/// What each dependency costs users while it is down, and which ones this deployment uses.
fn health_checks(
    config: &Config,
    store: &GuardedStore,
    redis: Option<&Redis>,
    auth: &Authenticator,
    models: &ModelRegistry,
    events: &Events,
) -> Health {
    let mut checks = vec![Check::new(
        "models",
        true,
        "no model is loaded: every prediction fails",
        Probe::Models(models.clone()),
    )];
    let database_impact = if config.auth.service_url.is_some() {
        "key management (the admin API and CLI) is unavailable; inference records wait in the \
         outbox"
    } else {
        "keys not in this instance's cache cannot be checked (503 auth_unavailable, retry \
         later); cached keys keep working; key management is unavailable; inference records \
         wait in the outbox"
    };
    checks.push(Check::new(
        "database",
        false,
        database_impact,
        Probe::Database(store.clone()),
    ));
    let mut disabled = Vec::new();
    match redis {
        Some(redis) => checks.push(Check::new(
            "redis",
            false,
            "shared auth cache off: each instance checks uncached keys with the source itself, \
             and revocations reach other instances only when their cache entries expire; rate \
             limits are enforced per instance (ratelimit.local_share of each key's limit); \
             stream records wait in the outbox",
            Probe::Redis(Box::new(redis.clone())),
        )),
        None => disabled.push("redis"),
    }
    match auth.remote() {
        Some(remote) => checks.push(Check::new(
            "auth_service",
            false,
            "keys not in cache cannot be checked (503 auth_unavailable, retry later); cached \
             keys keep working, stale ones up to auth.stale_horizon",
            Probe::AuthService(remote.clone()),
        )),
        None => disabled.push("auth_service"),
    }
    if let Some(budget) = events.outbox_budget() {
        checks.push(Check::new(
            "outbox",
            false,
            "outbox full: records are being dropped",
            Probe::Outbox(budget),
        ));
    }
    Health::new(checks, disabled)
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
