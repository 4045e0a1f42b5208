//! JSON request bodies with problem+json rejections (413, 415, 422 naming the field).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
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
    match err {
        JsonRejection::BytesRejection(err) => unread(err),
        err if err.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Unsupported media type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        err => not_json(err.body_text()),
    }
}

fn not_json(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidJson,
        "Malformed JSON",
        format!("The body is not valid JSON: {reason}"),
    )
}

/// Why a body could not be read at all: too slow, too large, or not decodable.
fn unread(err: BytesRejection) -> ApiError {
    if super::server::body::is_timeout(&err) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BodyTimeout,
            "Request body timeout",
            "The request body did not arrive within the request deadline.",
        );
    }
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "Payload too large",
            "The request body is larger than this server accepts.",
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::UnreadableBody,
        "Unreadable body",
        "The request body could not be read; if it is compressed, it is not valid data \
         for its Content-Encoding.",
    )
}

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
        typed(value).map(JsonBody)
    }
}

/// A body that may carry more than JSON (the `/v2` binary tensor extension), read under the
/// same limits and answered the same way when it cannot be read.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(unread)
    }
}

/// `T` from JSON text, with the answers [`JsonBody`] gives.
pub fn parse<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    // A valid body, the common case, in one pass; only a bad one goes through a `Value`, to
    // name what is wrong. An object only: serde would also take a struct from an array.
    let object = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if let (true, Ok(parsed)) = (object, serde_json::from_slice(text)) {
        return Ok(parsed);
    }
    let value: Value = serde_json::from_slice(text).map_err(not_json)?;
    typed(value)
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    {
        if !value.is_object() {
            return Err(ApiError::validation(vec![FieldError {
                field: "body".into(),
                message: "expected a JSON object".into(),
            }]));
        }
        serde_path_to_error::deserialize(value)
            .map_err(|e| ApiError::validation(vec![field_error(e)]))
    }
}
