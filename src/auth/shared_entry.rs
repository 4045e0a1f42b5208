//! The shared cache's entry format: a principal sealed with HMAC-SHA256 under the deployment's
//! [`CacheSecret`], so that write access to Redis is not enough to make an entry an instance
//! trusts.
//!
//! Stored under `modelgate:auth:v3:{<key hash>}` as `<MAC, hex>.<expiry, Unix ms>.<principal
//! JSON>`. The MAC covers the key hash as well as the value, so a genuine entry cannot be moved
//! under another key, and the expiry, so a genuine entry copied before a revocation cannot be
//! written back for longer than `auth.shared_ttl`. It covers the whole principal, so the key's
//! list of models (`models`, null for every model) cannot be widened or dropped either.
//!
//! The unsigned entries of v1 are never read. Neither are the signed entries of v2: they
//! predate keys limited to models, and an instance of that version still running in a rolling
//! upgrade writes them, genuinely signed and without `models`, for keys that are limited.
//! Read as "every model" they would widen those keys, and nothing in a v2 entry tells them
//! apart; the version is in the MAC's input, so a v2 entry cannot be passed off as v3.

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{CacheSecret, Principal, Scope};

const KEY_PREFIX: &str = "modelgate:auth:v3:";

/// Separates the MAC's inputs; it occurs in none of them (hex, digits, JSON text).
const SEPARATOR: &[u8] = b"\0";

/// Where the entry of the key with this hash lives. The hash is a hash tag, so that the entry
/// and the key's [`tombstone_key`] share a Cluster slot (the fill script reads both).
pub fn entry_key(key_hash: &str) -> String {
    format!("{KEY_PREFIX}{{{key_hash}}}")
}

/// Marks the key with this hash revoked, for as long as a fill started before the revocation
/// could still land (see `shared_tier`).
pub fn tombstone_key(key_hash: &str) -> String {
    format!("modelgate:auth:revoked:{{{key_hash}}}")
}

/// Why an entry read from Redis was not used. Each is a label of
/// `modelgate_auth_cache_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not a signed entry")]
    Malformed,
    #[error("its signature does not verify")]
    BadSignature,
    #[error("past its signed expiry")]
    Expired,
    /// Admin principals are never written to the shared cache: one found there was not.
    #[error("admin principals are never taken from the shared cache")]
    Admin,
}

impl Rejection {
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::Admin => "admin",
        }
    }
}

fn mac(secret: &CacheSecret, key_hash: &str, expires_ms: &str, json: &str) -> Hmac<Sha256> {
    let mut mac = secret.mac();
    for part in [
        KEY_PREFIX.as_bytes(),
        key_hash.as_bytes(),
        expires_ms.as_bytes(),
        json.as_bytes(),
    ] {
        mac.update(part);
        mac.update(SEPARATOR);
    }
    mac
}

/// The stored value for `principal` under `key_hash`, trusted until `expires_at`.
pub fn seal(
    secret: &CacheSecret,
    key_hash: &str,
    principal: &Principal,
    expires_at: DateTime<Utc>,
) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(principal)?;
    let expires_ms = expires_at.timestamp_millis().to_string();
    let tag = mac(secret, key_hash, &expires_ms, &json)
        .finalize()
        .into_bytes();
    Ok(format!("{}.{expires_ms}.{json}", hex::encode(tag)))
}

