//! `GET /api/v1/models`, `GET /api/v1/models/{id}` (and its older name `…/{id}/info`), and
//! `GET /api/v1/models/{id}/ready`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;

use super::path_id::PathId;
use super::predict::unavailable;
use super::problem::ApiError;
use super::AppState;
use crate::auth::Principal;
use crate::models::{ModelDetail, ModelSummary, Unavailable};

#[derive(Serialize)]
pub struct ModelList {
    models: Vec<ModelSummary>,
}

/// Models with a serving version; one that has none yet is in `/health`, not here. A key
/// limited to some models sees only those (the routes of the others answer 403).
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
) -> Json<ModelList> {
    let models = state
        .models
        .serving()
        .iter()
        .filter(|m| principal.may_use(m.id()))
        .map(|m| m.summary())
        .collect();
    Json(ModelList { models })
}

pub async fn detail(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<ModelDetail>, ApiError> {
    let (versions, problem) = state
        .models
        .versions(&id)
        .ok_or_else(|| unavailable(&id, None, Unavailable::NoSuchModel))?;
    let serving = state
        .models
        .current(&id)
        .map_err(|e| unavailable(&id, None, e))?;
    Ok(Json(ModelDetail {
        info: serving.info(),
        versions: versions.iter().map(|m| m.version().clone()).collect(),
        problem,
    }))
}

/// The answer of `GET /api/v1/models/{id}/ready`.
#[derive(Serialize)]
pub struct ModelReadiness {
    model_id: String,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// 200 while a version of the model can answer, 503 (with the reason) while none can
/// (`/api/v1/models/{id}/ready`, `/v2/models/{id}/ready`).
pub async fn ready(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<(StatusCode, Json<ModelReadiness>), ApiError> {
    let found = state.models.current(&id);
    readiness(id, None, found)
}

/// 200 while the version is loaded (`/v2/models/{id}/versions/{version}/ready`).
pub async fn ready_version(
    State(state): State<AppState>,
    PathId((id, version)): PathId<(String, String)>,
) -> Result<(StatusCode, Json<ModelReadiness>), ApiError> {
    let found = state.models.pinned(&id, &version);
    readiness(id, Some(&version), found)
}

fn readiness(
    id: String,
    version: Option<&str>,
    found: Result<std::sync::Arc<crate::models::Model>, Unavailable>,
) -> Result<(StatusCode, Json<ModelReadiness>), ApiError> {
    let (code, version, reason) = match found {
        Ok(model) => (StatusCode::OK, Some(model.version().version.clone()), None),
        Err(Unavailable::NotReady(reason)) => (StatusCode::SERVICE_UNAVAILABLE, None, Some(reason)),
        Err(other) => return Err(unavailable(&id, version, other)),
    };
    Ok((
        code,
        Json(ModelReadiness {
            model_id: id,
            ready: code == StatusCode::OK,
            version,
            reason,
        }),
    ))
}
