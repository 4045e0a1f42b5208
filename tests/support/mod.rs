//! Shared test harness: a real server on an ephemeral port with a fresh database per test.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod auth_stub;
pub mod chaos;
pub mod events;
pub mod faults;
pub mod fleet;
pub mod metrics;
pub mod mlflow;
pub mod netns;
pub mod predict;
pub mod process;
pub mod python;
pub mod redis_cluster;
pub mod redis_server;
pub mod wait;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modelgate::app::App;
use modelgate::auth::{issue_key, NewKey, Scope};
use modelgate::config::Config;
use modelgate::http::AppState;
use modelgate::store::Store;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The Redis the tests use; must be running (tests that need it fail otherwise).
pub const REDIS: &str = "127.0.0.1:6379";

/// A connection to the tests' Redis, past any proxy (fails the test when Redis is not running).
pub async fn direct_redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{REDIS}/0"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis must be running on {REDIS} for this test: {e}"))
}

/// Server PostgreSQL tests create their databases on; must be running (tests fail otherwise).
pub fn postgres_admin_url() -> String {
    std::env::var("MODELGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    pub url: String,
    postgres_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.path().join("db/modelgate.db").display()),
                postgres_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let name = format!("mg_test_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL must be running for this test ({admin}): {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    postgres_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The `modelgate` binary with a clean environment: its own SQLite store in `dir`, the
/// repository's models, run from `dir`.
pub fn modelgate_command(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "MODELGATE_DATABASE_URL",
            format!("sqlite://{}", dir.join("db.sqlite").display()),
        )
        .env("MODELGATE_MODELS_DIR", repo_path("models"))
        // Tests run in parallel: no fixed gRPC port.
        .env("MODELGATE_GRPC_LISTEN", "127.0.0.1:0")
        .current_dir(dir);
    command
}

/// A Redis stream name no other test uses.
pub fn unique_stream() -> String {
    format!("modelgate:test:{}", uuid::Uuid::now_v7().simple())
}

pub fn base_config(db_url: &str) -> Config {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        grpc_listen: modelgate::config::OptionalAddr(Some(SocketAddr::from(([127, 0, 0, 1], 0)))),
        models_dir: repo_path("models"),
        ..Config::default()
    };
    config.database.url = db_url.to_string();
    config.database.max_connections = 4;
    config
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener's address, when `server.admin_listen` is set.
    pub admin_addr: Option<SocketAddr>,
    /// The gRPC listener's address, unless `grpc_listen` is off.
    pub grpc_addr: Option<SocketAddr>,
    pub state: AppState,
    /// The app's database as another process (e.g. `modelgate keys`) sees it: the raw store,
    /// its own pool, no guard. Tests issue and inspect keys through it.
    pub store: Store,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    /// The database this app owns (dropped with it); `None` when it shares another app's.
    pub db: Option<TestDatabase>,
    pub db_url: String,
    /// This app's own events outbox folder (removed with it), unless `adjust` chose another.
    pub outbox_dir: PathBuf,
    _outbox: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_on(TestDatabase::new(backend).await, adjust).await
    }

    /// Serves on an existing test database (dropped with the app).
    pub async fn spawn_on(db: TestDatabase, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let url = db.url.clone();
        let mut app = Self::start(&url, adjust).await;
        app.db = Some(db);
        app
    }

    /// A second instance on `other`'s database, as in a multi-instance deployment.
    pub async fn spawn_sharing(other: &TestApp, adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::start(&other.db_url, adjust).await
    }

    async fn start(db_url: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = base_config(db_url);
        // Apps run in parallel: each gets its own outbox and stream.
        let outbox = tempfile::tempdir().expect("outbox dir");
        config.events.outbox_dir = outbox.path().join("outbox");
        config.events.stream = unique_stream();
        adjust(&mut config);
        let outbox_dir = config.events.outbox_dir.clone();
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let admin_addr = app.admin_addr();
        let grpc_addr = app.grpc_addr();
        let state = app.state().clone();
        let store = Store::open(&base_config(db_url).database)
            .await
            .expect("test store opens");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(async move {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            admin_addr,
            grpc_addr,
            state,
            store,
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
            db: None,
            db_url: db_url.to_string(),
            outbox_dir,
            _outbox: outbox,
        }
    }

    /// An app on a fresh PostgreSQL database reached through a fault-injecting proxy, with
    /// short timeouts and a quick breaker so faults show within a test's patience.
    pub async fn behind_postgres_proxy(
        adjust: impl FnOnce(&mut Config),
    ) -> (TestApp, chaos::ChaosProxy) {
        let db = TestDatabase::new(Backend::Postgres).await;
        let postgres: SocketAddr = "127.0.0.1:5432".parse().expect("addr");
        let proxy = chaos::ChaosProxy::start(postgres).await;
        let proxied_url = db.url.replace("127.0.0.1:5432", &proxy.addr().to_string());
        assert_ne!(
            proxied_url, db.url,
            "the test database URL must name 127.0.0.1:5432"
        );
        let app = TestApp::spawn_on(db, move |c| {
            c.database.url = proxied_url;
            c.database.timeout = Duration::from_millis(150);
            c.database.connect_timeout = Duration::from_millis(150);
            c.breaker.consecutive_failures = 3;
            c.breaker.cooldown = Duration::from_millis(500);
            adjust(c);
        })
        .await;
        (app, proxy)
    }

    /// What the app knows about Redis right now (panics if Redis is not configured).
    pub fn redis_status(&self) -> modelgate::resilience::DependencyStatus {
        self.state
            .redis
            .as_ref()
            .expect("redis configured")
            .dependency()
            .status()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn key(&self, scopes: &[Scope]) -> String {
        issue_key(
            &self.store,
            NewKey {
                name: "test".into(),
                scopes: scopes.to_vec(),
                rate_limit: None,
                expires_in: None,
                ..NewKey::default()
            },
        )
        .await
        .expect("issue key")
        .key
    }

    /// A prepaid predict key with `credits`, and its id.
    pub async fn prepaid_key(&self, credits: i64) -> (String, String) {
        let issued = issue_key(
            &self.store,
            NewKey {
                name: "prepaid".into(),
                credits: Some(credits),
                ..NewKey::default()
            },
        )
        .await
        .expect("issue key");
        (issued.key, issued.record.id)
    }

    /// A predict key limited to `limit` (such as `20/m`), and its id.
    pub async fn rate_limited_key(&self, limit: &str) -> (String, String) {
        let issued = issue_key(
            &self.store,
            NewKey {
                name: "limited".into(),
                scopes: vec![Scope::Predict],
                rate_limit: Some(limit.parse().expect("limit")),
                ..NewKey::default()
            },
        )
        .await
        .expect("issue key");
        (issued.key, issued.record.id)
    }

    pub async fn predict_key(&self) -> String {
        self.key(&[Scope::Predict]).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("request")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

/// A problem+json body, asserting the media type.
pub async fn problem(response: reqwest::Response) -> serde_json::Value {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    response.json().await.expect("problem body")
}

/// Runs an async test body once per storage backend.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(Backend::Postgres).await;
            }
        }
    };
}
