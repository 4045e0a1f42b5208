//! Prepaid keys: one credit per prediction, taken before scoring and given back when scoring
//! does not produce an answer, so a balance is never overdrawn and never charged for an error.

use axum::http::StatusCode;

use super::problem::{ApiError, ErrorCode};
use super::AppState;
use crate::auth::Principal;

/// A credit taken for one prediction; given back on drop unless [`Charge::keep`] was called.
pub struct Charge {
    state: AppState,
    key_id: String,
    /// What the key has left after this prediction.
    pub remaining: i64,
    kept: bool,
}

/// Takes a credit when `principal` is prepaid. The balance lives in the store, so a prepaid
/// key strictly needs it: with the store down the answer is a fast 503, never a free prediction.
pub async fn charge(state: &AppState, principal: &Principal) -> Result<Option<Charge>, ApiError> {
    if !principal.prepaid {
        return Ok(None);
    }
    let taken = state
        .store
        .take_credit(&principal.key_id)
        .await
        .map_err(|err| {
            tracing::warn!(key_id = %principal.key_id, error = %err, "credit check failed");
            ApiError::unavailable(
                ErrorCode::CreditsUnavailable,
                "Credit balance unavailable",
                "This key is prepaid and its balance cannot be checked right now; retry shortly.",
            )
        })?;
    match taken {
        Some(remaining) => Ok(Some(Charge {
            state: state.clone(),
            key_id: principal.key_id.clone(),
            remaining,
            kept: false,
        })),
        None => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            ErrorCode::InsufficientBalance,
            "Insufficient balance",
            "This key has no credits left; top it up with `modelgate keys topup`.",
        )),
    }
}

impl Charge {
    /// The prediction was answered: the credit stays spent.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let (state, key_id) = (self.state.clone(), std::mem::take(&mut self.key_id));
        // Off the request path: the client already has its error answer.
        tokio::spawn(async move {
            if let Err(err) = state.store.add_credits(&key_id, 1).await {
                tracing::warn!(%key_id, error = %err, "credit not given back after a failed prediction");
            }
        });
    }
}
