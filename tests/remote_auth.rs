//! modelgate fronting the remote auth service (an in-test stub implementing its contract),
//! and that service behind a fault-injecting proxy.

mod support;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::auth_stub::AuthStub;
use support::chaos::{ChaosProxy, Fault};
use support::faults::{
    assert_recovers, assert_unseen_key_answered, assert_warm_key_keeps_working,
    assert_warm_key_served,
};
use support::predict::Predicted;
use support::{problem, Backend, TestApp};

async fn app_with_auth_service(addr: std::net::SocketAddr) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.auth.service_url = Some(format!("http://{addr}"));
        c.auth.service_id = "lead-scoring".into();
        c.auth.service_timeout = Duration::from_millis(150);
        c.breaker.consecutive_failures = 3;
        c.breaker.cooldown = Duration::from_millis(500);
    })
    .await
}

#[tokio::test]
async fn valid_keys_follow_the_contract() {
    let stub = AuthStub::start().await;
    let app = app_with_auth_service(stub.addr).await;
    stub.accept("legacy-key-1", "k-77");
    let Predicted {
        status, response, ..
    } = app.predict("legacy-key-1").await;
    assert_eq!(status, 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["metadata"]["api_key_id"], "k-77");
    let (authorization, sent) = stub.last_request().expect("called");
    assert_eq!(authorization, "Bearer legacy-key-1");
    assert_eq!(sent["service_id"], "lead-scoring");
    assert_eq!(sent["client_ip"], "127.0.0.1");
    // Cached: the second call does not reach the service.
    assert_eq!(app.predict("legacy-key-1").await.status, 200);
    assert_eq!(stub.calls(), 1);
    let health: Value = app.get("/health", None).await.json().await.expect("health");
    assert_eq!(health["services"]["auth_service"], "healthy");
    app.stop().await;
}

#[tokio::test]
async fn flat_user_fields_and_defaults_are_accepted() {
    let stub = AuthStub::start().await;
    let app = app_with_auth_service(stub.addr).await;
    stub.reply(
        "minimal",
        200,
        json!({"user_id": "u-1", "email": "x@example.com"}).to_string(),
    );
    let Predicted {
        status, response, ..
    } = app.predict("minimal").await;
    assert_eq!(status, 200, "no scopes means the default predict scope");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["metadata"]["api_key_id"], "u-1");
    app.stop().await;
}

/// The service's `models` limits the key like a local key's list; absent means every model,
/// `[]` none.
#[tokio::test]
async fn the_service_s_models_limit_the_key() {
    let stub = AuthStub::start().await;
    let app = app_with_auth_service(stub.addr).await;
    let with_models = |models: Value| {
        let mut body = support::auth_stub::valid_body("k-m");
        body["models"] = models;
        body.to_string()
    };
    stub.reply("only-21", 200, with_models(json!(["21"])));
    stub.reply("only-other", 200, with_models(json!(["22"])));
    stub.reply("none", 200, with_models(json!([])));
    stub.reply("every", 200, with_models(Value::Null));
    for (key, allowed) in [
        ("only-21", true),
        ("only-other", false),
        ("none", false),
        ("every", true),
    ] {
        let Predicted {
            status, response, ..
        } = app.predict(key).await;
        if allowed {
            assert_eq!(status, 200, "{key}");
        } else {
            assert_eq!(status, 403, "{key}");
            assert_eq!(
                problem(response).await["code"],
                "model_not_allowed",
                "{key}"
            );
        }
        let list: Value = app
            .get("/api/v1/models", Some(key))
            .await
            .json()
            .await
            .expect("list");
        let count = list["models"].as_array().expect("models").len();
        assert_eq!(count, usize::from(allowed), "{key}: {list}");
    }
    app.stop().await;
}

