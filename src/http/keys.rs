//! Admin API for keys: create, list, top up, revoke (`admin` scope).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::json::JsonBody;
use super::path_id::PathId;
use super::problem::{quoted, ApiError, ErrorCode};
use super::{whole_number, AppState};
use crate::auth::{prepare_key, secret, NewKey, RateLimit, Scope, MAX_CREDITS};
use crate::models::FieldError;
use crate::store::{ApiKeyRecord, KeyList, Revocation};

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
    #[serde(default, deserialize_with = "whole_number::optional_i64")]
    credits: Option<i64>,
    /// Limits the key to these model ids; absent or null for every model.
    #[serde(default)]
    models: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topup {
    #[serde(deserialize_with = "whole_number::i64")]
    credits: i64,
}

/// `POST /api/v1/keys`: the record, and the key itself (shown in this answer only).
#[derive(Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    record: ApiKeyRecord,
    key: String,
}

/// A prepaid key's balance after a top-up.
#[derive(Serialize)]
pub struct Balance {
    id: String,
    credits: i64,
}

/// A revocation done (or found done).
#[derive(Serialize)]
pub struct Revoked {
    id: String,
    revoked: bool,
}

fn store_failure<E: std::fmt::Display>(err: E) -> ApiError {
    tracing::error!(error = %err, "key store failed");
    ApiError::unavailable(
        ErrorCode::StoreUnavailable,
        "Key store unavailable",
        "The key store cannot be reached right now; retry shortly.",
    )
}

pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, [(HeaderName, String); 1], Json<CreatedKey>), ApiError> {
    let new = NewKey {
        name: body.name,
        scopes: body.scopes,
        rate_limit: body.rate_limit,
        expires_in: body.expires_in,
        credits: body.credits,
        models: body.models,
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
        .store
        .insert_key(&issued.record, &secret::hash(&issued.key))
        .await
        .map_err(store_failure)?;
    tracing::info!(key_id = %issued.record.id, prefix = %issued.record.prefix, "key created");
    // Ids are generated (`key_` and hex), so they need no escaping in a path.
    let location = format!("/api/v1/keys/{}", issued.record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CreatedKey {
            record: issued.record,
            key: issued.key,
        }),
    ))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    let keys = state.store.list_keys().await.map_err(store_failure)?;
    Ok(Json(KeyList { keys }))
}

/// `POST /api/v1/keys/{id}/topup`: adds credits to a prepaid key.
pub async fn topup(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<Topup>,
) -> Result<Json<Balance>, ApiError> {
    if !(1..=MAX_CREDITS).contains(&body.credits) {
        return Err(ApiError::validation(vec![FieldError {
            field: "credits".into(),
            message: format!("expected a number of credits from 1 to {MAX_CREDITS}"),
        }]));
    }
    let balance = state
        .store
        .add_credits(&id, body.credits)
        .await
        .map_err(store_failure)?;
    match balance {
        Some(credits) => {
            tracing::info!(key_id = %id, added = body.credits, credits, "key topped up");
            Ok(Json(Balance { id, credits }))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::PrepaidKeyNotFound,
            "Prepaid key not found",
            format!(
                "There is no prepaid key {}; keys are made prepaid when created with credits.",
                quoted(&id)
            ),
        )),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<Revoked>, ApiError> {
    match state.auth.revoke(&id).await.map_err(store_failure)? {
        Revocation::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::KeyNotFound,
            "Key not found",
            format!("There is no key {}.", quoted(&id)),
        )),
        Revocation::Revoked { .. } | Revocation::AlreadyRevoked { .. } => {
            tracing::info!(key_id = %id, "key revoked");
            Ok(Json(Revoked { id, revoked: true }))
        }
    }
}