/// The principal in `raw`, read from under `key_hash`, if this deployment sealed it there, it
/// has not expired at `now`, and it is one the shared cache may answer for.
pub fn open(
    secret: &CacheSecret,
    key_hash: &str,
    raw: &str,
    now: DateTime<Utc>,
) -> Result<Principal, Rejection> {
    let mut parts = raw.splitn(3, '.');
    let (Some(tag), Some(expires_ms), Some(json)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let tag = hex::decode(tag).map_err(|_| Rejection::Malformed)?;
    let expires = expires_ms
        .parse::<i64>()
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .ok_or(Rejection::Malformed)?;
    // Constant time: how much of a forged tag matched must not show in the time taken.
    mac(secret, key_hash, expires_ms, json)
        .verify_slice(&tag)
        .map_err(|_| Rejection::BadSignature)?;
    if expires <= now {
        return Err(Rejection::Expired);
    }
    let principal: Principal = serde_json::from_str(json).map_err(|_| Rejection::Malformed)?;
    if principal.scopes.contains(&Scope::Admin) {
        return Err(Rejection::Admin);
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;

    fn secret() -> CacheSecret {
        CacheSecret::new("test-secret-test-secret-test-secret-0")
    }

    fn principal(scopes: Vec<Scope>) -> Principal {
        Principal::for_test(scopes)
    }

    fn limited(models: &[&str]) -> Principal {
        Principal {
            models: Some(models.iter().map(|m| m.to_string()).collect()),
            ..principal(vec![Scope::Predict])
        }
    }

    const HASH: &str = "aa11";

    #[test]
    fn a_sealed_entry_opens_under_its_key_until_it_expires() {
        let now = Utc::now();
        let sealed = seal(
            &secret(),
            HASH,
            &principal(vec![Scope::Predict]),
            now + Duration::minutes(5),
        )
        .expect("seal");
        assert_eq!(
            open(&secret(), HASH, &sealed, now),
            Ok(principal(vec![Scope::Predict]))
        );
        assert_eq!(
            open(&secret(), HASH, &sealed, now + Duration::minutes(6)),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn forgeries_are_rejected() {
        let now = Utc::now();
        let later = now + Duration::minutes(5);
        let genuine = seal(&secret(), HASH, &principal(vec![Scope::Predict]), later).expect("seal");
        let plain = serde_json::to_string(&principal(vec![Scope::Predict])).expect("json");
        assert_eq!(
            open(&secret(), HASH, &plain, now),
            Err(Rejection::Malformed)
        );
        // Moved under another key.
        assert_eq!(
            open(&secret(), "bb22", &genuine, now),
            Err(Rejection::BadSignature)
        );
        // Signed with another secret.
        let other = CacheSecret::new("another-secret-another-secret-000");
        let foreign = seal(&other, HASH, &principal(vec![Scope::Predict]), later).expect("seal");
        assert_eq!(
            open(&secret(), HASH, &foreign, now),
            Err(Rejection::BadSignature)
        );
        // Expiry pushed out, or scopes edited, after signing.
        let (tag, rest) = genuine.split_once('.').expect("tag");
        let (_, json) = rest.split_once('.').expect("expiry");
        let extended = format!(
            "{tag}.{}.{json}",
            (later + Duration::days(9)).timestamp_millis()
        );
        assert_eq!(
            open(&secret(), HASH, &extended, now),
            Err(Rejection::BadSignature)
        );
        let elevated = genuine.replace("\"predict\"", "\"admin\"");
        assert_eq!(
            open(&secret(), HASH, &elevated, now),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn a_key_s_models_travel_in_the_entry_and_cannot_be_widened() {
        let now = Utc::now();
        let later = now + Duration::minutes(5);
        let genuine = seal(&secret(), HASH, &limited(&["21"]), later).expect("seal");
        assert!(genuine.contains(r#""models":["21"]"#), "{genuine}");
        assert_eq!(open(&secret(), HASH, &genuine, now), Ok(limited(&["21"])));
        // Another model added, the list made null, or the field dropped: each is a forgery.
        for widened in [
            genuine.replace(r#"["21"]"#, r#"["21","22"]"#),
            genuine.replace(r#"["21"]"#, "null"),
            genuine.replace(r#","models":["21"]"#, ""),
        ] {
            assert_ne!(widened, genuine);
            assert_eq!(
                open(&secret(), HASH, &widened, now),
                Err(Rejection::BadSignature),
                "{widened}"
            );
        }
        // An unrestricted key's entry says so.
        let open_key =
            seal(&secret(), HASH, &principal(vec![Scope::Predict]), later).expect("seal");
        assert!(open_key.contains(r#""models":null"#), "{open_key}");
    }

    /// A v2 entry, genuinely signed by an earlier version that knew nothing of models, would
    /// read as "every model": the version is signed, so it does not open as v3.
    #[test]
    fn entries_of_the_version_before_models_do_not_open() {
        let now = Utc::now();
        let json = r#"{"key_id":"k1","name":"n","prefix":"mg_abc","scopes":["predict"],"rate_limit":null,"expires_at":null}"#;
        let expires_ms = (now + Duration::minutes(5)).timestamp_millis().to_string();
        let mut v2 = secret().mac();
        for part in ["modelgate:auth:v2:", HASH, &expires_ms, json] {
            v2.update(part.as_bytes());
            v2.update(SEPARATOR);
        }
        let tag = hex::encode(v2.finalize().into_bytes());
        assert_eq!(
            open(&secret(), HASH, &format!("{tag}.{expires_ms}.{json}"), now),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn admin_principals_are_refused_even_when_genuinely_signed() {
        let now = Utc::now();
        let sealed = seal(
            &secret(),
            HASH,
            &principal(vec![Scope::Admin]),
            now + Duration::minutes(5),
        )
        .expect("seal");
        assert_eq!(open(&secret(), HASH, &sealed, now), Err(Rejection::Admin));
    }
}
