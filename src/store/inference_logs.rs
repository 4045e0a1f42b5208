//! The inference log: one row per prediction, inserted in batches off the request path.

use std::borrow::Cow;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, Store, StoreError};

/// One row of `inference_logs`, borrowed from whatever the caller keeps (the events' record):
/// the store knows the table, not the events that fill it.
pub struct InferenceLogRow<'a> {
    pub id: Uuid,
    pub instance: &'a str,
    pub seq: u64,
    pub api_key_id: &'a str,
    pub model_id: &'a str,
    pub model_version: &'a str,
    /// JSON text.
    pub inputs: &'a str,
    /// JSON text.
    pub outputs: &'a str,
    pub truncated: bool,
    pub latency_ms: f64,
    pub status: &'a str,
    /// The front end it came in by (`v1`, `v2_http`, `v2_grpc`).
    pub protocol: &'a str,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: usize = 13;

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

/// The `INSERT` of `rows` rows. Under load nearly every statement is a full one, whose text is
/// built once per process: building it is some 800 small allocations, about half a
/// microsecond per row inserted.
fn insert_sql(backend: Backend, rows: usize) -> Cow<'static, str> {
    static FULL: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    let build = || {
        format!(
            "INSERT INTO inference_logs (id, instance, seq, api_key_id, model_id, \
             model_version, inputs, outputs, truncated, latency_ms, status, protocol, created_at) \
             VALUES {} ON CONFLICT DO NOTHING",
            placeholders(backend, rows)
        )
    };
    if rows != ROWS_PER_STATEMENT {
        return Cow::Owned(build());
    }
    Cow::Borrowed(FULL[backend as usize].get_or_init(build))
}

impl Store {
    /// Inserts `rows` in one transaction; rows already stored (a replay) are skipped.
    ///
    /// A connection whose insert failed is closed rather than pooled again: after SQLITE_FULL
    /// SQLite may already have rolled the transaction back itself, the driver's own rollback
    /// then fails, and the pooled connection was seen holding the write lock, so that every
    /// later write waited out its timeout even once space had returned.
    pub async fn insert_inference_logs(
        &self,
        rows: &[InferenceLogRow<'_>],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut connection = self.pool.acquire().await?;
        let inserted = insert_on(&mut connection, self.backend, rows).await;
        if inserted.is_err() {
            connection.close_on_drop();
        }
        inserted
    }
}

async fn insert_on(
    connection: &mut sqlx::AnyConnection,
    backend: Backend,
    rows: &[InferenceLogRow<'_>],
) -> Result<(), StoreError> {
    let mut transaction = sqlx::Connection::begin(connection).await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_sql(backend, chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(row.id.to_string())
                .bind(row.instance)
                .bind(i64::try_from(row.seq).unwrap_or(i64::MAX))
                .bind(row.api_key_id)
                .bind(row.model_id)
                .bind(row.model_version)
                .bind(row.inputs)
                .bind(row.outputs)
                .bind(i32::from(row.truncated))
                .bind(row.latency_ms)
                .bind(row.status)
                .bind(row.protocol)
                .bind(row.created_at.timestamp_millis());
        }
        query.execute(&mut *transaction).await?;
    }
    transaction.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{insert_sql, placeholders, Backend, ROWS_PER_STATEMENT};

    #[test]
    fn placeholders_number_every_column_of_every_row() {
        let sql = placeholders(Backend::Postgres, 2);
        assert!(sql.starts_with("($1, $2,"), "{sql}");
        assert!(sql.ends_with("$25, $26)"), "{sql}");
    }

    #[test]
    fn full_statements_are_built_once_per_backend() {
        let full = |backend| insert_sql(backend, ROWS_PER_STATEMENT);
        assert!(std::ptr::eq(
            full(Backend::Sqlite).as_ref(),
            full(Backend::Sqlite).as_ref()
        ));
        assert!(full(Backend::Postgres).contains("$832)"));
        assert_eq!(full(Backend::Sqlite).matches('?').count(), 832);
        assert_eq!(insert_sql(Backend::Sqlite, 2).matches('?').count(), 26);
    }

    #[test]
    fn sqlite_placeholders_are_positional() {
        let sql = placeholders(Backend::Sqlite, 2);
        assert_eq!(sql.matches('?').count(), 26, "{sql}");
        assert!(!sql.contains('$'), "{sql}");
    }
}
