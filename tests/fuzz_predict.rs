//! Random bodies and headers at the predict endpoint: only 2xx/4xx may come back, never a
//! 5xx, a dropped connection or a hang.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use support::{Backend, TestApp};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::String),
        prop_oneof![Just("Technology"), Just("VP of Sales"), Just("Q1 2025")].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("inputs".to_string()),
        Just("options".to_string()),
        Just("engagement_score".to_string()),
        Just("title".to_string()),
        Just("industry".to_string()),
        Just("demo_requested".to_string()),
        "[a-z_]{1,12}",
    ]
}

/// Bodies shaped like predict requests, plus arbitrary JSON and arbitrary bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|inputs| serde_json::json!({ "inputs": inputs })
            .to_string()
            .into_bytes()),
        prop::collection::vec(json_value(), 0..4).prop_map(|rows| {
            serde_json::json!({ "inputs": rows })
                .to_string()
                .into_bytes()
        }),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}

#[test]
fn random_requests_never_get_5xx() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (app, key) = runtime.block_on(async {
        let app = TestApp::spawn(Backend::Sqlite).await;
        let key = app.predict_key().await;
        (app, key)
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = app.url("/api/v1/models/21/predict");
    let mut runner = TestRunner::new(Config {
        cases: 400,
        ..Config::default()
    });
    let strategy = (
        body(),
        any::<bool>(),
        header_value(),
        header_value(),
        prop::option::of(header_value()),
    );
    runner
        .run(
            &strategy,
            |(body, real_key, auth, content_type, request_id)| {
                let mut request = client.post(&url).body(body);
                request = if real_key {
                    request
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                } else {
                    request
                        .header("authorization", auth.as_str())
                        .header("content-type", content_type.as_str())
                };
                if let Some(id) = request_id {
                    request = request.header("x-request-id", id.as_str());
                }
                let status = runtime.block_on(async { request.send().await.map(|r| r.status()) });
                let status = status.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
                prop_assert!(
                    status.is_success() || status.is_client_error(),
                    "status {status}"
                );
                Ok(())
            },
        )
        .expect("every random request gets 2xx/4xx");
    runtime.block_on(app.stop());
}
