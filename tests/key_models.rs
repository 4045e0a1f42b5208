//! Keys limited to some models (issue 13): issued through the admin API, enforced on every
//! model route with 403 `model_not_allowed` (whether or not the model exists), and carried
//! through the shared Redis cache, where the list is signed.

mod support;

use std::path::Path;
use std::time::Duration;

use modelgate::auth::{issue_key, secret, shared_entry, CacheSecret, NewKey, Scope};
use redis::AsyncCommands;
use serde_json::{json, Value};
use support::metrics::metric;
use support::wait::poll;
use support::{direct_redis, problem, repo_path, Backend, TestApp, REDIS};

const KEYS: &str = "/api/v1/keys";
const SECRET: &str = "key-models-test-secret-0123456789abcdef";

/// A models folder holding model 21 twice, as `21` and `22`.
fn two_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("models dir");
    for id in ["21", "22"] {
        let target = dir.path().join(id);
        std::fs::create_dir(&target).expect("model folder");
        for file in ["model.toml", "model.onnx"] {
            std::fs::copy(repo_path("models/21").join(file), target.join(file)).expect("copy");
        }
    }
    dir
}

async fn spawn(backend: Backend, models: &Path) -> TestApp {
    let models = models.to_path_buf();
    TestApp::spawn_with(backend, move |c| c.models_dir = models).await
}

async fn limited_key(app: &TestApp, scopes: &[Scope], models: &[&str]) -> String {
    issue_key(
        &app.store,
        NewKey {
            name: "limited".into(),
            scopes: scopes.to_vec(),
            models: Some(models.iter().map(|m| m.to_string()).collect()),
            ..NewKey::default()
        },
    )
    .await
    .expect("issue key")
    .key
}

fn predict_path(model: &str) -> String {
    format!("/api/v1/models/{model}/predict")
}

fn inputs() -> Value {
    json!({"inputs": {"engagement_score": 50}})
}

/// Every route naming `model`, with its method, as one key sees them.
async fn statuses(app: &TestApp, key: &str, model: &str) -> Vec<(String, u16, Value)> {
    let mut seen = Vec::new();
    for path in [
        predict_path(model),
        format!("/api/v1/models/{model}/versions/1.0.0/predict"),
    ] {
        let response = app.post_json(&path, key, &inputs()).await;
        seen.push(answer(path, response).await);
    }
    for suffix in ["", "/info", "/ready"] {
        let path = format!("/api/v1/models/{model}{suffix}");
        let response = app.get(&path, Some(key)).await;
        seen.push(answer(path, response).await);
    }
    seen
}

async fn answer(path: String, response: reqwest::Response) -> (String, u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (path, status, body)
}

fn assert_all(seen: &[(String, u16, Value)], status: u16, code: Option<&str>) {
    for (path, got, body) in seen {
        assert_eq!(*got, status, "{path}: {body}");
        if let Some(code) = code {
            assert_eq!(body["code"], code, "{path}: {body}");
        }
    }
}

fn listed(body: &Value) -> Vec<String> {
    body["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

async fn a_limited_key_uses_only_its_models(backend: Backend) {
    let models = two_models();
    let app = spawn(backend, models.path()).await;
    let limited = limited_key(&app, &[Scope::Predict], &["21", "gone-by-now"]).await;
    let open = app.predict_key().await;

    assert_all(&statuses(&app, &limited, "21").await, 200, None);
    assert_all(&statuses(&app, &open, "22").await, 200, None);
    // Another model, and one that does not exist: the same 403, so nothing is learned.
    for model in ["22", "no-such-model"] {
        let seen = statuses(&app, &limited, model).await;
        assert_all(&seen, 403, Some("model_not_allowed"));
    }
    let refused = app
        .post_json(&predict_path("22"), &limited, &inputs())
        .await;
    let body = problem(refused).await;
    assert_eq!(body["status"], 403);
    assert!(
        body["detail"].as_str().expect("detail").contains("\"22\""),
        "{body}"
    );
    // An unrestricted key still tells an unknown model apart.
    let unknown = app.get("/api/v1/models/no-such-model", Some(&open)).await;
    assert_eq!(unknown.status(), 404);

    let mine: Value = app
        .get("/api/v1/models", Some(&limited))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed(&mine), ["21"]);
    let all: Value = app
        .get("/api/v1/models", Some(&open))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed(&all), ["21", "22"]);
    app.stop().await;
}
both_backends!(a_limited_key_uses_only_its_models);

