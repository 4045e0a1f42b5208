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
    app.stop().await;
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
