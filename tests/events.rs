//! Inference records: every prediction lands in `inference_logs` and the Redis stream, through
//! the outbox when a sink is down, exactly once after deduplication by id and in `seq` order,
//! without slowing predictions down.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::chaos::{ChaosProxy, Fault};
use support::events::{dedup, delete_stream, log_rows, stream_records, wait_for_rows};
use support::metrics::metric;
use support::{Backend, TestApp, REDIS};

fn lead() -> Value {
    json!({"inputs": {"company_size": 250, "engagement_score": 85, "demo_requested": true,
        "budget_confirmed": true, "industry": "Technology", "decision_timeline": "Q1 2025",
        "title": "VP of Sales"}})
}

/// A prediction of `lead()`; returns its record id.
async fn lead_record_id(app: &TestApp, key: &str) -> String {
    let predicted = app.predict_with(key, &lead()).await;
    predicted.log_id().await.expect("inference_log_id")
}

/// 60 predictions while `fault` keeps `sink` down, each served at once (the key is cached;
/// records are written after the response); then the sink's records wait in the outbox.
/// Returns the records' ids.
async fn predict_through_outage(app: &TestApp, key: &str, fault: Fault, sink: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..60 {
        let predicted = app.predict_with(key, &lead()).await;
        let (status, took) = (predicted.status, predicted.took);
        assert_eq!(
            status, 200,
            "{fault:?}: the key was cached; predictions go on"
        );
        assert!(
            took < Duration::from_millis(100),
            "{fault:?}: predict took {took:?}"
        );
        ids.push(predicted.log_id().await.expect("id"));
    }
    let outboxed = format!("modelgate_events_outboxed_total{{sink=\"{sink}\"}}");
    app.wait_for_metrics(
        Duration::from_secs(5),
        &format!("{fault:?}: a record outboxed"),
        |m| metric(m, &outboxed) >= 1.0,
    )
    .await;
    ids
}

/// Rows must be exactly `ids`, once each, and each instance's `seq` must run 1, 2, 3, ...
fn assert_exactly_once_in_order(rows: &[(String, String, i64)], ids: &[String]) {
    let stored: HashSet<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(stored.len(), rows.len(), "a record arrived twice");
    let expected: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(stored, expected, "records missing or unexpected");
    let mut last: std::collections::HashMap<&str, i64> = Default::default();
    for (_, instance, seq) in rows {
        let previous = last.insert(instance, *seq).unwrap_or(0);
        assert_eq!(
            *seq,
            previous + 1,
            "instance {instance}: seq {seq} after {previous}"
        );
    }
}

async fn records_land_in_the_inference_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.predict_key().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let predicted = app.predict_with(&key, &lead()).await;
        assert_eq!(predicted.status, 200);
        ids.push(predicted.log_id().await.expect("inference_log_id"));
    }
    // A prediction the model refused is recorded too, with the code the client got.
    let refused = app
        .predict_with(&key, &json!({"inputs": {"company_size": "huge"}}))
        .await;
    assert_eq!(refused.status, 422);

    let rows = wait_for_rows(&app.db_url, 6, Duration::from_secs(5)).await;
    assert_eq!(rows.len(), 6);
    let instance = &rows[0].instance;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row.instance, instance, "one instance");
        assert_eq!(row.seq, i as i64 + 1, "seq runs 1, 2, 3, ...");
        assert_eq!(row.model_id, "21");
        assert!(!row.model_version.is_empty());
        assert!(!row.api_key_id.is_empty());
        assert!(!row.truncated);
        let age = chrono::Utc::now().timestamp_millis() - row.created_at;
        assert!(
            (0..60_000).contains(&age),
            "created_at is now (UTC ms), age {age}"
        );
    }
    for (row, id) in rows.iter().zip(&ids) {
        assert_eq!(&row.id, id, "the row id is the response's inference_log_id");
        assert_eq!(row.status, "ok");
        assert_eq!(row.inputs, lead()["inputs"]);
        assert!(row.outputs.is_object(), "outputs: {}", row.outputs);
    }
    let refused = &rows[5];
    assert_eq!(refused.status, "validation_failed");
    assert_eq!(refused.inputs, json!({"company_size": "huge"}));
    assert_eq!(refused.outputs, Value::Null);
    uuid::Uuid::parse_str(&refused.id).expect("a UUID");
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "modelgate_events_written_total{sink=\"database\"}"
        ),
        6.0
    );
    app.stop().await;
}
both_backends!(records_land_in_the_inference_log);

#[tokio::test]
async fn large_payloads_are_truncated_and_flagged() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.events.max_payload_bytes = 40).await;
    let key = app.predict_key().await;
    let predicted = app.predict_with(&key, &lead()).await;
    assert_eq!(predicted.status, 200);
    let id = predicted.log_id().await;
    let rows = wait_for_rows(&app.db_url, 1, Duration::from_secs(5)).await;
    assert_eq!(Some(&rows[0].id), id.as_ref());
    assert!(rows[0].truncated);
    let cut = rows[0]
        .inputs
        .as_str()
        .expect("a truncated payload is its JSON text's start");
    assert!(cut.len() <= 40 && cut.starts_with('{'), "{cut}");
    app.stop().await;
}

