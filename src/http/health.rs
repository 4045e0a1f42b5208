//! Liveness, readiness, health and version.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{SecondsFormat, Utc};

use super::AppState;
use crate::health::{Snapshot, Status};
use serde::Serialize;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a liveness or readiness probe reads.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    Alive,
    Ready,
    NotReady,
}

/// The body of `/health/live` and `/health/ready`; `reason` only when not ready.
#[derive(Serialize)]
pub struct ProbeBody {
    status: ProbeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `GET /version`.
#[derive(Serialize)]
pub struct VersionBody {
    name: &'static str,
    version: &'static str,
    api_version: &'static str,
}

/// 200 while the process can answer at all; touches no dependency.
pub async fn live() -> Json<ProbeBody> {
    Json(ProbeBody {
        status: ProbeStatus::Alive,
        reason: None,
    })
}

/// Why the instance should get no traffic now, if it should not: the answer of every
/// readiness probe (`/health/ready`, `/v2/health/ready`, gRPC `ServerReady`).
pub fn not_ready(state: &AppState) -> Option<String> {
    if state.lifecycle.is_draining() {
        Some("shutting down".to_string())
    } else if let Err(reason) = state.models.readiness() {
        Some(reason)
    } else if state.health.current_status() == Status::Unhealthy {
        Some("unhealthy: see /health".to_string())
    } else {
        None
    }
}

/// 503 while a model that must serve has no loaded version, while unhealthy, or while
/// draining: a degraded instance still serves.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ProbeBody>) {
    let reason = not_ready(&state);
    let (code, status) = match reason {
        None => (StatusCode::OK, ProbeStatus::Ready),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, ProbeStatus::NotReady),
    };
    (code, Json(ProbeBody { status, reason }))
}

#[derive(Serialize)]
pub struct HealthBody {
    #[serde(flatten)]
    snapshot: Snapshot,
    version: &'static str,
    timestamp: String,
    uptime_s: u64,
    draining: bool,
}

/// Every dependency's state as the background probes and request outcomes left it: no call is
/// made here, so the answer is immediate whatever the dependencies do.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let snapshot = state.health.snapshot();
    let code = if snapshot.status == Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = HealthBody {
        snapshot,
        version: VERSION,
        timestamp: now(),
        uptime_s: state.lifecycle.uptime().as_secs(),
        draining: state.lifecycle.is_draining(),
    };
    (code, Json(body))
}

pub async fn version() -> Json<VersionBody> {
    Json(VersionBody {
        name: "modelgate",
        version: VERSION,
        api_version: super::predict::API_VERSION,
    })
}
