//! Rate-limit admission on the prediction route, and the `RateLimit-*` fields of
//! draft-ietf-httpapi-ratelimit-headers-06 on its every answer (admitted or not).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::{seconds_rounded_up, ApiError};
use super::AppState;
use crate::auth::Principal;
use crate::ratelimit::Decision;

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Runs after authentication and the scope check, so that only a key allowed to predict
/// spends its allowance.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let principal = request.extensions().get::<Arc<Principal>>().cloned();
    let decision = match principal {
        Some(principal) => {
            state
                .ratelimit
                .check(&principal.key_id, principal.rate_limit)
                .await
        }
        None => None,
    };
    let Some(decision) = decision else {
        return next.run(request).await;
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        ApiError::rate_limited(decision.retry_after).into_response()
    };
    describe(&decision, response.headers_mut());
    response
}

/// The quota the decision was made under (the local share while Redis is unavailable), what
/// is left of it, and when it is whole again.
fn describe(decision: &Decision, headers: &mut HeaderMap) {
    let quota = decision.quota;
    headers.insert(LIMIT, HeaderValue::from(quota.limit()));
    headers.insert(REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RESET, HeaderValue::from(seconds_rounded_up(decision.reset)));
    let policy = format!("{};w={}", quota.limit(), quota.period().as_secs());
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(POLICY, value);
    }
}
