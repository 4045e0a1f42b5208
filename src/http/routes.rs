//! The one route table: every path, who may call it, and whether it counts in `/status/stats`.
//!
//! The router, the paths served without a key and the routes left out of the request
//! statistics are all derived from [`ROUTES`], so that they cannot disagree.

use axum::extract::Request;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

use super::{
    authn, health, keys, models, outcomes, predict, ratelimit, reload, status, v2, AppState,
};
use crate::auth::Scope;
use crate::config::StatusConfig;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key.
    Public,
    /// A key granting this scope.
    Scope(Scope),
    /// The status page: public, or scope `admin` with `status.require_admin`; not served at
    /// all with `status.enabled` off.
    Status,
}

/// What caches may do with a route's answers (`caching.rs` applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// No directive of ours.
    Unspecified,
    /// `Cache-Control: no-store`: monitors must see the present.
    NoStore,
    /// A strong `ETag` on `200`s, revalidated with `If-None-Match`.
    Revalidate,
}

pub struct Route {
    /// The template axum matches (exact, or with `{id}` segments).
    pub path: &'static str,
    pub access: Access,
    /// Whether the route's requests count in `/status/stats`.
    pub counted: bool,
    pub caching: Caching,
    /// Also served on `server.admin_listen` (probes, Prometheus), outside the public cap.
    pub admin: bool,
    /// The path's `{id}` is a model the key must be allowed to use (`authn::require_model`).
    pub per_model: bool,
    /// The route's handlers by method, with any layer of the route's own.
    methods: fn(&AppState) -> MethodRouter<AppState>,
}

impl Route {
    const fn new(
        path: &'static str,
        access: Access,
        methods: fn(&AppState) -> MethodRouter<AppState>,
    ) -> Route {
        Route {
            path,
            access,
            counted: true,
            caching: Caching::Unspecified,
            admin: false,
            per_model: false,
            methods,
        }
    }

    const fn on_admin(self) -> Route {
        Route {
            admin: true,
            ..self
        }
    }

    /// For a key limited to some models, answered 403 `model_not_allowed` unless `{id}` is one.
    const fn per_model(self) -> Route {
        Route {
            per_model: true,
            ..self
        }
    }

    const fn cached(self, caching: Caching) -> Route {
        Route { caching, ..self }
    }

    /// Left out of `/status/stats`: monitors polling every few seconds would otherwise
    /// dominate a quiet instance's numbers and flatter its p99.
    const fn uncounted(self) -> Route {
        Route {
            counted: false,
            ..self
        }
    }

    /// The scope a key needs here under `status`; `None` when no key is needed.
    fn scope_needed(&self, status: &StatusConfig) -> Option<Scope> {
        match self.access {
            Access::Public => None,
            Access::Scope(scope) => Some(scope),
            // A disabled page is public too, so that it answers 404 to everyone rather than
            // asking for a key to a page that is not there.
            Access::Status => (status.enabled && status.require_admin).then_some(Scope::Admin),
        }
    }

    fn is_served(&self, status: &StatusConfig) -> bool {
        self.access != Access::Status || status.enabled
    }
}

const PREDICT: Access = Access::Scope(Scope::Predict);
const ADMIN: Access = Access::Scope(Scope::Admin);

