//! Models from a real MLflow Model Registry (MLflow 3, SQLite registry, proxied artifacts): a
//! version served by alias, the alias moved under load with no failed request, a broken
//! version refused while the old one serves, starts with the registry down (from the cache,
//! and without one), and the errors an operator reads.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::chaos::{ChaosProxy, Fault};
use support::mlflow::MlflowServer;
use support::predict::Load;
use support::wait::poll;
use support::{repo_path, Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAME: &str = "lead-scoring";
/// Fetching and loading a version takes well under a second; a registry model that has not
/// served in this long is stuck.
const PATIENCE: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(50);

/// A models folder whose model 21 takes its graph from `tracking_uri`'s registered model
/// `NAME` (`selector` is e.g. `alias = "champion"`).
fn registry_models(tracking_uri: &str, selector: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("models dir");
    add_registry_model(dir.path(), "21", tracking_uri, NAME, selector);
    dir
}

fn add_registry_model(models: &Path, id: &str, tracking_uri: &str, name: &str, selector: &str) {
    let manifest = std::fs::read_to_string(repo_path("models/21/model.toml")).expect("manifest");
    let manifest = manifest.replace("file = \"model.onnx\"\n", "");
    let source = format!(
        "\n[source]\nkind = \"mlflow\"\ntracking_uri = \"{tracking_uri}\"\nname = \"{name}\"\n\
         {selector}\npoll_interval = \"1s\"\n"
    );
    std::fs::create_dir_all(models.join(id)).expect("model dir");
    std::fs::write(models.join(id).join("model.toml"), manifest + &source).expect("write");
}

async fn spawn(models: &Path, cache: &Path) -> TestApp {
    let (models, cache) = (models.to_path_buf(), cache.to_path_buf());
    TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.models_dir = models;
        c.models.cache_dir = cache;
        c.models.registry_timeout = Duration::from_millis(300);
        c.health.probe_interval = Duration::from_millis(200);
    })
    .await
}

async fn wait_for_version(app: &TestApp, key: &str, version: &str, patience: Duration) {
    poll(
        patience,
        EVERY,
        format!("version {version} serves"),
        async || {
            let served = app.version_served(key, "/api/v1/models/21/predict").await;
            (served == (200, Some(version.to_string()))).then_some(())
        },
    )
    .await
}

async fn health(app: &TestApp) -> Value {
    app.get("/health", None).await.json().await.expect("json")
}

#[tokio::test]
async fn a_registry_model_follows_its_alias_under_load_and_refuses_a_broken_version() {
    let mlflow = MlflowServer::start();
    let first = mlflow.register(NAME, &repo_path("models/21/model.onnx"), Some("champion"));
    assert_eq!(first, "1");
    let models = registry_models(&mlflow.url(), "alias = \"champion\"");
    let cache = tempfile::tempdir().expect("cache");
    let app = Arc::new(spawn(models.path(), cache.path()).await);
    let key = app.predict_key().await;
    wait_for_version(&app, &key, "1", PATIENCE).await;

    let detail: Value = app
        .get("/api/v1/models/21", Some(&key))
        .await
        .json()
        .await
        .expect("json");
    let serving = &detail["versions"][0];
    assert_eq!(serving["source"], "mlflow");
    assert!(
        serving["location"].as_str().unwrap().contains(NAME),
        "{detail}"
    );
    assert!(cache
        .path()
        .join("21")
        .join(NAME)
        .join("1/model.onnx")
        .is_file());
    assert_eq!(health(&app).await["checks"]["mlflow"]["status"], "healthy");

    // Predictions run without pause while a new version is registered and the alias moves.
    let load = Load::start(&app, &key, "/api/v1/models/21/predict", 6);
    let second = mlflow.register(
        NAME,
        &repo_path("tests/fixtures/model21/boosting.onnx"),
        Some("champion"),
    );
    let moved = Instant::now();
    // The poll interval (1 s) plus 2 s to fetch, load, check and swap.
    wait_for_version(&app, &key, &second, Duration::from_secs(3)).await;
    let took = moved.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let versions = load.stop().await;
    assert!(versions.iter().any(|v| v == "1"));
    assert!(versions.contains(&second));
    eprintln!("alias move to version {second} served after {took:?}");

    // The version it replaced stays loaded and can be pinned.
    let pinned = app
        .version_served(&key, "/api/v1/models/21/versions/1/predict")
        .await;
    assert_eq!(pinned, (200, Some("1".into())));

    // A version whose artifact is damaged in the store never serves.
    let third = mlflow.register(
        NAME,
        &repo_path("tests/fixtures/model21/boosting.onnx"),
        None,
    );
    std::fs::write(mlflow.graph_file(NAME, &third).await, b"not an onnx graph").expect("damage");
    mlflow.set_alias(NAME, "champion", &third).await;
    let check = poll(
        PATIENCE,
        EVERY,
        "the models check names the refusal",
        async || {
            let check = health(&app).await["checks"]["models"].clone();
            (check["status"] == "degraded").then_some(check)
        },
    )
    .await;
    let error = check["last_error"].as_str().expect("error");
    assert!(error.contains("model 21"), "{error}");
    assert!(
        error.contains(&format!("version {second} keeps serving")),
        "{error}"
    );
    assert_eq!(
        app.version_served(&key, "/api/v1/models/21/predict").await,
        (200, Some(second.clone()))
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&format!(
            r#"modelgate_model_version_info{{model="21",version="{second}",source="mlflow"}} 1"#
        )),
        "{metrics}"
    );

    // Pointing the alias back at the serving version ends the refusal's warning.
    mlflow.set_alias(NAME, "champion", &second).await;
    poll(PATIENCE, EVERY, "the refusal is over", async || {
        (health(&app).await["checks"]["models"]["status"] == "healthy").then_some(())
    })
    .await;

    // Rolling back is moving the alias back.
    mlflow.set_alias(NAME, "champion", "1").await;
    wait_for_version(&app, &key, "1", PATIENCE).await;
    assert_eq!(health(&app).await["checks"]["models"]["status"], "healthy");
}

