//! `POST /api/v1/outcomes`: only the key that made a logged prediction (or an admin) records
//! its outcome; unknown ids are 404; bad fields are 422; the same type again replaces it.

mod support;

use std::time::{Duration, Instant};

use modelgate::auth::Scope;
use serde_json::{json, Value};
use support::{problem, Backend, TestApp};

const PREDICT: &str = "/api/v1/models/21/predict";
const OUTCOMES: &str = "/api/v1/outcomes";

/// Makes a prediction with `key` and returns its inference_log_id once the record is logged.
async fn logged_prediction(app: &TestApp, key: &str) -> String {
    let response = app.post_json(PREDICT, key, &json!({"inputs": {}})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let id = body["inference_log_id"].as_str().expect("id").to_string();
    let started = Instant::now();
    while app
        .state
        .store
        .inference_owner(&id)
        .await
        .expect("query")
        .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "record never logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    id
}

async fn outcomes_belong_to_the_predicting_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.predict_key().await;
    let stranger = app.predict_key().await;
    let admin = app.key(&[Scope::Admin]).await;
    let id = logged_prediction(&app, &owner).await;
    let outcome =
        json!({"inference_log_id": id, "outcome_score": 1.0, "outcome_type": "converted"});

    let response = app.post_json(OUTCOMES, &stranger, &outcome).await;
    assert_eq!(response.status(), 403);
    assert_eq!(problem(response).await["code"], "inference_not_owned");

    let response = app.post_json(OUTCOMES, &owner, &outcome).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["inference_log_id"], id.as_str());
    assert_eq!(body["outcome_type"], "converted");

    // The same type again replaces the first; an admin may record it too.
    let corrected =
        json!({"inference_log_id": id, "outcome_score": 0.0, "outcome_type": "converted"});
    let response = app.post_json(OUTCOMES, &admin, &corrected).await;
    assert_eq!(response.status(), 201);

    let unknown = json!({
        "inference_log_id": uuid::Uuid::now_v7().to_string(),
        "outcome_score": 1.0,
        "outcome_type": "converted",
    });
    let response = app.post_json(OUTCOMES, &owner, &unknown).await;
    assert_eq!(response.status(), 404);
    assert_eq!(problem(response).await["code"], "inference_not_found");
    app.stop().await;
}

both_backends!(outcomes_belong_to_the_predicting_key);

#[tokio::test]
async fn bad_outcomes_are_422_naming_the_field() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let id = uuid::Uuid::now_v7().to_string();
    let cases = [
        (
            json!({"inference_log_id": "nope", "outcome_score": 1, "outcome_type": "x"}),
            "inference_log_id",
        ),
        (
            json!({"inference_log_id": id, "outcome_score": "high", "outcome_type": "x"}),
            "outcome_score",
        ),
        (
            json!({"inference_log_id": id, "outcome_score": 1, "outcome_type": ""}),
            "outcome_type",
        ),
        (
            json!({"inference_log_id": id, "outcome_score": 1, "outcome_type": "a b"}),
            "outcome_type",
        ),
        (
            json!({"inference_log_id": id, "outcome_score": 1}),
            "outcome_type",
        ),
    ];
    for (body, field) in cases {
        let response = app.post_json(OUTCOMES, &key, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem = problem(response).await;
        let named = problem["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(named.contains(field), "{body}: {problem}");
    }
    let response = app
        .post_json(
            OUTCOMES,
            &key,
            &json!({"inference_log_id": id, "outcome_score": 1, "outcome_type": "x"}),
        )
        .await;
    assert_eq!(response.status(), 404, "a valid body for an unknown id");
    app.stop().await;
}

/// A UUID is one id in any of its spellings: the outcome finds the prediction logged in the
/// hyphenated lowercase form.
#[tokio::test]
async fn any_spelling_of_the_inference_id_finds_the_prediction() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let id = logged_prediction(&app, &key).await;
    for spelling in [
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
    ] {
        let outcome = json!({"inference_log_id": spelling, "outcome_score": 1.0, "outcome_type": "converted"});
        let response = app.post_json(OUTCOMES, &key, &outcome).await;
        assert_eq!(response.status(), 201, "{spelling}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["inference_log_id"], id.as_str(), "{spelling}");
    }
    app.stop().await;
}
