//! The Open Inference Protocol (V2) as the client most model-serving users already have speaks
//! it: NVIDIA's tritonclient, over HTTP/REST and gRPC, runs
//! tests/python/tritonclient/test_conformance.py against a live server. Metadata, readiness,
//! infer at the client's defaults and with JSON tensors, a full batch that must score exactly
//! as /api/v1 scores it, and every refusal with the status each protocol names for it.
//!
//! Needs the Python environment that `./scripts/prepare` creates from
//! tests/python/tritonclient/requirements.txt; without it the test fails and says so.

mod support;

use std::path::Path;
use std::time::Duration;

use modelgate::auth::{issue_key, NewKey};
use serde_json::{json, Value};
use support::{repo_path, Backend, TestApp};

/// A run takes a few seconds; far more means it hung.
const PATIENCE: Duration = Duration::from_secs(300);

/// Model 21's largest batch: the suite sends exactly this many rows, then one more.
const ROWS: usize = 100;

/// `ROWS` distinct leads, the same on every run: every industry, timeline and title the model
/// encodes (and ones it falls back on), both values of each flag, fractional numbers too, so
/// that each input's encoding shows in the comparison with /api/v1.
fn rows() -> Vec<Value> {
    const INDUSTRIES: [&str; 5] = ["technology", "finance", "healthcare", "retail", "other"];
    const TIMELINES: [&str; 3] = ["Q1 2025", "Q2 2025", "2027"];
    const TITLES: [&str; 4] = ["VP of Sales", "Director", "Manager", "intern"];
    (0..ROWS)
        .map(|i| {
            json!({
                "company_size": 10.0 + (i * 53 % 990) as f64,
                "engagement_score": (i * 29 % 100) as f64 + 0.25 * (i % 4) as f64,
                "website_visits": (i % 25) as f64,
                "email_opens": (i * 7 % 15) as f64,
                "content_downloads": (i % 6) as f64,
                "demo_requested": i % 3 == 0,
                "budget_confirmed": i % 4 < 2,
                "industry": INDUSTRIES[i % INDUSTRIES.len()],
                "decision_timeline": TIMELINES[i % TIMELINES.len()],
                // Divided first, so that title and timeline do not always change together.
                "title": TITLES[(i / 3) % TITLES.len()],
            })
        })
        .collect()
}

async fn issue(app: &TestApp, key: NewKey) -> String {
    issue_key(&app.store, key).await.expect("issue key").key
}

/// /api/v1's predictions for `rows`, in order: what V2 must answer for the same rows.
async fn v1_predictions(app: &TestApp, key: &str, rows: &[Value]) -> Value {
    let response = app
        .post_json("/api/v1/models/21/predict", key, &json!({ "inputs": rows }))
        .await;
    assert_eq!(response.status(), 200, "V1 predicts the rows");
    let mut body: Value = response.json().await.expect("V1 body");
    let predictions = body["predictions"].take();
    assert_eq!(
        predictions.as_array().map(Vec::len),
        Some(rows.len()),
        "one V1 prediction per row"
    );
    predictions
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec(value).expect("json")).expect("write json file");
}

#[tokio::test]
async fn tritonclient_over_http_and_grpc() {
    let python = support::python::program(
        "tritonclient-venv",
        "python",
        "tests/python/tritonclient/requirements.txt",
    );
    let app = TestApp::spawn(Backend::Sqlite).await;
    let grpc_addr = app.grpc_addr.expect("grpc listener");
    let key = app.predict_key().await;
    let limited = issue(
        &app,
        NewKey {
            name: "limited".into(),
            models: Some(vec!["another-model".into()]),
            ..NewKey::default()
        },
    )
    .await;
    // Prepaid and throttled keys change state with each prediction: one per protocol, so that
    // each protocol's first prediction passes and its second is refused.
    let (prepaid_http, _) = app.prepaid_key(1).await;
    let (prepaid_grpc, _) = app.prepaid_key(1).await;
    let throttled = || NewKey {
        name: "throttled".into(),
        rate_limit: Some("1/m".parse().expect("rate limit")),
        ..NewKey::default()
    };
    let throttled_http = issue(&app, throttled()).await;
    let throttled_grpc = issue(&app, throttled()).await;

    let rows = rows();
    let expected = v1_predictions(&app, &key, &rows).await;
    // The files, and anything pytest leaves, stay out of the checkout.
    let workdir = tempfile::tempdir().expect("work dir");
    let rows_file = workdir.path().join("rows.json");
    let expected_file = workdir.path().join("v1_expected.json");
    write_json(&rows_file, &Value::Array(rows));
    write_json(&expected_file, &expected);

    let mut command = tokio::process::Command::new(&python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo_path("tests/python/tritonclient"))
        .env("MODELGATE_HTTP", app.addr.to_string())
        .env("MODELGATE_GRPC", grpc_addr.to_string())
        .env("MODELGATE_KEY", &key)
        .env("MODELGATE_LIMITED_KEY", &limited)
        .env("MODELGATE_PREPAID_KEY_HTTP", &prepaid_http)
        .env("MODELGATE_PREPAID_KEY_GRPC", &prepaid_grpc)
        .env("MODELGATE_THROTTLED_KEY_HTTP", &throttled_http)
        .env("MODELGATE_THROTTLED_KEY_GRPC", &throttled_grpc)
        .env("MODELGATE_ROWS", &rows_file)
        .env("MODELGATE_V1_EXPECTED", &expected_file)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(workdir.path());
    let (status, report) = support::python::run(command, PATIENCE).await;
    assert!(
        status.success(),
        "tritonclient's conformance suite failed ({status}):\n{report}"
    );
    // Nothing in the suite skips: a skip would be a check quietly not made.
    assert!(!report.contains("skipped"), "tests were skipped:\n{report}");
    app.stop().await;
}
