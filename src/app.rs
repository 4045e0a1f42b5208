//! Startup: builds the whole service from a [`Config`] and serves it until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::{revocation, Authenticator, CacheSecret, RemoteAuth, SharedTier};
use crate::config::{Config, ConfigError};
use crate::events::outbox::OutboxError;
use crate::events::{DatabaseSink, Events, Sink, StreamSink, UsageSink};
use crate::health::{self, Check, DiskWatch, Health, Probe};
use crate::http::client_addr::TrustedProxies;
use crate::http::{self, server, AppState, Lifecycle};
use crate::models::{self, Catalog, LoadError, Registry};
use crate::ratelimit::{FailedAuthThrottle, RateLimiter};
use crate::redis::{ClientError, Redis};
use crate::resilience::Dependency;
use crate::store::{self, GuardedStore, StoreError};

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

/// Connections the admin listener keeps open at once: probes and scrapers need a few.
const ADMIN_CONNECTIONS: usize = 64;

/// A built service, bound to its port(s) but not yet serving.
pub struct App {
    listener: TcpListener,
    /// `server.admin_listen`'s listener, when set.
    admin: Option<TcpListener>,
    /// `grpc_listen`'s listener, unless gRPC is off.
    grpc: Option<TcpListener>,
    /// Most connections open at once on `listener`.
    max_connections: usize,
    state: AppState,
}

impl App {
    pub async fn build(config: Config) -> Result<App, StartError> {
        config.require_models_dir()?;
        // Installed before anything records, so that no early sample is lost.
        crate::metrics::handle();
        let registry = Arc::new(Registry::new(&config.models, config.breaker.clone()));
        let models = Arc::new(Catalog::open(&config.models_dir, registry)?);
        let store = GuardedStore::open(&config.database, config.breaker.clone()).await?;
        // Before any socket: the cap derives from the limit in force.
        let fd_limit = server::raise_fd_limit();
        let max_connections = server::derive_cap(config.server.max_connections, fd_limit);
        let listener = bind(config.listen).await?;
        let admin = match config.server.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let grpc = match config.grpc_listen.0 {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        tracing::info!(
            max_connections,
            fd_limit,
            admin_listen = ?admin.as_ref().and_then(|l| l.local_addr().ok()),
            grpc_listen = ?grpc.as_ref().and_then(|l| l.local_addr().ok()),
            "connections on {} capped at max_connections",
            config.listen
        );
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
            match CacheSecret::resolve(&config.auth, &store).await {
                Ok(secret) => {
                    let shared = SharedTier::new(redis.clone(), secret, config.auth.shared_ttl);
                    auth = auth.with_shared_tier(shared);
                }
                Err(error) => {
                    tracing::warn!(%error, "shared auth cache (L2) off: auth.cache_secret is unset and the database could not provide the shared one")
                }
            }
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
        Ok(App {
            listener,
            admin,
            grpc,
            max_connections,
            state,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// The admin listener's bound address, when `server.admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The gRPC listener's bound address, unless gRPC is off.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|l| l.local_addr().ok())
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
        let App {
            listener,
            admin,
            grpc,
            max_connections,
            state,
        } = self;
        let mut background = state
            .health
            .spawn_monitor(state.config.health.probe_interval);
        background.extend(health::spawn_alerts(
            state.health.clone(),
            &state.config.alerts,
            state.config.listen.to_string(),
        ));
        if state.config.events.enabled {
            background.push(store::spawn_pruner(
                state.store.clone(),
                state.config.events.retention,
                state.config.events.prune_interval,
            ));
        }
        background.push(models::reload::spawn(
            state.models.clone(),
            state.config.models.poll_interval,
        ));
        background.push(models::registry_sync::spawn(state.models.clone()));
        let events = state.events.start();
        let grace = state.config.shutdown_grace;
        let lifecycle = state.lifecycle.clone();
        let store = state.store.clone();
        let timeouts = server::Timeouts {
            header_read: state.config.server.header_read_timeout,
            idle: state.config.server.idle_timeout,
            body: state.config.http.request_deadline,
        };
        let public_limit = server::ConnectionLimit::new(max_connections, true);
        let public = server::Listener::new(
            listener,
            public_limit.clone(),
            timeouts,
            http::router(state.clone()),
            true,
        );
        let admin = admin.map(|admin| {
            server::Listener::new(
                admin,
                server::ConnectionLimit::new(ADMIN_CONNECTIONS, false),
                timeouts,
                http::admin_router(state.clone()),
                false,
            )
        });
        let grpc = grpc.map(|grpc| {
            let (router, follow_readiness) = crate::grpc::router(&state);
            let listener = server::Listener::new(grpc, public_limit, timeouts, router, true);
            (listener, follow_readiness)
        });
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            lifecycle.start_draining();
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = stopping_tx.send(true);
        };
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        };
        let mut grace_rx = stopping_rx.clone();
        let server = async {
            let admin = async {
                if let Some(admin) = admin {
                    admin.serve(stopped(stopping_rx.clone())).await;
                }
            };
            let grpc = async {
                if let Some((grpc, follow_readiness)) = grpc {
                    tokio::select! {
                        () = grpc.serve(stopped(stopping_rx.clone())) => {},
                        () = follow_readiness => {},
                    }
                }
            };
            tokio::join!(
                public.serve(stopped(stopping_rx.clone())),
                admin,
                grpc,
                signal
            );
        };
        let grace_over = async move {
            let stopping = grace_rx.wait_for(|stopping| *stopping).await.is_ok();
            if stopping {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = server => {},
            () = grace_over => {
                tracing::warn!(grace_s = grace.as_secs_f64(), "grace period over; abandoning in-flight requests");
            }
        }
        events.shutdown(grace).await;
        for task in background {
            task.abort();
        }
        store.close().await;
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
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
    models: &Arc<Catalog>,
    events: &Events,
) -> Health {
    let mut checks = vec![Check::new(
        "models",
        true,
        "predictions of the models named fail (503 model_not_ready), or a new version they \
         were given does not serve",
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
    if models.uses_registry() {
        checks.push(Check::new(
            "mlflow",
            false,
            "new model versions are not picked up from the registry (a registry model with no \
             cached version cannot serve: see the models check)",
            Probe::Mlflow(models.clone()),
        ));
    } else {
        disabled.push("mlflow");
    }
    let outbox = events.outbox_budget();
    if let Some(budget) = &outbox {
        checks.push(Check::new(
            "outbox",
            false,
            "outbox full: records are being dropped",
            Probe::Outbox(budget.clone()),
        ));
    }
    checks.push(Check::new(
        "disk",
        false,
        "inference records wait in the outbox while the database's disk is full, and are \
         dropped (counted in modelgate_events_dropped_total{reason=\"disk_full\"}) once the \
         outbox's disk is full too; predictions are still answered",
        Probe::Disk(Box::new(DiskWatch::new(
            store.clone(),
            outbox.map(|budget| (config.events.outbox_dir.clone(), budget)),
        ))),
    ));
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
