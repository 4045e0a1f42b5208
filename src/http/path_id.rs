//! The `{id}` segment of a route (or its segments, as a tuple, e.g. `{id}` and `{version}`). Axum's own rejection (a percent-encoded id that is not
//! UTF-8) is a plain-text 400; this one is problem+json with a code, like every other error.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, ErrorCode};

pub struct PathId<T = String>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(PathId(id)),
            Err(err) if err.status().is_client_error() => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidPath,
                "Invalid path",
                "The id in the path is not valid percent-encoded UTF-8.",
            )),
            // Only a route declared without `{id}` gets here: a bug, not bad input.
            Err(err) => {
                tracing::error!(error = %err.body_text(), "path id not extracted");
                Err(ApiError::internal("The request could not be routed."))
            }
        }
    }
}
