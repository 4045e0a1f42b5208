//! L1: the in-process cache of key lookups, keyed by the key's hash (never the key).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::Principal;

#[derive(Debug, Clone)]
pub enum Lookup {
    Valid(Arc<Principal>),
    /// Remembered misses stop a client hammering the store with a bad key.
    Unknown,
}

struct TtlByOutcome {
    valid: Duration,
    unknown: Duration,
}

impl Expiry<String, Lookup> for TtlByOutcome {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Lookup,
        _now: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Lookup::Valid(_) => self.valid,
            Lookup::Unknown => self.unknown,
        })
    }
}

#[derive(Clone)]
pub struct KeyCache {
    entries: Cache<String, Lookup>,
}

impl KeyCache {
    pub fn new(capacity: u64, valid_ttl: Duration, unknown_ttl: Duration) -> KeyCache {
        let entries = Cache::builder()
            .max_capacity(capacity)
            .expire_after(TtlByOutcome {
                valid: valid_ttl,
                unknown: unknown_ttl,
            })
            .build();
        KeyCache { entries }
    }

    /// The cached lookup, or the result of `load`; concurrent misses for one hash share one load.
    pub async fn get_or_load<F, E>(&self, key_hash: &str, load: F) -> Result<Lookup, Arc<E>>
    where
        F: std::future::Future<Output = Result<Lookup, E>>,
        E: Send + Sync + 'static,
    {
        self.entries.try_get_with_by_ref(key_hash, load).await
    }

    pub async fn evict(&self, key_hash: &str) {
        self.entries.invalidate(key_hash).await;
    }
}
