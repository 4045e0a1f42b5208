//! `X-Request-Id` on every response, the `request` span of its log lines, and the rendering of
//! problem bodies that carry it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::problem::ApiError;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

/// The id of the request being served, for handlers and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client's id is kept when it is a sane token; anything else could forge log lines.
fn sane(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let v2 = crate::http::v2::is_v2_path(request.uri().path());
    request.extensions_mut().insert(RequestId(id.clone()));
    // Every line logged while serving the request names it, and its key once authenticated
    // (`authn` records `key_id`). Two fields only: a span is formatted on every request.
    let span = tracing::info_span!("request", request_id = %id, key_id = tracing::field::Empty);
    let mut response = next.run(request).instrument(span).await;
    if let Some(problem) = response.extensions_mut().remove::<ApiError>() {
        // A struct of strings and numbers always serializes.
        let (body, media_type) = if v2 {
            *response.status_mut() = problem.v2_status();
            let body = serde_json::to_vec(&problem.v2_body());
            (body, "application/json")
        } else {
            let body = serde_json::to_vec(&problem.body(&id));
            (body, "application/problem+json")
        };
        *response.body_mut() = Body::from(body.unwrap_or_default());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::sane;

    #[test]
    fn sane_ids_are_short_tokens() {
        assert!(sane("abc-123_X.y:z"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane("line\nbreak"));
        assert!(!sane(&"a".repeat(129)));
    }
}
