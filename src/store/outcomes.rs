//! Outcomes of predictions, and who made the prediction they belong to.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError};

/// The real-world result of one prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub inference_log_id: String,
    pub outcome_type: String,
    pub outcome_score: f64,
    /// The key that recorded it.
    pub api_key_id: String,
    pub recorded_at: DateTime<Utc>,
}

impl Store {
    /// The key that made inference `id`, or `None` when no such inference was logged.
    pub async fn inference_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT api_key_id FROM inference_logs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("api_key_id"))
            .transpose()
            .map_err(Into::into)
    }

    /// Stores `outcome`, replacing an earlier one of the same type for the same inference.
    pub async fn record_outcome(&self, outcome: &Outcome) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outcomes (inference_log_id, outcome_type, outcome_score, api_key_id, recorded_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (inference_log_id, outcome_type) DO UPDATE SET \
             outcome_score = excluded.outcome_score, api_key_id = excluded.api_key_id, \
             recorded_at = excluded.recorded_at",
        )
        .bind(&outcome.inference_log_id)
        .bind(&outcome.outcome_type)
        .bind(outcome.outcome_score)
        .bind(&outcome.api_key_id)
        .bind(outcome.recorded_at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
