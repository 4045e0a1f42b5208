//! L1: the in-process cache of key lookups, keyed by the key's hash (never the key).
//!
//! A valid entry is *fresh* for `fresh_ttl` (answered without asking anyone), then *stale*
//! until `stale_horizon`: a stale entry is refreshed from the source, and served only when the
//! source cannot answer, so an outage of the source does not lock out keys seen recently.
//!
//! Valid and unknown keys live in two caches, each with its own bound: a flood of invented
//! keys fills only the cache of misses, and cannot push a valid key out (which would cost the
//! key a lookup, and lock it out while the source is down).
//!
//! An eviction (a revocation) is remembered for a minute, so that a load already under way,
//! which may have read the key before it was revoked, does not put it back.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use super::Principal;

#[derive(Debug, Clone)]
pub enum Lookup {
    Valid(Arc<Principal>),
    /// Remembered misses stop a client hammering the source with a bad key.
    Unknown,
}

/// What the cache answered with.
#[derive(Debug, Clone)]
pub enum Answer {
    /// From a fresh entry, without asking anyone.
    Cached(Lookup),
    /// From a load just made (by this caller or a concurrent one for the same key).
    Loaded(Lookup),
    /// The source failed; this valid entry is past its fresh TTL but within the stale horizon.
    Stale(Arc<Principal>),
}

#[derive(Debug, Clone)]
struct Entry {
    principal: Arc<Principal>,
    fetched: Instant,
}

/// Sizes and lifetimes of the two caches.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    pub capacity: u64,
    pub fresh_ttl: Duration,
    pub stale_horizon: Duration,
    pub unknown_capacity: u64,
    pub unknown_ttl: Duration,
}

#[derive(Clone)]
pub struct KeyCache {
    valid: Cache<String, Entry>,
    unknown: Cache<String, ()>,
    /// When each key was last evicted.
    evicted: Cache<String, Instant>,
    fresh_ttl: Duration,
}

/// Longer than any load may take (every source call has a deadline of seconds at most).
const EVICTION_MEMORY: Duration = Duration::from_secs(60);
/// Revocations are rare; past this many a minute the oldest are forgotten first.
const EVICTION_CAPACITY: u64 = 10_000;

impl KeyCache {
    pub fn new(limits: CacheLimits) -> KeyCache {
        KeyCache {
            valid: Cache::builder()
                .max_capacity(limits.capacity)
                .time_to_live(limits.stale_horizon.max(limits.fresh_ttl))
                .build(),
            unknown: Cache::builder()
                .max_capacity(limits.unknown_capacity)
                .time_to_live(limits.unknown_ttl)
                .build(),
            evicted: Cache::builder()
                .max_capacity(EVICTION_CAPACITY)
                .time_to_live(EVICTION_MEMORY)
                .build(),
            fresh_ttl: limits.fresh_ttl,
        }
    }

    fn is_fresh(&self, entry: &Entry) -> bool {
        entry.fetched.elapsed() < self.fresh_ttl
    }

    /// Whether `key_hash` was valid within the stale horizon: a memory read, no load.
    pub fn knows_valid(&self, key_hash: &str) -> bool {
        self.valid.contains_key(key_hash)
    }

