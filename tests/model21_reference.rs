//! Served probabilities equal scikit-learn's, row by row, for the forest (Model 21), a
//! gradient-boosting model (native evaluator) and a logistic regression (tract).

mod support;

use serde_json::{json, Value};
use support::{repo_path, Backend, TestApp};

const TOLERANCE: f64 = 1e-5;

/// A models folder serving each reference graph under Model 21's manifest.
fn reference_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let manifest = std::fs::read_to_string(repo_path("models/21/model.toml")).expect("manifest");
    let graphs = [
        ("forest", repo_path("models/21/model.onnx")),
        (
            "boosting",
            repo_path("tests/fixtures/model21/boosting.onnx"),
        ),
        (
            "logistic",
            repo_path("tests/fixtures/model21/logistic.onnx"),
        ),
    ];
    for (id, graph) in graphs {
        let folder = dir.path().join(id);
        std::fs::create_dir_all(&folder).expect("folder");
        let text = manifest.replace(
            "file = \"model.onnx\"",
            &format!("file = {:?}", graph.display().to_string()),
        );
        assert_ne!(text, manifest, "manifest must name its file");
        std::fs::write(folder.join("model.toml"), text).expect("write manifest");
    }
    dir
}

#[tokio::test]
async fn served_probabilities_match_scikit_learn() {
    let models = reference_models();
    let path = models.path().to_path_buf();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| c.models_dir = path).await;
    let key = app.predict_key().await;
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/fixtures/model21/reference.json"))
            .expect("fixture"),
    )
    .expect("fixture json");
    let rows = fixture["rows"].as_array().expect("rows");
    assert!(rows.len() >= 200);

    let engines = [
        ("forest", "native-tree-ensemble"),
        ("boosting", "native-tree-ensemble"),
        ("logistic", "tract"),
    ];
    for (model, engine) in engines {
        let info: Value = app
            .get(&format!("/api/v1/models/{model}/info"), Some(&key))
            .await
            .json()
            .await
            .expect("info");
        assert_eq!(info["engine"], engine, "{model}");
        let mut checked = 0;
        for chunk in rows.chunks(100) {
            let inputs: Vec<&Value> = chunk.iter().map(|r| &r["inputs"]).collect();
            let response = app
                .post_json(
                    &format!("/api/v1/models/{model}/predict"),
                    &key,
                    &json!({"inputs": inputs}),
                )
                .await;
            assert_eq!(response.status(), 200, "{model}");
            let body: Value = response.json().await.expect("json");
            let predictions = body["predictions"].as_array().expect("batch");
            assert_eq!(predictions.len(), chunk.len());
            for (row, predicted) in chunk.iter().zip(predictions) {
                let expected = row[model][1].as_f64().expect("p1");
                let served = predicted["conversion_probability"]
                    .as_f64()
                    .expect("served p1");
                assert!(
                    (served - expected).abs() <= TOLERANCE,
                    "{model}: served {served}, scikit-learn {expected} for {}",
                    row["inputs"]
                );
                let expected_confidence = expected.max(1.0 - expected);
                let confidence = predicted["confidence"].as_f64().expect("confidence");
                assert!((confidence - expected_confidence).abs() <= TOLERANCE);
                checked += 1;
            }
        }
        assert_eq!(checked, rows.len());
    }
    app.stop().await;
}
