//! JSON request bodies with problem+json rejections (413, 415, 422 naming the field).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::problem::{ApiError, ErrorCode};
use super::serde_words::plain;
use crate::models::FieldError;

/// A body that is a JSON object, deserialized into `T`.
pub struct JsonBody<T>(pub T);

fn rejection(err: JsonRejection) -> ApiError {
    if super::server::body::is_timeout(&err) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BodyTimeout,
            "Request body timeout",
            "The request body did not arrive within the request deadline.",
        );
    }
    match err.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "Payload too large",
            "The request body is larger than this server accepts.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Unsupported media type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        // The body could not be read to the end: not valid data for its Content-Encoding
        // (a well-formed JSON body that merely has the wrong shape is a 422 below).
        _ if matches!(err, JsonRejection::BytesRejection(_)) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnreadableBody,
            "Unreadable body",
            "The request body could not be read; if it is compressed, it is not valid data \
             for its Content-Encoding.",
        ),
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidJson,
            "Malformed JSON",
            format!("The body is not valid JSON: {}", err.body_text()),
        ),
    }
}

/// Maps a deserialization error to the field it concerns.
fn field_error(err: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = err.path().to_string();
    let message = err.inner().to_string();
    // serde reports a missing field at its parent; name the field itself.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        return FieldError {
            field,
            message: "is required".into(),
        };
    }
    let message = plain(message.split(" at line ").next().unwrap_or_default());
    FieldError {
        field: if path == "." { "body".into() } else { path },
        message,
    }
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(request, state)
            .await
            .map_err(rejection)?;
        if !value.is_object() {
            return Err(ApiError::validation(vec![FieldError {
                field: "body".into(),
                message: "expected a JSON object".into(),
            }]));
        }
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| ApiError::validation(vec![field_error(e)]))
    }
}
