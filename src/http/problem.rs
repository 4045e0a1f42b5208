//! RFC 9457 problem+json errors with a stable `code`.
//!
//! Handlers return [`ApiError`]; it travels as a response extension and the request-id
//! middleware renders the body, so every problem carries the request's id.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use super::error_code::ErrorCode;
use crate::auth::AuthError;
use crate::models::{FieldError, PredictError};

/// Seconds a client should wait before retrying when a dependency cannot answer.
const RETRY_AFTER_SECS: &str = "5";

/// Most characters of one piece of client input a problem repeats (an id, a field's name, a
/// parser's message quoting the body): enough to recognise it, never the whole of a 1 MB body.
const ECHO_CHARS: usize = 200;

/// Most characters of a `detail`, whatever it quotes: a net under [`ECHO_CHARS`] for text that
/// embeds input without going through [`clip`] (a validation detail names a field and its
/// message; our own sentences are far shorter).
const DETAIL_CHARS: usize = 500;

/// `text` cut to `limit` characters, `…` marking the cut.
fn clip_to(text: String, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Client input as a problem may repeat it: at most [`ECHO_CHARS`] characters.
pub fn clip(text: impl Into<String>) -> String {
    clip_to(text.into(), ECHO_CHARS)
}

/// Client input quoted (`"id"`, escaped as in Rust's `{:?}`) and clipped, for details such as
/// "There is no model "…"".
pub fn quoted(text: &str) -> String {
    format!("{:?}", clip(text))
}

/// Whole seconds, rounded up: for headers that tell a client how long to wait.
pub fn seconds_rounded_up(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The problem+json body (RFC 9457), in the order docs/api.md shows it.
#[derive(Debug, Serialize)]
pub struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: ErrorCode,
    request_id: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

/// The Open Inference Protocol's error body, with the same stable `code`.
#[derive(Debug, Serialize)]
pub struct V2ErrorBody {
    pub error: String,
    pub code: ErrorCode,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: ErrorCode,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            title,
            detail: clip_to(detail.into(), DETAIL_CHARS),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 422 listing each wrong field. Names and messages may quote the body (an unknown field,
    /// a value that does not parse), so each is clipped.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let errors: Vec<FieldError> = errors
            .into_iter()
            .map(|e| FieldError {
                field: clip(e.field),
                message: clip(e.message),
            })
            .collect();
        let detail = match errors.as_slice() {
            [one] => format!("{} {}.", one.field, one.message),
            many => format!("{} fields are invalid; see errors.", many.len()),
        };
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            "Request validation failed",
            detail,
        );
        error.errors = errors;
        error
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "Not found",
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "Internal error",
            detail,
        )
    }

    /// The dependency needed to answer is down; the client should retry later.
    pub fn unavailable(code: ErrorCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, title, detail).with_header(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        )
    }

    /// 429: this key made too many requests; `Retry-After` says when to try again (whole
    /// seconds rounded up, at least one, so that a client honouring it is not refused again).
    pub fn rate_limited(retry_after: Duration) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "Rate limited",
            "Too many requests for this key; retry after the given delay.",
        )
        .with_header(
            header::RETRY_AFTER,
            HeaderValue::from(seconds_rounded_up(retry_after).max(1)),
        )
    }

    /// 429: this client address failed authentication too often; `Retry-After` says when the
    /// next attempt will be looked at.
    pub fn too_many_failed_auth(retry_after: Duration) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyFailedAuth,
            "Too many failed authentications",
            "Too many requests from this address carried an invalid API key; retry after the given delay.",
        )
        .with_header(
            header::RETRY_AFTER,
            HeaderValue::from(seconds_rounded_up(retry_after).max(1)),
        )
    }

    /// 400 `invalid_tensor`: what is wrong with a `/v2` request's tensors.
    pub fn invalid_tensor(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidTensor,
            "Invalid tensor",
            detail,
        )
    }

    /// The status under the Open Inference Protocol, which answers every bad request 400
    /// (where `/api/v1` tells a body that is not JSON or not valid by 422).
    pub fn v2_status(&self) -> StatusCode {
        match self.status {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        }
    }

    /// The Open Inference Protocol's body, whose `error` is one string: the detail, or each
    /// field error when there are several.
    pub fn v2_body(&self) -> V2ErrorBody {
        let error = match self.errors.as_slice() {
            [] | [_] => self.detail.clone(),
            many => {
                let each: Vec<String> = many
                    .iter()
                    .map(|e| format!("{} {}", e.field, e.message))
                    .collect();
                clip_to(each.join("; "), DETAIL_CHARS)
            }
        };
        V2ErrorBody {
            error,
            code: self.code,
        }
    }

    /// How long the client should wait before retrying, when the answer says (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .iter()
            .find(|(name, _)| name == header::RETRY_AFTER)
            .and_then(|(_, value)| value.to_str().ok()?.parse().ok())
            .map(Duration::from_secs)
    }

    /// The body, completed with the request's id.
    pub fn body<'a>(&'a self, request_id: &'a str) -> ProblemBody<'a> {
        ProblemBody {
            kind: format!("urn:modelgate:problem:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            request_id,
            errors: &self.errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let detail = err.to_string();
        match err {
            AuthError::Missing => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::ApiKeyRequired,
                "API key required",
                "Send the key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            )
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            AuthError::Invalid => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidApiKey,
                "Invalid API key",
                "The API key is unknown, revoked or expired.",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            ),
            AuthError::QueryKeyRefused => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ApiKeyInQuery,
                "API key in URL refused",
                "Keys in URLs leak into logs; send it in the Authorization or X-API-Key header.",
            ),
            AuthError::InsufficientScope { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::InsufficientScope,
                "Insufficient scope",
                format!("{detail}."),
            ),
            // The same answer whether or not the model exists, so a limited key cannot probe
            // which models there are.
            AuthError::ModelNotAllowed { model_id } => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ModelNotAllowed,
                "Model not allowed",
                format!(
                    "This API key may not use model {}; GET /api/v1/models lists the models it may use.",
                    quoted(&model_id)
                ),
            ),
            AuthError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
            AuthError::InsufficientBalance => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                ErrorCode::InsufficientBalance,
                "Insufficient balance",
                "The account behind this API key has insufficient balance.",
            ),
            AuthError::Unavailable => ApiError::unavailable(
                ErrorCode::AuthUnavailable,
                "Authentication unavailable",
                "The API key cannot be checked right now; retry shortly.",
            ),
        }
    }
}

