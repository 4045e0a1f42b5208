//! Redis (the shared L2 cache) behind a fault-injecting proxy: Redis is optional, so its
//! faults must cost requests nothing, and it must be used again once healthy. Also: revocation
//! reaches every instance through Redis pub/sub.

mod support;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use modelgate::auth::{secret, shared_entry};
use modelgate::resilience::BreakerState;
use redis::AsyncCommands;
use serde_json::{json, Value};
use support::chaos::{ChaosProxy, Fault};
use support::faults::assert_warm_key_keeps_working;
use support::predict::Predicted;
use support::wait::poll;
use support::{direct_redis, Backend, TestApp, REDIS};

async fn app_with_redis(redis_addr: String) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(format!("redis://{redis_addr}/0"));
        c.breaker.consecutive_failures = 3;
        c.breaker.cooldown = Duration::from_millis(500);
    })
    .await
}

fn redis_breaker(app: &TestApp) -> BreakerState {
    app.redis_status().breaker
}

async fn redis_fault_costs_requests_nothing(fault: Fault) {
    let mut direct = direct_redis().await;
    let redis_addr = REDIS.parse().expect("addr");
    let proxy = ChaosProxy::start(redis_addr).await;
    let app = app_with_redis(proxy.addr().to_string()).await;

    let warm = app.predict_key().await;
    assert_eq!(app.predict(&warm).await.status, 200);
    // The fill is spawned; it lands in Redis shortly after.
    let entry = shared_entry::entry_key(&secret::hash(&warm));
    let filled = Instant::now();
    while !direct.exists::<_, bool>(&entry).await.expect("exists") {
        assert!(filled.elapsed() < Duration::from_secs(2), "L2 never filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.set(fault);
    assert_warm_key_keeps_working(&app, &warm, fault).await;
    // Keys nobody has seen are checked against the store: Redis being down costs them nothing.
    for _ in 0..6 {
        let cold = app.predict_key().await;
        let Predicted { status, took, .. } = app.predict(&cold).await;
        assert_eq!(status, 200, "{fault:?}: cold key with only Redis down");
        assert!(
            took < Duration::from_millis(100),
            "{fault:?}: cold key took {took:?}"
        );
    }
    assert_eq!(redis_breaker(&app), BreakerState::Open, "{fault:?}");
    let health: Value = app.get("/health", None).await.json().await.expect("health");
    assert_eq!(health["status"], "degraded", "{fault:?}");
    assert_eq!(health["services"]["redis"], "unhealthy");

    let bytes_before = proxy.upstream_bytes();
    proxy.set(Fault::None);
    let healed = Instant::now();
    loop {
        // Each cold key makes one L2 read: the breaker's trial once the cooldown is over.
        let cold = app.predict_key().await;
        assert_eq!(app.predict(&cold).await.status, 200);
        if redis_breaker(&app) == BreakerState::Closed && proxy.upstream_bytes() > bytes_before {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "{fault:?}: Redis not used again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn flapping() {
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    let app = app_with_redis(proxy.addr().to_string()).await;
    let warm = app.predict_key().await;
    assert_eq!(app.predict(&warm).await.status, 200);
    proxy
        .while_flapping(async || {
            for key in [warm.clone(), app.predict_key().await] {
                let Predicted { status, took, .. } = app.predict(&key).await;
                assert_eq!(status, 200, "only Redis flaps: every valid key gets 200");
                assert!(took < Duration::from_millis(100), "request took {took:?}");
            }
            ControlFlow::Continue(())
        })
        .await;
    poll(
        Duration::from_secs(5),
        Duration::from_millis(100),
        "Redis breaker stuck after flapping",
        async || {
            let cold = app.predict_key().await;
            assert_eq!(app.predict(&cold).await.status, 200);
            (redis_breaker(&app) == BreakerState::Closed).then_some(())
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn revocation_reaches_other_instances_through_pubsub() {
    let _ = direct_redis().await;
    let first = app_with_redis(REDIS.to_string()).await;
    let second = TestApp::spawn_sharing(&first, |c| {
        c.redis.url = Some(format!("redis://{REDIS}/0"));
    })
    .await;
    let admin = first.key(&[modelgate::auth::Scope::Admin]).await;
    let created: Value = first
        .post_json("/api/v1/keys", &admin, &json!({"name": "shared"}))
        .await
        .json()
        .await
        .expect("created");
    let key = created["key"].as_str().expect("key");
    // Both instances now hold the key in their in-process caches (30 s TTL).
    assert_eq!(first.predict(key).await.status, 200);
    assert_eq!(second.predict(key).await.status, 200);
    // Give the second instance's subscription a moment to be in place.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let id = created["id"].as_str().expect("id");
    let revoked = first
        .client
        .delete(first.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert_eq!(first.predict(key).await.status, 401);
    let started = Instant::now();
    while second.predict(key).await.status != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the other instance still accepts a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn serve_is_ready_at_once_with_redis_blackholed() {
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    proxy.set(Fault::Silent);
    let started = Instant::now();
    let app = app_with_redis(proxy.addr().to_string()).await;
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start waited on Redis: {:?}",
        started.elapsed()
    );
    let key = app.predict_key().await;
    let Predicted { status, took, .. } = app.predict(&key).await;
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(100),
        "first request took {took:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn redis_that_appears_after_start_is_used_within_seconds() {
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    proxy.set(Fault::Refused);
    let app = app_with_redis(proxy.addr().to_string()).await;
    let key = app.predict_key().await;
    assert_eq!(
        app.predict(&key).await.status,
        200,
        "no Redis yet: the store answers"
    );

    proxy.set(Fault::None);
    let appeared = Instant::now();
    loop {
        let cold = app.predict_key().await;
        assert_eq!(app.predict(&cold).await.status, 200);
        let status = app
            .state
            .redis
            .as_ref()
            .expect("redis")
            .dependency()
            .status();
        if status.breaker == BreakerState::Closed
            && status.last_success.is_some()
            && proxy.upstream_bytes() > 0
        {
            break;
        }
        assert!(
            appeared.elapsed() < Duration::from_secs(5),
            "Redis not used within 5 s of appearing: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

every_fault!(redis_fault_costs_requests_nothing);
