//! Limits on a request's target and headers, checked by the app so that a request over them
//! gets a problem+json answer with a code.
//!
//! hyper enforces limits of its own while parsing HTTP/1.1 (a target of 64 KiB, about 400 KiB
//! of headers, 100 header fields) and answers those with an empty 414 or 431 written before the
//! app runs. Ours are lower, so hyper's empty answers remain only for requests far beyond
//! anything a client of this API sends.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::{ApiError, ErrorCode};

/// Longest request target (path and query) served: 8 KiB, the common proxy default.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header bytes served (each field's name and value plus `: ` and CRLF): 16 KiB, also
/// hyper's default for HTTP/2, should that protocol be served one day, so that both would
/// accept the same requests.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

fn target_len(uri: &Uri) -> usize {
    // An absolute-form target (`GET http://host/path`) also carries its scheme and authority.
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path_and_query = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    authority + path_and_query
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn check(request: &Request) -> Result<(), ApiError> {
    if target_len(request.uri()) > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            "URI too long",
            format!("The request target is longer than {MAX_URI_BYTES} bytes."),
        ));
    }
    if header_bytes(request.headers()) > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeadersTooLarge,
            "Request headers too large",
            format!("The request's headers add up to more than {MAX_HEADER_BYTES} bytes."),
        ));
    }
    Ok(())
}

/// Refuses a request over a limit before anything else (authentication included) reads it.
pub async fn middleware(request: Request, next: Next) -> Response {
    match check(&request) {
        Ok(()) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::HeaderValue;

    fn request(target: &str) -> Request {
        Request::builder()
            .uri(target)
            .body(Body::empty())
            .expect("valid request")
    }

    #[test]
    fn a_target_at_the_limit_passes_and_one_byte_more_is_414() {
        let path = |len: usize| format!("/{}", "a".repeat(len - 1));
        assert!(check(&request(&path(MAX_URI_BYTES))).is_ok());
        let refused = check(&request(&path(MAX_URI_BYTES + 1))).expect_err("too long");
        assert_eq!(refused.status, StatusCode::URI_TOO_LONG);
        assert_eq!(refused.code, ErrorCode::UriTooLong);
        let query = format!("/p?q={}", "a".repeat(MAX_URI_BYTES));
        assert!(check(&request(&query)).is_err(), "the query counts");
    }

    #[test]
    fn headers_over_the_limit_are_431_however_they_are_split() {
        let mut one_big = request("/");
        let value = HeaderValue::from_str(&"v".repeat(MAX_HEADER_BYTES)).expect("value");
        one_big.headers_mut().insert("x-big", value);
        let refused = check(&one_big).expect_err("too large");
        assert_eq!(refused.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(refused.code, ErrorCode::HeadersTooLarge);

        let mut many = request("/");
        for i in 0..40 {
            let value = HeaderValue::from_str(&"v".repeat(500)).expect("value");
            many.headers_mut().append(
                format!("x-h{i}")
                    .parse::<axum::http::HeaderName>()
                    .expect("name"),
                value,
            );
        }
        assert!(check(&many).is_err(), "40 × 500 bytes");

        let mut usual = request("/");
        usual.headers_mut().insert(
            "authorization",
            HeaderValue::from_static("Bearer mg_0123456789"),
        );
        assert!(check(&usual).is_ok());
    }
}