    /// The fresh cached lookup, or the result of `load`. Concurrent misses for one hash share
    /// one load. When `load` fails, a stale valid entry is returned if there is one.
    pub async fn get_or_load<F, E>(&self, key_hash: &str, load: F) -> Result<Answer, E>
    where
        F: Future<Output = Result<Lookup, E>>,
        E: Send + Sync + 'static,
    {
        let cached = self.valid.get(key_hash).await;
        match &cached {
            Some(entry) if self.is_fresh(entry) => {
                return Ok(Answer::Cached(Lookup::Valid(entry.principal.clone())));
            }
            None if self.unknown.contains_key(key_hash) => {
                return Ok(Answer::Cached(Lookup::Unknown));
            }
            _ => {}
        }
        // The load runs under the valid cache's per-key lock, so concurrent callers wait for it
        // and then find its answer in one cache or the other.
        let computed = self
            .valid
            .entry_by_ref(key_hash)
            .and_try_compute_with(|current| async move {
                match &current {
                    Some(entry) if self.is_fresh(entry.value()) => return Ok(Op::Nop),
                    None if self.unknown.contains_key(key_hash) => return Ok(Op::Nop),
                    _ => {}
                }
                let started = Instant::now();
                let lookup = load.await?;
                if self
                    .evicted
                    .get(key_hash)
                    .await
                    .is_some_and(|at| at >= started)
                {
                    // Revoked while the load was under way: what it read may predate that.
                    return Ok(if current.is_some() {
                        Op::Remove
                    } else {
                        Op::Nop
                    });
                }
                match lookup {
                    Lookup::Valid(principal) => Ok(Op::Put(Entry {
                        principal,
                        fetched: Instant::now(),
                    })),
                    Lookup::Unknown => {
                        self.unknown.insert(key_hash.to_string(), ()).await;
                        // A key that was valid and no longer is (revoked, deleted) goes.
                        Ok(if current.is_some() {
                            Op::Remove
                        } else {
                            Op::Nop
                        })
                    }
                }
            })
            .await;
        match computed {
            Ok(
                CompResult::Inserted(entry)
                | CompResult::ReplacedWith(entry)
                | CompResult::Unchanged(entry),
            ) => Ok(Answer::Loaded(Lookup::Valid(entry.into_value().principal))),
            Ok(CompResult::StillNone(_) | CompResult::Removed(_)) => {
                Ok(Answer::Loaded(Lookup::Unknown))
            }
            Err(err) => match cached {
                Some(entry) => Ok(Answer::Stale(entry.principal)),
                None => Err(err),
            },
        }
    }

    /// Forgets a revoked key: it is answered unknown for `unknown_ttl` (long enough for the
    /// revocation to reach the shared cache too), and a load already under way does not put it
    /// back.
    pub async fn evict(&self, key_hash: &str) {
        self.evicted
            .insert(key_hash.to_string(), Instant::now())
            .await;
        self.valid.invalidate(key_hash).await;
        self.unknown.insert(key_hash.to_string(), ()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal::for_test(Vec::new()))
    }

    fn cache() -> KeyCache {
        KeyCache::new(CacheLimits {
            capacity: 10,
            fresh_ttl: Duration::from_secs(30),
            stale_horizon: Duration::from_secs(600),
            unknown_capacity: 10,
            unknown_ttl: Duration::from_secs(5),
        })
    }

    #[tokio::test]
    async fn a_load_under_way_when_the_key_is_evicted_does_not_put_it_back() {
        let cache = cache();
        let (read, reply) = tokio::sync::oneshot::channel::<()>();
        let load = async {
            // The load read the key as valid, then the revocation arrived.
            let _ = reply.await;
            Ok::<_, std::convert::Infallible>(Lookup::Valid(principal()))
        };
        let answering = cache.get_or_load("hash", load);
        let revoking = async {
            tokio::task::yield_now().await;
            cache.evict("hash").await;
            let _ = read.send(());
        };
        let (answer, ()) = tokio::join!(answering, revoking);
        assert!(
            matches!(answer, Ok(Answer::Loaded(Lookup::Unknown))),
            "{answer:?}"
        );
        assert!(!cache.knows_valid("hash"));
        let unused = async { Ok::<_, std::convert::Infallible>(Lookup::Valid(principal())) };
        assert!(
            matches!(
                cache.get_or_load("hash", unused).await,
                Ok(Answer::Cached(Lookup::Unknown))
            ),
            "a revoked key is answered unknown without a load"
        );

        // A load that starts after the eviction is kept as usual.
        cache.unknown.invalidate("hash").await;
        let fresh = async { Ok::<_, std::convert::Infallible>(Lookup::Valid(principal())) };
        assert!(matches!(
            cache.get_or_load("hash", fresh).await,
            Ok(Answer::Loaded(Lookup::Valid(_)))
        ));
        assert!(cache.knows_valid("hash"));
    }
}
