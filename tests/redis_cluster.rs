//! Redis Cluster: every Redis user (L2 auth cache, revocations, global rate limits, the
//! inference stream) works on a real 3-master, 3-replica cluster, and a master killed under
//! load costs warm keys nothing; everything returns to normal once its replica is promoted,
//! without a restart.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use modelgate::auth::{secret, shared_entry, Scope};
use modelgate::config::Config;
use redis::AsyncCommands;
use support::events::{dedup, stream_records_on};
use support::predict::{numeric_header, Answer, Barrage};
use support::redis_cluster::RedisCluster;
use support::wait::poll;
use support::{Backend, TestApp};

const SECRET: &str = "shared-secret-of-the-cluster-test-0123456789";

/// Redis is the cluster, with a quick breaker so an outage shows within a test's patience.
fn on_cluster(seeds: String) -> impl Fn(&mut Config) {
    move |config| {
        config.redis.url = Some(seeds.clone());
        config.redis.cluster = true;
        config.auth.cache_secret = Some(SECRET.into());
        config.breaker.consecutive_failures = 3;
        config.breaker.cooldown = Duration::from_millis(300);
    }
}

const LIMIT: &str = "ratelimit-limit";
const FIVE_S: Duration = Duration::from_secs(5);
const EVERY: Duration = Duration::from_millis(100);

