//! `POST /api/v1/admin/models/reload`: read the models folder again now, as SIGHUP does.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::problem::{ApiError, ErrorCode};
use super::AppState;
use crate::models::reload::Trigger;
use crate::resilience::deadline;

/// What is kept of the request's budget to write the answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// 202's body: the reload goes on; `/health` and `GET /api/v1/models/{id}` show its result.
#[derive(Serialize)]
struct Reloading {
    status: &'static str,
    detail: &'static str,
}

/// 200 with each model's outcome when the reload ends within the request's deadline; 202 when
/// it is still loading (large graphs), since it runs on without the request.
pub async fn reload(State(state): State<AppState>) -> Result<Response, ApiError> {
    let catalog = state.models.clone();
    let running = tokio::spawn(async move { catalog.reload(Trigger::Asked).await });
    let wait =
        deadline::remaining().map_or(Duration::MAX, |left| left.saturating_sub(ANSWER_MARGIN));
    match tokio::time::timeout(wait, running).await {
        Ok(Ok(Ok(report))) => Ok(Json(report).into_response()),
        Ok(Ok(Err(error))) => Err(ApiError::unavailable(
            ErrorCode::ModelsUnavailable,
            "Models not reloaded",
            format!("{error}; the loaded models keep serving."),
        )),
        Ok(Err(_)) => Err(ApiError::internal("The reload stopped unexpectedly.")),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(Reloading {
                status: "reloading",
                detail: "The reload continues in the background; GET /api/v1/models/{id} and \
                         /health show its outcome.",
            }),
        )
            .into_response()),
    }
}
