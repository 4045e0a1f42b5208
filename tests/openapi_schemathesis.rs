//! Schemathesis, with all its checks, against a live server and the server's own
//! `/openapi.json`: every answer must be one the document describes (status, headers, media
//! type, schema), data the document allows must be accepted and data it forbids refused, no
//! answer may be a 5xx, and links (create a key → revoke it; predict → record the outcome)
//! must work. Its configuration and hooks are in tests/python/.
//!
//! Needs the Python environment that `./scripts/prepare` creates from
//! tests/python/requirements.txt; without it the test fails and says so.

mod support;

use std::time::Duration;

use modelgate::auth::{issue_key, NewKey, Scope};
use support::{repo_path, Backend, TestApp};

/// A run takes some 15 s; far more means it hung.
const PATIENCE: Duration = Duration::from_secs(300);

async fn schemathesis_finds_nothing(backend: Backend) {
    let schemathesis =
        support::python::program("test-venv", "schemathesis", "tests/python/requirements.txt");
    // Records reach the log sooner, so that more outcomes find their prediction.
    // The failed-auth throttle off: schemathesis sends invalid keys on purpose, many of them,
    // and checks each gets 401; after a burst the throttle's 429 would be the right answer
    // (tests/auth_throttle.rs covers it).
    // Generous database deadlines: this run checks the answers' shapes, and on a loaded
    // 2-core CI machine a SQLite write (a credit taken while schemathesis tops keys up) can
    // wait past the 500 ms default, which rightly answers 503 and would read as a finding.
    let app = TestApp::spawn_with(backend, |c| {
        c.events.flush_interval = Duration::from_millis(10);
        c.auth.failed_auth_burst = 0;
        c.database.timeout = Duration::from_secs(5);
        c.database.connect_timeout = Duration::from_secs(5);
    })
    .await;
    // One admin key for every route (admin implies predict), prepaid and rate-limited so that
    // `credits_remaining` and the RateLimit headers are checked too; the limit is never reached.
    let issued = issue_key(
        &app.store,
        NewKey {
            name: "schemathesis".into(),
            scopes: vec![Scope::Admin],
            rate_limit: Some("100000/m".parse().expect("rate limit")),
            credits: Some(1_000_000_000),
            ..NewKey::default()
        },
    )
    .await
    .expect("issue key");
    // Schemathesis keeps caches in its working directory; they do not belong in the checkout.
    let workdir = tempfile::tempdir().expect("work dir");
    let mut command = tokio::process::Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(repo_path("tests/python/schemathesis.toml"))
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--checks", "all", "--no-color"])
        .env("MODELGATE_KEY", &issued.key)
        .env("MODELGATE_KEY_ID", &issued.record.id)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", repo_path("tests/python"))
        .current_dir(workdir.path());
    let (status, report) = support::python::run(command, PATIENCE).await;
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{report}"
    );
    // Exit status 0 also follows a run that selected nothing: make sure every operation ran
    // (but `GET /openapi.json`, which schemathesis does not test in the document it loaded).
    let operations =
        serde_json::from_str::<serde_json::Value>(include_str!("../src/http/openapi.json"))
            .expect("document")["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| item.as_object().map_or(0, |ops| ops.len()))
            .sum::<usize>()
            - 1;
    assert!(
        report.contains(&format!("Tested: {operations}\n")),
        "not all {operations} operations were tested:\n{report}"
    );
    // ...and that predictions were answered (each took one of the key's credits).
    let keys = app.state.store.list_keys().await.expect("list keys");
    let credits = keys
        .iter()
        .find(|k| k.id == issued.record.id)
        .and_then(|k| k.credits)
        .expect("the run's key, prepaid");
    assert!(
        credits < 1_000_000_000,
        "no prediction was answered:\n{report}"
    );
    app.stop().await;
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_sqlite() {
    schemathesis_finds_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_postgres() {
    schemathesis_finds_nothing(Backend::Postgres).await;
}
