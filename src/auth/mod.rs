//! API key authentication: extraction, hashing, the principal, the caches (L1 in process,
//! L2 in Redis) and the key's source (the local store or the remote auth service).

mod cache;
mod cache_secret;
pub mod extract;
mod issue;
mod principal;
mod remote;
pub mod revocation;
pub mod secret;
pub mod shared_entry;
mod shared_tier;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;

pub use cache::{Answer, CacheLimits, KeyCache, Lookup};
pub use cache_secret::CacheSecret;
pub use issue::{
    issue_key, prepare_key, IssuedKey, ModelsError, NewKey, NewKeyError, MAX_CREDITS,
    MAX_KEY_MODELS, MAX_MODEL_ID_LEN,
};
pub use principal::Principal;
use remote::Verdict;
pub use remote::{RemoteAuth, HEALTH_PROBE_KEY};
pub use shared_tier::{revoke_shared_now, SharedTier};

use crate::config::AuthConfig;
use crate::resilience::CallError;
use crate::store::{Guarded, GuardedStore, Revocation};

// Auth's callers speak of scopes and limits through auth; the types live in the vocabulary,
// where config and store can use them too.
pub use crate::vocabulary::{allows, Period, RateLimit, Scope};

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
    #[error("the API key may not use this model")]
    ModelNotAllowed { model_id: String },
    #[error("the API key cannot be checked right now")]
    Unavailable,
    #[error("the auth service is rate limiting; retry later")]
    RateLimited { retry_after: std::time::Duration },
    #[error("the account behind the API key has insufficient balance")]
    InsufficientBalance,
}

/// Why no lookup result came back from the key's source.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Unavailable(String),
    /// Already logged, once, by health when the circuit opened.
    #[error("circuit open")]
    CircuitOpen,
    #[error("rate limited by the auth service")]
    RateLimited(std::time::Duration),
}

impl<E: std::fmt::Display> From<CallError<E>> for LoadError {
    fn from(err: CallError<E>) -> Self {
        match err {
            CallError::Open { .. } => LoadError::CircuitOpen,
            other => LoadError::Unavailable(other.to_string()),
        }
    }
}

/// Counts where a key's validity came from: `l1`, `l2`, `source` or `stale`.
fn count_lookup(tier: &'static str) {
    metrics::counter!(crate::metrics::AUTH_LOOKUPS, "tier" => tier).increment(1);
}

/// Where keys are validated.
#[derive(Clone)]
enum Source {
    /// The local store (SQLite or PostgreSQL), behind its `database` guard.
    Local,
    /// The remote auth service.
    Remote(RemoteAuth),
}

/// Validates keys against the local store, through the in-process cache (L1) and, when
/// Redis is configured, the shared cache (L2).
#[derive(Clone)]
pub struct Authenticator {
    store: GuardedStore,
    cache: KeyCache,
    shared: Option<SharedTier>,
    source: Source,
    /// Requests answered from a stale entry because the source could not answer.
    stale_served: Arc<AtomicU64>,
}

