//! `modelgate probe` against a real server: verdicts, exit status, and the key kept secret.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Backend, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_modelgate");

/// Runs the probe with a clean environment. A broken configuration is set on purpose: the
/// probe must not read it.
async fn probe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MODELGATE_CONFIG", "/nonexistent/modelgate.toml")
        .env("MODELGATE_DATABASE_URL", "mysql://not-supported")
        .arg("probe")
        .args(args)
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("probe finishes")
        .expect("run modelgate probe")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn healthy_server_passes_every_check() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let url = format!("http://{}", app.addr);
    let output = probe(
        &["--url", &url, "--count", "3", "--interval", "100ms"],
        &[("MODELGATE_PROBE_KEY", &key)],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let lines = lines(&output);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        assert!(line.contains("predict=200"), "{line}");
        assert!(line.contains("health=healthy"), "{line}");
        assert!(line.ends_with("  ok"), "{line}");
    }
    assert!(!text(&output).contains(&key), "the key was printed");
    app.stop().await;
}

#[tokio::test]
async fn json_lines_carry_the_same_verdicts() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let url = format!("http://{}", app.addr);
    let output = probe(
        &[
            "--url",
            &url,
            "--key",
            &key,
            "--count",
            "2",
            "--interval",
            "50ms",
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for line in lines(&output) {
        let check: Value = serde_json::from_str(&line).expect("json line");
        assert_eq!(check["ok"], true);
        assert_eq!(check["predict_status"], 200);
        assert_eq!(check["health"], "healthy");
        assert!(check["latency_ms"].as_f64().is_some());
        assert!(check["reason"].is_null());
    }
    assert!(!text(&output).contains(&key), "the key was printed");
    app.stop().await;
}

#[tokio::test]
async fn bad_key_fails_naming_the_code() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = format!("mg_{}", "x".repeat(40));
    let url = format!("http://{}", app.addr);
    let output = probe(&["--url", &url, "--key", &key, "--count", "1"], &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let lines = lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("FAIL invalid_api_key"), "{}", lines[0]);
    assert!(!text(&output).contains(&key), "the key was printed");
    app.stop().await;
}

#[tokio::test]
async fn server_down_fails_fast() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = probe(
        &[
            "--url",
            &url,
            "--key",
            "mg_any",
            "--count",
            "2",
            "--interval",
            "100ms",
        ],
        &[],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let lines = lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert!(line.contains("health=unreachable"), "{line}");
        assert!(line.ends_with("FAIL connection refused"), "{line}");
    }
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test]
async fn slow_prediction_fails_the_check() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let url = format!("http://{}", app.addr);
    let output = probe(
        &[
            "--url",
            &url,
            "--key",
            &key,
            "--count",
            "1",
            "--max-latency",
            "0ms",
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let line = &lines(&output)[0];
    assert!(line.contains("predict=200"), "{line}");
    assert!(line.contains("FAIL latency"), "{line}");
    assert!(line.ends_with("over 0s"), "{line}");
    app.stop().await;
}

#[tokio::test]
async fn bad_usage_exits_2_without_echoing_the_key() {
    let secret = "mg_do_not_print_me";
    for args in [
        vec!["--key", secret],
        vec!["--url", "localhost:8080", "--key", secret],
        vec![
            "--url",
            "http://127.0.0.1:1",
            "--key",
            secret,
            "--count",
            "0",
        ],
        vec![
            "--url",
            "http://127.0.0.1:1",
            "--key",
            secret,
            "--interval",
            "0s",
        ],
        vec![
            "--url",
            "http://127.0.0.1:1",
            "--key",
            secret,
            "--timeout",
            "soon",
        ],
        vec!["--url", "http://127.0.0.1:1", "--key", " "],
    ] {
        let output = probe(&args, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(!text(&output).contains("panicked"), "{}", text(&output));
        assert!(!text(&output).contains(secret), "{args:?} printed the key");
    }
    let help = probe(&["--help"], &[("MODELGATE_PROBE_KEY", secret)]).await;
    assert_eq!(help.status.code(), Some(0));
    assert!(!text(&help).contains(secret), "--help printed the key");
}