#[tokio::test]
async fn records_reach_the_redis_stream_with_id_and_record_fields() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis.url = Some(format!("redis://{REDIS}/0"));
    })
    .await;
    let stream = app.state.config.events.stream.clone();
    let key = app.predict_key().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(lead_record_id(&app, &key).await);
    }
    let started = Instant::now();
    let records = loop {
        let records = stream_records(&stream).await;
        if records.len() >= 4 {
            break records;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stream has {} records",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let got: Vec<&str> = records
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["seq"], i as u64 + 1);
        assert_eq!(record["model_id"], "21");
        assert_eq!(record["status"], "ok");
        assert_eq!(record["inputs"], lead()["inputs"]);
        assert!(
            record["created_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "UTC: {record}"
        );
        assert!(record["instance"].as_str().is_some_and(|i| !i.is_empty()));
    }
    wait_for_rows(&app.db_url, 4, Duration::from_secs(5)).await;
    delete_stream(&stream).await;
    app.stop().await;
}

/// PostgreSQL goes away mid-load and comes back: predictions stay fast, and every record
/// reaches `inference_logs` once, in order.
async fn database_outage_loses_nothing(fault: Fault) {
    let (app, proxy) = TestApp::behind_postgres_proxy(|_| {}).await;
    let key = app.predict_key().await;
    let mut ids = vec![lead_record_id(&app, &key).await];
    wait_for_rows(&app.db_url, 1, Duration::from_secs(5)).await;

    proxy.set(fault);
    ids.extend(predict_through_outage(&app, &key, fault, "database").await);
    assert!(log_rows(&app.db_url).await.len() < ids.len());

    proxy.set(Fault::None);
    let rows = wait_for_rows(&app.db_url, ids.len(), Duration::from_secs(10)).await;
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| (r.id, r.instance, r.seq))
        .collect();
    assert_exactly_once_in_order(&rows, &ids);
    let metrics = app.metrics().await;
    assert!(
        metric(
            &metrics,
            "modelgate_events_replayed_total{sink=\"database\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "modelgate_events_dropped_total{reason=\"outbox_full\"}"
        ),
        0.0
    );
    app.stop().await;
}

#[tokio::test]
async fn database_refused_then_back() {
    database_outage_loses_nothing(Fault::Refused).await;
}

#[tokio::test]
async fn database_silent_then_back() {
    database_outage_loses_nothing(Fault::Silent).await;
}

/// Redis goes away mid-load and comes back: the stream gets every record, in `seq` order
/// once duplicates (allowed: at-least-once) are removed.
async fn redis_outage_loses_nothing(fault: Fault) {
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    let redis_addr = proxy.addr();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(format!("redis://{redis_addr}/0"));
        c.breaker.consecutive_failures = 3;
        c.breaker.cooldown = Duration::from_millis(500);
    })
    .await;
    let stream = app.state.config.events.stream.clone();
    let key = app.predict_key().await;
    let mut ids = vec![lead_record_id(&app, &key).await];

    proxy.set(fault);
    ids.extend(predict_through_outage(&app, &key, fault, "stream").await);

    proxy.set(Fault::None);
    let started = Instant::now();
    let records = loop {
        let records = dedup(&stream_records(&stream).await);
        if records.len() >= ids.len() {
            break records;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{fault:?}: stream has {} of {} records",
            records.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows: Vec<_> = records
        .iter()
        .map(|r| {
            let field = |name: &str| r[name].as_str().expect("string").to_string();
            (
                field("id"),
                field("instance"),
                r["seq"].as_i64().expect("seq"),
            )
        })
        .collect();
    assert_exactly_once_in_order(&rows, &ids);
    // The database never went away: it has them all too.
    wait_for_rows(&app.db_url, ids.len(), Duration::from_secs(5)).await;
    delete_stream(&stream).await;
    app.stop().await;
}

#[tokio::test]
async fn redis_refused_then_back() {
    redis_outage_loses_nothing(Fault::Refused).await;
}

#[tokio::test]
async fn redis_silent_then_back() {
    redis_outage_loses_nothing(Fault::Silent).await;
}

#[tokio::test]
async fn shutdown_writes_out_what_is_still_queued() {
    let mut app = TestApp::spawn_with(Backend::Sqlite, |c| {
        // Records would wait this long for their batch to fill: only shutdown writes them.
        c.events.flush_interval = Duration::from_secs(30);
        c.events.batch_size = 1000;
    })
    .await;
    let key = app.predict_key().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(lead_record_id(&app, &key).await);
    }
    assert!(log_rows(&app.db_url).await.is_empty(), "still queued");
    let db = app.db.take().expect("own database");
    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let rows = log_rows(&db.url).await;
    let stored: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(stored, ids.iter().map(String::as_str).collect::<Vec<_>>());
}