/// A refused model costs a prepaid key no credit and a limited rate no request.
#[tokio::test]
async fn a_refused_model_costs_neither_credits_nor_quota() {
    let models = two_models();
    let app = spawn(Backend::Sqlite, models.path()).await;
    let issued = issue_key(
        &app.store,
        NewKey {
            name: "prepaid".into(),
            credits: Some(1),
            rate_limit: Some("1/h".parse().expect("limit")),
            models: Some(vec!["21".into()]),
            ..NewKey::default()
        },
    )
    .await
    .expect("issue key");
    for _ in 0..3 {
        let refused = app
            .post_json(&predict_path("22"), &issued.key, &inputs())
            .await;
        assert_eq!(refused.status(), 403);
    }
    let record = app
        .store
        .find_key(&issued.record.id)
        .await
        .expect("find")
        .expect("key");
    assert_eq!(record.credits, Some(1));
    let response = app
        .post_json(&predict_path("21"), &issued.key, &inputs())
        .await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

/// `admin` grants the admin routes, not every model.
#[tokio::test]
async fn an_admin_key_with_models_is_limited_on_model_routes() {
    let models = two_models();
    let app = spawn(Backend::Postgres, models.path()).await;
    let admin = limited_key(&app, &[Scope::Admin], &["22"]).await;
    assert_eq!(app.get(KEYS, Some(&admin)).await.status(), 200);
    assert_all(&statuses(&app, &admin, "22").await, 200, None);
    assert_all(
        &statuses(&app, &admin, "21").await,
        403,
        Some("model_not_allowed"),
    );
    app.stop().await;
}

async fn the_admin_api_round_trips_models(backend: Backend) {
    let models = two_models();
    let app = spawn(backend, models.path()).await;
    let admin = app.key(&[Scope::Admin]).await;
    let created = app
        .post_json(KEYS, &admin, &json!({"name": "m", "models": ["22", "21"]}))
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert_eq!(created["models"], json!(["22", "21"]));
    let open = app
        .post_json(KEYS, &admin, &json!({"name": "all", "models": null}))
        .await;
    assert_eq!(open.status(), 201);
    let open: Value = open.json().await.expect("json");
    assert!(open.get("models").is_none(), "{open}");

    let list: Value = app
        .get(KEYS, Some(&admin))
        .await
        .json()
        .await
        .expect("list");
    let keys = list["keys"].as_array().expect("keys");
    let find = |id: &Value| keys.iter().find(|k| k["id"] == *id).expect("listed");
    assert_eq!(find(&created["id"])["models"], json!(["22", "21"]));
    assert!(find(&open["id"]).get("models").is_none(), "{list}");

    let key = created["key"].as_str().expect("key");
    assert_eq!(
        app.post_json(&predict_path("22"), key, &inputs())
            .await
            .status(),
        200
    );
    app.stop().await;
}
both_backends!(the_admin_api_round_trips_models);

#[tokio::test]
async fn invalid_model_lists_are_validation_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.key(&[Scope::Admin]).await;
    let keys_before = app.store.count_keys().await.expect("count");
    let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    for models in [
        json!([]),
        json!([""]),
        json!(["21", "21"]),
        json!(["x".repeat(129)]),
        json!(["a\u{0}b"]),
        json!(many),
        json!([21]),
        json!("21"),
    ] {
        let response = app
            .post_json(KEYS, &admin, &json!({"name": "bad", "models": models}))
            .await;
        assert_eq!(response.status(), 422, "{models}");
        let body = problem(response).await;
        assert_eq!(body["code"], "validation_failed", "{models}: {body}");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.iter().any(|f| f.starts_with("models")),
            "{models}: {body}"
        );
    }
    assert_eq!(
        app.store.count_keys().await.expect("count"),
        keys_before,
        "nothing was stored"
    );
    let longest = app
        .post_json(
            KEYS,
            &admin,
            &json!({"name": "ok", "models": ["x".repeat(128)]}),
        )
        .await;
    assert_eq!(longest.status(), 201);
    app.stop().await;
}

