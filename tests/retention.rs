//! events.retention: rows older than the window are pruned in the background (SQLite: batched
//! deletes; PostgreSQL: whole day partitions dropped), newer rows and their outcomes stay.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use modelgate::store::{InferenceLogRow, Store};
use serde_json::json;
use sqlx::Connection;
use support::metrics::metric;
use support::wait::poll;
use support::{Backend, TestApp, TestDatabase};

const OUTCOMES: &str = "/api/v1/outcomes";
const DAY: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Stores one record made `age` ago, as an earlier run would have; returns its id.
async fn old_record(store: &Store, api_key_id: &str, created_at: DateTime<Utc>) -> String {
    let id = uuid::Uuid::now_v7();
    let row = InferenceLogRow {
        id,
        instance: "earlier-run",
        seq: 1,
        api_key_id,
        model_id: "21",
        model_version: "1",
        inputs: "{}",
        outputs: "{}",
        truncated: false,
        latency_ms: 1.0,
        status: "ok",
        protocol: "v1",
        created_at,
    };
    store.insert_inference_logs(&[row]).await.expect("insert");
    id.to_string()
}

/// A prediction through the API, once its record is stored; returns its id.
/// The key id a stored record belongs to.
async fn owner_of(app: &TestApp, id: &str) -> String {
    app.store
        .inference_owner(id)
        .await
        .expect("q")
        .expect("owner")
}

async fn logged_prediction(app: &TestApp, key: &str) -> String {
    let id = app.predict(key).await.log_id().await.expect("logged id");
    poll(
        Duration::from_secs(5),
        Duration::from_millis(20),
        "record never logged",
        async || {
            app.store
                .inference_owner(&id)
                .await
                .expect("query")
                .map(|_| ())
        },
    )
    .await;
    id
}

async fn pruned(app: &TestApp, id: &str) {
    poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        format!("record {id} was not pruned"),
        async || {
            let owner = app.store.inference_owner(id).await.expect("query");
            owner.is_none().then_some(())
        },
    )
    .await;
}

async fn an_outcome_is_recorded(app: &TestApp, key: &str, id: &str) {
    let outcome =
        json!({"inference_log_id": id, "outcome_score": 1.0, "outcome_type": "converted"});
    let response = app.post_json(OUTCOMES, key, &outcome).await;
    assert_eq!(
        response.status(),
        201,
        "outcome for a record inside the window"
    );
}

/// Waits until the metrics count at least `rows` pruned and report the table's size.
async fn pruned_and_measured(app: &TestApp, rows: f64) {
    app.wait_for_metrics(
        Duration::from_secs(10),
        &format!("{rows} rows pruned and the table measured"),
        |m| {
            metric(m, "modelgate_events_pruned_total") >= rows
                && metric(m, "modelgate_events_table_bytes") > 0.0
        },
    )
    .await;
}

fn with_quick_pruning(config: &mut modelgate::config::Config) {
    config.events.retention = Duration::from_secs(30 * 24 * 3600);
    config.events.prune_interval = Duration::from_secs(1);
}

#[tokio::test]
async fn sqlite_prunes_rows_past_the_window_and_keeps_the_rest() {
    let app = TestApp::spawn_with(Backend::Sqlite, with_quick_pruning).await;
    let key = app.predict_key().await;
    let recent = logged_prediction(&app, &key).await;
    // More than one batch of old rows, so that pruning takes several steps.
    let owner = owner_of(&app, &recent).await;
    let mut old = Vec::new();
    for chunk in 0..5 {
        let rows: Vec<String> = (0..1000).map(|i| format!("{chunk}-{i}")).collect();
        let at = Utc::now() - DAY * 40;
        let batch: Vec<InferenceLogRow<'_>> = rows
            .iter()
            .map(|_| InferenceLogRow {
                id: uuid::Uuid::now_v7(),
                instance: "earlier-run",
                seq: 1,
                api_key_id: &owner,
                model_id: "21",
                model_version: "1",
                inputs: "{}",
                outputs: "{}",
                truncated: false,
                latency_ms: 1.0,
                status: "ok",
                protocol: "v1",
                created_at: at,
            })
            .collect();
        old.push(batch[0].id.to_string());
        app.store
            .insert_inference_logs(&batch)
            .await
            .expect("insert");
    }
    let just_inside = old_record(&app.store, &owner, Utc::now() - DAY * 29).await;
    for id in &old {
        pruned(&app, id).await;
    }
    pruned_and_measured(&app, 5000.0).await;
    for id in [&recent, &just_inside] {
        assert!(
            app.store.inference_owner(id).await.expect("q").is_some(),
            "{id} kept"
        );
    }
    an_outcome_is_recorded(&app, &key, &recent).await;
    app.stop().await;
}

