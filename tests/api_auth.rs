//! Authentication and authorization over HTTP, on both storage backends.

mod support;

use std::time::Duration;

use modelgate::auth::{issue_key, secret, NewKey, Scope};
use serde_json::json;
use support::{problem, Backend, TestApp};

const PREDICT: &str = "/api/v1/models/21/predict";

fn body() -> serde_json::Value {
    json!({"inputs": {"engagement_score": 50}})
}

async fn missing_key_is_401_with_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .client
        .post(app.url(PREDICT))
        .json(&body())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let problem = problem(response).await;
    assert_eq!(problem["code"], "api_key_required");
    assert_eq!(problem["status"], 401);
    assert!(problem["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    app.stop().await;
}
both_backends!(missing_key_is_401_with_challenge);

async fn every_documented_key_location_works(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.predict_key().await;
    let variants = [
        ("authorization", format!("Bearer {key}")),
        ("authorization", format!("bearer {key}")),
        ("authorization", format!("ApiKey {key}")),
        ("authorization", format!("APIKEY {key}")),
        ("x-api-key", key.clone()),
    ];
    for (header, value) in variants {
        let response = app
            .client
            .post(app.url(PREDICT))
            .header(header, &value)
            .json(&body())
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            200,
            "{header}: {}",
            value.split(' ').next().unwrap_or("")
        );
    }
    app.stop().await;
}
both_backends!(every_documented_key_location_works);

async fn unknown_key_is_401_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for _ in 0..2 {
        // The second answer comes from the negative cache and must say the same.
        let response = app
            .post_json(PREDICT, "mg_notARealKey000000000000000000000000", &body())
            .await;
        assert_eq!(response.status(), 401);
        assert_eq!(problem(response).await["code"], "invalid_api_key");
    }
    app.stop().await;
}
both_backends!(unknown_key_is_401_invalid);

async fn revocation_through_admin_api_is_immediate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key(&[Scope::Admin]).await;
    let created: serde_json::Value = app
        .post_json("/api/v1/keys", &admin, &json!({"name": "short-lived"}))
        .await
        .json()
        .await
        .expect("created");
    let key = created["key"].as_str().expect("key").to_string();
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(app.post_json(PREDICT, &key, &body()).await.status(), 200);
    let revoked = app
        .client
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let response = app.post_json(PREDICT, &key, &body()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(problem(response).await["code"], "invalid_api_key");
    let missing = app
        .client
        .delete(app.url("/api/v1/keys/key_nope"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke unknown");
    assert_eq!(missing.status(), 404);
    assert_eq!(problem(missing).await["code"], "key_not_found");
    app.stop().await;
}
both_backends!(revocation_through_admin_api_is_immediate);

async fn revocation_by_another_process_applies_after_cache_ttl(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.auth.cache_ttl = Duration::from_millis(300)).await;
    let issued = issue_key(
        &app.store,
        NewKey {
            name: "cli".into(),
            scopes: vec![],
            rate_limit: None,
            expires_in: None,
            ..NewKey::default()
        },
    )
    .await
    .expect("issue");
    assert_eq!(
        app.post_json(PREDICT, &issued.key, &body()).await.status(),
        200
    );
    // What `modelgate keys revoke` does from another process: write the store only.
    app.store
        .revoke_key(&issued.record.id, chrono::Utc::now())
        .await
        .expect("revoke");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        app.post_json(PREDICT, &issued.key, &body()).await.status(),
        401
    );
    app.stop().await;
}
both_backends!(revocation_by_another_process_applies_after_cache_ttl);

async fn expired_key_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let issued = issue_key(
        &app.store,
        NewKey {
            name: "brief".into(),
            scopes: vec![],
            rate_limit: None,
            expires_in: Some(Duration::from_secs(1)),
            ..NewKey::default()
        },
    )
    .await
    .expect("issue");
    assert_eq!(
        app.post_json(PREDICT, &issued.key, &body()).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Still in the L1 cache: expiry is checked on every request, not only on lookup.
    let response = app.post_json(PREDICT, &issued.key, &body()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(problem(response).await["code"], "invalid_api_key");
    app.stop().await;
}
both_backends!(expired_key_is_refused);

async fn scopes_are_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let predict_only = app.predict_key().await;
    let response = app.get("/api/v1/keys", Some(&predict_only)).await;
    assert_eq!(response.status(), 403);
    assert_eq!(problem(response).await["code"], "insufficient_scope");
    let admin = app.key(&[Scope::Admin]).await;
    assert_eq!(app.get("/api/v1/keys", Some(&admin)).await.status(), 200);
    // admin implies predict
    assert_eq!(app.post_json(PREDICT, &admin, &body()).await.status(), 200);
    app.stop().await;
}
both_backends!(scopes_are_enforced);

async fn key_listing_never_shows_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key(&[Scope::Admin]).await;
    let other = app.predict_key().await;
    let text = app
        .get("/api/v1/keys", Some(&admin))
        .await
        .text()
        .await
        .expect("body");
    assert!(!text.contains(&admin) && !text.contains(&other));
    let listed: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(listed["keys"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}
both_backends!(key_listing_never_shows_keys);

async fn store_failure_is_503_not_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.state.store.close().await;
    let started = std::time::Instant::now();
    let response = app.post_json(PREDICT, &secret::generate(), &body()).await;
    assert!(started.elapsed() < Duration::from_secs(2), "must fail fast");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(problem(response).await["code"], "auth_unavailable");
}
both_backends!(store_failure_is_503_not_401);

#[tokio::test]
async fn query_key_is_refused_unless_enabled() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let response = app
        .client
        .get(app.url(&format!("/api/v1/models?api_key={key}")))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "api_key_in_query");
    assert!(
        !problem.to_string().contains(&key),
        "a key must never be echoed"
    );
    app.stop().await;

    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.auth.allow_query_key = true).await;
    let key = app.predict_key().await;
    let response = app
        .get(&format!("/api/v1/models?api_key={key}"), None)
        .await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn public_paths_are_exact_matches() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/live",
        "/ready",
        "/version",
        "/openapi.json",
    ] {
        assert_eq!(app.get(path, None).await.status(), 200, "{path}");
    }
    for path in [
        "/health/",
        "/health/live/x",
        "/healthz",
        "/versions",
        "/ready/",
        "/api/v1/models",
        "/nope",
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 401, "{path} must need a key");
    }
    let key = app.predict_key().await;
    let response = app.get("/nope", Some(&key)).await;
    assert_eq!(response.status(), 404);
    assert_eq!(problem(response).await["code"], "not_found");
    app.stop().await;
}
