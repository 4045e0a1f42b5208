//! Cache validators and directives, by route.
//!
//! Model descriptions change only when the set of models does, so they carry a strong
//! `ETag` (a hash of the body as sent) and `Cache-Control: private, no-cache`: a client keeps
//! its copy and revalidates it each time with `If-None-Match`, getting an empty 304 while the
//! models are unchanged. "private": the answer needs a key, so shared caches must not keep
//! it. "no-cache" rather than a max-age: a new model version is visible at once, and each
//! revalidation still checks the key. Health answers must never come from a cache:
//! `no-store`.
//!
//! This layer sits outside response compression, so the hash is of the bytes on the wire:
//! the gzip and the identity representation get different tags, as strong validators must
//! (RFC 9110 §8.8.1).

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use super::routes::{self, Caching};

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const REVALIDATE: HeaderValue = HeaderValue::from_static("private, no-cache");

/// Largest body this layer hashes; model descriptions are a few kilobytes.
const MAX_HASHED_BYTES: usize = 1024 * 1024;

/// Headers a 304 repeats from the 200 it stands for (RFC 9110 §15.4.5); the request id and
/// CORS headers are added by outer layers.
const KEPT_ON_304: [header::HeaderName; 3] = [header::ETAG, header::CACHE_CONTROL, header::VARY];

pub async fn middleware(request: Request, next: Next) -> Response {
    // A clone of the template's `Arc`, not of the text: this runs on every request.
    let Some(route) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    let revalidated = match routes::caching(route.as_str()) {
        Caching::Unspecified => return next.run(request).await,
        Caching::NoStore => {
            let mut response = next.run(request).await;
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, NO_STORE);
            return response;
        }
        Caching::Revalidate => matches!(*request.method(), Method::GET | Method::HEAD),
    };
    if !revalidated {
        return next.run(request).await;
    }
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    with_etag(response, if_none_match.as_ref()).await
}

/// Tags a 200 with the hash of its body, or answers 304 when the client's copy has that tag.
async fn with_etag(response: Response, if_none_match: Option<&HeaderValue>) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_HASHED_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::error!(error = %err, "response body could not be tagged");
            return ApiError::internal("The response could not be completed; retry.")
                .into_response();
        }
    };
    let etag = etag(&bytes);
    parts.headers.insert(header::ETAG, etag.clone());
    parts.headers.insert(header::CACHE_CONTROL, REVALIDATE);
    if if_none_match.is_some_and(|tags| matches(tags, &etag)) {
        return not_modified(&parts.headers);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A strong tag: 128 bits of SHA-256 (stable across instances and restarts, unlike a
/// randomly keyed hasher), quoted.
fn etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    // Hex in quotes is always a valid header value.
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""))
}

/// `If-None-Match`: `*`, or a list of tags compared weakly (RFC 9110 §13.1.2).
fn matches(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(tags) = if_none_match.to_str() else {
        return false;
    };
    let ours = etag.as_bytes();
    tags.trim() == "*"
        || tags
            .split(',')
            .map(|tag| tag.trim())
            .map(|tag| tag.strip_prefix("W/").unwrap_or(tag))
            .any(|tag| tag.as_bytes() == ours)
}

fn not_modified(headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    for name in KEPT_ON_304 {
        for value in headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_strong_quoted_and_follow_the_bytes() {
        let a = etag(b"{\"models\":[]}");
        assert_eq!(a, etag(b"{\"models\":[]}"));
        assert_ne!(a, etag(b"{\"models\":[1]}"));
        let text = a.to_str().expect("ascii");
        assert!(text.starts_with('"') && text.ends_with('"') && text.len() == 34);
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let ours = etag(b"body");
        let quoted = ours.to_str().expect("ascii").to_string();
        let header = |s: &str| HeaderValue::from_str(s).expect("header");
        assert!(matches(&header(&quoted), &ours));
        assert!(matches(&header(&format!("W/{quoted}")), &ours));
        assert!(matches(&header(&format!("\"other\", {quoted}")), &ours));
        assert!(matches(&header("*"), &ours));
        assert!(!matches(&header("\"other\""), &ours));
        assert!(!matches(&header(quoted.trim_matches('"')), &ours));
    }
}
