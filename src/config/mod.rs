//! Configuration: defaults, overlaid by an optional TOML file, overlaid by environment variables.

mod env;
pub mod redact;
pub mod redis_url;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::RateLimit;
use crate::resilience::BreakerConfig;

pub use env::{documented_env_vars, EnvVar};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Folder holding one sub-folder per model.
    pub models_dir: PathBuf,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub ratelimit: RateLimitConfig,
    /// Circuit breaker thresholds, shared by every dependency.
    pub breaker: BreakerConfig,
    pub health: HealthConfig,
    pub alerts: AlertsConfig,
    pub log: LogConfig,
    pub status: StatusConfig,
    pub events: EventsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (file and folder created) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    /// Longest wait for a pooled connection, and for a new one to open.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest a query may take (also bounded by the request's deadline).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Normalized Redis URL; unset means no Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Longest a (background) connection attempt may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest a read on the request path may take.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Longest a background write (cache fill, revocation) may take.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// PEM file of the CA that signed the Redis server's certificate (`rediss://`), instead of
    /// the system's trust store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Skip certificate verification for `rediss://`. Dangerous; logged loudly at start.
    pub tls_insecure: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            connect_timeout: Duration::from_millis(200),
            command_timeout: Duration::from_millis(25),
            write_timeout: Duration::from_millis(250),
            tls_ca_file: None,
            tls_insecure: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Remote auth service base URL; unset means keys live in the local store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_url: Option<String>,
    /// `service_id` sent to the remote auth service.
    pub service_id: String,
    /// Longest a call to the remote auth service may take (also bounded by the request deadline).
    #[serde(with = "humantime_serde")]
    pub service_timeout: Duration,
    /// How long a validated key is trusted without asking the source again.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// How long a validated key may still be served, once no longer fresh, while its source
    /// cannot answer.
    #[serde(with = "humantime_serde")]
    pub stale_horizon: Duration,
    /// How long a validated key stays in the shared Redis cache.
    #[serde(with = "humantime_serde")]
    pub shared_ttl: Duration,
    /// How long an unknown key is remembered as unknown.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Most entries the in-process key cache holds.
    pub cache_capacity: u64,
    /// Accept `?api_key=` (off: keys in URLs leak into access logs and browser history).
    pub allow_query_key: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: u64,
    /// Time budget of one request; every dependency call clamps its timeout to what is left.
    #[serde(with = "humantime_serde")]
    pub request_deadline: Duration,
    /// Browser origins allowed to call the API (CORS), e.g. `https://app.example.com`, or `*`
    /// for any; empty turns CORS off (no CORS headers at all).
    pub cors_allowed_origins: Vec<String>,
    /// How long a browser may cache a preflight answer.
    #[serde(with = "humantime_serde")]
    pub cors_max_age: Duration,
}

/// Per-key rate limits on the prediction routes (`src/ratelimit/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Share of each key's limit one instance grants on its own while Redis cannot answer
    /// (without Redis configured, an instance always grants the whole limit).
    pub local_share: f64,
    /// Limit of keys that have none (`N/s`, `N/m` or `N/h`); unset means they are not limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<RateLimit>,
    /// Most keys whose local state an instance keeps; the least recently used go first.
    pub local_capacity: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            local_share: 0.5,
            default: None,
            local_capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often each dependency is probed in the background. Each probe has the dependency's
    /// own request-path timeout, so health says what a request would meet.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            probe_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Receives a JSON POST (Slack-compatible `text` included) on each state change; unset
    /// means no alerts are sent. Treated as a secret: webhook URLs carry tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// How long a new state must hold before it is announced (flaps shorter than this are not).
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// Longest one delivery attempt may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Further attempts after a failed delivery, with doubling pauses from one second.
    pub retries: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url: None,
            debounce: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `modelgate=debug,info`.
    pub filter: String,
}

/// The `/status` page for people, and the `/status/stats` numbers it shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Serve `/status` and `/status/stats` (off: both answer 404).
    pub enabled: bool,
    /// Only keys with the `admin` scope may see them (off: no key needed, like `/health`).
    pub require_admin: bool,
    /// How often the page asks the server again.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            enabled: true,
            require_admin: false,
            refresh: Duration::from_secs(2),
        }
    }
}

/// Inference records (docs/events.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Record every prediction that reaches a model.
    pub enabled: bool,
    /// Redis Stream the records are added to (only with `redis.url`).
    pub stream: String,
    /// Approximate length the stream is trimmed to (`XADD … MAXLEN ~`).
    pub stream_maxlen: u64,
    /// Longest JSON text of `inputs` or `outputs` kept; longer is cut and flagged `truncated`.
    pub max_payload_bytes: usize,
    /// Records waiting in memory for the writer; beyond it they go straight to the outbox.
    pub queue_capacity: usize,
    /// Most records per sink write (one INSERT, one Redis pipeline).
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Folder of the durable outbox (one process at a time).
    pub outbox_dir: PathBuf,
    /// Most bytes the outbox may hold; records beyond it are dropped (and counted).
    pub outbox_max_bytes: u64,
    /// Size at which an outbox segment file is closed and a new one started.
    pub outbox_segment_bytes: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            stream: "modelgate:inference".into(),
            stream_maxlen: 1_000_000,
            max_payload_bytes: 16 * 1024,
            queue_capacity: 10_000,
            batch_size: 256,
            flush_interval: Duration::from_millis(100),
            outbox_dir: PathBuf::from("data/outbox"),
            outbox_max_bytes: 1024 * 1024 * 1024,
            outbox_segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Most records in one batch: 12 columns each stay below SQLite's 32766 bound parameters.
