//! The prediction contract of Model 21 and the HTTP error contract.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{problem, Backend, TestApp};

const PREDICT: &str = "/api/v1/models/21/predict";

fn hot_lead() -> Value {
    json!({
        "company_size": 250, "engagement_score": 85, "website_visits": 30, "email_opens": 20,
        "content_downloads": 6, "demo_requested": true, "budget_confirmed": true,
        "industry": "Technology", "decision_timeline": "Q1 2025", "title": "VP of Sales"
    })
}

fn assert_prediction_shape(p: &Value) {
    let probability = p["conversion_probability"].as_f64().expect("probability");
    assert!((0.0..=1.0).contains(&probability));
    let score = p["lead_score"].as_i64().expect("integer lead_score");
    assert_eq!(score, (probability * 100.0).floor() as i64);
    let expected = if score >= 70 {
        "Hot"
    } else if score >= 40 {
        "Warm"
    } else {
        "Cold"
    };
    assert_eq!(p["recommendation"], expected);
    let confidence = p["confidence"].as_f64().expect("confidence");
    assert!((confidence - probability.max(1.0 - probability)).abs() < 1e-5);
}

#[tokio::test]
async fn single_prediction_has_the_legacy_contract() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let response = app
        .post_json(
            PREDICT,
            &key,
            &json!({"inputs": hot_lead(), "options": {"explain": true}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["model_id"], "21");
    let p = &body["predictions"];
    assert_prediction_shape(p);
    assert_eq!(
        p["factors"],
        json!(["Demo requested", "Budget confirmed", "High engagement"])
    );
    assert_eq!(body["metadata"]["api_version"], "1.0");
    assert_eq!(body["metadata"]["model_version"], "1.0.0");
    assert!(body["metadata"]["api_key_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("key_")));
    assert!(body["metadata"]["latency_ms"]
        .as_f64()
        .is_some_and(|ms| ms >= 0.0));
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert!(timestamp.ends_with('Z'));
    chrono::DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339");
    let id = uuid::Uuid::parse_str(body["inference_log_id"].as_str().expect("id")).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    app.stop().await;
}

#[tokio::test]
async fn factors_follow_the_inputs_in_order() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let cases = [
        (
            json!({"budget_confirmed": true, "engagement_score": 71}),
            json!(["Budget confirmed", "High engagement"]),
        ),
        (
            json!({"demo_requested": true, "engagement_score": 70}),
            json!(["Demo requested"]),
        ),
        (json!({}), json!([])),
    ];
    for (inputs, factors) in cases {
        let body: Value = app
            .post_json(PREDICT, &key, &json!({"inputs": inputs}))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(body["predictions"]["factors"], factors, "{inputs}");
    }
    app.stop().await;
}

#[tokio::test]
async fn defaults_and_unknown_fields() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let explicit = json!({
        "company_size": 0, "engagement_score": 0, "website_visits": 0, "email_opens": 0,
        "content_downloads": 0, "demo_requested": false, "budget_confirmed": false,
        "industry": "Other", "decision_timeline": "someday", "title": ""
    });
    let a: Value = app
        .post_json(PREDICT, &key, &json!({"inputs": {}}))
        .await
        .json()
        .await
        .expect("json");
    let b: Value = app
        .post_json(PREDICT, &key, &json!({"inputs": explicit}))
        .await
        .json()
        .await
        .expect("json");
    let c: Value = app
        .post_json(
            PREDICT,
            &key,
            &json!({"inputs": {"utm_source": "x", "industry": null}}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["predictions"], b["predictions"]);
    assert_eq!(a["predictions"], c["predictions"]);
    app.stop().await;
}

#[tokio::test]
async fn batch_predictions_keep_request_order() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let rows = vec![
        hot_lead(),
        json!({}),
        json!({"engagement_score": 40, "industry": "retail"}),
    ];
    let batch: Value = app
        .post_json(PREDICT, &key, &json!({"inputs": rows}))
        .await
        .json()
        .await
        .expect("json");
    let predictions = batch["predictions"].as_array().expect("array");
    assert_eq!(predictions.len(), 3);
    for (row, predicted) in rows.iter().zip(predictions) {
        assert_prediction_shape(predicted);
        let single: Value = app
            .post_json(PREDICT, &key, &json!({"inputs": row}))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(&single["predictions"], predicted);
    }
    app.stop().await;
}

#[tokio::test]
async fn batch_size_is_bounded() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let full: Vec<Value> = (0..100).map(|_| json!({})).collect();
    assert_eq!(
        app.post_json(PREDICT, &key, &json!({"inputs": full}))
            .await
            .status(),
        200
    );
    for size in [0, 101] {
        let rows: Vec<Value> = (0..size).map(|_| json!({})).collect();
        let response = app.post_json(PREDICT, &key, &json!({"inputs": rows})).await;
        assert_eq!(response.status(), 422, "batch of {size}");
        assert_eq!(problem(response).await["errors"][0]["field"], "inputs");
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_types_are_422_naming_the_field() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let cases = [
        (
            json!({"inputs": {"engagement_score": "high"}}),
            "inputs.engagement_score",
        ),
        (json!({"inputs": {"title": 5}}), "inputs.title"),
        (
            json!({"inputs": {"demo_requested": "yes"}}),
            "inputs.demo_requested",
        ),
        (
            json!({"inputs": [{}, {"industry": ["x"]}]}),
            "inputs[1].industry",
        ),
        (json!({"inputs": [{}, 7]}), "inputs[1]"),
        (json!({"inputs": "everything"}), "inputs"),
        (json!({"options": {}}), "inputs"),
    ];
    for (body, field) in cases {
        let response = app.post_json(PREDICT, &key, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem = problem(response).await;
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
        assert!(problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains(field)));
    }
    app.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_clear_statuses() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.http.body_limit_bytes = 4096).await;
    let key = app.predict_key().await;
    let send = |body: String, content_type: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url(PREDICT))
            .bearer_auth(&key)
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.send()
    };
    let malformed = send("{\"inputs\": ".into(), Some("application/json"))
        .await
        .expect("send");
    assert_eq!(malformed.status(), 422);
    assert_eq!(problem(malformed).await["code"], "invalid_json");
    let not_object = send("[1,2]".into(), Some("application/json"))
        .await
        .expect("send");
    assert_eq!(not_object.status(), 422);
    let text = send("inputs=1".into(), Some("text/plain"))
        .await
        .expect("send");
    assert_eq!(text.status(), 415);
    assert_eq!(problem(text).await["code"], "unsupported_media_type");
    let none = send("{}".into(), None).await.expect("send");
    assert_eq!(none.status(), 415);
    let big = format!("{{\"inputs\": {{\"title\": \"{}\"}}}}", "x".repeat(5000));
    let too_big = send(big, Some("application/json")).await.expect("send");
    assert_eq!(too_big.status(), 413);
    assert_eq!(problem(too_big).await["code"], "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn unknown_model_and_wrong_method() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let response = app
        .post_json("/api/v1/models/99/predict", &key, &json!({"inputs": {}}))
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(problem(response).await["code"], "model_not_found");
    let response = app.get("/api/v1/models/99/info", Some(&key)).await;
    assert_eq!(response.status(), 404);
    let response = app.get(PREDICT, Some(&key)).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(problem(response).await["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn model_listing_and_info() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let list: Value = app
        .get("/api/v1/models", Some(&key))
        .await
        .json()
        .await
        .expect("json");
    let models = list["models"].as_array().expect("models");
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["id"], "21");
    assert_eq!(models[0]["engine"], "native-tree-ensemble");
    let info: Value = app
        .get("/api/v1/models/21/info", Some(&key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(info["version"], "1.0.0");
    assert_eq!(info["kind"], "classifier");
    assert_eq!(info["max_batch_size"], 100);
    let names: Vec<&str> = info["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "company_size",
            "engagement_score",
            "website_visits",
            "email_opens",
            "content_downloads",
            "demo_requested",
            "budget_confirmed",
            "industry",
            "decision_timeline",
            "title"
        ]
    );
    assert_eq!(info["inputs"][0]["type"], "number");
    assert_eq!(info["inputs"][0]["default"], 0);
    assert_eq!(info["outputs"]["score"]["field"], "lead_score");
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let sane = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("send");
    assert_eq!(sane.headers()["x-request-id"], "abc-123");
    let insane = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "a b\"<script>")
        .send()
        .await
        .expect("send");
    let id = insane.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_ne!(id, "a b\"<script>");
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(problem(insane).await["request_id"], id);
    app.stop().await;
}

#[tokio::test]
async fn health_reports_services() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.health.probe_interval = Duration::from_millis(50);
    })
    .await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["services"]["database"], "healthy");
    assert_eq!(body["services"]["models"], "healthy");
    assert_eq!(body["services"]["redis"], "disabled");
    assert_eq!(body["checks"]["models"]["required"], true);
    assert_eq!(body["checks"]["database"]["impact"], "none");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    app.state.store.close().await;
    // The next probe finds the store gone. Cached keys still work, so the service is degraded:
    // still 200 and still ready.
    let started = Instant::now();
    let body = loop {
        let response = app.get("/health", None).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        if body["services"]["database"] == "unhealthy" {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["status"], "degraded");
    let database = &body["checks"]["database"];
    assert_eq!(database["required"], false);
    assert!(database["impact"]
        .as_str()
        .is_some_and(|i| i.contains("503")));
    assert!(database["last_error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    assert!(database["since"].is_string());
    assert_eq!(app.get("/health/ready", None).await.status(), 200);
    // liveness never touches a dependency
    assert_eq!(app.get("/health/live", None).await.status(), 200);
}

#[tokio::test]
async fn readiness_needs_a_model() {
    let empty = tempfile::tempdir().expect("dir");
    let path = empty.path().to_path_buf();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| c.models_dir = path).await;
    assert_eq!(app.get("/health/ready", None).await.status(), 503);
    assert_eq!(app.get("/ready", None).await.status(), 503);
    assert_eq!(app.get("/health", None).await.status(), 503);
    app.stop().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(app.get("/health/ready", None).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let spec: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/api/v1/models/{id}/predict",
        "/api/v1/models",
        "/api/v1/models/{id}/info",
        "/api/v1/keys",
        "/api/v1/keys/{id}",
        "/api/v1/keys/{id}/topup",
        "/api/v1/outcomes",
        "/health",
        "/health/live",
        "/health/ready",
        "/version",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} undocumented");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_text() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    for _ in 0..2 {
        let response = app.post_json(PREDICT, &key, &json!({"inputs": {}})).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.get("/api/v1/models", None).await.status(), 401);
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .is_ok_and(|ct| ct.starts_with("text/plain")));
    let text = response.text().await.expect("text");
    let has = |metric: &str, labels: &[&str]| {
        text.lines()
            .any(|line| line.starts_with(metric) && labels.iter().all(|label| line.contains(label)))
    };
    assert!(
        has(
            "modelgate_http_requests_total",
            &[
                "route=\"/api/v1/models/{id}/predict\"",
                "status=\"200\"",
                "method=\"POST\""
            ]
        ),
        "{text}"
    );
    assert!(has(
        "modelgate_http_requests_total",
        &["route=\"/api/v1/models\"", "status=\"401\""]
    ));
    assert!(has(
        "modelgate_http_request_duration_seconds_bucket",
        &["le=\"0.005\""]
    ));
    assert!(has(
        "modelgate_inference_duration_seconds_bucket",
        &["model=\"21\""]
    ));
    assert!(has("modelgate_auth_lookups_total", &["tier=\"source\""]));
    assert!(has("modelgate_auth_lookups_total", &["tier=\"l1\""]));
    assert!(
        has(
            "modelgate_dependency_call_duration_seconds_bucket",
            &["dependency=\"database\"", "outcome=\"ok\""]
        ),
        "{text}"
    );
    assert!(has("modelgate_dependency_up", &["dependency=\"database\""]));
    assert!(!text.contains(&key), "a key must never reach the metrics");
    app.stop().await;
}