/// The record ids in `stream`, once each.
async fn stream_ids(
    reader: &mut redis::cluster_async::ClusterConnection,
    stream: &str,
) -> HashSet<String> {
    dedup(&stream_records_on(reader, stream).await)
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn every_redis_user_works_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let mut direct = cluster.connection().await;
    let a = TestApp::spawn_with(Backend::Sqlite, on_cluster(cluster.seeds())).await;
    let b = TestApp::spawn_sharing(&a, on_cluster(cluster.seeds())).await;

    // Global rate limit: one GCRA state for both instances, on the key's slot.
    let (key, id) = a.rate_limited_key("20/m").await;
    let mut admitted = Vec::new();
    for round in 0..25 {
        let app = if round % 2 == 0 { &a } else { &b };
        let predicted = app.predict(&key).await;
        assert_eq!(
            numeric_header(&predicted.response, LIMIT),
            Some(20),
            "the limit is global, not an instance's share"
        );
        match predicted.status {
            200 => admitted.push((round % 2, predicted.log_id().await.expect("log id"))),
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted.len(), 20, "20/m across two instances");
    let state: bool = direct
        .exists(modelgate::ratelimit::state_key(&id))
        .await
        .expect("exists");
    assert!(state, "the GCRA state lives on the cluster");

    // The inference stream: every acknowledged prediction of `a` is in its stream.
    let expected: HashSet<String> = admitted
        .iter()
        .filter(|(instance, _)| *instance == 0)
        .map(|(_, id)| id.clone())
        .collect();
    let stream = a.state.config.events.stream.clone();
    let mut reader = cluster.connection().await;
    poll(FIVE_S, EVERY, "a's records reach the stream", async || {
        let ids = stream_ids(&mut reader, &stream).await;
        expected.is_subset(&ids).then_some(())
    })
    .await;

    // The L2 auth cache: the key's signed entry is written to its slot.
    let entry = shared_entry::entry_key(&secret::hash(&key));
    let mut l2 = cluster.connection().await;
    poll(FIVE_S, EVERY, "the L2 entry is written", async || {
        l2.exists::<_, bool>(&entry)
            .await
            .unwrap_or(false)
            .then_some(())
    })
    .await;

    // Revocation through one instance reaches the other within a second, through the
    // cluster's pub/sub.
    assert_revocation_reaches(&a, &b).await;
    b.stop().await;
    a.stop().await;
}

/// A key warm in both instances' L1 caches, revoked through `from`, is refused by `to`
/// within a second.
async fn assert_revocation_reaches(from: &TestApp, to: &TestApp) {
    let warm = from.predict_key().await;
    assert_eq!(from.predict(&warm).await.status, 200);
    assert_eq!(to.predict(&warm).await.status, 200);
    let admin = from.key(&[Scope::Admin]).await;
    let record = from
        .store
        .find_key_by_hash(&secret::hash(&warm))
        .await
        .expect("lookup")
        .expect("the key");
    let revoked = from
        .client
        .delete(from.url(&format!("/api/v1/keys/{}", record.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let started = Instant::now();
    while to.predict(&warm).await.status != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the other instance still accepts a revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stream name whose slot is served by the same master as `key`'s, so that one kill takes
/// both down.
async fn stream_beside(cluster: &RedisCluster, key: &str) -> String {
    let master = cluster.master_of(key).await;
    loop {
        let stream = support::unique_stream();
        if cluster.master_of(&stream).await == master {
            return stream;
        }
    }
}

#[tokio::test]
async fn a_master_killed_under_load_costs_warm_keys_nothing() {
    let mut cluster = RedisCluster::start().await;
    let seeds = cluster.seeds();
    let db = support::TestDatabase::new(Backend::Sqlite).await;
    // The key's limit is generous: the test is about failing over, not about refusals.
    let probe_app = TestApp::spawn_on(db, on_cluster(seeds.clone())).await;
    let (key, id) = probe_app.rate_limited_key("100000/m").await;
    let rate_state = modelgate::ratelimit::state_key(&id);
    let stream = stream_beside(&cluster, &rate_state).await;
    let app = TestApp::spawn_sharing(&probe_app, {
        let (adjust, stream) = (on_cluster(seeds), stream.clone());
        move |config: &mut Config| {
            adjust(config);
            config.events.stream = stream;
        }
    })
    .await;
    assert_eq!(app.predict(&key).await.status, 200, "the key is warm");

    let barrage = Barrage::start(&app.client, &app.url(""), &key, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_master_of(&rate_state).await;

    // While the slot is down the limit is each instance's share; then global again, once a
    // replica is promoted, with no restart.
    let mut saw_share = false;
    let started = Instant::now();
    loop {
        let limit = numeric_header(&app.predict(&key).await.response, LIMIT);
        saw_share |= limit == Some(50_000);
        if saw_share && limit == Some(100_000) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the limit did not fall back to the share and return (saw share: {saw_share})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_until_whole(Duration::from_secs(20)).await;
    // Health follows: Redis is healthy again, as observed by the background probe.
    poll(
        FIVE_S * 2,
        EVERY,
        "health says Redis is healthy again",
        async || {
            let health: serde_json::Value = app.get("/health", None).await.json().await.ok()?;
            (health["checks"]["redis"]["status"] == "healthy").then_some(())
        },
    )
    .await;
    let answers = barrage.stop().await;

    let failed: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.acknowledged().is_none())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} predictions failed during the failover: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(5)]
    );
    // Records written while the stream's slot was down waited in the outbox, and arrive.
    let acknowledged: HashSet<String> = answers
        .iter()
        .filter_map(|a| a.acknowledged().map(String::from))
        .collect();
    assert!(
        acknowledged.len() > 50,
        "the load ran: {}",
        acknowledged.len()
    );
    let mut reader = cluster.connection().await;
    let started = Instant::now();
    loop {
        let ids = stream_ids(&mut reader, &stream).await;
        let missing = acknowledged.difference(&ids).count();
        if missing == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{missing} of {} acknowledged records are not in the stream ({} are); metrics: {}",
            acknowledged.len(),
            ids.len(),
            app.get("/metrics", None)
                .await
                .text()
                .await
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("event") || l.contains("outbox") || l.contains("redis"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(EVERY).await;
    }
    // Revocations still travel, on subscriptions that followed the failover.
    assert_revocation_reaches(&probe_app, &app).await;
    app.stop().await;
    probe_app.stop().await;
}

#[tokio::test]
async fn revocations_follow_their_subscription_through_a_node_failure() {
    let mut cluster = RedisCluster::start().await;
    let a = TestApp::spawn_with(Backend::Sqlite, on_cluster(cluster.seeds())).await;
    let b = TestApp::spawn_sharing(&a, on_cluster(cluster.seeds())).await;
    let channel = modelgate::auth::revocation::REVOCATIONS_CHANNEL;
    let subscribed = poll(FIVE_S, EVERY, "both instances subscribe", async || {
        let found = cluster.subscribers(channel).await;
        (found.iter().map(|(_, count)| count).sum::<u64>() == 2).then_some(found)
    })
    .await;

    // The node carrying a subscription dies (a master: its replica takes over; a replica: it
    // is simply gone); the subscription moves to a living node by itself.
    let (port, _) = subscribed[0];
    cluster.kill(port);
    cluster.wait_until_whole(Duration::from_secs(20)).await;
    poll(
        FIVE_S * 2,
        EVERY,
        "both instances subscribe again",
        async || {
            let found = cluster.subscribers(channel).await;
            (found.iter().map(|(_, count)| count).sum::<u64>() == 2).then_some(())
        },
    )
    .await;
    assert_revocation_reaches(&a, &b).await;
    assert_revocation_reaches(&b, &a).await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_cluster_that_appears_after_start_is_used_within_seconds() {
    let ports = RedisCluster::free_ports();
    let app =
        TestApp::spawn_with(Backend::Sqlite, on_cluster(RedisCluster::seeds_of(&ports))).await;
    let (key, _) = app.rate_limited_key("20/m").await;
    // Nothing listens yet: predictions are served, on the instance's share of the limit.
    let predicted = app.predict(&key).await;
    assert_eq!(predicted.status, 200);
    assert_eq!(numeric_header(&predicted.response, LIMIT), Some(10));

    let _cluster = RedisCluster::start_on(ports).await;
    poll(
        FIVE_S * 2,
        EVERY,
        "the limit is global once the cluster runs",
        async || {
            let predicted = app.predict(&key).await;
            (numeric_header(&predicted.response, LIMIT) == Some(20)).then_some(())
        },
    )
    .await;
    app.stop().await;
}
