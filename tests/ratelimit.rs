//! Per-key rate limits on the prediction route: the headers and the 429, one limit shared by
//! two instances through Redis, each instance's local share while Redis is blackholed or
//! refusing (with every request fast), and the global limit again once Redis is back.
//!
//! Every test issues its own keys (random ids), so the tests share Redis and run in parallel.

mod support;

use std::time::{Duration, Instant};

use modelgate::config::Config;
use redis::AsyncCommands;
use support::chaos::{ChaosProxy, Fault};
use support::predict::numeric_header;
use support::{direct_redis, Backend, TestApp, REDIS};

fn use_redis(config: &mut Config, addr: &str) {
    config.redis.url = Some(format!("redis://{addr}/0"));
    config.breaker.consecutive_failures = 3;
    config.breaker.cooldown = Duration::from_millis(500);
}

#[tokio::test]
async fn headers_count_down_and_the_429_says_when_to_retry() {
    let mut direct = direct_redis().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| use_redis(c, REDIS)).await;
    let (key, id) = app.rate_limited_key("5/m").await;

    for expected_remaining in (0..5).rev() {
        let response = app.predict(&key).await.response;
        assert_eq!(response.status(), 200);
        assert_eq!(numeric_header(&response, "ratelimit-limit"), Some(5));
        assert_eq!(
            numeric_header(&response, "ratelimit-remaining"),
            Some(expected_remaining)
        );
        let reset = numeric_header(&response, "ratelimit-reset").expect("reset");
        assert!((1..=60).contains(&reset), "reset {reset}");
        assert_eq!(
            response.headers()["ratelimit-policy"].to_str().ok(),
            Some("5;w=60")
        );
    }
    let refused = app.predict(&key).await.response;
    assert_eq!(refused.status(), 429);
    assert_eq!(numeric_header(&refused, "ratelimit-remaining"), Some(0));
    assert_eq!(numeric_header(&refused, "ratelimit-limit"), Some(5));
    // One request frees up every 12 s; the whole allowance after 60 s.
    let retry_after = numeric_header(&refused, "retry-after").expect("retry-after");
    assert!(
        (11..=12).contains(&retry_after),
        "retry-after {retry_after}"
    );
    let reset = numeric_header(&refused, "ratelimit-reset").expect("reset");
    assert!((59..=60).contains(&reset), "reset {reset}");
    let body = support::problem(refused).await;
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);

    // The state is global: it lives in Redis under the key's id, and expires with the TAT.
    let ttl: i64 = direct
        .pttl(modelgate::ratelimit::state_key(&id))
        .await
        .expect("pttl");
    assert!((50_000..=60_000).contains(&ttl), "pttl {ttl}");

    // Listing models is not rate limited, even for a key that is out of predictions.
    let listed = app.get("/api/v1/models", Some(&key)).await;
    assert_eq!(listed.status(), 200);
    assert!(listed.headers().get("ratelimit-limit").is_none());
    // A key without a limit gets no rate-limit headers.
    let unlimited = app.predict(&app.predict_key().await).await.response;
    assert_eq!(unlimited.status(), 200);
    assert!(unlimited.headers().get("ratelimit-limit").is_none());
    app.stop().await;
}

#[tokio::test]
async fn without_redis_each_instance_enforces_the_whole_limit() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (key, _) = app.rate_limited_key("4/m").await;
    for _ in 0..4 {
        let response = app.predict(&key).await.response;
        assert_eq!(response.status(), 200);
        assert_eq!(numeric_header(&response, "ratelimit-limit"), Some(4));
    }
    let refused = app.predict(&key).await.response;
    assert_eq!(refused.status(), 429);
    assert_eq!(numeric_header(&refused, "retry-after"), Some(15));
    app.stop().await;
}

