//! L2: Redis as a cache of validated keys shared by every instance.
//!
//! Never waited on beyond Redis's request-path deadline: reads go through the `redis`
//! dependency (deadline, breaker) and answer "miss" on any trouble, writes are spawned. Entries
//! are keyed by the key's SHA-256, never the key, and signed with the deployment's
//! [`CacheSecret`] (see `shared_entry`): an entry that does not verify is a miss, counted and
//! logged, and the key is checked at its source. Admin principals are neither written nor
//! read here: admin calls are rare, and always checked at the source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use redis::AsyncCommands;

use super::revocation::REVOCATIONS_CHANNEL;
use super::shared_entry::{self, Rejection};
use super::{CacheSecret, Principal, Scope};
use crate::redis::{Connection, ExchangeError, Redis};

/// Where earlier versions kept their entries (v1 unsigned, v2 signed but without the key's
/// models, v3 before its hash tag); deleted on revocation so that an instance of such a version
/// still running in a rolling upgrade forgets the key too.
const EARLIER_KEY_PREFIXES: [&str; 3] = [
    "modelgate:auth:v1:",
    "modelgate:auth:v2:",
    "modelgate:auth:v3:",
];

/// How long a revoked key's tombstone refuses fills. A fill is spawned right after its source
/// lookup and lands within `redis.write_timeout` or never; minutes leave room for any clock.
const TOMBSTONE_TTL_SECS: u64 = 600;

/// Writes an entry unless the key has been revoked since (its tombstone exists): a fill whose
/// lookup read the key as valid just before a revocation must not put it back for
/// `auth.shared_ttl` after the revocation deleted it.
/// KEYS[1] the entry, KEYS[2] the tombstone; ARGV[1] the sealed entry, ARGV[2] its TTL (s).
const FILL_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
";

static FILL: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FILL_SCRIPT));

/// Signed expiries run this much past Redis's own TTL, which starts a little later (when the
/// write lands): a genuine entry must not read as expired in its last moments, nor on an
/// instance whose clock runs slightly ahead.
const EXPIRY_SLACK: Duration = Duration::from_secs(5);

/// At most one warning about rejected entries per this long: a forger (or a misconfigured
/// instance) must not be able to flood the log.
const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The shared auth cache. Cheap to clone.
#[derive(Clone)]
pub struct SharedTier {
    redis: Redis,
    secret: CacheSecret,
    ttl: Duration,
    rejections: Arc<RejectionLog>,
}

impl SharedTier {
    /// Entries are signed with `secret` and live `ttl` (`auth.shared_ttl`).
    pub fn new(redis: Redis, secret: CacheSecret, ttl: Duration) -> SharedTier {
        SharedTier {
            redis,
            secret,
            ttl,
            rejections: Arc::new(RejectionLog::default()),
        }
    }

    /// The cached principal, or `None` on a miss, on an entry that fails verification, and
    /// on any Redis trouble (which the breaker and the dependency's status record).
    pub async fn get(&self, key_hash: &str) -> Option<Principal> {
        let mut connection = self.redis.connection();
        let key = shared_entry::entry_key(key_hash);
        let raw: String = self
            .redis
            .dependency()
            .call(async move { connection.get::<_, Option<String>>(key).await })
            .await
            .ok()
            .flatten()?;
        shared_entry::open(&self.secret, key_hash, &raw, Utc::now())
            .map_err(|rejection| self.rejections.record(rejection))
            .ok()
    }

    /// Stores `principal` in the background; the caller never waits. Admin principals are not
    /// stored: they are always checked at the source.
    pub fn put(&self, key_hash: &str, principal: &Principal) {
        if principal.scopes.contains(&Scope::Admin) {
            return;
        }
        let ttl = self.ttl.max(Duration::from_secs(1));
        let expires_at = Utc::now() + ttl + EXPIRY_SLACK;
        let Ok(value) = shared_entry::seal(&self.secret, key_hash, principal, expires_at) else {
            return;
        };
        let (entry, tombstone) = (
            shared_entry::entry_key(key_hash),
            shared_entry::tombstone_key(key_hash),
        );
        let ttl = ttl.as_secs();
        self.redis.spawn_write(move |mut c| async move {
            let mut fill = FILL.key(entry);
            fill.key(tombstone).arg(value).arg(ttl);
            fill.invoke_async::<()>(&mut c).await
        });
    }

    /// Deletes the entry and tells every instance to forget the key; in the background.
    pub fn revoke(&self, key_hash: &str) {
        let hash = key_hash.to_string();
        self.redis
            .spawn_write(move |c| async move { forget(c, hash).await });
    }
}

/// Like [`SharedTier::revoke`], but waits (bounded), for one-shot processes such as the CLI,
/// which revoke without reading or writing entries (and so need no secret).
pub async fn revoke_shared_now(redis: &Redis, key_hash: &str) -> Result<(), ExchangeError> {
    let hash = key_hash.to_string();
    redis.write_now(move |c| forget(c, hash)).await
}

/// Marks the key revoked (before deleting its entry, so that no fill lands in between), deletes
/// its entries and announces the revocation.
async fn forget(mut c: Connection, key_hash: String) -> redis::RedisResult<()> {
    let tombstone = shared_entry::tombstone_key(&key_hash);
    c.set_ex::<_, _, ()>(tombstone, 1, TOMBSTONE_TTL_SECS)
        .await?;
    let mut keys = vec![shared_entry::entry_key(&key_hash)];
    keys.extend(
        EARLIER_KEY_PREFIXES
            .iter()
            .map(|prefix| format!("{prefix}{key_hash}")),
    );
    c.del::<_, ()>(&keys).await?;
    c.publish::<_, _, ()>(REVOCATIONS_CHANNEL, key_hash).await
}

/// Counts every rejected entry, and warns about them at most once per
/// [`REJECTION_LOG_INTERVAL`] (never with the key or the secret).
#[derive(Default)]
struct RejectionLog {
    last_warned: Mutex<Option<Instant>>,
    unreported: AtomicU64,
}

impl RejectionLog {
    fn record(&self, rejection: Rejection) {
        metrics::counter!(crate::metrics::AUTH_CACHE_REJECTED, "reason" => rejection.label())
            .increment(1);
        self.unreported.fetch_add(1, Ordering::Relaxed);
        // Contended means another request is deciding right now; its line covers this one.
        let Ok(mut last_warned) = self.last_warned.try_lock() else {
            return;
        };
        if last_warned.is_some_and(|at| at.elapsed() < REJECTION_LOG_INTERVAL) {
            return;
        }
        *last_warned = Some(Instant::now());
        let rejected = self.unreported.swap(0, Ordering::Relaxed);
        tracing::warn!(
            reason = rejection.label(),
            rejected,
            "ignored shared auth cache entries that failed verification ({rejection}); the keys \
             were checked at their source. Either something with write access to Redis is \
             forging entries, or instances sharing Redis do not share auth.cache_secret (or \
             the database that keeps it)"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::{Rejection, RejectionLog};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn a_flood_of_rejections_is_one_warning() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        let log = RejectionLog::default();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..1000 {
                log.record(Rejection::BadSignature);
            }
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("WARN") && text.contains("reason=\"bad_signature\""),
            "{text}"
        );
        // The next warning, a minute on, will count the rest.
        assert_eq!(log.unreported.load(Ordering::Relaxed), 999);
    }
}
