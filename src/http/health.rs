//! Liveness, readiness, health and version.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::AppState;
use crate::resilience::{BreakerState, Dependency};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// 200 while the process can answer at all; touches no dependency.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// 200 once the store is migrated and every model loaded, until shutdown begins.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let reason = if state.lifecycle.is_draining() {
        Some("shutting down")
    } else if state.models.is_empty() {
        Some("no model loaded")
    } else {
        None
    };
    match reason {
        None => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason })),
        ),
    }
}

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let started = Instant::now();
    let database_ok = state.database.call(state.store.ping()).await.is_ok();
    let models_ok = !state.models.is_empty();
    let label = |ok: bool| if ok { "healthy" } else { "unhealthy" };
    // Redis and the auth service degrade the service when down, never make it unhealthy:
    // cached keys keep working. Their state comes from memory (the breaker), not a new call.
    let up = |dependency: &Dependency| dependency.status().breaker == BreakerState::Closed;
    let redis = state.auth.shared_cache().map(|c| up(c.dependency()));
    let auth_service = state.auth.remote().map(|r| up(r.dependency()));
    let overall = if !(database_ok && models_ok) {
        "unhealthy"
    } else if redis == Some(false) || auth_service == Some(false) {
        "degraded"
    } else {
        "healthy"
    };
    let status = if overall == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": overall,
        "version": VERSION,
        "timestamp": now(),
        "uptime_s": state.lifecycle.uptime().as_secs(),
        "services": {
            "database": label(database_ok),
            "models": label(models_ok),
            "redis": redis.map_or("disabled", label),
            "auth_service": auth_service.map_or("disabled", label),
        },
        "check_ms": started.elapsed().as_secs_f64() * 1e3,
    });
    (status, Json(body))
}

pub async fn version() -> Json<Value> {
    Json(
        json!({ "name": "modelgate", "version": VERSION, "api_version": super::predict::API_VERSION }),
    )
}
