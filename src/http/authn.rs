//! Authentication and authorization middleware.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

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
    let key = extract::api_key(
        request.headers(),
        request.uri().query(),
        state.config.auth.allow_query_key,
    )?;
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let principal = state.auth.authenticate(&key, client_ip).await?;
    tracing::Span::current().record("key_id", principal.key_id.as_str());
    request.extensions_mut().insert(Arc::clone(&principal));
    let mut response = next.run(request).await;
    // For the access log, which sees only the response.
    response.extensions_mut().insert(principal);
    Ok(response)
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
