//! The shared (Redis) auth cache trusts only entries signed with the deployment's secret, and
//! never answers for admin keys: write access to Redis is not enough to get in (issue 12).

mod support;

use std::time::Duration;

use chrono::Utc;
use modelgate::auth::{secret, shared_entry, CacheSecret, Principal, Scope};
use modelgate::config::Config;
use modelgate::store::Store;
use redis::AsyncCommands;
use serde_json::json;
use support::metrics::metric;
use support::wait::poll;
use support::{base_config, direct_redis, Backend, TestApp, TestDatabase, REDIS};

const PREDICT: &str = "/api/v1/models/21/predict";
const KEYS: &str = "/api/v1/keys";
const SECRET: &str = "shared-secret-of-this-test-0123456789abcdef";

fn with_redis(config: &mut Config) {
    config.redis.url = Some(format!("redis://{REDIS}/0"));
}

fn with_secret(secret: &'static str) -> impl FnOnce(&mut Config) {
    move |config| {
        with_redis(config);
        config.auth.cache_secret = Some(secret.into());
    }
}

fn body() -> serde_json::Value {
    json!({"inputs": {"engagement_score": 50}})
}

/// A key that exists nowhere, in the shape of a real one.
fn invented_key() -> String {
    secret::generate()
}

fn principal(key_id: &str, scopes: Vec<Scope>) -> Principal {
    Principal {
        key_id: key_id.into(),
        name: "forged".into(),
        prefix: "mg_forged".into(),
        scopes,
        rate_limit: None,
        expires_at: None,
        user_id: None,
        email: None,
        balance: None,
        has_sufficient_balance: true,
        prepaid: false,
        models: None,
    }
}

fn sealed(secret: &str, key: &str, principal: &Principal) -> String {
    shared_entry::seal(
        &CacheSecret::new(secret),
        &secret::hash(key),
        principal,
        Utc::now() + chrono::Duration::minutes(5),
    )
    .expect("seal")
}

async fn plant(key: &str, value: &str) {
    let mut redis = direct_redis().await;
    let entry = shared_entry::entry_key(&secret::hash(key));
    redis
        .set_ex::<_, _, ()>(entry, value, 60)
        .await
        .expect("plant entry");
}

/// Waits until the instance's background fill has put `key`'s entry in Redis.
async fn filled(key: &str) {
    let entry = shared_entry::entry_key(&secret::hash(key));
    poll(
        Duration::from_secs(2),
        Duration::from_millis(20),
        "L2 never filled",
        async || {
            let mut redis = direct_redis().await;
            redis
                .exists::<_, bool>(&entry)
                .await
                .expect("exists")
                .then_some(())
        },
    )
    .await;
}

async fn rejected(app: &TestApp, reason: &str) -> f64 {
    metric(
        &app.metrics().await,
        &format!("modelgate_auth_cache_rejected_total{{reason=\"{reason}\"}}"),
    )
}

async fn lookups(app: &TestApp, tier: &str) -> f64 {
    metric(
        &app.metrics().await,
        &format!("modelgate_auth_lookups_total{{tier=\"{tier}\"}}"),
    )
}

async fn keys_in(store: &Store) -> i64 {
    store.count_keys().await.expect("count keys")
}

async fn unsigned_entries_are_ignored_and_counted(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_redis).await;
    let before = rejected(&app, "malformed").await;
    // The attack of the issue: plain JSON for a key that exists nowhere, with the admin scope.
    let key = invented_key();
    let forged = serde_json::to_string(&principal("forged", vec![Scope::Admin])).expect("json");
    plant(&key, &forged).await;
    let mut redis = direct_redis().await;
    let old_entry = format!("modelgate:auth:v1:{}", secret::hash(&key));
    redis
        .set_ex::<_, _, ()>(&old_entry, &forged, 60)
        .await
        .expect("plant v1 entry");

    let keys_before = keys_in(&app.store).await;
    let response = app
        .post_json(KEYS, &key, &json!({"name": "minted", "scopes": ["admin"]}))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(keys_in(&app.store).await, keys_before, "no key was minted");
    let predict_only =
        serde_json::to_string(&principal("forged", vec![Scope::Predict])).expect("json");
    let other = invented_key();
    plant(&other, &predict_only).await;
    assert_eq!(app.post_json(PREDICT, &other, &body()).await.status(), 401);
    assert_eq!(rejected(&app, "malformed").await, before + 2.0);
    app.stop().await;
}
both_backends!(unsigned_entries_are_ignored_and_counted);

