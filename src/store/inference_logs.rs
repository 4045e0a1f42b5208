//! The inference log: one row per prediction, inserted in batches off the request path.

use super::{Backend, Store, StoreError};
use crate::events::Record;

const COLUMNS: usize = 12;

/// One placeholder group per record: `($1, …, $12), ($13, …)` for PostgreSQL; `(?, …)` for
/// SQLite, because SQLite looks a numbered parameter's name up by a linear scan each time
/// sqlx binds one, which made a batch cost the square of its size (most of the writer's CPU).
fn placeholders(backend: Backend, rows: usize) -> String {
    let groups: Vec<String> = (0..rows)
        .map(|row| {
            let fields: Vec<String> = (1..=COLUMNS)
                .map(|col| match backend {
                    Backend::Postgres => format!("${}", row * COLUMNS + col),
                    Backend::Sqlite => "?".to_string(),
                })
                .collect();
            format!("({})", fields.join(", "))
        })
        .collect();
    groups.join(", ")
}

/// Rows per `INSERT`: statements of a bounded size, which the driver caches prepared; the
/// transaction around them still commits (and syncs) once per batch.
const ROWS_PER_STATEMENT: usize = 64;

impl Store {
    /// Inserts `records` in one transaction; records already stored (a replay) are skipped.
    pub async fn insert_inference_logs(&self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO inference_logs (id, instance, seq, api_key_id, model_id, \
                 model_version, inputs, outputs, truncated, latency_ms, status, created_at) \
                 VALUES {} ON CONFLICT (id) DO NOTHING",
                placeholders(self.backend, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for record in chunk {
                query = query
                    .bind(record.id.to_string())
                    .bind(record.instance.as_str())
                    .bind(i64::try_from(record.seq).unwrap_or(i64::MAX))
                    .bind(record.api_key_id.as_str())
                    .bind(record.model_id.as_str())
                    .bind(record.model_version.as_str())
                    .bind(record.inputs.as_str())
                    .bind(record.outputs.as_str())
                    .bind(i32::from(record.truncated))
                    .bind(record.latency_ms)
                    .bind(record.status.as_str())
                    .bind(record.created_at.timestamp_millis());
            }
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{placeholders, Backend};

    #[test]
    fn placeholders_number_every_column_of_every_row() {
        let sql = placeholders(Backend::Postgres, 2);
        assert!(sql.starts_with("($1, $2,"), "{sql}");
        assert!(sql.ends_with("$23, $24)"), "{sql}");
    }

    #[test]
    fn sqlite_placeholders_are_positional() {
        let sql = placeholders(Backend::Sqlite, 2);
        assert_eq!(sql.matches('?').count(), 24, "{sql}");
        assert!(!sql.contains('$'), "{sql}");
    }
}
