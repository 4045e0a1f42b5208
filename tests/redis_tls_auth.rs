//! Redis with AUTH and with TLS: real `redis-server` processes started by the test (the
//! machine's Redis binary), certificates made with `openssl`.

mod support;

use std::time::Duration;

use modelgate::resilience::DependencyStatus;
use serde_json::json;
use support::redis_server::{redis_server, tls_server};
use support::{Backend, TestApp};

/// Serves one cold key (one L2 read, then a background fill) and returns Redis's status.
async fn redis_status_after_traffic(app: &TestApp) -> DependencyStatus {
    let key = app.predict_key().await;
    let response = app
        .post_json("/api/v1/models/21/predict", &key, &json!({"inputs": {}}))
        .await;
    assert_eq!(
        response.status(),
        200,
        "Redis trouble must never fail a request"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.redis_status()
}

#[tokio::test]
async fn auth_token_is_used_and_never_shown() {
    let server = redis_server(
        tempfile::tempdir().expect("dir"),
        &["--requirepass".into(), "t0ken-s3cret".into()],
        false,
    );
    let port = server.port;
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(format!("redis://:t0ken-s3cret@127.0.0.1:{port}/0"));
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_some(),
        "authenticated Redis is used: {status:?}"
    );
    assert!(status.last_error.is_none(), "{status:?}");
    app.stop().await;

    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(format!("redis://:wrong-pass@127.0.0.1:{port}/0"));
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    let error = status.last_error.expect("a wrong password is an error");
    assert!(
        !error.contains("wrong-pass"),
        "password leaked into: {error}"
    );
    assert_authentication_failure(&error);
    let health: serde_json::Value = app.get("/health", None).await.json().await.expect("health");
    let shown = health["checks"]["redis"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert_authentication_failure(shown);
    app.stop().await;

    // No password at all: the server's NOAUTH, not a timeout.
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(format!("redis://127.0.0.1:{port}/0"));
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    let error = status.last_error.expect("no password is an error");
    assert!(error.contains("NOAUTH"), "{error}");
    app.stop().await;
}

/// The cause of a refused password, never the timeout it used to be hidden behind.
fn assert_authentication_failure(error: &str) {
    assert!(
        error.to_ascii_lowercase().contains("authentication failed")
            && !error.contains("did not answer"),
        "{error}"
    );
}

/// The WARN line that announces Redis down names the refused password as its cause.
#[test]
fn the_warn_line_says_authentication_failed() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let server = redis_server(
        tempfile::tempdir().expect("dir"),
        &["--requirepass".into(), "t0ken-s3cret".into()],
        false,
    );
    let dir = tempfile::tempdir().expect("dir");
    let mut child = support::modelgate_command(dir.path())
        .envs([
            ("MODELGATE_LISTEN", "127.0.0.1:0"),
            ("MODELGATE_LOG_FORMAT", "json"),
            ("MODELGATE_EVENTS_ENABLED", "false"),
            (
                "MODELGATE_REDIS_URL",
                &format!("redis://:wrong-pass@127.0.0.1:{}/0", server.port),
            ),
        ])
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn modelgate");
    let stderr = child.stderr.take().expect("stderr");
    let (found, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("redis is unhealthy") {
                let _ = found.send(line);
            }
        }
    });
    let line = lines.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a WARN line announced Redis unhealthy");
    let parsed: serde_json::Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(parsed["level"], "WARN", "{line}");
    let error = parsed["fields"]["error"].as_str().unwrap_or_default();
    assert_authentication_failure(error);
    assert!(!line.contains("wrong-pass"), "{line}");
}

#[tokio::test]
async fn tls_verifies_against_the_configured_ca() {
    let (server, ca) = tls_server();
    let url = format!("rediss://localhost:{}/0", server.port);

    let trusted = url.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(trusted);
        c.redis.tls_ca_file = Some(ca);
        c.redis.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_some(),
        "TLS with our CA works: {status:?}"
    );
    app.stop().await;

    // Without our CA, the server's certificate is not trusted: Redis is unusable, requests fine.
    let untrusted = url.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(untrusted);
        c.redis.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_none(),
        "an untrusted certificate must be refused"
    );
    assert!(status.last_error.is_some());
    app.stop().await;

    // The explicit opt-out connects anyway.
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(url);
        c.redis.tls_insecure = true;
        c.redis.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_some(),
        "insecure mode connects: {status:?}"
    );
    app.stop().await;
}
