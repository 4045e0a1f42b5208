//! Usage reports to the remote auth service: one per prediction, after the response, with the
//! inference id as idempotency key; while the billing endpoint fails they wait in the outbox
//! and none is lost or charged twice once it is back.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::auth_stub::AuthStub;
use support::{Backend, TestApp};

/// A prediction's inference id; billing must not slow the request down.
async fn billed_prediction(app: &TestApp, key: &str) -> String {
    let predicted = app.predict(key).await;
    assert_eq!(predicted.status, 200);
    assert!(
        predicted.took < Duration::from_millis(300),
        "billing slowed a request"
    );
    predicted.log_id().await.expect("id")
}

/// Waits until the stub holds a debit for every id in `ids`; returns the distinct ids seen.
async fn debited(stub: &AuthStub, ids: &BTreeSet<String>) -> BTreeSet<String> {
    let started = Instant::now();
    loop {
        let seen: BTreeSet<String> = stub
            .debits()
            .iter()
            .filter_map(|(_, body)| body["idempotency_key"].as_str().map(str::to_string))
            .collect();
        if ids.is_subset(&seen) {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "missing debits: {:?}",
            ids.difference(&seen).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_prediction_is_debited_once_even_across_a_billing_outage() {
    let stub = AuthStub::start().await;
    let key = "mg_usageTestKey0000000000000000000000000000";
    stub.accept(key, "key_usage");
    let url = format!("http://{}", stub.addr);
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.auth.service_url = Some(url);
        c.breaker.cooldown = Duration::from_millis(200);
    })
    .await;

    let mut ids = BTreeSet::new();
    for _ in 0..5 {
        ids.insert(billed_prediction(&app, key).await);
    }
    debited(&stub, &ids).await;
    let (key_id, body) = stub.debits()[0].clone();
    assert_eq!(key_id, "key_usage");
    assert_eq!(body["model_id"], "21");
    assert_eq!(body["endpoint"], "/api/v1/models/21/predict");
    assert_eq!(body["status_code"], 200);
    assert_eq!(body["predictions_count"], 1);
    assert_eq!(body["service_id"], "platform");
    assert!(body["compute_ms"].is_number() && body["response_time_ms"].is_number());

    stub.set_debit_status(503);
    for _ in 0..10 {
        ids.insert(billed_prediction(&app, key).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stub.set_debit_status(200);
    let seen = debited(&stub, &ids).await;
    assert_eq!(seen, ids, "a debit for an inference that never happened");
    // At-least-once delivery, but each inference carries one idempotency key: the service
    // charges it once however many times it arrives.
    assert!(stub.debits().len() >= ids.len());
    app.stop().await;
}
