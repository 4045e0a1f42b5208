//! Every setting, grouped by section, with its default. Adding a setting means adding a field
//! here (with its default and a doc comment, which `docs/configuration.md` mirrors); loading
//! and the `MODELGATE_*` variable come for free, and a check goes in `validate.rs`.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::resilience::BreakerConfig;
use crate::vocabulary::RateLimit;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Address the gRPC server (the Open Inference Protocol) binds; empty: no gRPC server.
    pub grpc_listen: OptionalAddr,
    /// Folder holding one sub-folder per model.
    pub models_dir: PathBuf,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub server: ServerConfig,
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
    pub models: ModelsConfig,
}

/// Connections of the HTTP listener (`src/http/server/`): every phase of a connection has a
/// time limit and their number a cap, so that clients holding connections open cannot use up
/// the process's file descriptors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Longest a client may take to send a request's headers, counted from the connection's
    /// start for its first request and from the first byte for later ones.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait, without a byte, for its next request.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most connections open at once on `listen`; beyond it new ones are answered 503 with
    /// `Connection: close` at once. 0: the file-descriptor limit less a reserve for the
    /// process's own files, Redis and database connections.
    pub max_connections: u32,
    /// A second listener serving only `/health*`, `/metrics` and `/version`, outside the cap
    /// (for probes and Prometheus while the public port is flooded); unset means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// Proxies (IP addresses or CIDR ranges, e.g. `10.0.0.0/8`) whose `Forwarded` or
    /// `X-Forwarded-For` header names the client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 0,
            admin_listen: None,
            trusted_proxies: Vec::new(),
        }
    }
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
    /// Normalized Redis URL; unset means no Redis. With `cluster`, one seed node or a
    /// comma-separated list of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Redis is a Cluster (as managed Redis in cluster mode is): keys are routed to the node
    /// that owns their slot, and `MOVED` is followed.
    pub cluster: bool,
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
            cluster: false,
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
    /// Key that signs the shared Redis cache's entries (HMAC-SHA256), the same on every
    /// instance; unset means one is generated once and kept in the database. A secret: shown
    /// as `***`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_secret: Option<String>,
    /// How long an unknown key is remembered as unknown.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Most valid keys the in-process key cache holds.
    pub cache_capacity: u64,
    /// Most unknown keys the in-process key cache remembers, apart from the valid ones, so
    /// that a flood of invented keys cannot push valid keys out.
    pub negative_cache_capacity: u64,
    /// Failed authentications a client address may make at once before its requests are
    /// answered 429 `too_many_failed_auth`; 0 turns the throttle off.
    pub failed_auth_burst: u32,
    /// Failed authentications per minute a client address is allowed on average (the rate at
    /// which its burst refills).
    pub failed_auth_per_minute: u32,
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

impl ServerConfig {
    /// `server.trusted_proxies` as networks (an address is a network of one). Entries that do
    /// not parse are left out; validation refuses them before this is used.
    pub fn trusted_networks(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|entry| parse_network(entry))
            .collect()
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
pub(super) fn parse_network(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
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

/// Picking up new model versions while serving (docs/models.md, "Versions and reloads").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// How often the models folder is read again for added, changed and removed models; 0 turns
    /// polling off (SIGHUP and `POST /api/v1/admin/models/reload` still reload).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Where versions fetched from a model registry are kept (one folder per model and
    /// version, with a checksum): a start while the registry is down serves from here.
    pub cache_dir: PathBuf,
    /// Longest a model registry call (resolving an alias, a health probe) may take.
    #[serde(with = "humantime_serde")]
    pub registry_timeout: Duration,
    /// Longest downloading one version's graph from a registry may take.
    #[serde(with = "humantime_serde")]
    pub download_timeout: Duration,
    /// Largest graph a registry download may bring.
    pub download_max_bytes: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            poll_interval: Duration::from_secs(10),
            cache_dir: PathBuf::from("data/model-cache"),
            registry_timeout: Duration::from_secs(2),
            download_timeout: Duration::from_secs(60),
            download_max_bytes: 512 << 20,
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

/// Which requests get an access-log line (`log.access`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// Every request.
    All,
    /// 4xx, 5xx, and requests slower than `log.slow_request`.
    Errors,
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `modelgate=debug,info`.
    pub filter: String,
    /// Access lines are their own setting, not a filter level: at tens of thousands of
    /// requests per second a line per 2xx is a cost most operators do not want.
    pub access: AccessLog,
    /// Under `access = "errors"`, successful requests slower than this are logged too.
    #[serde(with = "humantime_serde")]
    pub slow_request: Duration,
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
    /// Most bytes the journal may hold: records not yet handed to every sink or its outbox
    /// (the writer's backlog); beyond it records are dropped (and counted).
    pub journal_max_bytes: u64,
    /// How often the journal is flushed to disk: what a power loss (not a process crash) can
    /// take of acknowledged records.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// How long `inference_logs` rows are kept; zero keeps them forever.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often rows older than `retention` are pruned (in small batches).
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
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
            journal_max_bytes: 1024 * 1024 * 1024,
            fsync_interval: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 24 * 3600),
            prune_interval: Duration::from_secs(60),
        }
    }
}

/// An address that may be turned off: written as the address, or as `""` for off (so that
/// an environment variable can turn off what is on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

impl Serialize for OptionalAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(addr) => serializer.collect_str(&addr),
            None => serializer.serialize_str(""),
        }
    }
}

impl<'de> Deserialize<'de> for OptionalAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(OptionalAddr(None));
        }
        text.parse()
            .map(|addr| OptionalAddr(Some(addr)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected an address such as 127.0.0.1:8081, or \"\" for off, got {text:?}"
                ))
            })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_listen: OptionalAddr(Some(SocketAddr::from(([127, 0, 0, 1], 8081)))),
            models_dir: PathBuf::from("models"),
            shutdown_grace: Duration::from_secs(10),
            server: ServerConfig::default(),
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
            models: ModelsConfig::default(),
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

impl DatabaseConfig {
    /// Whether the URL names an SQLite database (`sqlite:` in any case; anything else is taken
    /// for PostgreSQL): the one test the store, validation and `modelgate doctor` share.
    pub fn is_sqlite(&self) -> bool {
        self.url
            .get(.."sqlite:".len())
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sqlite:"))
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
            cache_secret: None,
            negative_ttl: Duration::from_secs(5),
            cache_capacity: 100_000,
            negative_cache_capacity: 100_000,
            failed_auth_burst: 20,
            failed_auth_per_minute: 60,
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
            access: AccessLog::Errors,
            slow_request: Duration::from_millis(500),
        }
    }
}
