//! The API key secret: generation, hashing and the non-secret display prefix.

use rand::Rng;
use sha2::{Digest, Sha256};

const KEY_PREFIX: &str = "mg_";
const RANDOM_CHARS: usize = 40;
/// Characters of the key shown in listings and logs: `mg_` plus 8 random characters.
const DISPLAY_CHARS: usize = KEY_PREFIX.len() + 8;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: `mg_` + 40 base62 characters (≈238 bits) from the OS-seeded CSPRNG.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let random: String = (0..RANDOM_CHARS)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect();
    format!("{KEY_PREFIX}{random}")
}

/// Lowercase hex SHA-256: what the store and caches know a key by.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The start of the key, safe to show and log.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_have_the_documented_shape() {
        let key = generate();
        assert!(key.starts_with("mg_"));
        let body = &key[3..];
        assert!(body.len() >= 32);
        assert!(body.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn keys_do_not_repeat() {
        let keys: HashSet<String> = (0..1000).map(|_| generate()).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn prefix_is_short_and_not_the_key() {
        let key = generate();
        let prefix = display_prefix(&key);
        assert_eq!(prefix.len(), 11);
        assert!(key.starts_with(&prefix));
    }
}