impl From<PredictError> for ApiError {
    fn from(err: PredictError) -> Self {
        match err {
            PredictError::Invalid(errors) => ApiError::validation(errors),
            PredictError::Inference(e) => {
                tracing::error!(error = %e, "inference failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::InferenceFailed,
                    "Inference failed",
                    "The model could not score this request.",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_documented_fields_in_order() {
        let error = ApiError::validation(vec![FieldError {
            field: "inputs.title".into(),
            message: "expected a string".into(),
        }]);
        let text = serde_json::to_string(&error.body("req-1")).expect("serializes");
        assert_eq!(
            text,
            r#"{"type":"urn:modelgate:problem:validation_failed","title":"Request validation failed","status":422,"detail":"inputs.title expected a string.","code":"validation_failed","request_id":"req-1","errors":[{"field":"inputs.title","message":"expected a string"}]}"#
        );
    }

    #[test]
    fn echoed_input_is_clipped_at_a_character_boundary() {
        let long = "é".repeat(ECHO_CHARS + 50);
        let clipped = clip(long.as_str());
        assert_eq!(clipped.chars().count(), ECHO_CHARS + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let quoted_long = quoted(&"x".repeat(10_000));
        assert!(quoted_long.len() < ECHO_CHARS + 10, "{quoted_long}");
    }

    #[test]
    fn details_and_field_errors_never_repeat_a_whole_body() {
        let body = "x".repeat(1 << 20);
        let error = ApiError::not_found(format!("There is no {body}."));
        assert!(error.detail.chars().count() <= DETAIL_CHARS + 1);
        let error = ApiError::validation(vec![FieldError {
            field: body.clone(),
            message: body.clone(),
        }]);
        let text = serde_json::to_string(&error.body("r")).expect("serializes");
        assert!(text.len() < 2_000, "{} bytes", text.len());
    }

    #[test]
    fn body_without_field_errors_has_no_errors_member() {
        let body = serde_json::to_value(ApiError::not_found("No such endpoint.").body("r"))
            .expect("serializes");
        assert_eq!(body["code"], "not_found");
        assert_eq!(body["status"], 404);
        assert!(body.get("errors").is_none(), "{body}");
    }
}
