//! The durable outbox seen from outside: its cap (exact drop count, health), damaged records,
//! and records surviving `kill -9` of the real binary.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::chaos::{ChaosProxy, Fault};
use support::events::{log_rows, wait_for_rows};
use support::metrics::{metric, metrics_at, wait_for_metrics};
use support::predict::predict_at;
use support::process::Server;
use support::{Backend, TestApp, TestDatabase};

const PREDICT: &str = "/api/v1/models/21/predict";

#[tokio::test]
async fn a_full_outbox_drops_exactly_what_it_cannot_hold_and_says_so() {
    let (app, proxy) = TestApp::behind_postgres_proxy(|c| {
        // Room for a handful of records.
        c.events.outbox_max_bytes = 3000;
        c.events.outbox_segment_bytes = 1000;
    })
    .await;
    let key = app.predict_key().await;
    let body = json!({"inputs": {}});
    assert_eq!(app.post_json(PREDICT, &key, &body).await.status(), 200);
    wait_for_rows(&app.db_url, 1, Duration::from_secs(5)).await;

    proxy.set(Fault::Refused);
    let sent = 40;
    for _ in 0..sent {
        assert_eq!(app.post_json(PREDICT, &key, &body).await.status(), 200);
    }
    let base = app.url("");
    let metrics = wait_for_metrics(
        &app.client,
        &base,
        Duration::from_secs(5),
        "every record outboxed or dropped",
        |m| {
            metric(m, "modelgate_events_outboxed_total{sink=\"database\"}")
                + metric(m, "modelgate_events_dropped_total{reason=\"outbox_full\"}")
                >= sent as f64
        },
    )
    .await;
    let dropped = metric(
        &metrics,
        "modelgate_events_dropped_total{reason=\"outbox_full\"}",
    );
    assert!(
        dropped > 0.0 && dropped < sent as f64,
        "some kept, some dropped: {dropped}"
    );
    assert!(metric(&metrics, "modelgate_events_outbox_bytes") <= 3000.0);
    let health: Value = app.get("/health", None).await.json().await.expect("health");
    assert_eq!(
        health["checks"]["outbox"]["status"], "unhealthy",
        "{health}"
    );
    assert_eq!(
        health["checks"]["outbox"]["impact"],
        "outbox full: records are being dropped"
    );
    assert_eq!(health["status"], "degraded");

    proxy.set(Fault::None);
    wait_for_metrics(
        &app.client,
        &base,
        Duration::from_secs(10),
        "outbox drained",
        |m| metric(m, "modelgate_events_outbox_bytes") == 0.0,
    )
    .await;
    let stored = log_rows(&app.db_url).await.len();
    let metrics = metrics_at(&app.client, &base).await;
    assert_eq!(
        metric(
            &metrics,
            "modelgate_events_dropped_total{reason=\"outbox_full\"}"
        ),
        (sent + 1 - stored) as f64,
        "the drop counter is exactly the records that never arrived"
    );
    let health: Value = app.get("/health", None).await.json().await.expect("health");
    assert_eq!(health["checks"]["outbox"]["status"], "healthy", "{health}");
    app.stop().await;
}

/// A record as an earlier run would have written it, a moment ago: one older than
/// `events.retention` would be removed by the pruner as soon as it landed.
fn record(seq: u64) -> Value {
    json!({
        "id": uuid::Uuid::now_v7().to_string(), "instance": "earlier-run", "seq": seq,
        "api_key_id": "k", "model_id": "21", "model_version": "1", "inputs": {}, "outputs": {"score": 1},
        "truncated": false, "latency_ms": 0.5, "status": "ok", "created_at": chrono::Utc::now().to_rfc3339()
    })
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn a_torn_tail_left_by_a_crash_is_skipped_and_the_rest_replayed() {
    let dir = tempfile::tempdir().expect("dir");
    let outbox = dir.path().join("outbox");
    let segment_dir = outbox.join("database");
    std::fs::create_dir_all(&segment_dir).expect("mkdir");
    let (first, second) = (record(1), record(2));
    let mut bytes = frame(first.to_string().as_bytes());
    bytes.extend(frame(second.to_string().as_bytes()));
    let torn = frame(record(3).to_string().as_bytes());
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(segment_dir.join("00000000000000000007.seg"), bytes).expect("write segment");

    let outbox_for_app = outbox.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.events.outbox_dir = outbox_for_app
    })
    .await;
    let rows = wait_for_rows(&app.db_url, 2, Duration::from_secs(5)).await;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            first["id"].as_str().expect("id"),
            second["id"].as_str().expect("id")
        ]
    );
    let base = app.url("");
    let metrics = wait_for_metrics(
        &app.client,
        &base,
        Duration::from_secs(5),
        "outbox drained",
        |m| metric(m, "modelgate_events_outbox_bytes") == 0.0,
    )
    .await;
    assert_eq!(
        metric(&metrics, "modelgate_events_outbox_corrupt_total"),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "modelgate_events_replayed_total{sink=\"database\"}"
        ),
        2.0
    );
    app.stop().await;
}

fn serve(dir: &std::path::Path, db_url: &str) -> Server {
    let mut command = support::modelgate_command(dir);
    command
        .env("MODELGATE_DATABASE_URL", db_url)
        .env("MODELGATE_EVENTS_OUTBOX_DIR", dir.join("outbox"))
        .env("MODELGATE_DATABASE_TIMEOUT", "150ms")
        .env("MODELGATE_BREAKER_COOLDOWN", "300ms");
    Server::serve(command)
}

// Several threads: the proxy keeps forwarding while this test blocks on the child's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_the_outbox_survive_kill_9() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let proxy = ChaosProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let proxied = db.url.replace("127.0.0.1:5432", &proxy.addr().to_string());
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();

    let server = serve(dir.path(), &proxied);
    let created = support::modelgate_command(dir.path())
        .env("MODELGATE_DATABASE_URL", &db.url)
        .args(["keys", "create", "--name", "events", "--json"])
        .output()
        .expect("keys create");
    let created: Value = serde_json::from_slice(&created.stdout).expect("key json");
    let key = created["key"].as_str().expect("key").to_string();
    let base = server.base.clone();
    let body = json!({"inputs": {}});
    let first = predict_at(&client, &base, &key, &body).await;
    assert_eq!(first.status, 200);
    let mut ids = vec![first.log_id().await.expect("id")];
    wait_for_rows(&db.url, 1, Duration::from_secs(5)).await;

    proxy.set(Fault::Refused);
    for _ in 0..25 {
        let predicted = predict_at(&client, &base, &key, &body).await;
        assert_eq!(predicted.status, 200);
        ids.push(predicted.log_id().await.expect("id"));
    }
    wait_for_metrics(
        &client,
        &base,
        Duration::from_secs(5),
        "25 records in the outbox",
        |m| metric(m, "modelgate_events_outboxed_total{sink=\"database\"}") >= 25.0,
    )
    .await;
    drop(server); // SIGKILL: no shutdown, no flush.
    assert_eq!(log_rows(&db.url).await.len(), 1);

    proxy.set(Fault::None);
    let _restarted = serve(dir.path(), &proxied);
    let rows = wait_for_rows(&db.url, ids.len(), Duration::from_secs(10)).await;
    let mut stored: Vec<String> = rows.into_iter().map(|r| r.id).collect();
    stored.sort();
    ids.sort();
    assert_eq!(stored, ids, "every record, once");
}
