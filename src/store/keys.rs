//! API key rows. Only the SHA-256 of a key is stored; the key itself never reaches the store.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};
use crate::vocabulary::{RateLimit, Scope};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    /// Short, non-secret start of the key, shown so people can tell keys apart.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Predictions a prepaid key may still make; `None` for a key that is not metered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<i64>,
    /// The only models the key may use; `None` for every model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// The keys of a store, as `GET /api/v1/keys` and `modelgate keys list --json` show them.
#[derive(Debug, Clone, Serialize)]
pub struct KeyList {
    pub keys: Vec<ApiKeyRecord>,
}

/// Outcome of a revocation; carries the hash so caches can evict the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Revoked { key_hash: String },
    AlreadyRevoked { key_hash: String },
    NotFound,
}

const COLUMNS: &str =
    "id, name, prefix, scopes, rate_limit, created_at, expires_at, revoked_at, credits, models";

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(column: &str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("{column} = {ms} is not a time")))
}

fn optional_time(column: &str, ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(|ms| time(column, ms)).transpose()
}

fn record(row: &AnyRow) -> Result<ApiKeyRecord, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    let scopes = scopes
        .split_whitespace()
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|e| StoreError::Corrupt(format!("scopes: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rate_limit: Option<String> = row.try_get("rate_limit")?;
    let rate_limit = rate_limit
        .map(|r| {
            r.parse::<RateLimit>()
                .map_err(|e| StoreError::Corrupt(format!("rate_limit: {e}")))
        })
        .transpose()?;
    let models: Option<String> = row.try_get("models")?;
    let models = models
        .map(|m| {
            serde_json::from_str::<Vec<String>>(&m)
                .map_err(|e| StoreError::Corrupt(format!("models: {e}")))
        })
        .transpose()?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scopes,
        rate_limit,
        created_at: time("created_at", row.try_get("created_at")?)?,
        expires_at: optional_time("expires_at", row.try_get("expires_at")?)?,
        revoked_at: optional_time("revoked_at", row.try_get("revoked_at")?)?,
        credits: row.try_get("credits")?,
        models,
    })
}

impl Store {
    pub async fn insert_key(&self, key: &ApiKeyRecord, key_hash: &str) -> Result<(), StoreError> {
        let scopes: Vec<String> = key.scopes.iter().map(|s| s.to_string()).collect();
        let models = key
            .models
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("models: {e}")))?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, key_hash, scopes, rate_limit, created_at, expires_at, revoked_at, credits, models) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(key_hash)
        .bind(scopes.join(" "))
        .bind(key.rate_limit.map(|r| r.to_string()))
        .bind(millis(key.created_at))
        .bind(key.expires_at.map(millis))
        .bind(key.revoked_at.map(millis))
        .bind(key.credits)
        .bind(models)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn find_key_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    pub async fn find_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    pub async fn count_keys(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<Revocation, StoreError> {
        let updated =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(millis(at))
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        let row = sqlx::query("SELECT key_hash FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Revocation::NotFound);
        };
        let key_hash: String = row.try_get("key_hash")?;
        Ok(if updated > 0 {
            Revocation::Revoked { key_hash }
        } else {
            Revocation::AlreadyRevoked { key_hash }
        })
    }

    /// Takes one credit from a prepaid key: the balance left, or `None` when it had none
    /// (or is not prepaid). One statement, so concurrent requests can never overdraw.
    pub async fn take_credit(&self, id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "UPDATE api_keys SET credits = credits - 1 WHERE id = $1 AND credits > 0 \
             RETURNING credits",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("credits"))
            .transpose()
            .map_err(Into::into)
    }

    /// Adds `amount` credits to a prepaid key (also gives back a credit taken for a prediction
    /// that failed): the new balance, or `None` when the key does not exist or is not prepaid.
    pub async fn add_credits(&self, id: &str, amount: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "UPDATE api_keys SET credits = credits + $2 WHERE id = $1 AND credits IS NOT NULL \
             RETURNING credits",
        )
        .bind(id)
        .bind(amount)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("credits"))
            .transpose()
            .map_err(Into::into)
    }
}
