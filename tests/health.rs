//! Health observed by background probes: `/health` answers from memory whatever the
//! dependencies do, a change shows in `/health`, `/metrics`, the logs (once) and the alert
//! webhook (debounced, retried) within a probe interval plus the debounce.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use modelgate::config::Config;
use serde_json::Value;
use support::auth_stub::AuthStub;
use support::chaos::{ChaosProxy, Fault};
use support::{Backend, TestApp, REDIS};

/// An alert receiver that fails its first `failures` deliveries with 500.
#[derive(Clone)]
struct Webhook {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
}

impl Webhook {
    async fn start(failures: usize) -> Webhook {
        let received = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(AtomicUsize::new(0));
        let state = (received.clone(), attempts.clone(), failures);
        let router = Router::new()
            .route("/hook/T0KEN", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Webhook {
            addr,
            received,
            attempts,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook/T0KEN", self.addr)
    }

    fn alerts(&self) -> Vec<Value> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits (bounded) for an alert about `subject` with `status`.
    async fn expect(&self, subject: &str, status: &str, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            let found = self
                .alerts()
                .into_iter()
                .find(|a| a["subject"] == subject && a["status"] == status);
            if let Some(alert) = found {
                return alert;
            }
            assert!(
                started.elapsed() < within,
                "no alert {subject} {status} within {within:?}; got {:?}",
                self.alerts()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

type WebhookState = (Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>, usize);

async fn receive(
    State((received, attempts, failures)): State<WebhookState>,
    Json(alert): Json<Value>,
) -> StatusCode {
    if attempts.fetch_add(1, Ordering::SeqCst) < failures {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    received.lock().expect("lock").push(alert);
    StatusCode::OK
}

/// Everything the process logs, as JSON lines (one subscriber per test process).
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines whose message is exactly `message`, with their level.
fn log_lines(message: &str) -> Vec<Value> {
    let bytes = captured_logs().lock().expect("lock").clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .collect()
}

async fn health(app: &TestApp) -> (u16, Value) {
    let response = app.get("/health", None).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("health json"))
}

/// Polls `/health` until `check` is satisfied, failing after `within`.
async fn health_until(app: &TestApp, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, body) = health(app).await;
        if check(&body) {
            return body;
        }
        assert!(started.elapsed() < within, "health never matched: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast_probes(c: &mut Config) {
    c.health.probe_interval = Duration::from_millis(100);
    c.breaker.consecutive_failures = 3;
    c.breaker.cooldown = Duration::from_millis(300);
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn health_answers_from_memory_while_the_database_hangs() {
    let (app, proxy) = TestApp::behind_postgres_proxy(fast_probes).await;
    let body = health_until(&app, Duration::from_secs(3), |b| {
        b["checks"]["database"]["last_success"].is_string()
    })
    .await;
    for field in ["version", "timestamp", "uptime_s", "services", "checks"] {
        assert!(!body[field].is_null(), "{field} missing: {body}");
    }
    let database = &body["checks"]["database"];
    for field in [
        "status",
        "required",
        "latency_ms",
        "since",
        "breaker",
        "impact",
    ] {
        assert!(
            !database[field].is_null(),
            "checks.database.{field}: {body}"
        );
    }
    assert_eq!(body["checks"]["redis"]["status"], "disabled");
    assert_eq!(body["checks"]["auth_service"]["status"], "disabled");

    proxy.set(Fault::Silent);
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    let body = loop {
        let asked = Instant::now();
        let (status, body) = health(&app).await;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(
            status, 200,
            "a store that hangs degrades, never kills: {body}"
        );
        if body["services"]["database"] == "unhealthy" {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        slowest < Duration::from_millis(100),
        "health waited on the store: {slowest:?}"
    );
    assert_eq!(body["status"], "degraded");
    let error = body["checks"]["database"]["last_error"]
        .as_str()
        .unwrap_or("");
    assert!(error.starts_with("database"), "{error}");
    // Ready stays 200: a degraded instance still serves cached keys.
    assert_eq!(app.get("/health/ready", None).await.status(), 200);
}

#[tokio::test]
async fn a_redis_outage_shows_in_health_metrics_logs_and_webhook() {
    captured_logs();
    let webhook = Webhook::start(0).await;
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    let (redis_addr, hook) = (proxy.addr(), webhook.url());
    let debounce = Duration::from_millis(400);
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        fast_probes(c);
        c.redis.url = Some(format!("redis://{redis_addr}/0"));
        c.alerts.webhook_url = Some(hook);
        c.alerts.debounce = debounce;
    })
    .await;
    health_until(&app, Duration::from_secs(3), |b| {
        b["checks"]["redis"]["last_success"].is_string()
    })
    .await;

    proxy.set(Fault::Refused);
    let went_down = Instant::now();
    let body = health_until(&app, Duration::from_secs(2), |b| {
        b["services"]["redis"] == "unhealthy"
    })
    .await;
    assert!(
        went_down.elapsed() < Duration::from_secs(1),
        "probe too slow"
    );
    assert_eq!(body["status"], "degraded");
    let redis = &body["checks"]["redis"];
    assert_eq!(redis["required"], false);
    assert!(redis["impact"]
        .as_str()
        .is_some_and(|i| i.contains("shared auth cache")));
    assert!(redis["last_error"].is_string(), "{body}");

    let metrics = app
        .get("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    let series = "modelgate_dependency_status{dependency=\"redis\"}";
    assert_eq!(metric(&metrics, series), Some(2.0), "{metrics}");
    assert_eq!(metric(&metrics, "modelgate_health_status"), Some(1.0));

    let alert = webhook
        .expect("redis", "unhealthy", Duration::from_secs(5))
        .await;
    assert!(went_down.elapsed() >= debounce, "alert before the debounce");
    assert_eq!(alert["previous"], "healthy");
    assert_eq!(alert["kind"], "dependency");
    let text = alert["text"].as_str().unwrap_or("");
    assert!(text.contains("redis is unhealthy"), "{text}");
    webhook
        .expect("modelgate", "degraded", Duration::from_secs(2))
        .await;

    // Many probes later, the change has still been logged exactly once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let down_lines = log_lines("redis is unhealthy");
    assert_eq!(down_lines.len(), 1, "{down_lines:?}");
    assert_eq!(down_lines[0]["level"], "WARN");
    assert!(down_lines[0]["fields"]["error"].is_string());

    proxy.set(Fault::None);
    health_until(&app, Duration::from_secs(3), |b| {
        b["services"]["redis"] == "healthy" && b["status"] == "healthy"
    })
    .await;
    webhook
        .expect("redis", "healthy", Duration::from_secs(5))
        .await;
    webhook
        .expect("modelgate", "healthy", Duration::from_secs(2))
        .await;
    let up_lines = log_lines("redis is healthy");
    assert_eq!(up_lines.len(), 1, "{up_lines:?}");
    assert_eq!(up_lines[0]["level"], "INFO");
    let all_logs =
        String::from_utf8_lossy(&captured_logs().lock().expect("lock").clone()).into_owned();
    assert!(
        !all_logs.contains("T0KEN"),
        "the webhook URL reached the logs"
    );
}

#[tokio::test]
async fn alerts_are_debounced_and_retried() {
    let webhook = Webhook::start(1).await;
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    let (redis_addr, hook) = (proxy.addr(), webhook.url());
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        fast_probes(c);
        c.redis.url = Some(format!("redis://{redis_addr}/0"));
        c.alerts.webhook_url = Some(hook);
        c.alerts.debounce = Duration::from_millis(1500);
    })
    .await;
    // A blip shorter than the debounce is seen by health but never announced.
    proxy.set(Fault::Refused);
    health_until(&app, Duration::from_secs(2), |b| {
        b["services"]["redis"] == "unhealthy"
    })
    .await;
    proxy.set(Fault::None);
    health_until(&app, Duration::from_secs(3), |b| {
        b["services"]["redis"] == "healthy"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        webhook.attempts.load(Ordering::SeqCst),
        0,
        "a blip was announced"
    );

    // A lasting outage is announced; the first delivery fails and is retried.
    proxy.set(Fault::Refused);
    let alert = webhook
        .expect("redis", "unhealthy", Duration::from_secs(6))
        .await;
    assert_eq!(alert["previous"], "healthy");
    assert!(webhook.attempts.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn the_auth_service_probe_checks_the_contract() {
    let stub = AuthStub::start().await;
    let proxy = ChaosProxy::start(stub.addr).await;
    let url = format!("http://{}", proxy.addr());
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        fast_probes(c);
        c.auth.service_url = Some(url);
    })
    .await;
    health_until(&app, Duration::from_secs(3), |b| {
        b["checks"]["auth_service"]["last_success"].is_string()
    })
    .await;
    assert!(stub.probe_calls() > 0);
    assert_eq!(stub.calls(), 0, "probes must not look like real keys");

    // A service that accepts a key nobody issued is misconfigured: not healthy.
    stub.accept(modelgate::auth::HEALTH_PROBE_KEY, "key_bogus");
    let body = health_until(&app, Duration::from_secs(3), |b| {
        b["services"]["auth_service"] == "unhealthy"
    })
    .await;
    let error = body["checks"]["auth_service"]["last_error"]
        .as_str()
        .unwrap_or("");
    assert!(error.contains("never issued"), "{error}");
    assert_eq!(body["status"], "degraded");
    stub.reply(modelgate::auth::HEALTH_PROBE_KEY, 401, "{}");
    health_until(&app, Duration::from_secs(3), |b| {
        b["services"]["auth_service"] == "healthy"
    })
    .await;

    proxy.set(Fault::Refused);
    let body = health_until(&app, Duration::from_secs(3), |b| {
        b["services"]["auth_service"] == "unhealthy"
    })
    .await;
    assert!(
        body["checks"]["auth_service"]["impact"]
            .as_str()
            .is_some_and(|i| i.contains("cached keys keep working")),
        "{body}"
    );
}
