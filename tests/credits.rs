//! Prepaid keys: one credit per answered prediction, never overdrawn under concurrency, 402 at
//! zero, topped up through the admin API; a store that is down fails them fast with 503.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use modelgate::auth::Scope;
use serde_json::{json, Value};
use support::chaos::Fault;
use support::{problem, Backend, TestApp};

const PREDICT: &str = "/api/v1/models/21/predict";

async fn balance(app: &TestApp, id: &str) -> Option<i64> {
    let record = app.store.find_key(id).await.expect("find key");
    record.expect("key exists").credits
}

async fn concurrent_predictions_never_overdraw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, id) = app.prepaid_key(20).await;
    let body = json!({"inputs": {}});
    let calls = (0..50).map(|_| app.post_json(PREDICT, &key, &body));
    let mut remaining = BTreeSet::new();
    let mut refused = 0;
    for response in join_all(calls).await {
        match response.status().as_u16() {
            200 => {
                let body: Value = response.json().await.expect("json");
                let left = body["metadata"]["credits_remaining"]
                    .as_i64()
                    .expect("left");
                assert!(remaining.insert(left), "balance {left} reported twice");
            }
            402 => {
                assert_eq!(problem(response).await["code"], "insufficient_balance");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(remaining, (0..20).collect::<BTreeSet<i64>>());
    assert_eq!(refused, 30);
    assert_eq!(balance(&app, &id).await, Some(0));
    app.stop().await;
}

both_backends!(concurrent_predictions_never_overdraw);

#[tokio::test]
async fn failed_predictions_give_the_credit_back_and_topups_add() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (key, id) = app.prepaid_key(1).await;
    let invalid = json!({"inputs": {"company_size": "many"}});
    let response = app.post_json(PREDICT, &key, &invalid).await;
    assert_eq!(response.status(), 422);
    let started = Instant::now();
    while balance(&app, &id).await != Some(1) {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "credit not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = app.post_json(PREDICT, &key, &json!({"inputs": {}})).await;
    assert_eq!(response.status(), 200);
    let response = app.post_json(PREDICT, &key, &json!({"inputs": {}})).await;
    assert_eq!(response.status(), 402);

    let admin = app.key(&[Scope::Admin]).await;
    let topup = format!("/api/v1/keys/{id}/topup");
    let response = app.post_json(&topup, &admin, &json!({"credits": 5})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["credits"], 5);
    let response = app.post_json(PREDICT, &key, &json!({"inputs": {}})).await;
    assert_eq!(response.status(), 200);

    for bad in [
        json!({"credits": 0}),
        json!({"credits": -3}),
        json!({"credits": "1"}),
    ] {
        let response = app.post_json(&topup, &admin, &bad).await;
        assert_eq!(response.status(), 422, "{bad}");
    }
    let unmetered = app.predict_key().await;
    let keys: Value = app
        .get("/api/v1/keys", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let unmetered_id = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["credits"].is_null() && k["scopes"] == json!(["predict"]))
        .and_then(|k| k["id"].as_str())
        .expect("an unmetered key")
        .to_string();
    let response = app
        .post_json(
            &format!("/api/v1/keys/{unmetered_id}/topup"),
            &admin,
            &json!({"credits": 5}),
        )
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(problem(response).await["code"], "prepaid_key_not_found");
    // An unmetered key is never charged and says nothing about credits.
    let response = app
        .post_json(PREDICT, &unmetered, &json!({"inputs": {}}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert!(body["metadata"].get("credits_remaining").is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_prepaid_key_fails_fast_while_the_store_is_down() {
    let (app, proxy) = TestApp::behind_postgres_proxy(|_| {}).await;
    let (prepaid, _) = app.prepaid_key(10).await;
    let unmetered = app.predict_key().await;
    for key in [&prepaid, &unmetered] {
        let response = app.post_json(PREDICT, key, &json!({"inputs": {}})).await;
        assert_eq!(response.status(), 200);
    }
    proxy.set(Fault::Refused);
    for _ in 0..5 {
        let started = Instant::now();
        let response = app
            .post_json(PREDICT, &prepaid, &json!({"inputs": {}}))
            .await;
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(problem(response).await["code"], "credits_unavailable");
        // A key that needs nothing from the store keeps working.
        let response = app
            .post_json(PREDICT, &unmetered, &json!({"inputs": {}}))
            .await;
        assert_eq!(response.status(), 200);
    }
}
