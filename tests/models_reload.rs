//! Models picked up while serving: the folder polled, SIGHUP, the admin endpoint; versions
//! swapped without a failed request, refused when broken, pinned, and readiness per model.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use modelgate::auth::Scope;
use serde_json::{json, Value};
use support::predict::Load;
use support::wait::poll;
use support::{problem, repo_path, Backend, TestApp};

const PATIENCE: Duration = Duration::from_secs(10);
const EVERY: Duration = Duration::from_millis(50);

/// A models folder of its own holding a copy of Model 21.
fn models_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("models dir");
    copy_model(&repo_path("models/21"), &dir.path().join("21"));
    dir
}

fn copy_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("model dir");
    for file in ["model.toml", "model.onnx"] {
        std::fs::copy(from.join(file), to.join(file)).expect("copy model file");
    }
}

/// Replaces `path` whole (write then rename), as a deployment should.
fn replace(path: &Path, contents: impl AsRef<[u8]>) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).expect("write");
    std::fs::rename(&staged, path).expect("rename");
}

/// Sets `version` in `dir/model.toml`.
fn set_version(dir: &Path, version: &str) {
    let manifest = dir.join("model.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let line = text
        .lines()
        .find(|l| l.starts_with("version = "))
        .expect("version line")
        .to_string();
    replace(
        &manifest,
        text.replace(&line, &format!("version = {version:?}")),
    );
}

async fn spawn(models: &Path, poll_interval: Duration) -> TestApp {
    let models = models.to_path_buf();
    TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.models_dir = models;
        c.models.poll_interval = poll_interval;
    })
    .await
}

async fn wait_for_version(app: &TestApp, key: &str, model: &str, version: &str) {
    let path = format!("/api/v1/models/{model}/predict");
    poll(
        PATIENCE,
        EVERY,
        format!("model {model} serves {version}"),
        async || {
            (app.version_served(key, &path).await == (200, Some(version.to_string()))).then_some(())
        },
    )
    .await
}

async fn models_check(app: &TestApp) -> Value {
    let health: Value = app.get("/health", None).await.json().await.expect("json");
    health["checks"]["models"].clone()
}