/// Every route the server has; any other path answers 404 (after authentication).
pub const ROUTES: &[Route] = &[
    Route::new("/api/v1/models", PREDICT, |_| get(models::list)).cached(Caching::Revalidate),
    Route::new("/api/v1/models/{id}", PREDICT, |_| get(models::detail))
        .cached(Caching::Revalidate)
        .per_model(),
    Route::new("/api/v1/models/{id}/info", PREDICT, |_| get(models::detail))
        .cached(Caching::Revalidate)
        .per_model(),
    Route::new("/api/v1/models/{id}/ready", PREDICT, |_| get(models::ready))
        .cached(Caching::NoStore)
        .per_model(),
    // Only predictions count against a key's rate limit (a batch of rows is one request);
    // listing and describing models are cheap reads a client should not have to budget.
    Route::new("/api/v1/models/{id}/predict", PREDICT, |state| {
        post(predict::predict).route_layer(from_fn_with_state(state.clone(), ratelimit::enforce))
    })
    .per_model(),
    Route::new(
        "/api/v1/models/{id}/versions/{version}/predict",
        PREDICT,
        |state| {
            post(predict::predict_version)
                .route_layer(from_fn_with_state(state.clone(), ratelimit::enforce))
        },
    )
    .per_model(),
    Route::new("/api/v1/admin/models/reload", ADMIN, |_| {
        post(reload::reload)
    }),
    Route::new("/api/v1/outcomes", PREDICT, |_| post(outcomes::record)),
    Route::new("/api/v1/keys", ADMIN, |_| {
        post(keys::create).get(keys::list)
    }),
    Route::new("/api/v1/keys/{id}", ADMIN, |_| delete(keys::revoke)),
    Route::new("/api/v1/keys/{id}/topup", ADMIN, |_| post(keys::topup)),
    // The Open Inference Protocol (V2): the same layers as /api/v1, errors in its own shape.
    Route::new("/v2", PREDICT, |_| get(v2::server)),
    Route::new("/v2/health/live", Access::Public, |_| get(health::live))
        .uncounted()
        .cached(Caching::NoStore)
        .on_admin(),
    Route::new("/v2/health/ready", Access::Public, |_| get(health::ready))
        .uncounted()
        .cached(Caching::NoStore)
        .on_admin(),
    Route::new("/v2/models/{id}", PREDICT, |_| get(v2::model))
        .cached(Caching::Revalidate)
        .per_model(),
    Route::new("/v2/models/{id}/versions/{version}", PREDICT, |_| {
        get(v2::model_version)
    })
    .cached(Caching::Revalidate)
    .per_model(),
    Route::new("/v2/models/{id}/ready", PREDICT, |_| get(models::ready))
        .cached(Caching::NoStore)
        .per_model(),
    Route::new("/v2/models/{id}/versions/{version}/ready", PREDICT, |_| {
        get(models::ready_version)
    })
    .cached(Caching::NoStore)
    .per_model(),
    Route::new("/v2/models/{id}/infer", PREDICT, |state| {
        post(v2::infer).route_layer(from_fn_with_state(state.clone(), ratelimit::enforce))
    })
    .per_model(),
    Route::new(
        "/v2/models/{id}/versions/{version}/infer",
        PREDICT,
        |state| {
            post(v2::infer_version)
                .route_layer(from_fn_with_state(state.clone(), ratelimit::enforce))
        },
    )
    .per_model(),
    Route::new("/health", Access::Public, |_| get(health::health))
        .uncounted()
        .cached(Caching::NoStore)
        .on_admin(),
    Route::new("/health/live", Access::Public, |_| get(health::live))
        .uncounted()
        .cached(Caching::NoStore)
        .on_admin(),
    Route::new("/live", Access::Public, |_| get(health::live))
        .uncounted()
        .cached(Caching::NoStore)
        .on_admin(),
    Route::new("/health/ready", Access::Public, |_| get(health::ready))
        .uncounted()
        .cached(Caching::NoStore)
        .on_admin(),
    Route::new("/ready", Access::Public, |_| get(health::ready))
        .uncounted()
        .cached(Caching::NoStore)
        .on_admin(),
    Route::new("/version", Access::Public, |_| get(health::version)).on_admin(),
    Route::new("/openapi.json", Access::Public, |_| get(super::openapi)),
    Route::new("/metrics", Access::Public, |_| get(super::prometheus))
        .uncounted()
        .on_admin(),
    Route::new("/status", Access::Status, |state| {
        status::page(&state.config.status)
    })
    .uncounted(),
    Route::new("/status/stats", Access::Status, |_| get(status::stats)).uncounted(),
];

/// Whether `path` is served without a key: exact matches only, never prefixes.
pub fn is_public(path: &str, status: &StatusConfig) -> bool {
    ROUTES
        .iter()
        .any(|route| route.path == path && route.scope_needed(status).is_none())
}

/// Whether requests to the route `template` count in `/status/stats` (unmatched ones do).
pub fn is_counted(template: &str) -> bool {
    ROUTES
        .iter()
        .find(|route| route.path == template)
        .is_none_or(|route| route.counted)
}

/// What caches may do with answers from the route `template`.
pub fn caching(template: &str) -> Caching {
    ROUTES
        .iter()
        .find(|route| route.path == template)
        .map_or(Caching::Unspecified, |route| route.caching)
}

/// Every served route behind its scope check.
pub fn router(state: &AppState) -> Router<AppState> {
    router_of(state, |_| true)
}

/// The routes of the admin listener.
pub fn admin_router(state: &AppState) -> Router<AppState> {
    router_of(state, |route| route.admin)
}

fn router_of(state: &AppState, include: fn(&Route) -> bool) -> Router<AppState> {
    let status = &state.config.status;
    ROUTES
        .iter()
        .filter(|route| include(route) && route.is_served(status))
        .fold(Router::new(), |router, route| {
            let one = Router::new().route(route.path, (route.methods)(state));
            // Layers run outside in: the scope, then the model, then the route's own (rate
            // limit), so a refused model costs the key none of its quota.
            let one = if route.per_model {
                one.route_layer(from_fn(authn::require_model))
            } else {
                one
            };
            let one = match route.scope_needed(status) {
                None => one,
                Some(needed) => one.route_layer(from_fn(move |request: Request, next: Next| {
                    authn::require_scope(needed, request, next)
                })),
            };
            router.merge(one)
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn paths_are_listed_once() {
        let mut seen = HashSet::new();
        for route in ROUTES {
            assert!(seen.insert(route.path), "{} listed twice", route.path);
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

    #[test]
    fn the_admin_listener_serves_only_public_monitoring_routes() {
        let admin: Vec<&str> = ROUTES.iter().filter(|r| r.admin).map(|r| r.path).collect();
        assert!(admin.contains(&"/health/ready") && admin.contains(&"/metrics"));
        for route in ROUTES.iter().filter(|r| r.admin) {
            assert_eq!(route.access, Access::Public, "{} needs a key", route.path);
        }
    }

    #[test]
    fn every_model_route_checks_the_key_s_models() {
        for route in ROUTES {
            let names_a_model = route.path.starts_with("/api/v1/models/{id}")
                || route.path.starts_with("/v2/models/{id}");
            assert_eq!(route.per_model, names_a_model, "{}", route.path);
        }
    }

    #[test]
    fn monitoring_polls_are_not_counted_but_unknown_paths_are() {
        assert!(!is_counted("/health"));
        assert!(!is_counted("/status/stats"));
        assert!(is_counted("/api/v1/models/{id}/predict"));
        assert!(is_counted("unmatched"));
    }
}
