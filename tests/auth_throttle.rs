//! Keys that cannot be ours are refused without a lookup; failed authentication is throttled
//! per client address without slowing valid keys; a flood of unknown keys cannot push valid
//! keys out of the in-process cache (issue 12, part 3).

mod support;

use std::time::Duration;

use modelgate::auth::{prepare_key, secret, NewKey, Scope};
use support::chaos::Fault;
use support::metrics::metric;
use support::{problem, Backend, TestApp};

const MODELS: &str = "/api/v1/models";

async fn status_with(app: &TestApp, key: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(MODELS)).bearer_auth(key);
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.expect("request")
}

async fn status(app: &TestApp, key: &str) -> u16 {
    status_with(app, key, None).await.status().as_u16()
}

/// A key of the current format that the server never issued.
fn unknown_key() -> String {
    secret::generate()
}

/// `key` with its last character changed: the checksum no longer matches.
fn mistyped(key: &str) -> String {
    let mut typo = key.to_string();
    let last = typo.pop().expect("non-empty");
    typo.push(if last == 'a' { 'b' } else { 'a' });
    typo
}

async fn assert_throttled(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(problem(response).await["code"], "too_many_failed_auth");
    retry_after
}

#[tokio::test]
async fn keys_that_cannot_be_ours_are_refused_with_the_store_down() {
    let (app, proxy) = TestApp::behind_postgres_proxy(|c| c.auth.failed_auth_burst = 0).await;
    let valid = app.predict_key().await;
    proxy.set(Fault::Refused);

    // A well-formed key must be looked up, and the store is down: 503, never 401.
    let response = status_with(&app, &unknown_key(), None).await;
    assert_eq!(response.status(), 503, "the store must really be down");

    // Keys refused from their shape alone do not need the store: 401, fast.
    let started = std::time::Instant::now();
    for key in [
        mistyped(&valid),
        mistyped(&unknown_key()),
        format!("xx_{}", &valid[3..]),
        "mg_abcdefghi".to_string(),
        format!("mg_{}", "-".repeat(36)),
    ] {
        let response = status_with(&app, &key, None).await;
        assert_eq!(response.status(), 401, "{}", secret::display_prefix(&key));
        assert_eq!(problem(response).await["code"], "invalid_api_key");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "offline checks are instant"
    );
    let metrics = app.metrics().await;
    for (reason, at_least) in [
        ("checksum", 2.0),
        ("prefix", 1.0),
        ("length", 1.0),
        ("alphabet", 1.0),
    ] {
        let series = format!("modelgate_auth_rejected_offline_total{{reason=\"{reason}\"}}");
        assert!(metric(&metrics, &series) >= at_least, "{series}");
    }
    app.stop().await;
}

#[tokio::test]
async fn keys_of_the_format_before_the_checksum_keep_working() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut issued = prepare_key(NewKey {
        name: "legacy".into(),
        scopes: vec![Scope::Predict],
        ..NewKey::default()
    })
    .expect("key");
    // `mg_` + 40 base62 characters, no checksum: how keys were minted before.
    let legacy = format!("mg_{}", "Ab3".repeat(13) + "Z");
    issued.record.prefix = secret::display_prefix(&legacy);
    app.store
        .insert_key(&issued.record, &secret::hash(&legacy))
        .await
        .expect("insert");
    assert_eq!(status(&app, &legacy).await, 200);
    // An unknown key of the legacy shape is looked up, and unknown.
    let other = format!("mg_{}", "x".repeat(40));
    assert_eq!(status(&app, &other).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_failures_is_throttled_while_valid_keys_pass() {
    let (app, proxy) = TestApp::behind_postgres_proxy(|c| {
        c.auth.failed_auth_burst = 5;
        c.auth.failed_auth_per_minute = 60;
    })
    .await;
    let valid = app.predict_key().await;
    assert_eq!(status(&app, &valid).await, 200);
    for attempt in 0..5 {
        assert_eq!(status(&app, &unknown_key()).await, 401, "failure {attempt}");
    }
    // The burst is used up: refused before any lookup...
    assert_throttled(status_with(&app, &unknown_key(), None).await).await;
    // ...which the store being down now cannot change (a lookup would answer 503).
    proxy.set(Fault::Refused);
    assert_throttled(status_with(&app, &unknown_key(), None).await).await;
    assert_throttled(status_with(&app, &mistyped(&valid), None).await).await;
    // The valid key, from the same address, is not slowed.
    for _ in 0..10 {
        let started = std::time::Instant::now();
        assert_eq!(status(&app, &valid).await, 200);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    proxy.set(Fault::None);
    let metrics = app.metrics().await;
    assert!(metric(&metrics, "modelgate_auth_failures_throttled_total") >= 3.0);

    // One failure refills a second: after Retry-After, lookups are allowed again, as many as
    // seconds went by (at most the burst), then the throttle is back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&app, &unknown_key()).await, 401);
    let mut refilled = 1;
    loop {
        let response = status_with(&app, &unknown_key(), None).await;
        if response.status() == 429 {
            assert_throttled(response).await;
            break;
        }
        assert_eq!(response.status(), 401);
        refilled += 1;
        assert!(refilled <= 5, "the refill never exceeds the burst");
    }
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let throttle = |c: &mut modelgate::config::Config| {
        c.auth.failed_auth_burst = 3;
    };
    // Without trusted proxies the peer is the client, whatever X-Forwarded-For says.
    let direct = TestApp::spawn_with(Backend::Sqlite, throttle).await;
    for n in 0..3 {
        let claimed = format!("203.0.113.{n}");
        let response = status_with(&direct, &unknown_key(), Some(&claimed)).await;
        assert_eq!(response.status(), 401);
    }
    assert_throttled(status_with(&direct, &unknown_key(), Some("203.0.113.99")).await).await;
    direct.stop().await;

    // Behind a trusted proxy (the test client, 127.0.0.1), the forwarded address is the client.
    let proxied = TestApp::spawn_with(Backend::Sqlite, |c| {
        throttle(c);
        c.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    for _ in 0..3 {
        let response = status_with(&proxied, &unknown_key(), Some("203.0.113.7")).await;
        assert_eq!(response.status(), 401);
    }
    assert_throttled(status_with(&proxied, &unknown_key(), Some("203.0.113.7")).await).await;
    // A client cannot escape by prepending an address of its choosing: the proxy appends.
    let spoofed = "198.51.100.1, 203.0.113.7";
    assert_throttled(status_with(&proxied, &unknown_key(), Some(spoofed)).await).await;
    let other = status_with(&proxied, &unknown_key(), Some("203.0.113.8")).await;
    assert_eq!(other.status(), 401, "another client is not throttled");
    proxied.stop().await;
}

#[tokio::test]
async fn a_flood_of_unknown_keys_does_not_evict_a_valid_key() {
    let (app, proxy) = TestApp::behind_postgres_proxy(|c| {
        c.auth.cache_capacity = 10;
        c.auth.negative_cache_capacity = 10;
        c.auth.failed_auth_burst = 0;
    })
    .await;
    let valid = app.predict_key().await;
    assert_eq!(status(&app, &valid).await, 200);
    // Ten times the cache's capacity of well-formed keys, each looked up once.
    for _ in 0..100 {
        assert_eq!(status(&app, &unknown_key()).await, 401);
    }
    proxy.set(Fault::Refused);
    assert_eq!(
        status(&app, &unknown_key()).await,
        503,
        "the store must really be down"
    );
    // Still answered from L1.
    assert_eq!(status(&app, &valid).await, 200);
    app.stop().await;
}