#[tokio::test]
async fn entries_signed_with_another_secret_are_ignored() {
    let app = TestApp::spawn_with(Backend::Sqlite, with_secret(SECRET)).await;
    let before = rejected(&app, "bad_signature").await;
    let key = invented_key();
    let forged = sealed(
        "not-the-deployment-secret-0123456789abcdef",
        &key,
        &principal("forged", vec![Scope::Predict]),
    );
    plant(&key, &forged).await;
    assert_eq!(app.post_json(PREDICT, &key, &body()).await.status(), 401);
    assert_eq!(rejected(&app, "bad_signature").await, before + 1.0);

    // A genuine entry moved under another key is a forgery too.
    let genuine = app.predict_key().await;
    assert_eq!(
        app.post_json(PREDICT, &genuine, &body()).await.status(),
        200
    );
    filled(&genuine).await;
    let mut redis = direct_redis().await;
    let value: String = redis
        .get(shared_entry::entry_key(&secret::hash(&genuine)))
        .await
        .expect("genuine entry");
    let elsewhere = invented_key();
    plant(&elsewhere, &value).await;
    assert_eq!(
        app.post_json(PREDICT, &elsewhere, &body()).await.status(),
        401
    );
    assert_eq!(rejected(&app, "bad_signature").await, before + 2.0);
    app.stop().await;
}

/// With no `auth.cache_secret`, instances sharing the database share the secret it keeps.
async fn instances_sharing_the_database_share_entries(backend: Backend) {
    let a = TestApp::spawn_with(backend, with_redis).await;
    let b = TestApp::spawn_sharing(&a, with_redis).await;
    let key = a.predict_key().await;
    assert_eq!(a.post_json(PREDICT, &key, &body()).await.status(), 200);
    filled(&key).await;

    // Both instances record into this process's one recorder: the counts are read around
    // B's request alone.
    let (source, l2) = (lookups(&a, "source").await, lookups(&a, "l2").await);
    assert_eq!(b.post_json(PREDICT, &key, &body()).await.status(), 200);
    assert_eq!(lookups(&a, "l2").await, l2 + 1.0, "B answered from L2");
    assert_eq!(
        lookups(&a, "source").await,
        source,
        "B did not ask the store"
    );
    assert_eq!(rejected(&a, "bad_signature").await, 0.0);
    b.stop().await;
    a.stop().await;
}
both_backends!(instances_sharing_the_database_share_entries);

#[tokio::test]
async fn admin_is_never_taken_from_the_shared_cache() {
    let a = TestApp::spawn_with(Backend::Postgres, with_secret(SECRET)).await;
    let b = TestApp::spawn_sharing(&a, with_secret(SECRET)).await;

    // Even a validly signed entry (the secret leaked) cannot make a predict key an admin.
    let before = rejected(&a, "admin").await;
    let predict = a.predict_key().await;
    let elevated = sealed(SECRET, &predict, &principal("elevated", vec![Scope::Admin]));
    plant(&predict, &elevated).await;
    let response = a.get(KEYS, Some(&predict)).await;
    assert_eq!(response.status(), 403);
    assert_eq!(rejected(&a, "admin").await, before + 1.0);

    // An admin key works, from the source, and is not written to Redis.
    let admin = a.key(&[Scope::Admin]).await;
    assert_eq!(a.get(KEYS, Some(&admin)).await.status(), 200);
    assert_eq!(a.post_json(PREDICT, &admin, &body()).await.status(), 200);
    // A predict key's fill, made after the admin key's would have been, shows fills landed.
    let witness = a.predict_key().await;
    assert_eq!(a.post_json(PREDICT, &witness, &body()).await.status(), 200);
    filled(&witness).await;
    let mut redis = direct_redis().await;
    let admin_entry = shared_entry::entry_key(&secret::hash(&admin));
    assert!(
        !redis.exists::<_, bool>(&admin_entry).await.expect("exists"),
        "an admin principal was written to Redis"
    );

    // Revoked in the database alone (nothing announced on Redis): an instance that has not
    // cached the key refuses it at once.
    let record = a
        .store
        .find_key_by_hash(&secret::hash(&admin))
        .await
        .expect("find")
        .expect("admin key");
    a.store
        .revoke_key(&record.id, Utc::now())
        .await
        .expect("revoke");
    assert_eq!(b.get(KEYS, Some(&admin)).await.status(), 401);
    b.stop().await;
    a.stop().await;
}

