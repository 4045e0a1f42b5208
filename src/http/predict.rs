//! `POST /api/v1/models/{id}/predict`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::json::JsonBody;
use super::path_id::PathId;
use super::problem::{quoted, ApiError, ErrorCode};
use super::scoring;
use super::AppState;
use crate::auth::Principal;
use crate::events::Protocol;
use crate::models::{Model, Unavailable};

pub const API_VERSION: &str = "1.0";

/// `options` is accepted and ignored, like any other extra field: no option changes scoring yet.
#[derive(Deserialize)]
pub struct PredictRequest {
    inputs: Value,
}

/// The 200 answer, in the order docs/api.md shows it.
#[derive(Serialize)]
pub struct PredictResponse {
    model_id: String,
    /// One object, or an array in request order.
    predictions: Value,
    metadata: PredictMetadata,
    /// RFC 3339 UTC with milliseconds and `Z`.
    timestamp: String,
    /// Absent when the record could not be kept (docs/events.md): an id is handed out only
    /// for a record that is in the journal.
    #[serde(skip_serializing_if = "Option::is_none")]
    inference_log_id: Option<Uuid>,
}

#[derive(Serialize)]
pub struct PredictMetadata {
    api_version: &'static str,
    model_version: String,
    api_key_id: String,
    latency_ms: f64,
    /// Only for prepaid keys: what the key has left after this prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    credits_remaining: Option<i64>,
}

pub fn model_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ModelNotFound,
        "Model not found",
        format!(
            "There is no model {}; GET /api/v1/models lists them.",
            quoted(id)
        ),
    )
}

/// Why no version of model `id` (or of its `version`) can answer.
pub fn unavailable(id: &str, version: Option<&str>, error: Unavailable) -> ApiError {
    match error {
        Unavailable::NoSuchModel => model_not_found(id),
        Unavailable::NoSuchVersion => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ModelVersionNotFound,
            "Model version not loaded",
            format!(
                "Model {} has no loaded version {}; GET /api/v1/models/{} lists them.",
                quoted(id),
                quoted(version.unwrap_or_default()),
                id
            ),
        ),
        Unavailable::NotReady(reason) => ApiError::unavailable(
            ErrorCode::ModelNotReady,
            "Model not ready",
            format!(
                "Model {} has no version that can answer: {reason}",
                quoted(id)
            ),
        ),
    }
}

/// `POST /api/v1/models/{id}/predict`: the version serving now.
pub async fn predict(
    State(state): State<AppState>,
    PathId(id): PathId,
    Extension(principal): Extension<Arc<Principal>>,
    JsonBody(request): JsonBody<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let started = Instant::now();
    let model = state
        .models
        .current(&id)
        .map_err(|e| unavailable(&id, None, e))?;
    score(state, model, principal, request, started).await
}

/// `POST /api/v1/models/{id}/versions/{version}/predict`: a loaded version, pinned.
pub async fn predict_version(
    State(state): State<AppState>,
    PathId((id, version)): PathId<(String, String)>,
    Extension(principal): Extension<Arc<Principal>>,
    JsonBody(request): JsonBody<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let started = Instant::now();
    let model = state
        .models
        .pinned(&id, &version)
        .map_err(|e| unavailable(&id, Some(&version), e))?;
    score(state, model, principal, request, started).await
}

async fn score(
    state: AppState,
    model: Arc<Model>,
    principal: Arc<Principal>,
    request: PredictRequest,
    started: Instant,
) -> Result<Json<PredictResponse>, ApiError> {
    let scored = scoring::score(
        &state,
        &model,
        &principal,
        request.inputs,
        Protocol::V1,
        started,
    )
    .await?;
    Ok(Json(PredictResponse {
        model_id: model.id().to_string(),
        predictions: scored.predictions,
        metadata: PredictMetadata {
            api_version: API_VERSION,
            model_version: model.version().version.clone(),
            api_key_id: principal.key_id.clone(),
            latency_ms: scored.latency_ms,
            credits_remaining: scored.credits_remaining,
        },
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        inference_log_id: scored.inference_log_id,
    }))
}