impl Authenticator {
    pub fn new(store: GuardedStore, config: &AuthConfig) -> Authenticator {
        Authenticator {
            store,
            cache: KeyCache::new(CacheLimits {
                capacity: config.cache_capacity,
                fresh_ttl: config.cache_ttl,
                stale_horizon: config.stale_horizon,
                unknown_capacity: config.negative_cache_capacity,
                unknown_ttl: config.negative_ttl,
            }),
            shared: None,
            source: Source::Local,
            stale_served: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Adds the shared Redis cache in front of the store.
    pub fn with_shared_tier(mut self, shared: SharedTier) -> Authenticator {
        self.shared = Some(shared);
        self
    }

    /// Validates keys with the remote auth service instead of the local store.
    pub fn with_remote(mut self, remote: RemoteAuth) -> Authenticator {
        self.source = Source::Remote(remote);
        self
    }

    pub fn remote(&self) -> Option<&RemoteAuth> {
        match &self.source {
            Source::Remote(remote) => Some(remote),
            Source::Local => None,
        }
    }

    /// The in-process cache, for the revocation listener.
    pub fn local_cache(&self) -> KeyCache {
        self.cache.clone()
    }

    /// Whether `key` was valid within the stale horizon, from L1 alone (no load): such a key
    /// is let through even from a client address throttled for failed authentication.
    pub fn knows_valid(&self, key: &str) -> bool {
        self.cache.knows_valid(&secret::hash(key))
    }

    /// Keys of the local store must have its format; one that cannot is refused before any
    /// cache or store is asked. A remote auth service's keys have the remote's format, which is
    /// not ours to judge.
    fn check_format(&self, key: &str) -> Result<(), AuthError> {
        let Source::Local = self.source else {
            return Ok(());
        };
        secret::check_format(key).map_err(|malformed| {
            metrics::counter!(crate::metrics::AUTH_REJECTED_OFFLINE, "reason" => malformed.reason())
                .increment(1);
            AuthError::Invalid
        })
    }

    pub async fn authenticate(
        &self,
        key: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Principal>, AuthError> {
        self.check_format(key)?;
        let key_hash = secret::hash(key);
        let answer = self
            .cache
            .get_or_load(&key_hash, self.load(key, &key_hash, client_ip))
            .await
            .map_err(|err| match err {
                LoadError::RateLimited(retry_after) => AuthError::RateLimited { retry_after },
                LoadError::CircuitOpen => AuthError::Unavailable,
                LoadError::Unavailable(reason) => {
                    tracing::warn!(error = %reason, key_prefix = %secret::display_prefix(key), "key lookup failed");
                    AuthError::Unavailable
                }
            })?;
        let lookup = match answer {
            Answer::Cached(lookup) => {
                count_lookup("l1");
                lookup
            }
            // Loads are counted where they happen (L2 or the source).
            Answer::Loaded(lookup) => lookup,
            Answer::Stale(principal) => {
                count_lookup("stale");
                self.stale_served.fetch_add(1, Ordering::Relaxed);
                Lookup::Valid(principal)
            }
        };
        match lookup {
            // A cached principal can expire while cached; the check is per request.
            Lookup::Valid(principal) if principal.is_expired(Utc::now()) => Err(AuthError::Invalid),
            Lookup::Valid(principal) if !principal.has_sufficient_balance => {
                Err(AuthError::InsufficientBalance)
            }
            Lookup::Valid(principal) => Ok(principal),
            Lookup::Unknown => Err(AuthError::Invalid),
        }
    }

    /// How many requests were let through on a stale entry because the source was down.
    pub fn stale_served(&self) -> u64 {
        self.stale_served.load(Ordering::Relaxed)
    }

    /// L2, then the source; a valid answer from the source is copied to L2 in the background.
    async fn load(
        &self,
        key: &str,
        key_hash: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Lookup, LoadError> {
        if let Some(shared) = &self.shared {
            if let Some(principal) = shared.get(key_hash).await {
                count_lookup("l2");
                return Ok(Lookup::Valid(Arc::new(principal)));
            }
        }
        let lookup = match &self.source {
            Source::Local => {
                let record = self.store.find_key_by_hash(key_hash).await?;
                record
                    .and_then(|r| Principal::from_record(&r, Utc::now()))
                    .map_or(Lookup::Unknown, |p| Lookup::Valid(Arc::new(p)))
            }
            Source::Remote(remote) => match remote.validate(key, client_ip).await? {
                Verdict::Known(lookup) => lookup,
                Verdict::RateLimited { retry_after } => {
                    return Err(LoadError::RateLimited(retry_after))
                }
            },
        };
        count_lookup("source");
        if let (Lookup::Valid(principal), Some(shared)) = (&lookup, &self.shared) {
            shared.put(key_hash, principal);
        }
        Ok(lookup)
    }

    /// Revokes in the store and forgets the key here at once.
    pub async fn revoke(&self, key_id: &str) -> Guarded<Revocation> {
        let outcome = self.store.revoke_key(key_id, Utc::now()).await?;
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
