//! The key store on both engines, through the same portable SQL.

mod support;

use modelgate::auth::{issue_key, secret, NewKey, RateLimit, Scope};
use modelgate::store::{Revocation, Store};
use support::{base_config, Backend, TestDatabase};

async fn keys_round_trip(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let config = base_config(&db.url);
    let store = Store::open(&config.database).await.expect("open");
    // Migrations are idempotent: a second open of the same database works.
    let again = Store::open(&config.database).await.expect("reopen");
    again.close().await;

    let issued = issue_key(
        &store,
        NewKey {
            name: "billing".into(),
            scopes: vec![Scope::Admin, Scope::Predict, Scope::Admin],
            rate_limit: Some("100/m".parse::<RateLimit>().expect("limit")),
            expires_in: Some(std::time::Duration::from_secs(3600)),
            ..NewKey::default()
        },
    )
    .await
    .expect("issue");
    assert_eq!(issued.record.scopes, vec![Scope::Predict, Scope::Admin]);

    let found = store
        .find_key_by_hash(&secret::hash(&issued.key))
        .await
        .expect("query")
        .expect("found");
    assert_eq!(found, issued.record);
    assert_eq!(
        store.find_key(&issued.record.id).await.expect("query"),
        Some(issued.record.clone())
    );
    assert!(store
        .find_key_by_hash(&secret::hash("mg_other"))
        .await
        .expect("query")
        .is_none());
    assert_eq!(
        store.list_keys().await.expect("list"),
        vec![issued.record.clone()]
    );
    assert_eq!(store.count_keys().await.expect("count"), 1);

    let hash = secret::hash(&issued.key);
    assert_eq!(
        store
            .revoke_key(&issued.record.id, chrono::Utc::now())
            .await
            .expect("revoke"),
        Revocation::Revoked {
            key_hash: hash.clone()
        }
    );
    assert_eq!(
        store
            .revoke_key(&issued.record.id, chrono::Utc::now())
            .await
            .expect("revoke"),
        Revocation::AlreadyRevoked { key_hash: hash }
    );
    assert_eq!(
        store
            .revoke_key("key_missing", chrono::Utc::now())
            .await
            .expect("revoke"),
        Revocation::NotFound
    );
    let revoked = store
        .find_key(&issued.record.id)
        .await
        .expect("query")
        .expect("row");
    assert!(revoked.revoked_at.is_some());
    store.close().await;
}
both_backends!(keys_round_trip);

#[tokio::test]
async fn unreachable_postgres_fails_fast_with_a_clear_error() {
    let database = modelgate::config::DatabaseConfig {
        // A port nothing listens on: connection refused.
        url: "postgres://app:hunter2@127.0.0.1:1/db".into(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = match Store::open(&database).await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e.to_string(),
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(err.contains("cannot open database"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");
}
