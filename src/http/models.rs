//! `GET /api/v1/models` and `GET /api/v1/models/{id}/info`.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::path_id::PathId;
use super::predict::model_not_found;
use super::problem::ApiError;
use super::AppState;
use crate::models::{ModelInfo, ModelSummary};

#[derive(Serialize)]
pub struct ModelList {
    models: Vec<ModelSummary>,
}

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let models = state.models.all().map(|m| m.summary()).collect();
    Json(ModelList { models })
}

pub async fn info(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<ModelInfo>, ApiError> {
    let model = state.models.get(&id).ok_or_else(|| model_not_found(&id))?;
    Ok(Json(model.info()))
}
