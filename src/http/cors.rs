//! CORS for browser clients, off unless `http.cors_allowed_origins` names some.
//!
//! The layer sits outside authentication: a browser's preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) never carries the key, so it is answered here, 204
//! without one. The request that follows carries its key and is authenticated as usual; the
//! CORS headers only let the page read the answer, including a 401 or 429.

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use tower::layer::util::Stack;
use tower::util::MapResponseLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::request_id;
use crate::config::HttpConfig;

/// What a browser may send: the key headers, the body's type and coding, a request id.
const ALLOWED_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    HeaderName::from_static(request_id::HEADER),
];

/// What a page may read beyond the CORS-safelisted response headers.
const EXPOSED_HEADERS: [HeaderName; 11] = [
    HeaderName::from_static("ratelimit"),
    HeaderName::from_static("ratelimit-policy"),
    HeaderName::from_static("ratelimit-limit"),
    HeaderName::from_static("ratelimit-remaining"),
    HeaderName::from_static("ratelimit-reset"),
    header::RETRY_AFTER,
    HeaderName::from_static(request_id::HEADER),
    header::LOCATION,
    header::ETAG,
    header::WWW_AUTHENTICATE,
    header::CONTENT_ENCODING,
];

const METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::POST, Method::DELETE];

pub type Layer = Stack<CorsLayer, MapResponseLayer<fn(Response) -> Response>>;

/// The CORS layer, or `None` when no origin is allowed.
pub fn layer(config: &HttpConfig) -> Option<Layer> {
    let origins = &config.cors_allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Validated as origins by the configuration; one that is not a header value could
        // never match a browser's `Origin` anyway.
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(METHODS)
        .allow_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .max_age(config.cors_max_age);
    Some(Stack::new(
        cors,
        MapResponseLayer::new(no_content_for_preflight as fn(Response) -> Response),
    ))
}

/// tower-http answers a preflight 200 with an empty body; 204 says the same without
/// implying a body. Only a preflight answer carries `Access-Control-Allow-Methods`.
fn no_content_for_preflight(mut response: Response) -> Response {
    if response.status() == StatusCode::OK
        && response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_METHODS)
    {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}
