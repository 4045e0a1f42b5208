//! The API key secret: generation, the offline format check, hashing and the non-secret
//! display prefix.
//!
//! A key is `mg_` + 30 random base62 characters + the CRC32 of those 30 characters as 6 base62
//! digits (the shape of GitHub's tokens). The checksum is not a secret and proves nothing about
//! the key's validity; it lets a typo or an invented key be refused without asking Redis or the
//! store, so that guessing costs the server nothing. Keys issued before the checksum
//! (`mg_` + 40 base62 characters) have no checksum and are recognised by shape alone.

use rand::Rng;
use sha2::{Digest, Sha256};

const KEY_PREFIX: &str = "mg_";
/// ≈178 bits of randomness.
const RANDOM_CHARS: usize = 30;
/// 62^6 > 2^32: six base62 digits hold any CRC32.
const CHECKSUM_CHARS: usize = 6;
/// Keys issued before the checksum: `mg_` + 40 base62 characters, nothing else.
const LEGACY_RANDOM_CHARS: usize = 40;
/// Characters of the key shown in listings and logs: `mg_` plus 8 random characters.
const DISPLAY_CHARS: usize = KEY_PREFIX.len() + 8;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a key cannot be one this server issued; the label of
/// `modelgate_auth_rejected_offline_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the key does not start with {KEY_PREFIX}")]
    Prefix,
    #[error("the key has neither the current nor the legacy length")]
    Length,
    #[error("the key has characters outside base62")]
    Alphabet,
    #[error("the key's checksum does not match")]
    Checksum,
}

impl Malformed {
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::Prefix => "prefix",
            Malformed::Length => "length",
            Malformed::Alphabet => "alphabet",
            Malformed::Checksum => "checksum",
        }
    }
}

/// The CRC32 of `random` as exactly `CHECKSUM_CHARS` base62 digits, most significant first.
fn checksum(random: &str) -> [u8; CHECKSUM_CHARS] {
    let mut value = crc32fast::hash(random.as_bytes());
    let mut digits = [BASE62[0]; CHECKSUM_CHARS];
    for digit in digits.iter_mut().rev() {
        // `value % 62` < 62, so the index is in range and the cast lossless.
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

/// A freshly generated key: `mg_` + 30 base62 characters from the OS-seeded CSPRNG + their
/// CRC32 in 6 base62 digits.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let random: String = (0..RANDOM_CHARS)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect();
    let check: String = checksum(&random).iter().map(|&b| char::from(b)).collect();
    format!("{KEY_PREFIX}{random}{check}")
}

/// Whether `key` can be a key of this server (current or legacy format), decided from the key
/// alone: no lookup, constant cost.
pub fn check_format(key: &str) -> Result<(), Malformed> {
    let body = key.strip_prefix(KEY_PREFIX).ok_or(Malformed::Prefix)?;
    if body.len() != RANDOM_CHARS + CHECKSUM_CHARS && body.len() != LEGACY_RANDOM_CHARS {
        return Err(Malformed::Length);
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Malformed::Alphabet);
    }
    if body.len() == LEGACY_RANDOM_CHARS {
        return Ok(());
    }
    // All ASCII, so the split is on a character boundary.
    let (random, check) = body.split_at(RANDOM_CHARS);
    if checksum(random) == check.as_bytes() {
        Ok(())
    } else {
        Err(Malformed::Checksum)
    }
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
        assert_eq!(key.len(), 3 + 30 + 6);
        assert!(key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(check_format(&key), Ok(()));
    }

    #[test]
    fn keys_do_not_repeat() {
        let keys: HashSet<String> = (0..1000).map(|_| generate()).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn checksum_is_crc32_in_six_base62_digits() {
        // CRC32("123456789") is the standard check value 0xCBF43926 = 3421780262.
        assert_eq!(&checksum("123456789"), b"3jZRME");
        assert_eq!(&checksum(""), b"000000");
    }

    #[test]
    fn any_single_typo_is_caught() {
        let key = generate();
        for at in 3..key.len() {
            let mut typo = key.clone().into_bytes();
            typo[at] = if typo[at] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(typo).expect("ascii");
            assert_eq!(check_format(&typo), Err(Malformed::Checksum), "{at}");
        }
    }

    #[test]
    fn legacy_keys_pass_on_shape_alone() {
        let legacy = format!("mg_{}", "aZ0".repeat(13) + "x");
        assert_eq!(legacy.len(), 43);
        assert_eq!(check_format(&legacy), Ok(()));
    }

    #[test]
    fn keys_that_cannot_be_ours_are_named_by_reason() {
        let key = generate();
        assert_eq!(check_format(&key[3..]), Err(Malformed::Prefix));
        assert_eq!(check_format("sk_abc"), Err(Malformed::Prefix));
        assert_eq!(check_format("mg_short123"), Err(Malformed::Length));
        assert_eq!(check_format(&format!("{key}0")), Err(Malformed::Length));
        let dashed = format!("mg_{}", "-".repeat(36));
        assert_eq!(check_format(&dashed), Err(Malformed::Alphabet));
        // Multi-byte characters of the right byte length are not base62 either.
        let accented = format!("mg_{}", "é".repeat(18));
        assert_eq!(check_format(&accented), Err(Malformed::Alphabet));
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