const MAX_EVENTS_BATCH: usize = 2000;
/// Largest payload kept: a record (two payloads) must fit an outbox frame (64 MiB).
const MAX_EVENTS_PAYLOAD: usize = 16 * 1024 * 1024;

/// Faster page refreshes would make browsers a noticeable share of a quiet instance's load.
const MIN_STATUS_REFRESH: Duration = Duration::from_millis(250);

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            models_dir: PathBuf::from("models"),
            shutdown_grace: Duration::from_secs(10),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            ratelimit: RateLimitConfig::default(),
            breaker: BreakerConfig::default(),
            health: HealthConfig::default(),
            alerts: AlertsConfig::default(),
            log: LogConfig::default(),
            status: StatusConfig::default(),
            events: EventsConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/modelgate.db".into(),
            max_connections: 10,
            connect_timeout: Duration::from_millis(500),
            timeout: Duration::from_millis(500),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            service_url: None,
            service_id: "platform".into(),
            service_timeout: Duration::from_millis(300),
            cache_ttl: Duration::from_secs(30),
            stale_horizon: Duration::from_secs(600),
            shared_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
            cache_capacity: 100_000,
            allow_query_key: false,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 1024 * 1024,
            request_deadline: Duration::from_secs(1),
            cors_allowed_origins: Vec::new(),
            cors_max_age: Duration::from_secs(600),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// A configuration problem, rendered as one line that names the key and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration: {key}: {expected}")]
    Invalid { key: String, expected: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, expected: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            expected: expected.into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(file, &vars)
    }

    /// Like [`Config::load`] with an explicit environment, so tests need not mutate the process.
    pub fn load_from(
        file: Option<&Path>,
        vars: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let sources = env::overlay(&mut tree, vars)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|err| {
                let path = err.path().to_string();
                let key = sources.describe(&path);
                // The TOML error repeats the path on a second line; one line is enough.
                let message = err.into_inner().to_string();
                let first = message.lines().next().unwrap_or_default().to_string();
                ConfigError::invalid(key, first)
            })?;
        config.redis.url = env::redis_url(config.redis.url.take(), vars)
            .map_err(|e| ConfigError::invalid(sources.describe("redis.url"), e.to_string()))?;
        config.validate(&sources)?;
        Ok(config)
    }

    fn validate(&self, sources: &env::Sources) -> Result<(), ConfigError> {
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
                ["sqlite:", "postgres://", "postgresql://"]
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
                url_with(&self.redis.url, &["redis", "rediss", "unix"]),
                "expected a redis://, rediss:// or unix:// URL, or host[:port]",
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
                "log.filter",
                tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_ok(),
                "expected a tracing filter such as info or modelgate=debug,warn",
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

    /// The configuration as shown to operators: every secret replaced by `***`.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.database.url = redact::url_secrets(&shown.database.url);
        shown.redis.url = shown.redis.url.as_deref().map(redact::url_secrets);
        shown.auth.service_url = shown.auth.service_url.as_deref().map(redact::url_secrets);
        // The whole URL: Slack-style webhooks carry their token in the path.
        shown.alerts.webhook_url = shown.alerts.webhook_url.as_ref().map(|_| "***".into());
        shown
    }
}

