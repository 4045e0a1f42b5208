//! Checks a loaded configuration: every rule names the setting (and the variable it came from)
//! and says what is expected.

use std::time::Duration;

use super::env::Sources;
use super::{redis_url, Config, ConfigError};

/// Most records in one batch: 12 columns each stay below SQLite's 32766 bound parameters.
const MAX_EVENTS_BATCH: usize = 2000;
/// Largest payload kept: a record (two payloads) must fit an outbox frame (64 MiB).
const MAX_EVENTS_PAYLOAD: usize = 16 * 1024 * 1024;
/// PostgreSQL keeps records in day partitions; a window under an hour is a typo, not a policy.
const MIN_RETENTION: Duration = Duration::from_secs(3600);
/// Polls more often than this would spend the machine on listing folders.
const MIN_MODELS_POLL: Duration = Duration::from_millis(100);
const MIN_PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest `auth.cache_secret`: 32 characters of `openssl rand -hex 32` carry 128 bits.
const MIN_CACHE_SECRET_CHARS: usize = 32;

/// Faster page refreshes would make browsers a noticeable share of a quiet instance's load.
const MIN_STATUS_REFRESH: Duration = Duration::from_millis(250);

impl Config {
    pub(super) fn validate(&self, sources: &Sources) -> Result<(), ConfigError> {
        let db = self.database.url.to_ascii_lowercase();
        let url_with = |raw: &Option<String>, schemes: &[&str]| {
            raw.as_deref().is_none_or(|raw| {
                url::Url::parse(raw).is_ok_and(|u| {
                    schemes.contains(&u.scheme().to_ascii_lowercase().as_str())
                        && (u.scheme() == "unix" || u.host_str().is_some())
                })
            })
        };
        let checks = [
            (
                "database.url",
                self.database.is_sqlite()
                    || ["postgres://", "postgresql://"]
                        .iter()
                        .any(|scheme| db.starts_with(scheme)),
                "expected sqlite://PATH or postgres://USER@HOST/DB",
            ),
            (
                "database.max_connections",
                self.database.max_connections > 0,
                "expected a number of at least 1",
            ),
            (
                "redis.url",
                self.redis.url.as_deref().is_none_or(|raw| {
                    let nodes: Vec<Option<String>> = redis_url::nodes(raw)
                        .into_iter()
                        .map(|node| Some(node.to_string()))
                        .collect();
                    if self.redis.cluster {
                        nodes.iter().all(|node| url_with(node, &["redis", "rediss"]))
                    } else {
                        nodes.len() == 1 && url_with(&nodes[0], &redis_url::SCHEMES)
                    }
                }),
                if self.redis.cluster {
                    "expected the cluster's seed nodes as redis:// or rediss:// URLs or \
                     host[:port], comma-separated"
                } else {
                    "expected a redis://, rediss:// or unix:// URL, or host[:port] (a list of \
                     seed nodes needs redis.cluster = true)"
                },
            ),
            (
                "redis.tls_ca_file",
                self.redis.tls_ca_file.as_ref().is_none_or(|f| f.is_file()),
                "expected a readable PEM file",
            ),
            (
                "auth.service_url",
                url_with(&self.auth.service_url, &["http", "https"]),
                "expected an http:// or https:// URL",
            ),
            (
                "auth.cache_secret",
                self.auth
                    .cache_secret
                    .as_ref()
                    .is_none_or(|s| s.chars().count() >= MIN_CACHE_SECRET_CHARS),
                "expected at least 32 characters, such as the output of openssl rand -hex 32",
            ),
            (
                "log.filter",
                tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_ok(),
                "expected a tracing filter such as info or modelgate=debug,warn",
            ),
            (
                "log.slow_request",
                !self.log.slow_request.is_zero(),
                "expected a duration above zero, such as 500ms (log.access = \"all\" logs every request)",
            ),
            (
                "breaker.consecutive_failures",
                self.breaker.consecutive_failures > 0,
                "expected a number of at least 1",
            ),
            (
                "breaker.failure_ratio",
                self.breaker.failure_ratio > 0.0 && self.breaker.failure_ratio <= 1.0,
                "expected a share between 0 (exclusive) and 1",
            ),
            (
                "http.request_deadline",
                !self.http.request_deadline.is_zero(),
                "expected a duration above zero, such as 1s",
            ),
            (
                "server.header_read_timeout",
                !self.server.header_read_timeout.is_zero(),
                "expected a duration above zero, such as 5s",
            ),
            (
                "server.idle_timeout",
                !self.server.idle_timeout.is_zero(),
                "expected a duration above zero, such as 60s",
            ),
            (
                "server.admin_listen",
                self
                    .server
                    .admin_listen
                    .is_none_or(|admin| admin.port() == 0 || admin != self.listen),
                "expected an address other than listen's, such as 127.0.0.1:9090",
            ),
            (
                "grpc_listen",
                self.grpc_listen.0.is_none_or(|grpc| {
                    grpc.port() == 0
                        || (grpc != self.listen && Some(grpc) != self.server.admin_listen)
                }),
                "expected an address other than listen's and server.admin_listen's, such as \
                 127.0.0.1:8081, or \"\" for no gRPC server",
            ),
            (
                "http.body_limit_bytes",
                self.http.body_limit_bytes > 0,
                "expected a number of bytes of at least 1",
            ),
            (
                "http.cors_allowed_origins",
                self.http.cors_allowed_origins.iter().all(|o| is_origin(o)),
                "expected * or origins written as browsers send them, such as \
                 https://app.example.com or http://localhost:3000 (no path, no trailing slash)",
            ),
            (
                "server.trusted_proxies",
                self.server
                    .trusted_proxies
                    .iter()
                    .all(|p| super::settings::parse_network(p).is_some()),
                "expected IP addresses or CIDR ranges, such as 10.0.0.0/8 or 2001:db8::1",
            ),
            (
                "auth.cache_capacity",
                self.auth.cache_capacity > 0,
                "expected a number of keys of at least 1",
            ),
            (
                "auth.negative_cache_capacity",
                self.auth.negative_cache_capacity > 0,
                "expected a number of keys of at least 1",
            ),
            (
                "auth.failed_auth_per_minute",
                self.auth.failed_auth_burst == 0 || self.auth.failed_auth_per_minute > 0,
                "expected a number of at least 1 (set auth.failed_auth_burst = 0 to turn the throttle off)",
            ),
            (
                "ratelimit.local_share",
                self.ratelimit.local_share > 0.0 && self.ratelimit.local_share <= 1.0,
                "expected a share between 0 (exclusive) and 1, such as 0.5",
            ),
            (
                "ratelimit.local_capacity",
                self.ratelimit.local_capacity > 0,
                "expected a number of keys of at least 1",
            ),
            (
                "health.probe_interval",
                self.health.probe_interval >= Duration::from_millis(10),
                "expected a duration of at least 10ms, such as 2s",
            ),
            (
                "alerts.webhook_url",
                url_with(&self.alerts.webhook_url, &["http", "https"]),
                "expected an http:// or https:// URL",
            ),
            (
                "alerts.timeout",
                !self.alerts.timeout.is_zero(),
                "expected a duration above zero, such as 2s",
            ),
            (
                "status.refresh",
                self.status.refresh >= MIN_STATUS_REFRESH,
                "expected a duration of at least 250ms, such as 2s",
            ),
            (
                "events.stream",
                !self.events.stream.is_empty(),
                "expected a Redis key name, such as modelgate:inference",
            ),
            (
                "events.max_payload_bytes",
                (1..=MAX_EVENTS_PAYLOAD).contains(&self.events.max_payload_bytes),
                "expected a number of bytes from 1 to 16777216 (16 MiB)",
            ),
            (
                "events.batch_size",
                (1..=MAX_EVENTS_BATCH).contains(&self.events.batch_size),
                "expected a number from 1 to 2000",
            ),
            (
                "events.queue_capacity",
                self.events.queue_capacity > 0,
                "expected a number of at least 1",
            ),
            (
                "events.flush_interval",
                !self.events.flush_interval.is_zero(),
                "expected a duration above zero, such as 100ms",
            ),
            (
                "events.outbox_segment_bytes",
                self.events.outbox_segment_bytes > 0
                    && self.events.outbox_segment_bytes <= self.events.outbox_max_bytes,
                "expected a number of bytes from 1 to events.outbox_max_bytes",
            ),
            (
                "events.journal_max_bytes",
                self.events.outbox_segment_bytes <= self.events.journal_max_bytes,
                "expected a number of bytes of at least events.outbox_segment_bytes",
            ),
            (
                "events.fsync_interval",
                !self.events.fsync_interval.is_zero(),
                "expected a duration above zero, such as 1s",
            ),
            (
                "events.retention",
                self.events.retention.is_zero() || self.events.retention >= MIN_RETENTION,
                "expected 0 (keep forever) or a duration of at least 1h, such as 30d",
            ),
            (
                "events.prune_interval",
                self.events.prune_interval >= MIN_PRUNE_INTERVAL,
                "expected a duration of at least 1s, such as 1m",
            ),
            (
                "models.poll_interval",
                self.models.poll_interval.is_zero()
                    || self.models.poll_interval >= MIN_MODELS_POLL,
                "expected 0 (no polling) or a duration of at least 100ms, such as 10s",
            ),
            (
                "models.registry_timeout",
                !self.models.registry_timeout.is_zero(),
                "expected a duration above zero, such as 2s",
            ),
            (
                "models.download_timeout",
                !self.models.download_timeout.is_zero(),
                "expected a duration above zero, such as 60s",
            ),
            (
                "models.download_max_bytes",
                self.models.download_max_bytes > 0,
                "expected a number of bytes of at least 1",
            ),
        ];
        match checks.into_iter().find(|(_, ok, _)| !ok) {
            Some((key, _, expected)) => Err(ConfigError::invalid(sources.describe(key), expected)),
            None => Ok(()),
        }
    }

    /// Serving and listing models need the models folder; managing keys does not.
    pub fn require_models_dir(&self) -> Result<(), ConfigError> {
        if self.models_dir.is_dir() {
            Ok(())
        } else {
            Err(ConfigError::invalid(
                "models_dir (MODELGATE_MODELS_DIR)",
                format!(
                    "expected an existing folder of models, {} is not one",
                    self.models_dir.display()
                ),
            ))
        }
    }
}

/// `*`, or an origin exactly as a browser sends it in `Origin` (CORS compares it byte for byte).
fn is_origin(origin: &str) -> bool {
    origin == "*"
        || url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.origin().ascii_serialization() == origin
        })
}