/// Instances that share only Redis (each its own database) share entries when they share
/// `auth.cache_secret`, and reject each other's when they do not.
#[tokio::test]
async fn a_configured_secret_is_what_instances_share() {
    let a = TestApp::spawn_with(Backend::Sqlite, with_secret(SECRET)).await;
    let same = TestApp::spawn_with(Backend::Sqlite, with_secret(SECRET)).await;
    let other = TestApp::spawn_with(
        Backend::Sqlite,
        with_secret("a-different-secret-0123456789abcdefghij"),
    )
    .await;
    // The key is in A's database only: the other instances can know it only through Redis.
    let key = a.predict_key().await;
    assert_eq!(a.post_json(PREDICT, &key, &body()).await.status(), 200);
    filled(&key).await;
    assert_eq!(same.post_json(PREDICT, &key, &body()).await.status(), 200);
    let before = rejected(&a, "bad_signature").await;
    assert_eq!(other.post_json(PREDICT, &key, &body()).await.status(), 401);
    assert_eq!(rejected(&a, "bad_signature").await, before + 1.0);
    other.stop().await;
    same.stop().await;
    a.stop().await;
}

/// Instances starting together agree on one secret: the first insert wins, the rest read it.
async fn the_stored_secret_is_created_once(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let config = base_config(&db.url).database;
    let (first, second) = (
        Store::open(&config).await.expect("store"),
        Store::open(&config).await.expect("store"),
    );
    let (x, y) = tokio::join!(
        first.deployment_secret("test", "candidate-x"),
        second.deployment_secret("test", "candidate-y"),
    );
    let (x, y) = (x.expect("secret"), y.expect("secret"));
    assert_eq!(x, y);
    assert!(x == "candidate-x" || x == "candidate-y", "{x}");
    assert_eq!(
        first
            .deployment_secret("test", "candidate-z")
            .await
            .expect("secret"),
        x
    );
}
both_backends!(the_stored_secret_is_created_once);

/// A fill whose lookup read the key just before it was revoked, landing after the revocation
/// deleted the entry, must not bring the key back for `auth.shared_ttl` (the tombstone the
/// revocation leaves refuses it); a fill for a live key still lands.
#[tokio::test]
async fn a_fill_landing_after_a_revocation_does_not_bring_the_key_back() {
    let app = TestApp::spawn_with(Backend::Sqlite, with_secret(SECRET)).await;
    let key = app.predict_key().await;
    assert_eq!(app.post_json(PREDICT, &key, &body()).await.status(), 200);
    filled(&key).await;
    let principal = principal_of(&app.store, &key).await;
    let revoked = app
        .state
        .auth
        .revoke(&principal.key_id)
        .await
        .expect("revoke");
    assert!(matches!(
        revoked,
        modelgate::store::Revocation::Revoked { .. }
    ));
    let entry = shared_entry::entry_key(&secret::hash(&key));
    poll(
        Duration::from_secs(2),
        Duration::from_millis(20),
        "the revocation deletes the entry",
        async || {
            let exists: bool = direct_redis().await.exists(&entry).await.expect("exists");
            (!exists).then_some(())
        },
    )
    .await;

    // The late fill, through the same path the instance's own fills take.
    let config = base_config("sqlite::memory:");
    let redis = modelgate::redis::Redis::new(
        &config.redis,
        &format!("redis://{REDIS}/0"),
        config.breaker.clone(),
    )
    .expect("redis");
    let tier =
        modelgate::auth::SharedTier::new(redis, CacheSecret::new(SECRET), Duration::from_secs(300));
    tier.put(&secret::hash(&key), &principal);
    let live = app.predict_key().await;
    let live_principal = principal_of(&app.store, &live).await;
    tier.put(&secret::hash(&live), &live_principal);
    filled(&live).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let exists: bool = direct_redis().await.exists(&entry).await.expect("exists");
    assert!(
        !exists,
        "a late fill put a revoked key back in the shared cache"
    );
    app.stop().await;
}

async fn principal_of(store: &Store, key: &str) -> Principal {
    let record = store
        .find_key_by_hash(&secret::hash(key))
        .await
        .expect("lookup")
        .expect("the key");
    Principal::from_record(&record, Utc::now()).expect("a valid key")
}
