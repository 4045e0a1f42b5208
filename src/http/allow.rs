//! `Allow` only on a 405.
//!
//! axum adds `Allow` to whatever a path's method fallback answers, after every layer of the
//! router has run. Authentication is one of those layers, so a wrong-method request without
//! a valid key got its 401 *with* `Allow`, telling a stranger which methods a protected route
//! has. The header belongs on a 405 only, which a protected route gives to an authenticated
//! caller alone. Only a layer outside the router can take it off again.

use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use tower::util::MapResponseLayer;

/// `router`, with `Allow` removed from every answer but a 405.
pub fn only_on_405(router: Router) -> Router {
    Router::new()
        .fallback_service(router)
        .layer(MapResponseLayer::new(
            strip_unless_405 as fn(Response) -> Response,
        ))
}

fn strip_unless_405(mut response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().remove(header::ALLOW);
    }
    response
}
