//! Rate-limit admission on the prediction route, and on its every answer (admitted or not)
//! the rate-limit fields of draft-ietf-httpapi-ratelimit-headers: the `RateLimit-*` trio of
//! draft-06 that clients use today, and the `RateLimit` and `RateLimit-Policy` structured
//! fields of the current draft (-11).

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
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A key has one quota; the current draft names it in both structured fields.
const POLICY_NAME: &str = "default";

/// Runs after authentication and the scope check, so that only a key allowed to predict
/// spends its allowance.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let principal = request.extensions().get::<Arc<Principal>>().cloned();
    let decision = match principal {
        Some(principal) => decide(&state, &principal).await,
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

/// Whether the key may make one more prediction now; `None` for a key without a limit. The
/// decision every front end (REST, gRPC) takes.
pub async fn decide(state: &AppState, principal: &Principal) -> Option<Decision> {
    state
        .ratelimit
        .check(&principal.key_id, principal.rate_limit)
        .await
}

/// The quota the decision was made under (the local share while Redis is unavailable), what
/// is left of it, and when it is whole again.
fn describe(decision: &Decision, headers: &mut HeaderMap) {
    let quota = decision.quota;
    headers.insert(LIMIT, HeaderValue::from(quota.limit()));
    headers.insert(REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RESET, HeaderValue::from(seconds_rounded_up(decision.reset)));
    let window = quota.period().as_secs();
    // draft-06's policy (`LIMIT;w=SECONDS`) stays the first line for the clients built on it;
    // the current draft's item follows as a second line of the same list (RFC 9651 §3.1 lets
    // a list span lines), so a parser of either draft finds its own.
    let draft_06 = format!("{};w={window}", quota.limit());
    let current = format!("\"{POLICY_NAME}\";q={};w={window}", quota.limit());
    // `t`, the draft's effective window: how long `r` is all there is. On a 429 it equals
    // `Retry-After` (the draft wants Retry-After never to end before the window does).
    let remaining = decision.remaining;
    let limit = match decision.until_next_request() {
        Some(wait) => format!(
            "\"{POLICY_NAME}\";r={remaining};t={}",
            seconds_rounded_up(wait)
        ),
        None => format!("\"{POLICY_NAME}\";r={remaining}"),
    };
    headers.remove(POLICY);
    for value in [draft_06, current] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(POLICY, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&limit) {
        headers.insert(RATELIMIT, value);
    }
}
