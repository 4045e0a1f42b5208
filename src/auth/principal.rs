//! Who is calling: what a validated key grants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RateLimit, Scope};
use crate::store::ApiKeyRecord;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Principal {
    pub key_id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub rate_limit: Option<RateLimit>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The account behind the key, when the remote auth service names one.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub balance: Option<f64>,
    /// False when the remote auth service says the account cannot pay (402).
    #[serde(default = "yes")]
    pub has_sufficient_balance: bool,
    /// Each prediction takes a credit from the key's balance in the store.
    #[serde(default)]
    pub prepaid: bool,
    /// The only models the key may use; `None` for every model. Written out even when `None`
    /// so that a shared-cache entry always states it (see `shared_entry`).
    pub models: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl Principal {
    /// The principal of a stored key, or `None` when the key may no longer be used.
    pub fn from_record(record: &ApiKeyRecord, now: DateTime<Utc>) -> Option<Principal> {
        let principal = Principal {
            key_id: record.id.clone(),
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            scopes: record.scopes.clone(),
            rate_limit: record.rate_limit,
            expires_at: record.expires_at,
            user_id: None,
            email: None,
            balance: None,
            has_sufficient_balance: true,
            prepaid: record.credits.is_some(),
            models: record.models.clone(),
        };
        (record.revoked_at.is_none() && !principal.is_expired(now)).then_some(principal)
    }

    /// Whether the key may use model `id`, whether or not such a model exists: a limited key
    /// learns nothing about the models it may not use.
    pub fn may_use(&self, model_id: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model_id))
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
impl Principal {
    /// A principal with `scopes` and nothing else, for unit tests.
    pub(crate) fn for_test(scopes: Vec<Scope>) -> Principal {
        Principal {
            key_id: "k1".into(),
            name: "n".into(),
            prefix: "mg_abc".into(),
            scopes,
            rate_limit: None,
            expires_at: None,
            user_id: None,
            email: None,
            balance: None,
            has_sufficient_balance: true,
            prepaid: false,
            models: None,
        }
    }
}
