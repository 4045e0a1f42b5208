//! `GET /status`, a page for people, and `GET /status/stats`, the last minute's numbers.
//!
//! The page is one self-contained file (`status.html`): it fetches `/health` and
//! `/status/stats` itself and its Content-Security-Policy forbids every other host, so it
//! works on a closed network and leaks nothing to third parties.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName};
use axum::middleware::{from_fn, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::stats::Snapshot;
use super::{authn, AppState};
use crate::auth::Scope;
use crate::config::StatusConfig;

/// The status routes; public unless `status.require_admin` (see [`is_public`]).
const PATHS: &[&str] = &["/status", "/status/stats"];

const TEMPLATE: &str = include_str!("status.html");
/// Replaced by the refresh period, in milliseconds, when the page is rendered.
const REFRESH_PLACEHOLDER: &str = "__REFRESH_MS__";

/// Only this server may be fetched from, and nothing may frame the page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is a status route served without a key. A disabled page is public too,
/// so that it answers 404 to everyone rather than asking for a key to a page that is not there.
pub fn is_public(path: &str, config: &StatusConfig) -> bool {
    PATHS.contains(&path) && !(config.enabled && config.require_admin)
}

/// Both routes, or none when disabled (the fallback then answers 404).
pub fn routes(config: &StatusConfig) -> Router<AppState> {
    if !config.enabled {
        return Router::new();
    }
    // The configuration does not change while serving: render the page once.
    let page =
        Bytes::from(TEMPLATE.replace(REFRESH_PLACEHOLDER, &config.refresh.as_millis().to_string()));
    let routes = Router::new()
        .route("/status", get(move || serve_page(page.clone())))
        .route("/status/stats", get(stats));
    if config.require_admin {
        routes.route_layer(from_fn(|request: Request, next: Next| {
            authn::require_scope(Scope::Admin, request, next)
        }))
    } else {
        routes
    }
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

async fn stats(State(state): State<AppState>) -> ([(HeaderName, &'static str); 1], Json<Snapshot>) {
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

    #[test]
    fn public_unless_admin_is_required_of_an_enabled_page() {
        let mut config = StatusConfig::default();
        assert!(is_public("/status", &config));
        assert!(is_public("/status/stats", &config));
        assert!(!is_public("/status/", &config), "exact matches only");
        config.require_admin = true;
        assert!(!is_public("/status", &config));
        config.enabled = false;
        assert!(is_public("/status", &config));
    }
}
