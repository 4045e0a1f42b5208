//! A full disk is a fault like any other: with the SQLite database and the outbox each on a
//! small tmpfs, predictions keep being answered; records wait in the outbox while it has room
//! and are dropped (and counted) beyond it; `/health` names the disk and what is lost; once
//! space returns everything resumes without a restart, and nothing on disk is corrupt.
//!
//! Needs root (it mounts tmpfs); fails loudly otherwise.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use support::metrics::{metric, metrics_at};
use support::wait::poll;
use support::{Backend, TestApp, TestDatabase};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path()));
    }

    /// Fills the disk with a ballast file until only about `leave` bytes are free.
    fn fill(&self, leave: u64) {
        let mut ballast = std::fs::File::create(self.path().join("ballast")).expect("ballast");
        let chunk = vec![0u8; 16 * 1024];
        while free(self.path()) > leave + chunk.len() as u64 {
            if ballast.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = ballast.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("run mount");
    assert!(
        output.status.success(),
        "{command:?} failed (this test needs root to mount tmpfs): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free(path: &Path) -> u64 {
    let output = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("df");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

async fn disk_check(app: &TestApp) -> (String, Value) {
    let body: Value = app
        .get("/health", None)
        .await
        .json()
        .await
        .expect("health json");
    let status = body["status"].as_str().unwrap_or_default().to_string();
    (status, body["checks"]["disk"].clone())
}

/// Predicts `count` times at once; every answer must be 200. Returns the records' ids: an
/// answer carries one only when its record was kept (in the journal), so once the outbox's disk
/// is full too, answers come without.
async fn predictions(app: &TestApp, key: &str, count: usize) -> Vec<String> {
    let calls = (0..count).map(|_| app.predict(key));
    let mut ids = Vec::new();
    for predicted in futures::future::join_all(calls).await {
        assert_eq!(predicted.status, 200, "a prediction failed on a full disk");
        ids.extend(predicted.log_id().await);
    }
    ids
}

async fn dropped_for_disk(app: &TestApp) -> f64 {
    let metrics = metrics_at(&app.client, &app.url("")).await;
    metric(
        &metrics,
        "modelgate_events_dropped_total{reason=\"disk_full\"}",
    )
}

#[tokio::test]
async fn a_full_disk_loses_records_countably_and_recovers_without_a_restart() {
    let database_disk = Tmpfs::mount("4m");
    let outbox_disk = Tmpfs::mount("4m");
    let db_dir: PathBuf = database_disk.path().join("db");
    let db_file = db_dir.join("modelgate.db");
    let outbox_dir = outbox_disk.path().join("outbox");
    let mut db = TestDatabase::new(Backend::Sqlite).await;
    db.url = format!("sqlite://{}", db_file.display());
    let app = TestApp::spawn_on(db, |c| {
        c.events.outbox_dir = outbox_dir.clone();
        c.events.outbox_segment_bytes = 64 * 1024;
        c.events.batch_size = 32;
        c.events.flush_interval = Duration::from_millis(10);
    })
    .await;
    let key = app.predict_key().await;
    predictions(&app, &key, 5).await;
    let (status, _) = disk_check(&app).await;
    assert_eq!(status, "healthy");

    // The database's disk full; the outbox's with 2 MiB to spare.
    database_disk.fill(0);
    outbox_disk.fill(2 * 1024 * 1024);
    let waiting = poll(
        Duration::from_secs(30),
        Duration::from_millis(1),
        "the database never reported its disk full",
        async || {
            let ids = predictions(&app, &key, 20).await;
            let (status, disk) = disk_check(&app).await;
            let error = disk["last_error"].as_str().unwrap_or_default().to_string();
            (error.contains("disk full at") && error.contains("wait in the outbox"))
                .then_some((status, error, ids))
        },
    )
    .await;
    let (status, error, _) = waiting;
    assert_eq!(status, "degraded", "{error}");
    assert!(
        error.contains(&db_dir.display().to_string()),
        "names the disk: {error}"
    );
    // These records are answered while the database's disk is full: they wait in the outbox
    // (a record is written after its answer, so the counter says when they are in).
    let outboxed = |m: &str| metric(m, "modelgate_events_outboxed_total{sink=\"database\"}");
    let before = outboxed(&metrics_at(&app.client, &app.url("")).await);
    let outboxed_ids = predictions(&app, &key, 20).await;
    assert_eq!(
        outboxed_ids.len(),
        20,
        "every record kept while the outbox has room"
    );
    support::metrics::wait_for_metrics(
        &app.client,
        &app.url(""),
        Duration::from_secs(10),
        "records outboxed",
        |m| outboxed(m) >= before + 20.0,
    )
    .await;
    assert_eq!(
        dropped_for_disk(&app).await,
        0.0,
        "nothing lost while the outbox has room"
    );

    // Then the outbox's disk fills too: records are dropped, and counted.
    let dropping = poll(
        Duration::from_secs(60),
        Duration::from_millis(1),
        "records were never dropped for a full disk",
        async || {
            predictions(&app, &key, 50).await;
            let (_, disk) = disk_check(&app).await;
            let error = disk["last_error"].as_str().unwrap_or_default().to_string();
            (dropped_for_disk(&app).await > 0.0 && error.contains("being dropped")).then_some(error)
        },
    )
    .await;
    assert!(
        dropping.contains(&outbox_dir.display().to_string()),
        "names the outbox's disk: {dropping}"
    );
    let metrics = metrics_at(&app.client, &app.url("")).await;
    assert!(metric(&metrics, "modelgate_disk_free_bytes{volume=\"outbox\"}") < 1024.0 * 1024.0);

    // Space returns: records flow again, the outbox drains into the database, no restart.
    database_disk.resize("64m");
    outbox_disk.resize("64m");
    let after = predictions(&app, &key, 5).await;
    assert_eq!(after.len(), 5, "records kept again once space returned");
    let started = std::time::Instant::now();
    loop {
        let (status, disk) = disk_check(&app).await;
        let mut missing = Vec::new();
        for id in outboxed_ids.iter().chain(&after) {
            if app.store.inference_owner(id).await.ok().flatten().is_none() {
                missing.push(id.clone());
            }
        }
        if missing.is_empty() && disk["status"] == "healthy" && status != "unhealthy" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "records did not resume once space returned: {} missing, health {status}, disk \
             {disk}\n{}",
            missing.len(),
            app.get("/health", None)
                .await
                .text()
                .await
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = metrics_at(&app.client, &app.url("")).await;
    assert_eq!(
        metric(&metrics, "modelgate_events_outbox_corrupt_total"),
        0.0
    );
    app.stop().await;

    // Nothing on disk is corrupt.
    let mut sqlite = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db_file.display()))
        .await
        .expect("open the database");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut sqlite)
        .await
        .expect("integrity check");
    assert_eq!(check, "ok");
}
