//! Authentication and authorization middleware.
//!
//! Failed authentications are throttled per client address (`ratelimit::FailedAuthThrottle`):
//! a request from an address that has used up its failures is answered 429 before any cache,
//! Redis or store is asked, unless its key is one the in-process cache knows valid, so that a
//! guesser's flood never slows a real client sharing its address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::path_id::PathId;
use super::problem::ApiError;
use super::AppState;
use crate::auth::{allows, extract, AuthError, Principal, Scope};

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request.uri().path();
    if super::routes::is_public(path, &state.config.status) {
        return Ok(next.run(request).await);
    }
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| state.trusted_proxies.client(info.0.ip(), request.headers()));
    let key = extract::api_key(
        request.headers(),
        request.uri().query(),
        state.config.auth.allow_query_key,
    );
    let principal = principal(&state, key, client_ip).await?;
    tracing::Span::current().record("key_id", principal.key_id.as_str());
    request.extensions_mut().insert(Arc::clone(&principal));
    let mut response = next.run(request).await;
    // For the access log, which sees only the response.
    response.extensions_mut().insert(principal);
    Ok(response)
}

/// Whose `key` it is: the check every front end (REST, gRPC) makes, with the failed-auth
/// throttle of the client's address.
pub async fn principal(
    state: &AppState,
    key: Result<String, AuthError>,
    client_ip: Option<IpAddr>,
) -> Result<Arc<Principal>, ApiError> {
    match check_key(state, key, client_ip).await {
        Ok(principal) => Ok(principal),
        Err(Refusal::Throttled(retry_after)) => {
            metrics::counter!(crate::metrics::AUTH_FAILURES_THROTTLED).increment(1);
            Err(ApiError::too_many_failed_auth(retry_after))
        }
        Err(Refusal::Auth(err)) => {
            if let (AuthError::Invalid, Some(ip)) = (&err, client_ip) {
                state.failed_auth.failed(ip).await;
            }
            Err(err.into())
        }
    }
}

enum Refusal {
    /// The client address has no failed authentications left for this long.
    Throttled(std::time::Duration),
    Auth(AuthError),
}

impl From<AuthError> for Refusal {
    fn from(err: AuthError) -> Self {
        Refusal::Auth(err)
    }
}

async fn check_key(
    state: &AppState,
    key: Result<String, AuthError>,
    client_ip: Option<IpAddr>,
) -> Result<Arc<Principal>, Refusal> {
    let key = key?;
    if let Some(ip) = client_ip {
        if let Some(retry_after) = state.failed_auth.throttled(ip).await {
            if !state.auth.knows_valid(&key) {
                return Err(Refusal::Throttled(retry_after));
            }
        }
    }
    Ok(state.auth.authenticate(&key, client_ip).await?)
}

/// Lets the request through only when the caller's key grants `needed`.
pub async fn require_scope(
    needed: Scope,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let granted = request
        .extensions()
        .get::<Arc<Principal>>()
        .is_some_and(|p| allows(&p.scopes, needed));
    if granted {
        Ok(next.run(request).await)
    } else {
        Err(AuthError::InsufficientScope { needed }.into())
    }
}

/// The `{id}` of a model route; other segments (`{version}`) are not this check's business.
#[derive(serde::Deserialize)]
pub struct ModelPath {
    id: String,
}

/// Lets the request through only when the caller's key may use the model in the path: the one
/// place every model route is checked, after the scope and before rate limits, credits and any
/// look at the models, so the answer is the same 403 whether or not the model exists.
pub async fn require_model(
    PathId(ModelPath { id }): PathId<ModelPath>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let allowed = request
        .extensions()
        .get::<Arc<Principal>>()
        .is_some_and(|p| p.may_use(&id));
    if allowed {
        Ok(next.run(request).await)
    } else {
        Err(AuthError::ModelNotAllowed { model_id: id }.into())
    }
}
