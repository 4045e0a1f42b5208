//! Creating keys: shared by `modelgate keys create` and the admin API.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{secret, RateLimit, Scope};
use crate::store::{ApiKeyRecord, Store, StoreError};

const MAX_NAME_LEN: usize = 100;
/// A balance large enough for any prepaid plan, far from integer overflow.
pub const MAX_CREDITS: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    /// Empty means the default, `predict`.
    pub scopes: Vec<Scope>,
    pub rate_limit: Option<RateLimit>,
    pub expires_in: Option<Duration>,
    /// Makes the key prepaid with this many predictions.
    pub credits: Option<i64>,
}

/// The key in clear, handed out exactly once, and what was stored about it.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum NewKeyError {
    #[error("expected 1 to {MAX_NAME_LEN} characters")]
    Name,
    #[error("expected a duration of at least 1 second, such as 30d")]
    Expiry,
    #[error("expected a number of credits from 0 to {MAX_CREDITS}")]
    Credits,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NewKeyError {
    /// The request field at fault, for validation errors.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            NewKeyError::Name => Some("name"),
            NewKeyError::Expiry => Some("expires_in"),
            NewKeyError::Credits => Some("credits"),
            NewKeyError::Store(_) => None,
        }
    }
}

/// Checks `new` and mints the key and its record, without storing anything.
pub fn prepare_key(new: NewKey) -> Result<IssuedKey, NewKeyError> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(NewKeyError::Name);
    }
    // The store keeps milliseconds; issuing at that precision keeps the record and the row equal.
    let now =
        DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_else(Utc::now);
    let expires_at = match new.expires_in {
        None => None,
        Some(d) if d < Duration::from_secs(1) => return Err(NewKeyError::Expiry),
        Some(d) => Some(
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or(NewKeyError::Expiry)?,
        ),
    };
    if new.credits.is_some_and(|c| !(0..=MAX_CREDITS).contains(&c)) {
        return Err(NewKeyError::Credits);
    }
    let mut scopes = new.scopes;
    if scopes.is_empty() {
        scopes.push(Scope::Predict);
    }
    scopes.sort();
    scopes.dedup();
    let key = secret::generate();
    let record = ApiKeyRecord {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        name,
        prefix: secret::display_prefix(&key),
        scopes,
        rate_limit: new.rate_limit,
        created_at: now,
        expires_at,
        revoked_at: None,
        credits: new.credits,
    };
    Ok(IssuedKey { key, record })
}

/// Mints a key and stores its hash.
pub async fn issue_key(store: &Store, new: NewKey) -> Result<IssuedKey, NewKeyError> {
    let issued = prepare_key(new)?;
    store
        .insert_key(&issued.record, &secret::hash(&issued.key))
        .await?;
    Ok(issued)
}
