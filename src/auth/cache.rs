//! L1: the in-process cache of key lookups, keyed by the key's hash (never the key).
//!
//! A valid entry is *fresh* for `fresh_ttl` (answered without asking anyone), then *stale*
//! until `stale_horizon`: a stale entry is refreshed from the source, and served only when the
//! source cannot answer, so an outage of the source does not lock out keys seen recently.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::ops::compute::Op;
use moka::Expiry;

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
    lookup: Lookup,
    fetched: Instant,
}

struct TtlByOutcome {
    valid: Duration,
    unknown: Duration,
}

impl TtlByOutcome {
    fn ttl(&self, entry: &Entry) -> Duration {
        match entry.lookup {
            Lookup::Valid(_) => self.valid,
            Lookup::Unknown => self.unknown,
        }
    }
}

impl Expiry<String, Entry> for TtlByOutcome {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(self.ttl(value))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(value))
    }
}

#[derive(Clone)]
pub struct KeyCache {
    entries: Cache<String, Entry>,
    fresh_ttl: Duration,
}

impl KeyCache {
    pub fn new(
        capacity: u64,
        fresh_ttl: Duration,
        stale_horizon: Duration,
        unknown_ttl: Duration,
    ) -> KeyCache {
        let entries = Cache::builder()
            .max_capacity(capacity)
            .expire_after(TtlByOutcome {
                valid: stale_horizon.max(fresh_ttl),
                unknown: unknown_ttl,
            })
            .build();
        KeyCache { entries, fresh_ttl }
    }

    fn is_fresh(&self, entry: &Entry) -> bool {
        entry.fetched.elapsed() < self.fresh_ttl
    }

    /// The fresh cached lookup, or the result of `load`. Concurrent misses for one hash share
    /// one load. When `load` fails, a stale valid entry is returned if there is one.
    pub async fn get_or_load<F, E>(&self, key_hash: &str, load: F) -> Result<Answer, E>
    where
        F: Future<Output = Result<Lookup, E>>,
        E: Send + Sync + 'static,
    {
        let cached = self.entries.get(key_hash).await;
        if let Some(entry) = cached.as_ref().filter(|e| self.is_fresh(e)) {
            return Ok(Answer::Cached(entry.lookup.clone()));
        }
        let computed = self
            .entries
            .entry_by_ref(key_hash)
            .and_try_compute_with(|current| async move {
                // Another caller may have refreshed the entry while this one waited.
                if current.is_some_and(|e| self.is_fresh(e.value())) {
                    return Ok(Op::Nop);
                }
                let lookup = load.await?;
                Ok(Op::Put(Entry {
                    lookup,
                    fetched: Instant::now(),
                }))
            })
            .await;
        match computed {
            Ok(result) => match result.into_entry() {
                Some(entry) => Ok(Answer::Loaded(entry.into_value().lookup)),
                None => Ok(Answer::Loaded(Lookup::Unknown)),
            },
            Err(err) => match cached.map(|e| e.lookup) {
                Some(Lookup::Valid(principal)) => Ok(Answer::Stale(principal)),
                _ => Err(err),
            },
        }
    }

    pub async fn evict(&self, key_hash: &str) {
        self.entries.invalidate(key_hash).await;
    }
}
