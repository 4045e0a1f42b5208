//! Acknowledged means durable: under concurrent load, `kill -9` the real binary, restart it on
//! the same outbox folder, and every `inference_log_id` a client received arrives in
//! `inference_logs` and in the Redis stream.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::events::{delete_stream, log_rows, stream_records};
use support::process::Server;
use support::{Backend, TestDatabase};

const CLIENTS: usize = 16;
/// Acknowledged records before the kill: enough that many are still in memory when it lands.
const BEFORE_KILL: usize = 400;

fn serve(dir: &Path, db_url: &str, stream: &str) -> Server {
    let mut command = support::modelgate_command(dir);
    command
        .env("MODELGATE_DATABASE_URL", db_url)
        .env(
            "MODELGATE_REDIS_URL",
            format!("redis://{}/0", support::REDIS),
        )
        .env("MODELGATE_EVENTS_STREAM", stream)
        .env("MODELGATE_EVENTS_OUTBOX_DIR", dir.join("outbox"))
        // A long batch window: without the journal, up to half a second of acknowledged
        // records would be in memory only when the kill lands.
        .env("MODELGATE_EVENTS_FLUSH_INTERVAL", "500ms");
    Server::serve(command)
}

fn create_key(dir: &Path, db_url: &str) -> String {
    let created = support::modelgate_command(dir)
        .env("MODELGATE_DATABASE_URL", db_url)
        .args(["keys", "create", "--name", "crash", "--json"])
        .output()
        .expect("keys create");
    let created: Value = serde_json::from_slice(&created.stdout).expect("key json");
    created["key"].as_str().expect("key").to_string()
}

/// Predicts from `CLIENTS` tasks until the server dies; returns every id received with a 200,
/// and how many 200s came without one.
async fn load_until_killed(server: Server, key: &str) -> (Vec<String>, usize) {
    let client = reqwest::Client::new();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let without_id = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, base, key) = (client.clone(), server.base.clone(), key.to_string());
            let (ids, without_id, stop) = (ids.clone(), without_id.clone(), stop.clone());
            tokio::spawn(async move {
                let body = json!({"inputs": {}});
                while !stop.load(Ordering::SeqCst) {
                    let Ok(response) = client
                        .post(format!("{base}/api/v1/models/21/predict"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return; // the server is gone
                    };
                    if response.status() != 200 {
                        continue;
                    }
                    let Ok(body) = response.json::<Value>().await else {
                        return; // killed mid-answer: not acknowledged
                    };
                    match body["inference_log_id"].as_str() {
                        Some(id) => ids.lock().expect("ids").push(id.to_string()),
                        None => *without_id.lock().expect("count") += 1,
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while ids.lock().expect("ids").len() < BEFORE_KILL {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "load did not get {BEFORE_KILL} answers in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Mid-load: the clients are still sending.
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    let ids = ids.lock().expect("ids").clone();
    let without_id = *without_id.lock().expect("count");
    (ids, without_id)
}

async fn every_acknowledged_record_survives_kill_9(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let stream = support::unique_stream();
    let key = create_key(dir.path(), &db.url);

    let server = serve(dir.path(), &db.url, &stream);
    let (ids, without_id) = load_until_killed(server, &key).await;
    assert!(ids.len() >= BEFORE_KILL, "{} ids", ids.len());
    assert_eq!(
        without_id, 0,
        "no record was refused: every 200 carries an id"
    );
    let written: HashSet<String> = log_rows(&db.url).await.into_iter().map(|r| r.id).collect();
    let unwritten = ids.iter().filter(|id| !written.contains(*id)).count();
    assert!(
        unwritten > 0,
        "the kill should land while acknowledged records are not yet in the table (a 500 ms batch window)"
    );

    let _restarted = serve(dir.path(), &db.url, &stream);
    let wanted: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(wanted.len(), ids.len(), "ids are unique");
    let started = Instant::now();
    let (mut in_table, mut in_stream);
    loop {
        in_table = log_rows(&db.url)
            .await
            .into_iter()
            .map(|row| row.id)
            .collect::<HashSet<_>>();
        in_stream = stream_records(&stream)
            .await
            .iter()
            .filter_map(|record| record["id"].as_str().map(String::from))
            .collect::<HashSet<_>>();
        if wanted.is_subset(&in_table) && wanted.is_subset(&in_stream) {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    delete_stream(&stream).await;
    let missing_table = wanted.difference(&in_table).count();
    let missing_stream = wanted.difference(&in_stream).count();
    assert_eq!(
        (missing_table, missing_stream),
        (0, 0),
        "of {} acknowledged records, (missing from inference_logs, missing from the stream)",
        wanted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_kill_9_sqlite() {
    every_acknowledged_record_survives_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_kill_9_postgres() {
    every_acknowledged_record_survives_kill_9(Backend::Postgres).await;
}
