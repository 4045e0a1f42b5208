//! The Open Inference Protocol over REST (`/v2`): server and model metadata, readiness and
//! infer. Authentication, scope, the key's models and its rate limit are the router's
//! layers, as for `/api/v1`; scoring is `scoring::score`, the path every protocol shares.
//! Errors are rendered in the protocol's shape by `request_id` (see [`is_v2_path`]).

pub mod body;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::Value;

use super::json::RawBody;
use super::path_id::PathId;
use super::predict::unavailable;
use super::problem::ApiError;
use super::scoring;
use super::AppState;
use crate::auth::Principal;
use crate::events::Protocol;
use crate::models::{Model, Unavailable};
use crate::v2::{mapping, TensorSpec, EXTENSIONS, PLATFORM, SERVER_NAME};

/// Whether `path` is under `/v2`, whose errors are `{"error": …, "code": …}`.
pub fn is_v2_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

#[derive(Debug, Serialize)]
pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: &'static [&'static str],
}

pub fn server_metadata() -> ServerMetadata {
    ServerMetadata {
        name: SERVER_NAME,
        version: env!("CARGO_PKG_VERSION"),
        extensions: EXTENSIONS,
    }
}

/// `GET /v2`.
pub async fn server() -> Json<ServerMetadata> {
    Json(server_metadata())
}

#[derive(Debug, Serialize)]
pub struct ModelMetadata {
    pub name: String,
    /// Every loaded version.
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// The model `id` (at `version`, else the serving one), as metadata describes it.
pub fn model_metadata(
    state: &AppState,
    id: &str,
    version: Option<&str>,
) -> Result<ModelMetadata, ApiError> {
    let model = resolve(state, id, version)?;
    let versions = state
        .models
        .versions(id)
        .map(|(versions, _)| {
            versions
                .iter()
                .map(|m| m.version().version.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(ModelMetadata {
        name: model.id().to_string(),
        versions,
        platform: PLATFORM,
        inputs: mapping::inputs(model.manifest()),
        outputs: mapping::outputs(model.manifest()),
    })
}

/// The version of `id` a request names, or the serving one.
pub fn resolve(state: &AppState, id: &str, version: Option<&str>) -> Result<Arc<Model>, ApiError> {
    let found: Result<Arc<Model>, Unavailable> = match version {
        None => state.models.current(id),
        Some(version) => state.models.pinned(id, version),
    };
    found.map_err(|e| unavailable(id, version, e))
}

/// `GET /v2/models/{id}`.
pub async fn model(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<ModelMetadata>, ApiError> {
    model_metadata(&state, &id, None).map(Json)
}

/// `GET /v2/models/{id}/versions/{version}`.
pub async fn model_version(
    State(state): State<AppState>,
    PathId((id, version)): PathId<(String, String)>,
) -> Result<Json<ModelMetadata>, ApiError> {
    model_metadata(&state, &id, Some(&version)).map(Json)
}

/// `POST /v2/models/{id}/infer`: the version serving now.
pub async fn infer(
    State(state): State<AppState>,
    PathId(id): PathId,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let model = resolve(&state, &id, None)?;
    infer_on(&state, &model, &principal, &headers, &body, started).await
}

/// `POST /v2/models/{id}/versions/{version}/infer`: a loaded version, pinned.
pub async fn infer_version(
    State(state): State<AppState>,
    PathId((id, version)): PathId<(String, String)>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let model = resolve(&state, &id, Some(&version))?;
    infer_on(&state, &model, &principal, &headers, &body, started).await
}

async fn infer_on(
    state: &AppState,
    model: &Arc<Model>,
    principal: &Principal,
    headers: &HeaderMap,
    body: &[u8],
    started: Instant,
) -> Result<Response, ApiError> {
    let request = body::decode(headers, body)?;
    let requested: Vec<&str> = request.outputs.iter().map(|(n, _)| n.as_str()).collect();
    let (rows, selected) = prepare(model, &request.inputs, &requested)?;
    let scored = scoring::score(
        state,
        model,
        principal,
        Value::Array(rows),
        Protocol::V2Http,
        started,
    )
    .await?;
    let outputs = mapping::tensors(&selected, &rows_of(scored.predictions));
    let response = body::InferenceResponse {
        model_name: model.id().to_string(),
        model_version: model.version().version.clone(),
        id: request.id,
        parameters: body::ResponseParameters {
            inference_log_id: scored.inference_log_id.map(|id| id.to_string()),
            credits_remaining: scored.credits_remaining,
        },
        outputs: Vec::new(),
    };
    let binary = |name: &str| {
        request
            .outputs
            .iter()
            .find(|(n, _)| n == name)
            .map_or(request.all_binary, |(_, binary)| *binary)
    };
    Ok(body::encode(response, outputs, binary))
}

/// The rows to score and the outputs to answer with, both checked before anything is charged.
pub fn prepare(
    model: &Model,
    inputs: &[crate::v2::InputTensor],
    requested: &[&str],
) -> Result<(Vec<Value>, Vec<TensorSpec>), ApiError> {
    let rows = mapping::rows(model.manifest(), inputs).map_err(ApiError::invalid_tensor)?;
    let selected =
        mapping::select(model.manifest(), requested).map_err(ApiError::invalid_tensor)?;
    Ok((rows, selected))
}

/// The predictions of a batch, one object per row.
pub fn rows_of(predictions: Value) -> Vec<Value> {
    match predictions {
        Value::Array(rows) => rows,
        one => vec![one],
    }
}