#[tokio::test]
async fn zero_retention_keeps_everything() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.events.retention = Duration::ZERO;
        c.events.prune_interval = Duration::from_secs(1);
    })
    .await;
    let ancient = old_record(&app.store, "someone", Utc::now() - DAY * 4000).await;
    // Two ticks of the pruner (one at start, one a second later) go by.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(app
        .store
        .inference_owner(&ancient)
        .await
        .expect("q")
        .is_some());
    app.stop().await;
}

async fn partitions(store: &Store) -> Vec<String> {
    store.inference_log_partitions().await.expect("partitions")
}

fn day_name(at: DateTime<Utc>) -> String {
    format!("inference_logs_p{}", at.format("%Y%m%d"))
}

#[tokio::test]
async fn postgres_drops_old_day_partitions_and_makes_the_coming_ones() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let url = db.url.clone();
    let app = TestApp::spawn_on(db, with_quick_pruning).await;
    let now = Utc::now();
    let made = partitions(&app.store).await;
    for day in 0..=3 {
        assert!(made.contains(&day_name(now + DAY * day)), "{made:?}");
    }
    assert!(
        made.contains(&"inference_logs_default".to_string()),
        "{made:?}"
    );

    // A day 40 days back, as a server running then would have made it, with a record in it;
    // and a record outside every day, which lands in the DEFAULT partition.
    let old_day = (now - DAY * 40)
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(&format!(
        "CREATE TABLE {} PARTITION OF inference_logs FOR VALUES FROM ({}) TO ({})",
        day_name(old_day),
        old_day.timestamp_millis(),
        (old_day + DAY).timestamp_millis()
    ))
    .execute(&mut admin)
    .await
    .expect("old partition");
    let key = app.predict_key().await;
    let recent = logged_prediction(&app, &key).await;
    let owner = owner_of(&app, &recent).await;
    let in_old_day = old_record(&app.store, &owner, old_day + DAY / 2).await;
    let in_default = old_record(&app.store, &owner, now - DAY * 50).await;

    pruned(&app, &in_old_day).await;
    pruned(&app, &in_default).await;
    assert!(!partitions(&app.store).await.contains(&day_name(old_day)));
    assert!(app
        .store
        .inference_owner(&recent)
        .await
        .expect("q")
        .is_some());
    an_outcome_is_recorded(&app, &key, &recent).await;
    pruned_and_measured(&app, 2.0).await;
    app.stop().await;
}

#[tokio::test]
async fn postgres_partitions_an_existing_table_without_losing_rows() {
    let db = TestDatabase::new(Backend::Postgres).await;
    // The database as the release before partitioning left it: a plain table with rows.
    let mut admin = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::migrate!("./migrations")
        .run(&mut admin)
        .await
        .expect("migrate");
    let now = Utc::now();
    for (id, at) in [("old", now - DAY * 3), ("new", now)] {
        sqlx::query(
            "INSERT INTO inference_logs VALUES ($1, 'i', 1, 'k', '21', '1', '{}', '{}', 0, 1.0, 'ok', $2)",
        )
        .bind(id)
        .bind(at.timestamp_millis())
        .execute(&mut admin)
        .await
        .expect("row");
    }
    let url = db.url.clone();
    let app = TestApp::spawn_on(db, |_| {}).await;
    let made = partitions(&app.store).await;
    let before = format!("inference_logs_before_{}", (now + DAY).format("%Y%m%d"));
    assert!(made.contains(&before), "{made:?}");
    assert!(made.contains(&day_name(now + DAY)), "{made:?}");
    assert!(
        !made.contains(&day_name(now)),
        "today is in the converted table: {made:?}"
    );
    for id in ["old", "new"] {
        assert_eq!(
            app.store.inference_owner(id).await.expect("q").as_deref(),
            Some("k")
        );
    }
    // New records go in beside them; a replay of a stored one inserts nothing.
    let key = app.predict_key().await;
    let recent = logged_prediction(&app, &key).await;
    let replayed = old_record(&app.store, "k", now).await;
    let again = InferenceLogRow {
        id: replayed.parse().expect("uuid"),
        instance: "earlier-run",
        seq: 1,
        api_key_id: "k",
        model_id: "21",
        model_version: "1",
        inputs: "{}",
        outputs: "{}",
        truncated: false,
        latency_ms: 1.0,
        status: "ok",
        protocol: "v1",
        created_at: now,
    };
    app.store
        .insert_inference_logs(&[again])
        .await
        .expect("replay");
    let count = |id: String| {
        let url = url.clone();
        async move {
            let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inference_logs WHERE id = $1")
                .bind(id)
                .fetch_one(&mut c)
                .await
                .expect("count");
            n
        }
    };
    assert_eq!(count(recent).await, 1);
    assert_eq!(count(replayed).await, 1);
    app.stop().await;
}
