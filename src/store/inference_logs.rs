//! The inference log: one row per prediction, inserted in batches off the request path.

use super::{Store, StoreError};
use crate::events::Record;

const COLUMNS: usize = 12;

/// `($1, …, $12), ($13, …)`: one placeholder group per record.
fn placeholders(rows: usize) -> String {
    let groups: Vec<String> = (0..rows)
        .map(|row| {
            let fields: Vec<String> = (1..=COLUMNS)
                .map(|col| format!("${}", row * COLUMNS + col))
                .collect();
            format!("({})", fields.join(", "))
        })
        .collect();
    groups.join(", ")
}

impl Store {
    /// Inserts `records` in one statement; records already stored (a replay) are skipped.
    pub async fn insert_inference_logs(&self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO inference_logs (id, instance, seq, api_key_id, model_id, model_version, \
             inputs, outputs, truncated, latency_ms, status, created_at) VALUES {} \
             ON CONFLICT (id) DO NOTHING",
            placeholders(records.len())
        );
        let mut query = sqlx::query(&sql);
        for record in records {
            query = query
                .bind(record.id.to_string())
                .bind(record.instance.clone())
                .bind(i64::try_from(record.seq).unwrap_or(i64::MAX))
                .bind(record.api_key_id.clone())
                .bind(record.model_id.clone())
                .bind(record.model_version.clone())
                .bind(record.inputs.to_string())
                .bind(record.outputs.to_string())
                .bind(i32::from(record.truncated))
                .bind(record.latency_ms)
                .bind(record.status.clone())
                .bind(record.created_at.timestamp_millis());
        }
        query.execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_every_column_of_every_row() {
        let sql = placeholders(2);
        assert!(sql.starts_with("($1, $2,"), "{sql}");
        assert!(sql.ends_with("$23, $24)"), "{sql}");
    }
}