#[tokio::test]
async fn a_start_with_the_registry_down_serves_the_cached_version_or_says_why_not() {
    let mlflow = MlflowServer::start();
    mlflow.register(NAME, &repo_path("models/21/model.onnx"), Some("champion"));
    let proxy = ChaosProxy::start(
        format!("127.0.0.1:{}", port(&mlflow.url()))
            .parse()
            .expect("addr"),
    )
    .await;
    let proxied = format!("http://{}", proxy.addr());
    let models = registry_models(&proxied, "alias = \"champion\"");
    let cache = tempfile::tempdir().expect("cache");

    // A first instance fills the cache.
    let first = spawn(models.path(), cache.path()).await;
    let key = first.predict_key().await;
    wait_for_version(&first, &key, "1", PATIENCE).await;
    first.stop().await;

    // The registry drops packets: the next instance serves the cached version at once.
    proxy.set(Fault::Silent);
    let started = Instant::now();
    let second = spawn(models.path(), cache.path()).await;
    let ready = second.get("/health/ready", None).await;
    assert_eq!(ready.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let key = second.predict_key().await;
    assert_eq!(
        second
            .version_served(&key, "/api/v1/models/21/predict")
            .await,
        (200, Some("1".into()))
    );
    let mlflow_check = poll(
        PATIENCE,
        EVERY,
        "health shows the registry down",
        async || {
            let check = health(&second).await["checks"]["mlflow"].clone();
            (check["status"] == "unhealthy").then_some(check)
        },
    )
    .await;
    let impact = mlflow_check["impact"].as_str().expect("impact");
    assert!(impact.contains("not picked up"), "{impact}");
    assert!(
        impact.contains("serving model 21 version 1 (fetched 20"),
        "{impact}"
    );
    assert_eq!(
        health(&second).await["checks"]["models"]["status"],
        "healthy"
    );
    second.stop().await;

    // Without a cached version the model is not ready, and health says which and why.
    let empty = tempfile::tempdir().expect("empty cache");
    let third = spawn(models.path(), empty.path()).await;
    let ready = third.get("/health/ready", None).await;
    assert_eq!(ready.status(), 503);
    let reason: Value = ready.json().await.expect("json");
    let reason = reason["reason"].as_str().expect("reason").to_string();
    assert!(
        reason.contains("model 21") && reason.contains(NAME),
        "{reason}"
    );
    let key = third.predict_key().await;
    let refused = third
        .post_json("/api/v1/models/21/predict", &key, &json!({"inputs": {}}))
        .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(support::problem(refused).await["code"], "model_not_ready");
    // Once the registry answers, the model serves and the instance is ready.
    proxy.set(Fault::None);
    wait_for_version(&third, &key, "1", PATIENCE).await;
    assert_eq!(third.get("/health/ready", None).await.status(), 200);
}

/// `modelgate doctor` checks the registry and resolves each model's alias or stage.
fn doctor_names_the_missing_alias(models: &Path) {
    let home = tempfile::tempdir().expect("home");
    let output = support::modelgate_command(home.path())
        .env("MODELGATE_MODELS_DIR", models)
        .env("MODELGATE_MODELS_CACHE_DIR", home.path().join("cache"))
        .args(["doctor", "--json"])
        .output()
        .expect("doctor");
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    // Only an optional dependency failed.
    assert_eq!(output.status.code(), Some(3), "{report:#}");
    let mlflow = report["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .find(|d| d["name"] == "mlflow")
        .expect("mlflow")
        .clone();
    let steps: Vec<(&str, &Value)> = mlflow["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["step"].as_str().unwrap_or_default(), &s["ok"]))
        .collect();
    assert_eq!(
        steps,
        [
            ("dns", &json!(true)),
            ("tcp", &json!(true)),
            ("roundtrip", &json!(true)),
            ("resolve", &json!(false))
        ],
        "{mlflow:#}"
    );
    let verdict = mlflow["verdict"].as_str().expect("verdict");
    assert!(
        verdict.contains("model 21") && verdict.contains("has no alias \"nope\""),
        "{verdict}"
    );
}

fn port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// A registry that refuses every request with 401, as one would the wrong credentials; it
/// keeps each request's head, to show what was sent.
async fn refusing_registry() -> (String, Arc<Mutex<Vec<String>>>) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..read]).into_owned();
                seen.lock().expect("heads").push(head);
                let body =
                    r#"{"error_code": "UNAUTHENTICATED", "message": "credentials required"}"#;
                let answer = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), heads)
}

