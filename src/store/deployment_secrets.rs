//! Secrets that every instance sharing the store shares, with no setup: the first instance
//! that needs one creates it, the others read it.

use chrono::Utc;
use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// The secret called `name`: `candidate` if no instance has stored one yet, else the one
    /// stored first. Race-free across instances starting together: the insert does nothing
    /// when the name exists, and everyone then reads the row that won.
    pub async fn deployment_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO deployment_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM deployment_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }
}
