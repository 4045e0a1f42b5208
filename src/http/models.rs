//! `GET /api/v1/models` and `GET /api/v1/models/{id}/info`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::path_id::PathId;
use super::predict::model_not_found;
use super::problem::ApiError;
use super::AppState;

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let models: Vec<Value> = state.models.all().map(|m| m.summary()).collect();
    Json(json!({ "models": models }))
}

pub async fn info(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let model = state.models.get(&id).ok_or_else(|| model_not_found(&id))?;
    let mut body = model.summary();
    if let Some(map) = body.as_object_mut() {
        map.insert("inputs".into(), json!(model.manifest().inputs));
        map.insert("outputs".into(), json!(model.manifest().output));
    }
    Ok(Json(body))
}