async fn not_ready_reason(app: &TestApp, key: &str, model: &str) -> String {
    poll(
        PATIENCE,
        EVERY,
        format!("model {model} says why it is not ready"),
        async || {
            let body: Value = app
                .get(&format!("/api/v1/models/{model}/ready"), Some(key))
                .await
                .json()
                .await
                .ok()?;
            let reason = body["reason"].as_str()?.to_string();
            // The first reason is the empty cache's; the registry's answer follows.
            (!reason.contains("none is cached")).then_some(reason)
        },
    )
    .await
}

#[tokio::test]
async fn a_missing_alias_and_refused_credentials_are_named_and_a_stage_serves() {
    let mlflow = MlflowServer::start();
    mlflow.register_in_stage(NAME, &repo_path("models/21/model.onnx"), "Production");
    let models = registry_models(&mlflow.url(), "alias = \"nope\"");
    add_registry_model(
        models.path(),
        "22",
        &mlflow.url(),
        NAME,
        "stage = \"Production\"",
    );
    let cache = tempfile::tempdir().expect("cache");
    let app = spawn(models.path(), cache.path()).await;
    let key = app.predict_key().await;
    let reason = not_ready_reason(&app, &key, "21").await;
    assert!(reason.contains("has no alias \"nope\""), "{reason}");
    poll(PATIENCE, EVERY, "the stage's version serves", async || {
        let served = app.version_served(&key, "/api/v1/models/22/predict").await;
        (served == (200, Some("1".into()))).then_some(())
    })
    .await;
    // A missing alias is this model's problem, not the registry's.
    assert_eq!(health(&app).await["checks"]["mlflow"]["status"], "healthy");
    doctor_names_the_missing_alias(models.path());

    let (refusing, heads) = refusing_registry().await;
    let models = registry_models(&refusing, "alias = \"champion\"");
    let cache = tempfile::tempdir().expect("cache");
    let app = spawn(models.path(), cache.path()).await;
    let key = app.predict_key().await;
    let reason = not_ready_reason(&app, &key, "21").await;
    assert!(reason.contains("refused the credentials"), "{reason}");
    assert!(reason.contains("MLFLOW_TRACKING_TOKEN"), "{reason}");

    // The token is sent as MLflow's clients send it, and shown nowhere.
    let token = "mlflow-token-that-must-not-leak";
    let home = tempfile::tempdir().expect("home");
    let mut doctor = support::modelgate_command(home.path());
    doctor
        .env("MODELGATE_MODELS_DIR", models.path())
        .env("MODELGATE_MODELS_CACHE_DIR", home.path().join("cache"))
        .env("MLFLOW_TRACKING_TOKEN", token)
        .args(["doctor", "--json"]);
    // Awaited, not blocking: the stub registry answers on this test's runtime.
    let output = tokio::process::Command::from(doctor)
        .output()
        .await
        .expect("doctor");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(stdout.contains("refused the credentials"), "{stdout}");
    assert!(
        !stdout.contains(token) && !stderr.contains(token),
        "{stdout}\n{stderr}"
    );
    let bearer = format!("authorization: bearer {token}");
    let sent = heads.lock().expect("heads").clone();
    assert!(
        sent.iter()
            .any(|head| head.to_ascii_lowercase().contains(&bearer)),
        "{sent:?}"
    );
}
