//! `POST /api/v1/outcomes`: what really happened after a prediction, recorded by the key that
//! made it (or an admin), for model monitoring and retraining.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::json::JsonBody;
use super::problem::{ApiError, ErrorCode};
use super::AppState;
use crate::auth::{Principal, Scope};
use crate::models::FieldError;
use crate::store::Outcome;

const MAX_TYPE_LEN: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordOutcome {
    inference_log_id: String,
    outcome_score: f64,
    outcome_type: String,
}

/// The 201 answer: the outcome as recorded.
#[derive(Serialize)]
pub struct RecordedOutcome {
    inference_log_id: String,
    outcome_type: String,
    outcome_score: f64,
    /// RFC 3339 UTC with milliseconds and `Z`.
    recorded_at: String,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

/// Field checks, before anything is asked of the store. Returns the inference id as logged
/// (hyphenated lowercase), whatever form of the UUID was sent.
fn validate(body: &RecordOutcome) -> Result<String, ApiError> {
    let Ok(inference_log_id) = uuid::Uuid::parse_str(&body.inference_log_id) else {
        return Err(invalid(
            "inference_log_id",
            "expected the inference_log_id of a prediction response (a UUID)",
        ));
    };
    if !body.outcome_score.is_finite() {
        return Err(invalid("outcome_score", "expected a finite number"));
    }
    let type_ok = !body.outcome_type.is_empty()
        && body.outcome_type.len() <= MAX_TYPE_LEN
        && body
            .outcome_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if !type_ok {
        return Err(invalid(
            "outcome_type",
            "expected 1 to 64 characters from A-Z a-z 0-9 _ - . : (e.g. converted)",
        ));
    }
    Ok(inference_log_id.to_string())
}

fn store_unavailable<E: std::fmt::Display>(err: E) -> ApiError {
    tracing::warn!(error = %err, "outcome not recorded: store unavailable");
    ApiError::unavailable(
        ErrorCode::StoreUnavailable,
        "Store unavailable",
        "The outcome cannot be recorded right now; retry shortly.",
    )
}

pub async fn record(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    JsonBody(body): JsonBody<RecordOutcome>,
) -> Result<(StatusCode, Json<RecordedOutcome>), ApiError> {
    let inference_log_id = validate(&body)?;
    let owner = state
        .store
        .inference_owner(&inference_log_id)
        .await
        .map_err(store_unavailable)?;
    let Some(owner) = owner else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::InferenceNotFound,
            "Inference not found",
            "No logged prediction has this inference_log_id (records reach the log within a \
             second or so of the prediction).",
        ));
    };
    if owner != principal.key_id && !principal.scopes.contains(&Scope::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InferenceNotOwned,
            "Not your prediction",
            "Only the key that made the prediction, or an admin key, may record its outcome.",
        ));
    }
    let outcome = Outcome {
        inference_log_id,
        outcome_type: body.outcome_type,
        outcome_score: body.outcome_score,
        api_key_id: principal.key_id.clone(),
        recorded_at: Utc::now(),
    };
    state
        .store
        .record_outcome(&outcome)
        .await
        .map_err(store_unavailable)?;
    Ok((
        StatusCode::CREATED,
        Json(RecordedOutcome {
            recorded_at: outcome
                .recorded_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            inference_log_id: outcome.inference_log_id,
            outcome_type: outcome.outcome_type,
            outcome_score: outcome.outcome_score,
        }),
    ))
}
