//! Creating keys: shared by `modelgate keys create` and the admin API.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use super::{secret, RateLimit, Scope};
use crate::store::{ApiKeyRecord, Store, StoreError};

const MAX_NAME_LEN: usize = 100;
/// RFC 3339 timestamps have four-digit years: a later `expires_at` would be written `+10000-…`,
/// which clients cannot parse.
const LAST_EXPIRY_YEAR: i32 = 9999;
/// A balance large enough for any prepaid plan, far from integer overflow.
pub const MAX_CREDITS: i64 = 1_000_000_000_000;
/// Most models one key may be limited to: a longer list is a sign the key should be
/// unrestricted, and every entry travels in each cached principal.
pub const MAX_KEY_MODELS: usize = 100;
/// Longest model id a key's list may name.
pub const MAX_MODEL_ID_LEN: usize = 128;

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    /// Empty means the default, `predict`.
    pub scopes: Vec<Scope>,
    pub rate_limit: Option<RateLimit>,
    pub expires_in: Option<Duration>,
    /// Makes the key prepaid with this many predictions.
    pub credits: Option<i64>,
    /// Limits the key to these models; `None` for every model. They need not exist yet:
    /// models come and go while keys live.
    pub models: Option<Vec<String>>,
}

/// The key in clear, handed out exactly once, and what was stored about it.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum NewKeyError {
    #[error(
        "expected 1 to {MAX_NAME_LEN} characters, not only spaces, without control characters"
    )]
    Name,
    #[error("expected a duration of at least 1 second, such as 30d, ending before the year 10000")]
    Expiry,
    #[error("expected a number of credits from 0 to {MAX_CREDITS}")]
    Credits,
    #[error("{0}")]
    Models(ModelsError),
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
            NewKeyError::Models(_) => Some("models"),
            NewKeyError::Store(_) => None,
        }
    }
}

/// The length limit applies to the name as sent (not as trimmed), so that it reads the same to
/// the server and to a client checking `maxLength`. Control characters would garble listings,
/// and PostgreSQL refuses NUL in text: such a name would fail as a store error, not as bad input.
fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.chars().count())
        && !name.trim().is_empty()
        && !name.chars().any(char::is_control)
}

/// What is wrong with a key's list of models.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelsError {
    /// An empty list would make a key that can use nothing; leaving the list out means every
    /// model, and saying so is clearer than an empty list meaning either.
    #[error("expected at least one model id (leave models out for every model)")]
    Empty,
    #[error("expected at most {MAX_KEY_MODELS} model ids")]
    TooMany,
    #[error("entry {index}: expected a model id of 1 to {MAX_MODEL_ID_LEN} characters without control characters")]
    Id { index: usize },
    #[error("entry {index}: {id:?} is listed twice")]
    Duplicate { index: usize, id: String },
}

/// Ids are compared as sent (a route's `{id}` is matched exactly), so no trimming: a padded id
/// is refused rather than silently made to mean another model.
fn check_models(models: &[String]) -> Result<(), ModelsError> {
    if models.is_empty() {
        return Err(ModelsError::Empty);
    }
    if models.len() > MAX_KEY_MODELS {
        return Err(ModelsError::TooMany);
    }
    let mut seen = std::collections::HashSet::new();
    for (index, id) in models.iter().enumerate() {
        let valid = (1..=MAX_MODEL_ID_LEN).contains(&id.chars().count())
            && !id.chars().any(char::is_control);
        if !valid {
            return Err(ModelsError::Id { index });
        }
        if !seen.insert(id.as_str()) {
            return Err(ModelsError::Duplicate {
                index,
                id: id.clone(),
            });
        }
    }
    Ok(())
}

/// Checks `new` and mints the key and its record, without storing anything.
pub fn prepare_key(new: NewKey) -> Result<IssuedKey, NewKeyError> {
    if !valid_name(&new.name) {
        return Err(NewKeyError::Name);
    }
    let name = new.name.trim().to_string();
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
                .filter(|at| at.year() <= LAST_EXPIRY_YEAR)
                .ok_or(NewKeyError::Expiry)?,
        ),
    };
    if new.credits.is_some_and(|c| !(0..=MAX_CREDITS).contains(&c)) {
        return Err(NewKeyError::Credits);
    }
    if let Some(models) = &new.models {
        check_models(models).map_err(NewKeyError::Models)?;
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
        models: new.models,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> NewKey {
        NewKey {
            name: name.into(),
            ..NewKey::default()
        }
    }

    #[test]
    fn names_are_trimmed_but_limited_as_sent() {
        let issued = prepare_key(named("  billing ")).expect("valid");
        assert_eq!(issued.record.name, "billing");
        assert!(prepare_key(named(&"é".repeat(MAX_NAME_LEN))).is_ok());
        let padded = format!(" {}", "a".repeat(MAX_NAME_LEN));
        assert!(matches!(
            prepare_key(named(&padded)),
            Err(NewKeyError::Name)
        ));
    }

    #[test]
    fn blank_names_and_control_characters_are_refused() {
        for name in [
            "",
            "   ",
            "\u{3000}",
            "a\u{0}b",
            "line\nbreak",
            "tab\t",
            "\u{85}x",
        ] {
            assert!(
                matches!(prepare_key(named(name)), Err(NewKeyError::Name)),
                "{name:?} accepted"
            );
        }
    }

    #[test]
    fn model_lists_are_checked() {
        let limited = |models: Vec<&str>| NewKey {
            models: Some(models.into_iter().map(String::from).collect()),
            ..named("x")
        };
        let issued = prepare_key(limited(vec!["21", "22"])).expect("valid");
        assert_eq!(issued.record.models, Some(vec!["21".into(), "22".into()]));
        assert_eq!(prepare_key(named("x")).expect("valid").record.models, None);
        let long = "m".repeat(MAX_MODEL_ID_LEN);
        assert!(prepare_key(limited(vec![long.as_str()])).is_ok());
        let too_long = "m".repeat(MAX_MODEL_ID_LEN + 1);
        let many: Vec<String> = (0..=MAX_KEY_MODELS).map(|i| i.to_string()).collect();
        for (models, expected) in [
            (vec![], ModelsError::Empty),
            (vec!["21", ""], ModelsError::Id { index: 1 }),
            (vec![too_long.as_str()], ModelsError::Id { index: 0 }),
            (vec!["a\nb"], ModelsError::Id { index: 0 }),
            (
                vec!["21", "22", "21"],
                ModelsError::Duplicate {
                    index: 2,
                    id: "21".into(),
                },
            ),
            (
                many.iter().map(String::as_str).collect(),
                ModelsError::TooMany,
            ),
        ] {
            match prepare_key(limited(models.clone())) {
                Err(NewKeyError::Models(found)) => assert_eq!(found, expected, "{models:?}"),
                other => panic!("{models:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn expiry_stays_within_four_digit_years() {
        let expiring = |secs: u64| NewKey {
            expires_in: Some(Duration::from_secs(secs)),
            ..named("x")
        };
        const YEAR: u64 = 365 * 24 * 3600;
        assert!(prepare_key(expiring(1)).is_ok());
        assert!(prepare_key(expiring(2_000 * YEAR)).is_ok());
        assert!(matches!(
            prepare_key(expiring(10_000 * YEAR)),
            Err(NewKeyError::Expiry)
        ));
        assert!(matches!(
            prepare_key(NewKey {
                expires_in: Some(Duration::from_millis(999)),
                ..named("x")
            }),
            Err(NewKeyError::Expiry)
        ));
    }
}