#[tokio::test]
async fn refusals_map_to_the_right_statuses() {
    let stub = AuthStub::start().await;
    let app = app_with_auth_service(stub.addr).await;
    for (i, status) in [401u16, 403, 404].into_iter().enumerate() {
        let key = format!("refused-{i}");
        stub.reply(&key, status, "{}");
        let Predicted {
            status: got,
            response,
            ..
        } = app.predict(&key).await;
        assert_eq!(got, 401, "service said {status}");
        assert_eq!(problem(response).await["code"], "invalid_api_key");
    }
    stub.reply("busy", 429, "{}");
    let Predicted {
        status: got,
        response,
        ..
    } = app.predict("busy").await;
    assert_eq!(got, 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(problem(response).await["code"], "rate_limited");

    let mut poor = support::auth_stub::valid_body("k-poor");
    poor["has_sufficient_balance"] = json!(false);
    stub.reply("poor", 200, poor.to_string());
    let Predicted {
        status: got,
        response,
        ..
    } = app.predict("poor").await;
    assert_eq!(got, 402);
    assert_eq!(problem(response).await["code"], "insufficient_balance");
    app.stop().await;
}

#[tokio::test]
async fn a_broken_service_is_unavailable_never_401() {
    let stub = AuthStub::start().await;
    let app = app_with_auth_service(stub.addr).await;
    for (key, status, body) in [
        ("five-hundred", 500u16, "{}"),
        ("bad-gateway", 502, "<html>"),
        ("array", 200, "[]"),
        ("text", 200, "\"ok\""),
        ("garbage", 200, "not json"),
    ] {
        stub.reply(key, status, body);
        let Predicted {
            status: got,
            response,
            ..
        } = app.predict(key).await;
        assert_eq!(got, 503, "{key}");
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(problem(response).await["code"], "auth_unavailable", "{key}");
    }
    app.stop().await;
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_call() {
    let stub = AuthStub::start().await;
    let app = app_with_auth_service(stub.addr).await;
    stub.accept("popular", "k-pop");
    stub.set_delay(Duration::from_millis(100));
    let requests = (0..20).map(|_| app.predict("popular"));
    let results = futures::future::join_all(requests).await;
    assert!(results.iter().all(|predicted| predicted.status == 200));
    assert_eq!(stub.calls(), 1, "single-flight");
    app.stop().await;
}

async fn service_fault_costs_requests_nothing(fault: Fault) {
    let stub = AuthStub::start().await;
    let proxy = ChaosProxy::start(stub.addr).await;
    let app = app_with_auth_service(proxy.addr()).await;
    stub.accept("warm", "k-warm");
    stub.accept("cold", "k-cold");
    assert_eq!(app.predict("warm").await.status, 200);

    proxy.set(fault);
    assert_warm_key_keeps_working(&app, "warm", fault).await;
    for attempt in 0..6 {
        let Predicted {
            status,
            took,
            response,
        } = app.predict("cold").await;
        assert_eq!(status, 503, "{fault:?}: cold key attempt {attempt}");
        assert_eq!(problem(response).await["code"], "auth_unavailable");
        assert!(
            took < Duration::from_millis(300),
            "{fault:?}: cold key took {took:?}"
        );
    }
    let health = app.get("/health", None).await;
    assert_eq!(
        health.status(),
        200,
        "auth service down with keys cached is degraded"
    );
    let health: Value = health.json().await.expect("json");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["services"]["auth_service"], "unhealthy");

    let bytes_before = proxy.upstream_bytes();
    proxy.set(Fault::None);
    let healed = Instant::now();
    while app.predict("cold").await.status != 200 {
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "{fault:?}: auth service not used again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proxy.upstream_bytes() > bytes_before);
    app.stop().await;
}

#[tokio::test]
async fn chaos_flapping() {
    let stub = AuthStub::start().await;
    let proxy = ChaosProxy::start(stub.addr).await;
    let app = app_with_auth_service(proxy.addr()).await;
    stub.accept("warm", "k-warm");
    assert_eq!(app.predict("warm").await.status, 200);
    let mut n = 0;
    proxy
        .while_flapping(async || {
            assert_warm_key_served(&app.predict("warm").await, "");
            n += 1;
            let cold = format!("cold-{n}");
            stub.accept(&cold, &cold);
            assert_unseen_key_answered(&app.predict(&cold).await);
            ControlFlow::Continue(())
        })
        .await;
    stub.accept("after", "k-after");
    assert_recovers(&app, "after").await;
    app.stop().await;
}

every_fault!(service_fault_costs_requests_nothing);