/// `*`, or an origin exactly as a browser sends it in `Origin` (CORS compares it byte for byte).
fn is_origin(origin: &str) -> bool {
    origin == "*"
        || url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.origin().ascii_serialization() == origin
        })
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let first = e.message().lines().next().unwrap_or_default();
        ConfigError::Syntax {
            path: path.to_path_buf(),
            message: match line {
                Some(line) => format!("{first} (line {line})"),
                None => first.to_string(),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_documented_values() {
        let config = Config::load_from(None, &HashMap::new()).expect("defaults load");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database.url, "sqlite://data/modelgate.db");
        assert_eq!(config.models_dir, PathBuf::from("models"));
        assert_eq!(config.redis.url, None);
        assert_eq!(config.auth.service_id, "platform");
        assert_eq!(config.auth.cache_ttl, Duration::from_secs(30));
        assert_eq!(config.auth.negative_ttl, Duration::from_secs(5));
        assert_eq!(config.http.body_limit_bytes, 1024 * 1024);
        assert!(config.status.enabled);
        assert!(!config.status.require_admin);
        assert_eq!(config.status.refresh, Duration::from_secs(2));
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list_of_exact_origins() {
        let config = Config::load_from(
            None,
            &env(&[(
                "MODELGATE_HTTP_CORS_ALLOWED_ORIGINS",
                " https://app.example.com, http://localhost:3000 ,",
            )]),
        )
        .expect("loads");
        assert_eq!(
            config.http.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(Config::default().http.cors_allowed_origins.is_empty());
        let any = Config::load_from(None, &env(&[("MODELGATE_HTTP_CORS_ALLOWED_ORIGINS", "*")]))
            .expect("loads");
        assert_eq!(any.http.cors_allowed_origins, ["*"]);
        for bad in [
            "https://app.example.com/",
            "app.example.com",
            "https://app.example.com/path",
            "ftp://files.example.com",
            "https://APP.example.com",
        ] {
            let err =
                Config::load_from(None, &env(&[("MODELGATE_HTTP_CORS_ALLOWED_ORIGINS", bad)]))
                    .expect_err(bad)
                    .to_string();
            assert!(err.contains("http.cors_allowed_origins"), "{bad}: {err}");
        }
    }

    #[test]
    fn status_settings_come_from_the_environment_and_are_checked() {
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_STATUS_ENABLED", "false"),
                ("MODELGATE_STATUS_REQUIRE_ADMIN", "yes"),
                ("MODELGATE_STATUS_REFRESH", "5s"),
            ]),
        )
        .expect("loads");
        assert!(!config.status.enabled);
        assert!(config.status.require_admin);
        assert_eq!(config.status.refresh, Duration::from_secs(5));
        let err = Config::load_from(None, &env(&[("MODELGATE_STATUS_REFRESH", "10ms")]))
            .expect_err("too fast");
        assert!(
            err.to_string()
                .contains("status.refresh (from MODELGATE_STATUS_REFRESH)"),
            "{err}"
        );
    }

    #[test]
    fn rate_limit_settings_come_from_the_environment_and_are_checked() {
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_RATELIMIT_LOCAL_SHARE", "0.25"),
                ("MODELGATE_RATELIMIT_DEFAULT", "100/m"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.ratelimit.local_share, 0.25);
        assert_eq!(config.ratelimit.default, "100/m".parse().ok());
        for (var, value) in [
            ("MODELGATE_RATELIMIT_LOCAL_SHARE", "0"),
            ("MODELGATE_RATELIMIT_LOCAL_SHARE", "1.5"),
            ("MODELGATE_RATELIMIT_DEFAULT", "lots"),
        ] {
            let err = Config::load_from(None, &env(&[(var, value)])).expect_err(value);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn fixed_environment_names_are_honoured() {
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_LISTEN", "0.0.0.0:9999"),
                ("MODELGATE_DATABASE_URL", "postgres://u@db/x"),
                ("MODELGATE_MODELS_DIR", "/srv/models"),
                ("MODELGATE_REDIS_URL", "cache"),
                ("MODELGATE_AUTH_SERVICE_URL", "http://auth:8000"),
                ("MODELGATE_AUTH_SERVICE_ID", "billing"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(config.database.url, "postgres://u@db/x");
        assert_eq!(config.models_dir, PathBuf::from("/srv/models"));
        assert_eq!(config.redis.url.as_deref(), Some("redis://cache:6379"));
        assert_eq!(config.auth.service_url.as_deref(), Some("http://auth:8000"));
        assert_eq!(config.auth.service_id, "billing");
    }

    #[test]
    fn every_setting_has_an_environment_variable() {
        let names: Vec<String> = documented_env_vars().into_iter().map(|v| v.name).collect();
        for expected in [
            "MODELGATE_LISTEN",
            "MODELGATE_DATABASE_URL",
            "MODELGATE_MODELS_DIR",
            "MODELGATE_REDIS_URL",
            "MODELGATE_AUTH_SERVICE_URL",
            "MODELGATE_AUTH_SERVICE_ID",
            "MODELGATE_AUTH_CACHE_TTL",
            "MODELGATE_AUTH_NEGATIVE_TTL",
            "MODELGATE_SHUTDOWN_GRACE",
            "MODELGATE_DATABASE_CONNECT_TIMEOUT",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
    }

    #[test]
    fn configuration_reference_lists_every_variable() {
        let docs = include_str!("../../docs/configuration.md");
        for var in documented_env_vars() {
            assert!(
                docs.contains(&var.name),
                "docs/configuration.md lacks {}",
                var.name
            );
        }
    }

    #[test]
    fn redacted_hides_passwords_only() {
        let mut config = Config::default();
        config.database.url = "postgres://app:pw@db/main".into();
        config.redis.url = Some("redis://:tok@cache:6379/0".into());
        let shown = config.redacted();
        assert_eq!(shown.database.url, "postgres://app:***@db/main");
        assert_eq!(
            shown.redis.url.as_deref(),
            Some("redis://:***@cache:6379/0")
        );
        assert_eq!(config.database.url, "postgres://app:pw@db/main");
    }
}
