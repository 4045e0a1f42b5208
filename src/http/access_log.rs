//! The access log: one line per request that `log.access` wants, under the `access` target.
//!
//! `errors` (the default) logs 4xx, 5xx and requests slower than `log.slow_request`; `all`
//! logs every request; `off` removes the layer. A line names the method, the route template
//! (never the raw path or query: a query may hold a key, and paths are unbounded), status,
//! latency, request id, key id (never the key) and the response body's size when known.
//!
//! It is the outermost layer, so its latency covers the whole stack and it sees the final
//! response: the request-id layer inside it has set `X-Request-Id` and rendered problem bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;

use super::request_id;
use crate::auth::Principal;
use crate::config::{AccessLog, LogConfig};
use crate::telemetry::ACCESS_TARGET;

/// Which requests get a line.
#[derive(Debug, Clone, Copy)]
pub struct AccessPolicy {
    mode: AccessLog,
    slow: Duration,
}

impl AccessPolicy {
    pub fn new(config: &LogConfig) -> AccessPolicy {
        AccessPolicy {
            mode: config.access,
            slow: config.slow_request,
        }
    }

    pub fn wants(self, status: StatusCode, latency: Duration) -> bool {
        match self.mode {
            AccessLog::All => true,
            AccessLog::Errors => {
                status.is_client_error() || status.is_server_error() || latency > self.slow
            }
            AccessLog::Off => false,
        }
    }
}

/// `router` with the access log around it; unchanged when `log.access` is off, so that off
/// costs nothing at all.
pub fn around<S>(router: Router<S>, config: &LogConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let policy = AccessPolicy::new(config);
    match policy.mode {
        AccessLog::Off => router,
        AccessLog::All | AccessLog::Errors => router.layer(from_fn_with_state(policy, middleware)),
    }
}

async fn middleware(State(policy): State<AccessPolicy>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // An `Arc<str>` inside: cloning it is a counter increment, not a copy of the path.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let latency = started.elapsed();
    if policy.wants(response.status(), latency) {
        write_line(&method, route.as_ref(), &response, latency);
    }
    response
}

fn write_line(
    method: &Method,
    route: Option<&MatchedPath>,
    response: &Response,
    latency: Duration,
) {
    let request_id = response
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok());
    // Set by `authn::authenticate` on the responses of requests whose key it accepted.
    let key_id = response
        .extensions()
        .get::<Arc<Principal>>()
        .map(|p| p.key_id.as_str());
    tracing::info!(
        target: ACCESS_TARGET,
        method = method.as_str(),
        route = route.map_or("unmatched", MatchedPath::as_str),
        status = response.status().as_u16(),
        // Micro-second resolution, shown in milliseconds (e.g. 0.213).
        latency_ms = latency.as_micros() as f64 / 1000.0,
        request_id,
        key_id,
        bytes = response.body().size_hint().exact(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: AccessLog) -> AccessPolicy {
        AccessPolicy {
            mode,
            slow: Duration::from_millis(500),
        }
    }

    const FAST: Duration = Duration::from_millis(3);
    const SLOW: Duration = Duration::from_millis(501);

    #[test]
    fn errors_logs_failures_and_slow_requests_only() {
        let errors = policy(AccessLog::Errors);
        assert!(!errors.wants(StatusCode::OK, FAST));
        assert!(!errors.wants(StatusCode::NOT_MODIFIED, FAST));
        assert!(!errors.wants(StatusCode::OK, Duration::from_millis(500)));
        assert!(errors.wants(StatusCode::OK, SLOW));
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(errors.wants(status, FAST), "{status}");
        }
    }

    #[test]
    fn all_logs_everything_and_off_nothing() {
        for (status, latency) in [
            (StatusCode::OK, FAST),
            (StatusCode::OK, SLOW),
            (StatusCode::UNAUTHORIZED, FAST),
            (StatusCode::INTERNAL_SERVER_ERROR, SLOW),
        ] {
            assert!(policy(AccessLog::All).wants(status, latency));
            assert!(!policy(AccessLog::Off).wants(status, latency));
        }
    }

    #[test]
    fn slow_threshold_comes_from_the_config() {
        let config = LogConfig {
            slow_request: Duration::from_millis(50),
            ..LogConfig::default()
        };
        let policy = AccessPolicy::new(&config);
        assert!(policy.wants(StatusCode::OK, Duration::from_millis(51)));
        assert!(!policy.wants(StatusCode::OK, Duration::from_millis(49)));
    }
}
