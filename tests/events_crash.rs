//! Acknowledged means durable: under concurrent load, `kill -9` the real binary, restart it on
//! the same outbox folder, and every `inference_log_id` a client received arrives in
//! `inference_logs` and in the Redis stream.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use support::events::{delete_stream, log_rows, undelivered};
use support::predict::{Answer, Barrage};
use support::process::{create_key, Server};
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

/// Predicts from `CLIENTS` clients until `BEFORE_KILL` answers were acknowledged, kills the
/// server mid-load, and returns every id received with a 200, and how many 200s came without one.
async fn load_until_killed(server: Server, key: &str) -> (Vec<String>, usize) {
    let load = Barrage::start(&reqwest::Client::new(), &server.base, key, CLIENTS);
    let started = Instant::now();
    while load.acknowledged() < BEFORE_KILL {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "load did not get {BEFORE_KILL} answers in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Mid-load: the clients are still sending.
    server.kill();
    let answers = load.stop().await;
    let ids: Vec<String> = answers
        .iter()
        .filter_map(|answer| answer.acknowledged().map(String::from))
        .collect();
    let without_id = answers
        .iter()
        .filter(|answer| {
            matches!(
                answer,
                Answer::Answered {
                    status: 200,
                    log_id: None
                }
            )
        })
        .count();
    (ids, without_id)
}

async fn every_acknowledged_record_survives_kill_9(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let stream = support::unique_stream();
    let mut command = support::modelgate_command(dir.path());
    command.env("MODELGATE_DATABASE_URL", &db.url);
    let key = create_key(command, &[]).key;

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
    let missing = undelivered(&db.url, &stream, &wanted, Duration::from_secs(20)).await;
    delete_stream(&stream).await;
    assert_eq!(
        missing,
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
