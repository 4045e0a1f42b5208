//! The HTTP surface: router, middleware stack, handlers and problem+json errors.

pub mod access_log;
mod allow;
pub mod authn;
mod caching;
pub mod client_addr;
mod compression;
mod cors;
mod credits;
mod decompression;
mod error_code;
pub mod health;
pub mod json;
mod keys;
mod limits;
mod models;
mod outcomes;
mod path_id;
pub mod predict;
pub mod problem;
pub mod ratelimit;
mod reload;
pub mod request_id;
mod routes;
pub mod scoring;
mod serde_words;
pub mod server;
pub mod stats;
mod status;
pub mod v2;
mod whole_number;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::Router;
use tower::util::option_layer;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::health::Health;
use crate::models::Catalog;
use crate::ratelimit::RateLimiter;
use crate::resilience::deadline;
use crate::store::GuardedStore;
use problem::{ApiError, ErrorCode};

/// Where the process is in its life: started when, and whether it is shutting down.
#[derive(Debug)]
pub struct Lifecycle {
    started: Instant,
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle {
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

/// What handlers share. Axum clones the state for every extractor and middleware layer of
/// every request, so it is one `Arc` (cloning each service was a tenth of the CPU at load).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub config: Arc<Config>,
    /// The store, every call under the `database` guard.
    pub store: GuardedStore,
    pub auth: Authenticator,
    /// The shared Redis connection, when configured (its state is also in `health`).
    pub redis: Option<crate::redis::Redis>,
    /// Per-key limits of the prediction routes.
    pub ratelimit: RateLimiter,
    /// Client addresses that failed authentication too often.
    pub failed_auth: crate::ratelimit::FailedAuthThrottle,
    /// Whose `Forwarded`/`X-Forwarded-For` names the client.
    pub trusted_proxies: client_addr::TrustedProxies,
    pub health: Arc<Health>,
    /// The models and their loaded versions, swapped by reloads.
    pub models: Arc<Catalog>,
    pub lifecycle: Arc<Lifecycle>,
    /// The last minute of requests, for `/status/stats`.
    pub stats: Arc<stats::RequestStats>,
    /// Where each prediction's record goes (never waited on).
    pub events: crate::events::Events,
}

/// A panic is a bug; the client still gets a problem+json 500 and the connection survives.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("handler panicked");
    axum::response::IntoResponse::into_response(ApiError::internal(
        "An unexpected error occurred; it has been logged.",
    ))
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such endpoint.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "Method not allowed",
        "This endpoint does not accept that method; see the Allow header.",
    )
}

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

/// Counts and times every request by its route template (never the raw path: unbounded labels).
async fn record_metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    if routes::is_counted(&route) {
        state
            .stats
            .record(elapsed, response.status().is_server_error());
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!(crate::metrics::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(crate::metrics::HTTP_DURATION, "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

async fn prometheus() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    crate::telemetry::publish_dropped_lines();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

/// Gives the request its time budget before anything else runs.
async fn with_deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    deadline::with_budget(state.config.http.request_deadline, next.run(request)).await
}

/// Every route, behind the middleware stack.
pub fn router(state: AppState) -> Router {
    let routes = routes::router(&state);
    stack(routes, state)
}

/// The admin listener's routes (health, metrics, version), behind the same stack.
pub fn admin_router(state: AppState) -> Router {
    let routes = routes::admin_router(&state);
    stack(routes, state)
}

fn stack(routes: Router<AppState>, state: AppState) -> Router {
    let body_limit = usize::try_from(state.config.http.body_limit_bytes).unwrap_or(usize::MAX);
    let router = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(decompression::layer())
        .layer(from_fn(decompression::refuse_unsupported))
        .layer(compression::layer())
        .layer(from_fn(caching::middleware))
        .layer(from_fn_with_state(state.clone(), authn::authenticate))
        .layer(from_fn(limits::middleware))
        .layer(from_fn_with_state(state.clone(), record_metrics))
        .layer(from_fn_with_state(state.clone(), with_deadline))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(request_id::middleware))
        .layer(option_layer(cors::layer(&state.config.http)));
    allow::only_on_405(access_log::around(router, &state.config.log).with_state(state))
}