/// Sends requests with `key` to `app` until `until`; counts admissions, and admissions made
/// under a quota other than `global_limit` (i.e. locally).
async fn hammer(app: &TestApp, key: &str, until: Instant, global_limit: u64) -> (u64, u64) {
    let (mut admitted, mut local) = (0, 0);
    while Instant::now() < until {
        let response = app.predict(key).await.response;
        match response.status().as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
        if numeric_header(&response, "ratelimit-limit") != Some(global_limit) {
            local += 1;
        }
        // Far faster than the limit, without starving the servers of the two CPUs.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    (admitted, local)
}

#[tokio::test]
async fn two_instances_share_one_global_limit() {
    let _ = direct_redis().await;
    // A wide Redis timeout: this test measures sharing, not latency, and a busy CI machine
    // must not push decisions to the local tier (the fault tests bound the latency).
    let adjust = |c: &mut Config| {
        use_redis(c, REDIS);
        c.redis.command_timeout = Duration::from_millis(250);
    };
    let first = TestApp::spawn_with(Backend::Sqlite, adjust).await;
    let second = TestApp::spawn_sharing(&first, adjust).await;
    let (key, _) = first.rate_limited_key("30/s").await;

    let started = Instant::now();
    let until = started + Duration::from_secs(3);
    let workers: Vec<_> = [&first, &second, &first, &second]
        .into_iter()
        .map(|app| hammer(app, &key, until, 30))
        .collect();
    let results = futures::future::join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();

    let admitted: u64 = results.iter().map(|(a, _)| a).sum();
    let local: u64 = results.iter().map(|(_, l)| l).sum();
    assert_eq!(local, 0, "some decisions were not global");
    let by_first = results[0].0 + results[2].0;
    let by_second = results[1].0 + results[3].0;
    assert!(
        by_first > 0 && by_second > 0,
        "both instances admit: {by_first} + {by_second}"
    );
    // A burst of 30, then 30 per second.
    let expected = 30.0 + 30.0 * elapsed;
    let error = (admitted as f64 - expected).abs() / expected;
    eprintln!(
        "two instances admitted {admitted} ({by_first} + {by_second}) in {elapsed:.2} s; \
         expected {expected:.1}; off by {:.1} %",
        error * 100.0
    );
    assert!(
        error <= 0.10,
        "admitted {admitted}, expected {expected:.1} (off by {:.1} %)",
        error * 100.0
    );
    second.stop().await;
    first.stop().await;
}

/// Two instances whose Redis suffers `fault` from the start: each admits its local share (half
/// of 20 per minute: 10) and no request waits on Redis; once Redis is back, the limit is
/// global again.
async fn redis_fault_leaves_each_instance_its_share(fault: Fault) {
    let mut direct = direct_redis().await;
    let proxy = ChaosProxy::start(REDIS.parse().expect("addr")).await;
    let proxied = proxy.addr().to_string();
    let adjust = |c: &mut Config| use_redis(c, &proxied);
    let first = TestApp::spawn_with(Backend::Sqlite, adjust).await;
    let second = TestApp::spawn_sharing(&first, adjust).await;
    let (key, id) = first.rate_limited_key("20/m").await;
    proxy.set(fault);

    for app in [&first, &second] {
        let mut admitted = 0;
        for _ in 0..25 {
            let started = Instant::now();
            let response = app.predict(&key).await.response;
            let took = started.elapsed();
            assert!(
                took < Duration::from_millis(100),
                "{fault:?}: a request took {took:?}"
            );
            match response.status().as_u16() {
                200 => admitted += 1,
                429 => assert!(numeric_header(&response, "retry-after").is_some_and(|s| s >= 1)),
                other => panic!("{fault:?}: unexpected status {other}"),
            }
            assert_eq!(
                numeric_header(&response, "ratelimit-limit"),
                Some(10),
                "{fault:?}: the local share"
            );
        }
        assert_eq!(admitted, 10, "{fault:?}: each instance admits its share");
    }

    proxy.set(Fault::None);
    for app in [&first, &second] {
        let healed = Instant::now();
        loop {
            let response = app.predict(&key).await.response;
            if numeric_header(&response, "ratelimit-limit") == Some(20) {
                break;
            }
            assert!(
                healed.elapsed() < Duration::from_secs(5),
                "{fault:?}: the limit is not global again within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let exists: bool = direct
        .exists(modelgate::ratelimit::state_key(&id))
        .await
        .expect("exists");
    assert!(exists, "{fault:?}: the state is in Redis again");
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn redis_silent() {
    redis_fault_leaves_each_instance_its_share(Fault::Silent).await;
}

#[tokio::test]
async fn redis_connect_never_completes() {
    redis_fault_leaves_each_instance_its_share(Fault::ConnectHang).await;
}

#[tokio::test]
async fn redis_refused() {
    redis_fault_leaves_each_instance_its_share(Fault::Refused).await;
}
