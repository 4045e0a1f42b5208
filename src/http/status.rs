//! `GET /status`, a page for people, and `GET /status/stats`, the last minute's numbers.
//!
//! The page is one self-contained file (`status.html`): it fetches `/health` and
//! `/status/stats` itself and its Content-Security-Policy forbids every other host, so it
//! works on a closed network and leaks nothing to third parties.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{self, HeaderName};
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use axum::Json;

use super::stats::Snapshot;
use super::AppState;
use crate::config::StatusConfig;

const TEMPLATE: &str = include_str!("status.html");
/// Replaced by the refresh period, in milliseconds, when the page is rendered.
const REFRESH_PLACEHOLDER: &str = "__REFRESH_MS__";

/// Only this server may be fetched from, and nothing may frame the page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /status`, the page rendered once: the configuration does not change while serving.
pub fn page(config: &StatusConfig) -> MethodRouter<AppState> {
    let page =
        Bytes::from(TEMPLATE.replace(REFRESH_PLACEHOLDER, &config.refresh.as_millis().to_string()));
    get(move || serve_page(page.clone()))
}

async fn serve_page(page: Bytes) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page,
    )
}

pub async fn stats(
    State(state): State<AppState>,
) -> ([(HeaderName, &'static str); 1], Json<Snapshot>) {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(state.stats.snapshot()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_has_the_refresh_placeholder_once() {
        assert_eq!(TEMPLATE.matches(REFRESH_PLACEHOLDER).count(), 1);
    }

    #[test]
    fn page_references_no_other_host() {
        // The CSP would block them anyway; this keeps the page honest about it.
        for needle in ["http://", "https://", "//cdn", "@import", "url("] {
            assert!(!TEMPLATE.contains(needle), "status.html contains {needle}");
        }
    }
}
