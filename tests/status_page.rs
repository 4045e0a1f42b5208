//! `GET /status` and `GET /status/stats`: access rules over plain HTTP, and the page itself
//! in headless Chromium (tests/browser/status_page.mjs) while its Redis goes away.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use modelgate::auth::Scope;
use serde_json::{json, Value};
use support::chaos::{ChaosProxy, Fault};
use support::{problem, repo_path, Backend, TestApp, REDIS};

const PREDICT: &str = "/api/v1/models/21/predict";
const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn stats_count_api_traffic_but_not_monitoring_polls() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    for _ in 0..3 {
        let response = app.post_json(PREDICT, &key, &json!({"inputs": {}})).await;
        assert_eq!(response.status(), 200);
    }
    for path in ["/health", "/health/live", "/ready", "/metrics", "/status"] {
        assert_eq!(app.get(path, None).await.status(), 200, "{path}");
    }
    let response = app.get("/status/stats", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let stats: Value = response.json().await.expect("json");
    assert_eq!(stats["window_s"], 60);
    assert_eq!(stats["requests"], 3, "{stats}");
    assert_eq!(stats["errors_5xx"], 0);
    assert_eq!(stats["error_ratio"], 0.0);
    assert!(stats["requests_per_s"].as_f64().is_some_and(|r| r > 0.0));
    assert!(stats["p99_ms"].as_f64().is_some_and(|p| p > 0.0), "{stats}");
    app.stop().await;
}

#[tokio::test]
async fn page_is_self_contained_html_locked_to_this_server() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.status.refresh = Duration::from_millis(1500);
    })
    .await;
    let response = app.get("/status", None).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let html = response.text().await.expect("body");
    assert!(html.contains(r#"<meta name="modelgate-refresh-ms" content="1500">"#));
    let spec: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    for path in ["/status", "/status/stats"] {
        assert!(
            spec["paths"][path]["get"].is_object(),
            "{path} undocumented"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn disabled_status_is_not_found_for_everyone() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.status.enabled = false).await;
    let admin = app.key(&[Scope::Admin]).await;
    for path in ["/status", "/status/stats"] {
        for key in [None, Some(admin.as_str())] {
            let response = app.get(path, key).await;
            assert_eq!(response.status(), 404, "{path} with key: {}", key.is_some());
            assert_eq!(problem(response).await["code"], "not_found");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn require_admin_needs_an_admin_key() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.status.require_admin = true).await;
    let admin = app.key(&[Scope::Admin]).await;
    let predict = app.predict_key().await;
    for path in ["/status", "/status/stats"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(problem(response).await["code"], "api_key_required");
        let response = app.get(path, Some(&predict)).await;
        assert_eq!(response.status(), 403, "{path}");
        assert_eq!(problem(response).await["code"], "insufficient_scope");
        assert_eq!(app.get(path, Some(&admin)).await.status(), 200, "{path}");
    }
    // Only the status paths changed: /health stays public.
    assert_eq!(app.get("/health", None).await.status(), 200);
    app.stop().await;
}

/// What the browser test needs, or a failure saying how to get it (it never skips).
fn browser_prerequisites() -> std::path::PathBuf {
    let script_dir = repo_path("tests/browser");
    let hint = "install with `.ci/run`, or: apt-get install -y --no-install-recommends chromium \
                && npm ci --prefix tests/browser";
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing; {hint}"
    );
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing; {hint}"
    );
    script_dir
}

/// One line from the script, within `limit`; its stderr goes straight to the test output.
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    limit: Duration,
) -> String {
    match tokio::time::timeout(limit, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => panic!("the browser script ended early (its error is above)"),
        Ok(Err(e)) => panic!("reading the browser script's output: {e}"),
        Err(_) => panic!("the browser script said nothing for {limit:?}"),
    }
}

#[tokio::test]
async fn page_shows_a_redis_outage_and_a_lost_server_in_chromium() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    let script_dir = browser_prerequisites();
    let started = Instant::now();
    let refresh = Duration::from_secs(1);
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    let redis_url = format!("redis://{}/0", proxy.addr());
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.status.refresh = refresh;
        c.redis.url = Some(redis_url);
        c.health.probe_interval = Duration::from_millis(250);
    })
    .await;
    let key = app.predict_key().await;
    for _ in 0..5 {
        let response = app.post_json(PREDICT, &key, &json!({"inputs": {}})).await;
        assert_eq!(response.status(), 200);
    }
    let mut node = tokio::process::Command::new("node")
        .arg(script_dir.join("status_page.mjs"))
        .arg(format!("http://{}", app.addr))
        .arg(refresh.as_millis().to_string())
        .current_dir(&script_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); install Node.js 20+"));
    let mut stdin = node.stdin.take().expect("stdin");
    let mut lines = tokio::io::BufReader::new(node.stdout.take().expect("stdout")).lines();
    // Chromium's first start takes a few seconds on a small machine.
    let first = Duration::from_secs(45);
    let step = Duration::from_secs(20);

    assert_eq!(next_line(&mut lines, first).await, "READY healthy");
    proxy.set(Fault::Refused);
    stdin
        .write_all(b"redis-refused\n")
        .await
        .expect("to script");

    assert_eq!(next_line(&mut lines, step).await, "READY redis-down");
    app.stop().await;
    stdin
        .write_all(b"server-stopped\n")
        .await
        .expect("to script");

    let result = next_line(&mut lines, step).await;
    let status = tokio::time::timeout(step, node.wait())
        .await
        .expect("the browser script exits")
        .expect("exit status");
    assert!(status.success(), "the browser script failed: {status}");
    let summary: Value = serde_json::from_str(result.strip_prefix("RESULT ").expect("RESULT"))
        .expect("summary json");
    eprintln!(
        "status page in Chromium: {summary} (whole test {:?})",
        started.elapsed()
    );
}