#[tokio::test]
async fn a_changed_model_is_swapped_and_the_previous_version_stays_pinnable() {
    let models = models_copy();
    let app = spawn(models.path(), Duration::from_millis(100)).await;
    let key = app.predict_key().await;
    wait_for_version(&app, &key, "21", "1.0.0").await;

    set_version(&models.path().join("21"), "1.1.0");
    wait_for_version(&app, &key, "21", "1.1.0").await;

    let pinned = app
        .version_served(&key, "/api/v1/models/21/versions/1.0.0/predict")
        .await;
    assert_eq!(pinned, (200, Some("1.0.0".into())));
    let missing = app
        .post_json(
            "/api/v1/models/21/versions/0.9.0/predict",
            &key,
            &json!({"inputs": {}}),
        )
        .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(problem(missing).await["code"], "model_version_not_found");

    let detail: Value = app
        .get("/api/v1/models/21", Some(&key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(detail["version"], "1.1.0");
    let versions = detail["versions"].as_array().expect("versions");
    let names: Vec<&str> = versions
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(names, ["1.1.0", "1.0.0"]);
    for version in versions {
        assert_eq!(version["source"], "folder");
        assert!(version["checksum"].as_str().unwrap().starts_with("sha256:"));
        assert!(version["loaded_at"].is_string());
    }
    // Only the serving version and the one before it stay loaded.
    set_version(&models.path().join("21"), "1.2.0");
    wait_for_version(&app, &key, "21", "1.2.0").await;
    let gone = app
        .version_served(&key, "/api/v1/models/21/versions/1.0.0/predict")
        .await;
    assert_eq!(gone.0, 404);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"modelgate_model_version_info{model="21",version="1.2.0",source="folder"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"modelgate_model_version_info{model="21",version="1.0.0",source="folder"} 0"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn added_models_appear_and_removed_ones_disappear() {
    let models = models_copy();
    let app = spawn(models.path(), Duration::from_millis(100)).await;
    let key = app.predict_key().await;
    copy_model(&repo_path("models/21"), &models.path().join("22"));
    wait_for_version(&app, &key, "22", "1.0.0").await;
    let listed: Value = app
        .get("/api/v1/models", Some(&key))
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = listed["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["21", "22"]);

    std::fs::remove_dir_all(models.path().join("22")).expect("remove");
    poll(PATIENCE, EVERY, "model 22 is gone", async || {
        let (status, _) = app.version_served(&key, "/api/v1/models/22/predict").await;
        (status == 404).then_some(())
    })
    .await;
    let gone = app
        .post_json("/api/v1/models/22/predict", &key, &json!({"inputs": {}}))
        .await;
    assert_eq!(problem(gone).await["code"], "model_not_found");
    assert_eq!(
        app.version_served(&key, "/api/v1/models/21/predict")
            .await
            .0,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn a_broken_version_never_serves_and_is_named_in_health() {
    let models = models_copy();
    let app = spawn(models.path(), Duration::from_millis(100)).await;
    let key = app.predict_key().await;
    let model = models.path().join("21");
    let good_graph = std::fs::read(model.join("model.onnx")).expect("graph");

    // A truncated graph, as a copy cut short would leave it.
    set_version(&model, "2.0.0");
    replace(
        &model.join("model.onnx"),
        &good_graph[..good_graph.len() / 2],
    );
    let check = poll(
        PATIENCE,
        EVERY,
        "the models check names the refusal",
        async || {
            let check = models_check(&app).await;
            (check["status"] == "degraded").then_some(check)
        },
    )
    .await;
    let error = check["last_error"].as_str().expect("error");
    assert!(error.contains("model 21"), "{error}");
    assert!(error.contains("1.0.0 keeps serving"), "{error}");
    for _ in 0..5 {
        assert_eq!(
            app.version_served(&key, "/api/v1/models/21/predict").await,
            (200, Some("1.0.0".into()))
        );
    }
    let detail: Value = app
        .get("/api/v1/models/21", Some(&key))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        detail["problem"]["error"]
            .as_str()
            .unwrap()
            .contains("ONNX"),
        "{detail}"
    );
    assert_eq!(app.get("/health/ready", None).await.status(), 200);

    // A graph that loads but cannot score its examples is refused too.
    let manifest = std::fs::read_to_string(model.join("model.toml")).expect("manifest");
    replace(&model.join("model.onnx"), &good_graph);
    replace(
        &model.join("model.toml"),
        manifest.replace("industry = \"retail\"", "industry = 7"),
    );
    poll(
        PATIENCE,
        EVERY,
        "the example failure is named",
        async || {
            let error = models_check(&app).await["last_error"].as_str()?.to_string();
            error.contains("example \"cold lead\"").then_some(())
        },
    )
    .await;
    assert_eq!(
        app.version_served(&key, "/api/v1/models/21/predict").await,
        (200, Some("1.0.0".into()))
    );

    // Fixed: the new version serves and health is clean again.
    replace(&model.join("model.toml"), &manifest);
    wait_for_version(&app, &key, "21", "2.0.0").await;
    assert_eq!(models_check(&app).await["status"], "healthy");
    let metrics = app.metrics().await;
    assert!(
        support::metrics::metric(
            &metrics,
            r#"modelgate_model_swaps_total{model="21",outcome="refused"}"#
        ) >= 2.0,
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_new_model_that_cannot_load_is_not_ready_alone() {
    let models = models_copy();
    let app = spawn(models.path(), Duration::from_millis(100)).await;
    let key = app.predict_key().await;
    let broken = models.path().join("22");
    copy_model(&repo_path("models/21"), &broken);
    replace(&broken.join("model.onnx"), b"not a graph");
    let ready = poll(PATIENCE, EVERY, "model 22 shows as not ready", async || {
        let response = app.get("/api/v1/models/22/ready", Some(&key)).await;
        (response.status() == 503).then_some(response)
    })
    .await;
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["ready"], false);
    assert!(body["reason"].as_str().unwrap().contains("ONNX"), "{body}");
    let refused = app
        .post_json("/api/v1/models/22/predict", &key, &json!({"inputs": {}}))
        .await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(problem(refused).await["code"], "model_not_ready");
    // Model 21 serves and the instance stays ready: a bad new model takes nothing down.
    let ready: Value = app
        .get("/api/v1/models/21/ready", Some(&key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        ready,
        json!({"model_id": "21", "ready": true, "version": "1.0.0"})
    );
    assert_eq!(app.get("/health/ready", None).await.status(), 200);
    assert_eq!(models_check(&app).await["status"], "degraded");
    let unknown = app.get("/api/v1/models/nope/ready", Some(&key)).await;
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_admin_endpoint_reloads_when_polling_is_off() {
    let models = models_copy();
    let app = spawn(models.path(), Duration::ZERO).await;
    let key = app.predict_key().await;
    let admin = app.key(&[Scope::Admin]).await;
    set_version(&models.path().join("21"), "3.0.0");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.version_served(&key, "/api/v1/models/21/predict")
            .await
            .1
            .as_deref(),
        Some("1.0.0"),
        "polling is off"
    );
    let forbidden = app
        .client
        .post(app.url("/api/v1/admin/models/reload"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("reload");
    assert_eq!(forbidden.status(), 403);
    let response = app
        .client
        .post(app.url("/api/v1/admin/models/reload"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("reload");
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(
        report,
        json!({"models": [{"model": "21", "outcome": "swapped", "version": "3.0.0", "previous_version": "1.0.0"}]})
    );
    assert_eq!(
        app.version_served(&key, "/api/v1/models/21/predict").await,
        (200, Some("3.0.0".into()))
    );
    app.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_models_of_a_running_server() {
    let models = models_copy();
    let home = tempfile::tempdir().expect("home");
    let mut command = support::modelgate_command(home.path());
    command
        .env("MODELGATE_MODELS_DIR", models.path())
        .env("MODELGATE_MODELS_POLL_INTERVAL", "0");
    let server = support::process::Server::serve(command);
    let key = issue_predict_key(home.path());
    let client = reqwest::Client::new();
    let version = async || {
        let predicted =
            support::predict::predict_at(&client, &server.base, &key, &json!({"inputs": {}})).await;
        assert_eq!(predicted.status, 200);
        let body: Value = predicted.response.json().await.expect("json");
        body["metadata"]["model_version"].as_str().map(String::from)
    };
    assert_eq!(version().await.as_deref(), Some("1.0.0"));
    set_version(&models.path().join("21"), "4.0.0");
    server.signal_hangup();
    poll(PATIENCE, EVERY, "SIGHUP swapped in 4.0.0", async || {
        (version().await.as_deref() == Some("4.0.0")).then_some(())
    })
    .await;
}

/// A predict key made with the CLI, as an operator would.
fn issue_predict_key(home: &Path) -> String {
    let output = support::modelgate_command(home)
        .args([
            "keys", "create", "--name", "reload", "--scope", "predict", "--json",
        ])
        .output()
        .expect("keys create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).expect("json");
    created["key"].as_str().expect("key").to_string()
}

#[tokio::test]
async fn swapping_under_load_fails_no_request() {
    let models = models_copy();
    let app = Arc::new(spawn(models.path(), Duration::from_millis(50)).await);
    let key = app.predict_key().await;
    let load = Load::start(&app, &key, "/api/v1/models/21/predict", 8);
    let model: PathBuf = models.path().join("21");
    for version in ["5.0.0", "5.1.0", "5.2.0"] {
        set_version(&model, version);
        wait_for_version(&app, &key, "21", version).await;
    }
    let versions = load.stop().await;
    for version in ["1.0.0", "5.2.0"] {
        assert!(
            versions.iter().any(|v| v == version),
            "no answer from {version}"
        );
    }
}
