//! PostgreSQL behind a fault-injecting proxy: a sick key store must not leak into requests
//! that do not need it, must fail fast for those that do, and must be used again once healthy.

mod support;

use std::time::{Duration, Instant};

use modelgate::auth::Scope;
use serde_json::json;
use support::chaos::Fault;
use support::{problem, TestApp};

const PREDICT: &str = "/api/v1/models/21/predict";

async fn timed_predict(app: &TestApp, key: &str) -> (u16, Duration, reqwest::Response) {
    let started = Instant::now();
    let response = app.post_json(PREDICT, key, &json!({"inputs": {}})).await;
    (response.status().as_u16(), started.elapsed(), response)
}

async fn store_fault_costs_requests_nothing(fault: Fault) {
    let (app, proxy) = TestApp::behind_postgres_proxy(|_| {}).await;
    let warm = app.key(&[Scope::Predict]).await;
    let cold = app.key(&[Scope::Predict]).await;
    let (status, _, _) = timed_predict(&app, &warm).await;
    assert_eq!(status, 200, "warm key before the fault");

    proxy.set(fault);

    // A key validated before the fault keeps working, fast.
    for _ in 0..20 {
        let (status, took, _) = timed_predict(&app, &warm).await;
        assert_eq!(status, 200, "{fault:?}: warm key");
        assert!(
            took < Duration::from_millis(100),
            "{fault:?}: warm key took {took:?}"
        );
    }
    // A key the cache has never seen cannot be checked: 503 with Retry-After, fast, never 401.
    for attempt in 0..6 {
        let (status, took, response) = timed_predict(&app, &cold).await;
        assert_eq!(status, 503, "{fault:?}: cold key attempt {attempt}");
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(problem(response).await["code"], "auth_unavailable");
        assert!(
            took < Duration::from_millis(300),
            "{fault:?}: cold key took {took:?}"
        );
    }
    assert_eq!(
        app.state.store.dependency().status().breaker,
        modelgate::resilience::BreakerState::Open,
        "{fault:?}: repeated failures must open the breaker so later calls cost nothing"
    );
    let started = Instant::now();
    let health = app.get("/health", None).await;
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(health.status(), 200, "{fault:?}: cached keys still work");
    let health: serde_json::Value = health.json().await.expect("health");
    assert_eq!(health["status"], "degraded", "{fault:?}");
    assert_eq!(
        health["services"]["database"], "unhealthy",
        "{fault:?}: health must say the store is down"
    );

    // Once the fault is gone the store is used again within seconds (breaker recovery).
    let bytes_before = proxy.upstream_bytes();
    proxy.set(Fault::None);
    let healed = Instant::now();
    loop {
        let (status, _, _) = timed_predict(&app, &cold).await;
        if status == 200 {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "{fault:?}: store not used again within 5 s (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        proxy.upstream_bytes() > bytes_before,
        "the store was really asked"
    );
    app.stop().await;
}

#[tokio::test]
async fn flapping() {
    let (app, proxy) = TestApp::behind_postgres_proxy(|_| {}).await;
    let warm = app.key(&[Scope::Predict]).await;
    assert_eq!(timed_predict(&app, &warm).await.0, 200);
    // Keys are issued through the same (soon flapping) store, so issue them first.
    let mut unseen = Vec::new();
    for _ in 0..60 {
        unseen.push(app.key(&[Scope::Predict]).await);
    }
    let flap = proxy.flap(Fault::Silent, Duration::from_millis(250));
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let (status, took, _) = timed_predict(&app, &warm).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(100), "warm key took {took:?}");
        let Some(cold) = unseen.pop() else { break };
        let (status, took, _) = timed_predict(&app, &cold).await;
        assert!(status == 200 || status == 503, "unseen key got {status}");
        assert!(
            took < Duration::from_millis(300),
            "unseen key took {took:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    flap.stop();
    let cold = unseen.pop().expect("a key left for after the flapping");
    let healed = Instant::now();
    while timed_predict(&app, &cold).await.0 != 200 {
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "no recovery after flapping"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn stale_entries_are_served_within_the_horizon_while_the_store_is_down() {
    let (app, proxy) = TestApp::behind_postgres_proxy(|c| {
        c.auth.cache_ttl = Duration::from_millis(300);
        c.auth.stale_horizon = Duration::from_millis(1500);
    })
    .await;
    let key = app.key(&[Scope::Predict]).await;
    assert_eq!(timed_predict(&app, &key).await.0, 200);
    proxy.set(Fault::Silent);
    tokio::time::sleep(Duration::from_millis(400)).await;

    // No longer fresh: the store is asked, cannot answer, and the stale entry is served.
    let (status, took, _) = timed_predict(&app, &key).await;
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(300),
        "stale answer took {took:?}"
    );
    assert!(
        app.state.auth.stale_served() >= 1,
        "stale serving must be counted"
    );

    // Past the horizon the key cannot be vouched for: 503, not 401.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, _, response) = timed_predict(&app, &key).await;
    assert_eq!(status, 503);
    assert_eq!(problem(response).await["code"], "auth_unavailable");
    proxy.set(Fault::None);
    app.stop().await;
}

every_fault!(store_fault_costs_requests_nothing);
