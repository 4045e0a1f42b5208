//! Compressed request bodies: `Content-Encoding: gzip`, `deflate` or `br` are decoded before
//! any extractor reads them; any other coding gets a 415 problem instead of a confusing 422.
//!
//! The body limit (`http.body_limit_bytes`) counts decoded bytes: extractors read the decoded
//! stream through the limit, so a few kilobytes that inflate to gigabytes (a zip bomb) are
//! cut off with 413 after at most the limit, never buffered whole.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::decompression::RequestDecompressionLayer;

use super::problem::{ApiError, ErrorCode};

/// The codings [`layer`] decodes, as `Accept-Encoding` advertises them on a 415.
const DECODED: &str = "gzip, deflate, br";

/// Decodes the request body; [`refuse_unsupported`] must run first (it names the codings
/// this layer understands in the exact spelling the layer matches).
pub fn layer() -> RequestDecompressionLayer {
    RequestDecompressionLayer::new()
}

/// A content coding's canonical name, when it is one we decode (names are case-insensitive,
/// RFC 9110 §8.4.1; `x-gzip` is gzip, §8.4.1.3).
fn canonical(coding: &str) -> Option<&'static str> {
    match coding.trim().to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => Some("gzip"),
        "deflate" => Some("deflate"),
        "br" => Some("br"),
        "identity" => Some("identity"),
        _ => None,
    }
}

/// 415 for a coding we cannot decode (including stacked codings such as `gzip, br`).
pub async fn refuse_unsupported(mut request: Request, next: Next) -> Response {
    let Some(sent) = request.headers().get(header::CONTENT_ENCODING) else {
        return next.run(request).await;
    };
    match sent.to_str().ok().and_then(canonical) {
        Some(coding) => {
            request
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
            next.run(request).await
        }
        None => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedContentEncoding,
            "Unsupported content encoding",
            "Send the body uncompressed, or with Content-Encoding gzip, deflate or br.",
        )
        // RFC 9110 §15.5.16: a 415 about a content coding says which ones are accepted.
        .with_header(header::ACCEPT_ENCODING, HeaderValue::from_static(DECODED))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn codings_are_matched_case_insensitively_and_stacks_are_refused() {
        assert_eq!(canonical("GZip"), Some("gzip"));
        assert_eq!(canonical(" x-gzip "), Some("gzip"));
        assert_eq!(canonical("br"), Some("br"));
        assert_eq!(canonical("Identity"), Some("identity"));
        assert_eq!(canonical("zstd"), None);
        assert_eq!(canonical("gzip, br"), None);
        assert_eq!(canonical(""), None);
    }
}
