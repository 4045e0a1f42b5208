//! The key that signs the shared cache's entries. Every instance must hold the same one, so
//! that an entry one instance wrote is trusted by the others, while write access to Redis alone
//! is not enough to make an entry anyone trusts.
//!
//! It comes from `auth.cache_secret` when set; otherwise it is generated once and kept in the
//! store, so that instances sharing a database share it with no setup.

use hmac::digest::KeyInit;
use hmac::Hmac;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::config::AuthConfig;
use crate::store::{Backend, Guarded, GuardedStore};

/// The secret's name in the store's `deployment_secrets`.
const STORE_NAME: &str = "auth_cache";

/// SHA-256's block size: HMAC's key is padded (or first hashed) to it.
const BLOCK: usize = 64;

/// The signing key, as a keyed HMAC-SHA256 (cloned for each entry). Never printed (`Debug`
/// says `***`).
#[derive(Clone)]
pub struct CacheSecret {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for CacheSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheSecret(***)")
    }
}

impl CacheSecret {
    pub fn new(secret: &str) -> CacheSecret {
        // RFC 2104: a key longer than the block is replaced by its hash; the key is then
        // zero-padded to the block. Done here, with HMAC keyed by the block itself, so that
        // keying cannot fail (`new_from_slice` returns a Result it never errs with).
        let mut block = [0u8; BLOCK];
        let bytes = secret.as_bytes();
        if bytes.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(bytes));
        } else {
            block[..bytes.len()].copy_from_slice(bytes);
        }
        CacheSecret {
            keyed: Hmac::new(&block.into()),
        }
    }

    /// A fresh HMAC-SHA256 under this key.
    pub(super) fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    /// The configured secret, else the store's (created now if no instance has made one).
    pub async fn resolve(config: &AuthConfig, store: &GuardedStore) -> Guarded<CacheSecret> {
        if let Some(secret) = &config.cache_secret {
            return Ok(CacheSecret::new(secret));
        }
        let candidate = hex::encode(rand::rng().random::<[u8; 32]>());
        let stored = store.deployment_secret(STORE_NAME, &candidate).await?;
        if store.backend() == Backend::Sqlite {
            tracing::info!(
                "the shared auth cache's entries are signed with a secret kept in this SQLite \
                 database; instances that do not share the database file must share \
                 auth.cache_secret, or they reject each other's entries"
            );
        }
        Ok(CacheSecret::new(&stored))
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::CacheSecret;

    #[test]
    fn keying_is_standard_hmac_for_short_and_long_secrets() {
        for secret in ["a".repeat(32), "b".repeat(64), "c".repeat(131)] {
            let mut ours = CacheSecret::new(&secret).mac();
            let mut reference =
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any length");
            ours.update(b"message");
            reference.update(b"message");
            assert_eq!(
                ours.finalize().into_bytes(),
                reference.finalize().into_bytes(),
                "secret of {} bytes",
                secret.len()
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", CacheSecret::new("hunter2-hunter2-hunter2-hunter2!"));
        assert_eq!(shown, "CacheSecret(***)");
    }
}
