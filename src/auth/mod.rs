//! API key authentication: extraction, hashing, the principal, and the cache in front of the store.

mod cache;
pub mod extract;
mod issue;
mod principal;
mod scope;
pub mod secret;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;

pub use cache::{Answer, KeyCache, Lookup};
pub use issue::{issue_key, prepare_key, IssuedKey, NewKey, NewKeyError};
pub use principal::Principal;
pub use scope::{allows, Period, RateLimit, Scope};

use crate::cache::SharedCache;
use crate::config::AuthConfig;
use crate::resilience::{CallError, Dependency};
use crate::store::{Revocation, Store, StoreError};

/// Why a request is not allowed through. Each maps to one HTTP answer (see `http::problem`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("an API key is required")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("API keys are not accepted in the query string")]
    QueryKeyRefused,
    #[error("the API key lacks the {needed} scope")]
    InsufficientScope { needed: Scope },
    #[error("the API key cannot be checked right now")]
    Unavailable,
}

/// Validates keys against the local store, through the in-process cache (L1) and, when
/// Redis is configured, the shared cache (L2).
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    database: Arc<Dependency>,
    cache: KeyCache,
    shared: Option<SharedCache>,
    /// Requests answered from a stale entry because the source could not answer.
    stale_served: Arc<AtomicU64>,
}

impl Authenticator {
    /// `database` guards every store call (timeout, breaker).
    pub fn new(store: Store, database: Arc<Dependency>, config: &AuthConfig) -> Authenticator {
        Authenticator {
            store,
            database,
            cache: KeyCache::new(
                config.cache_capacity,
                config.cache_ttl,
                config.stale_horizon,
                config.negative_ttl,
            ),
            shared: None,
            stale_served: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Adds the shared Redis cache in front of the store.
    pub fn with_shared_cache(mut self, shared: SharedCache) -> Authenticator {
        self.shared = Some(shared);
        self
    }

    pub fn shared_cache(&self) -> Option<&SharedCache> {
        self.shared.as_ref()
    }

    /// The in-process cache, for the revocation listener.
    pub fn local_cache(&self) -> KeyCache {
        self.cache.clone()
    }

    pub async fn authenticate(&self, key: &str) -> Result<Arc<Principal>, AuthError> {
        let key_hash = secret::hash(key);
        let answer = self
            .cache
            .get_or_load(&key_hash, self.load(&key_hash))
            .await
            .map_err(|err| {
                // An open breaker is already logged once when it opened; do not log per request.
                if !matches!(err, CallError::Open { .. }) {
                    tracing::warn!(error = %err, key_prefix = %secret::display_prefix(key), "key lookup failed");
                }
                AuthError::Unavailable
            })?;
        let lookup = match answer {
            Answer::Current(lookup) => lookup,
            Answer::Stale(principal) => {
                self.stale_served.fetch_add(1, Ordering::Relaxed);
                Lookup::Valid(principal)
            }
        };
        match lookup {
            // A cached principal can expire while cached; the check is per request.
            Lookup::Valid(principal) if !principal.is_expired(Utc::now()) => Ok(principal),
            _ => Err(AuthError::Invalid),
        }
    }

    /// How many requests were let through on a stale entry because the source was down.
    pub fn stale_served(&self) -> u64 {
        self.stale_served.load(Ordering::Relaxed)
    }

    async fn load(&self, key_hash: &str) -> Result<Lookup, CallError<StoreError>> {
        if let Some(shared) = &self.shared {
            if let Some(principal) = shared.get(key_hash).await {
                return Ok(Lookup::Valid(Arc::new(principal)));
            }
        }
        let record = self
            .database
            .call(self.store.find_key_by_hash(key_hash))
            .await?;
        let principal = record.and_then(|r| Principal::from_record(&r, Utc::now()));
        if let (Some(principal), Some(shared)) = (&principal, &self.shared) {
            shared.put(key_hash, principal);
        }
        Ok(principal.map_or(Lookup::Unknown, |p| Lookup::Valid(Arc::new(p))))
    }

    /// Revokes in the store and forgets the key here at once.
    pub async fn revoke(&self, key_id: &str) -> Result<Revocation, CallError<StoreError>> {
        let outcome = self
            .database
            .call(self.store.revoke_key(key_id, Utc::now()))
            .await?;
        if let Revocation::Revoked { key_hash } | Revocation::AlreadyRevoked { key_hash } = &outcome
        {
            self.cache.evict(key_hash).await;
            if let Some(shared) = &self.shared {
                shared.revoke(key_hash);
            }
        }
        Ok(outcome)
    }
}