async fn bad_signatures(app: &TestApp) -> f64 {
    metric(
        &app.metrics().await,
        "modelgate_auth_cache_rejected_total{reason=\"bad_signature\"}",
    )
}

/// The L2 entry carries the list under the signature; a Redis write that widens it (or drops
/// it) is a forgery, and the key keeps its limits.
#[tokio::test]
async fn the_shared_cache_carries_the_models_and_rejects_a_widening() {
    let models = two_models();
    let path = models.path().to_path_buf();
    let with_redis = move |c: &mut modelgate::config::Config| {
        c.models_dir = path;
        c.redis.url = Some(format!("redis://{REDIS}/0"));
        c.auth.cache_secret = Some(SECRET.into());
    };
    let a = TestApp::spawn_with(Backend::Sqlite, with_redis.clone()).await;
    let key = limited_key(&a, &[Scope::Predict], &["21"]).await;
    assert_eq!(
        a.post_json(&predict_path("21"), &key, &inputs())
            .await
            .status(),
        200
    );
    let entry = shared_entry::entry_key(&secret::hash(&key));
    assert!(entry.starts_with("modelgate:auth:v3:"), "{entry}");
    let mut redis = direct_redis().await;
    let value: String = poll(
        Duration::from_secs(2),
        Duration::from_millis(20),
        "L2 never filled",
        async || {
            let mut redis = direct_redis().await;
            redis.get::<_, Option<String>>(&entry).await.expect("get")
        },
    )
    .await;
    let opened = shared_entry::open(
        &CacheSecret::new(SECRET),
        &secret::hash(&key),
        &value,
        chrono::Utc::now(),
    )
    .expect("a genuine entry");
    assert_eq!(opened.models, Some(vec!["21".to_string()]));

    // Another instance answers from L2 with the list intact.
    let b = TestApp::spawn_sharing(&a, with_redis.clone()).await;
    let refused = b.post_json(&predict_path("22"), &key, &inputs()).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(problem(refused).await["code"], "model_not_allowed");

    // Widened in Redis: rejected, and a fresh instance checks the key at its source.
    let before = bad_signatures(&a).await;
    for widened in [
        value.replace(r#""models":["21"]"#, r#""models":["21","22"]"#),
        value.replace(r#""models":["21"]"#, r#""models":null"#),
    ] {
        assert_ne!(widened, value);
        redis
            .set_ex::<_, _, ()>(&entry, &widened, 60)
            .await
            .expect("plant");
        let c = TestApp::spawn_sharing(&a, with_redis.clone()).await;
        let response = c.post_json(&predict_path("22"), &key, &inputs()).await;
        assert_eq!(response.status(), 403, "{widened}");
        assert_eq!(problem(response).await["code"], "model_not_allowed");
        c.stop().await;
        // C refilled the entry from the store; wait for it so the next plant is not overwritten.
        poll(
            Duration::from_secs(2),
            Duration::from_millis(20),
            "C never refilled L2",
            async || {
                let mut redis = direct_redis().await;
                let now: Option<String> = redis.get(&entry).await.expect("get");
                now.filter(|v| *v != widened)
            },
        )
        .await;
    }
    assert_eq!(bad_signatures(&a).await, before + 2.0);
    b.stop().await;
    a.stop().await;
}
