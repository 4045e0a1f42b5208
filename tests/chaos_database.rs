//! PostgreSQL behind a fault-injecting proxy: a sick key store must not leak into requests
//! that do not need it, must fail fast for those that do, and must be used again once healthy.

mod support;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use modelgate::auth::Scope;
use support::chaos::Fault;
use support::faults::{
    assert_recovers, assert_unseen_key_answered, assert_warm_key_keeps_working,
    assert_warm_key_served,
};
use support::predict::Predicted;
use support::{problem, TestApp};

async fn store_fault_costs_requests_nothing(fault: Fault) {
    let (app, proxy) = TestApp::behind_postgres_proxy(|_| {}).await;
    let warm = app.key(&[Scope::Predict]).await;
    let cold = app.key(&[Scope::Predict]).await;
    let Predicted { status, .. } = app.predict(&warm).await;
    assert_eq!(status, 200, "warm key before the fault");

    proxy.set(fault);

    // A key validated before the fault keeps working, fast.
    assert_warm_key_keeps_working(&app, &warm, fault).await;
    // A key the cache has never seen cannot be checked: 503 with Retry-After, fast, never 401.
    for attempt in 0..6 {
        let Predicted {
            status,
            took,
            response,
        } = app.predict(&cold).await;
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
        let Predicted { status, .. } = app.predict(&cold).await;
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
    assert_eq!(app.predict(&warm).await.status, 200);
    // Keys are issued through the same (soon flapping) store, so issue them first.
    let mut unseen = Vec::new();
    for _ in 0..60 {
        unseen.push(app.key(&[Scope::Predict]).await);
    }
    proxy
        .while_flapping(async || {
            assert_warm_key_served(&app.predict(&warm).await, "");
            let Some(cold) = unseen.pop() else {
                return ControlFlow::Break(());
            };
            assert_unseen_key_answered(&app.predict(&cold).await);
            ControlFlow::Continue(())
        })
        .await;
    let cold = unseen.pop().expect("a key left for after the flapping");
    assert_recovers(&app, &cold).await;
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
    assert_eq!(app.predict(&key).await.status, 200);
    proxy.set(Fault::Silent);
    tokio::time::sleep(Duration::from_millis(400)).await;

    // No longer fresh: the store is asked, cannot answer, and the stale entry is served.
    let Predicted { status, took, .. } = app.predict(&key).await;
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
    let Predicted {
        status, response, ..
    } = app.predict(&key).await;
    assert_eq!(status, 503);
    assert_eq!(problem(response).await["code"], "auth_unavailable");
    proxy.set(Fault::None);
    app.stop().await;
}

every_fault!(store_fault_costs_requests_nothing);
