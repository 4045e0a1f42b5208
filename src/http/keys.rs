//! Admin API for keys: create, list, top up, revoke (`admin` scope).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::JsonBody;
use super::path_id::PathId;
use super::problem::ApiError;
use super::AppState;
use crate::auth::{prepare_key, secret, NewKey, RateLimit, Scope, MAX_CREDITS};
use crate::models::FieldError;
use crate::store::Revocation;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    scopes: Vec<Scope>,
    rate_limit: Option<RateLimit>,
    /// e.g. `30d`.
    #[serde(default, with = "humantime_serde")]
    expires_in: Option<Duration>,
    /// Makes the key prepaid with this many predictions.
    credits: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topup {
    credits: i64,
}

fn store_failure<E: std::fmt::Display>(err: E) -> ApiError {
    tracing::error!(error = %err, "key store failed");
    ApiError::unavailable(
        "store_unavailable",
        "Key store unavailable",
        "The key store cannot be reached right now; retry shortly.",
    )
}

pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = NewKey {
        name: body.name,
        scopes: body.scopes,
        rate_limit: body.rate_limit,
        expires_in: body.expires_in,
        credits: body.credits,
    };
    // Validation happens before the store is called, so bad input never counts as a
    // database failure in the breaker.
    let issued = prepare_key(new).map_err(|invalid| {
        ApiError::validation(vec![FieldError {
            field: invalid.field().unwrap_or("body").into(),
            message: invalid.to_string(),
        }])
    })?;
    state
        .database
        .call(
            state
                .store
                .insert_key(&issued.record, &secret::hash(&issued.key)),
        )
        .await
        .map_err(store_failure)?;
    tracing::info!(key_id = %issued.record.id, prefix = %issued.record.prefix, "key created");
    let mut body = json!(issued.record);
    if let Some(map) = body.as_object_mut() {
        map.insert("key".into(), issued.key.into());
    }
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let keys = state
        .database
        .call(state.store.list_keys())
        .await
        .map_err(store_failure)?;
    Ok(Json(json!({ "keys": keys })))
}

/// `POST /api/v1/keys/{id}/topup`: adds credits to a prepaid key.
pub async fn topup(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<Topup>,
) -> Result<Json<Value>, ApiError> {
    if !(1..=MAX_CREDITS).contains(&body.credits) {
        return Err(ApiError::validation(vec![FieldError {
            field: "credits".into(),
            message: format!("expected a number of credits from 1 to {MAX_CREDITS}"),
        }]));
    }
    let balance = state
        .database
        .call(state.store.add_credits(&id, body.credits))
        .await
        .map_err(store_failure)?;
    match balance {
        Some(credits) => {
            tracing::info!(key_id = %id, added = body.credits, credits, "key topped up");
            Ok(Json(json!({ "id": id, "credits": credits })))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "prepaid_key_not_found",
            "Prepaid key not found",
            format!(
                "There is no prepaid key {id:?}; keys are made prepaid when created with credits."
            ),
        )),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    match state.auth.revoke(&id).await.map_err(store_failure)? {
        Revocation::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            "Key not found",
            format!("There is no key {id:?}."),
        )),
        Revocation::Revoked { .. } | Revocation::AlreadyRevoked { .. } => {
            tracing::info!(key_id = %id, "key revoked");
            Ok(Json(json!({ "id": id, "revoked": true })))
        }
    }
}
