//! PostgreSQL keeps `inference_logs` in one partition per UTC day, so that retention drops a
//! whole day at once (no row-by-row `DELETE`, no bloat, no vacuum debt).
//!
//! The portable migrations create a plain table on both engines; [`partition`] converts it on
//! PostgreSQL at startup, without copying: the existing rows' table becomes the partition
//! `inference_logs_before_<day>` (everything before the day after its newest row; an empty
//! table is simply replaced), day partitions follow, and
//! a DEFAULT partition catches rows outside every day (a clock far off) so that an insert
//! never fails for want of a partition. The primary key becomes `(id, created_at)` (a
//! partitioned table's keys must include the partition column); a replayed record carries its
//! original `created_at`, so replays still insert nothing twice.

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};

const DAY_PREFIX: &str = "inference_logs_p";
const BEFORE_PREFIX: &str = "inference_logs_before_";
/// Day partitions are created this many days ahead, so that a day never begins without one.
const DAYS_AHEAD: u64 = 3;
/// Serialises conversions and partition changes of instances starting together.
const LOCK_KEY: i64 = 0x6d67_7061_7274; // "mgpart"

/// Converts a plain `inference_logs` into a partitioned one (once; later calls only check).
pub(super) async fn partition(store: &Store) -> Result<(), StoreError> {
    let mut transaction = store.pool.begin().await?;
    lock(&mut transaction).await?;
    if relkind(&mut transaction, "inference_logs")
        .await?
        .as_deref()
        == Some("r")
    {
        convert(&mut transaction).await?;
    }
    ensure_days(&mut transaction).await?;
    transaction.commit().await?;
    Ok(())
}

/// The plain table's rows stay where they are: the table becomes the partition of everything
/// before the day after its newest row (or goes, when empty).
async fn convert(connection: &mut AnyConnection) -> Result<(), StoreError> {
    const OLD: &str = "inference_logs_unpartitioned";
    for statement in [
        format!("ALTER TABLE inference_logs RENAME TO {OLD}"),
        // Index and constraint names are per schema: free them for the new table.
        format!("ALTER INDEX inference_logs_instance_seq RENAME TO {OLD}_instance_seq"),
        format!("ALTER INDEX inference_logs_created_at RENAME TO {OLD}_created_at"),
        format!("ALTER TABLE {OLD} RENAME CONSTRAINT inference_logs_pkey TO {OLD}_pkey"),
        format!(
            "CREATE TABLE inference_logs (LIKE {OLD} INCLUDING DEFAULTS, \
             PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)"
        ),
        "CREATE INDEX inference_logs_instance_seq ON inference_logs (instance, seq)".into(),
    ] {
        sqlx::query(&statement).execute(&mut *connection).await?;
    }
    let newest: Option<i64> = sqlx::query(&format!("SELECT MAX(created_at) FROM {OLD}"))
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    let newest_day = newest
        .and_then(DateTime::from_timestamp_millis)
        .map(|at| at.date_naive());
    match newest_day.and_then(|day| day.checked_add_days(Days::new(1))) {
        None => {
            sqlx::query(&format!("DROP TABLE {OLD}"))
                .execute(&mut *connection)
                .await?;
        }
        Some(until) => {
            let before = format!("{BEFORE_PREFIX}{}", until.format("%Y%m%d"));
            for statement in [
                format!("ALTER TABLE {OLD} RENAME TO {before}"),
                // A partition's key is its table's: (id, created_at). Rebuilding it reads the
                // table once, the conversion's one cost proportional to its size.
                format!(
                    "ALTER TABLE {before} DROP CONSTRAINT {OLD}_pkey, \
                     ADD PRIMARY KEY (id, created_at)"
                ),
                format!(
                    "ALTER TABLE inference_logs ATTACH PARTITION {before} \
                     FOR VALUES FROM (MINVALUE) TO ({})",
                    millis(day_start(until))
                ),
            ] {
                sqlx::query(&statement).execute(&mut *connection).await?;
            }
            tracing::info!(
                partition = before,
                "inference_logs is now partitioned by day; its existing rows stay in one \
                 partition, dropped once they are all past events.retention"
            );
        }
    }
    sqlx::query("CREATE TABLE inference_logs_default PARTITION OF inference_logs DEFAULT")
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Creates the day partitions from today (or the end of the oldest one) to [`DAYS_AHEAD`].
async fn ensure_days(connection: &mut AnyConnection) -> Result<(), StoreError> {
    let covered_until = partitions(connection)
        .await?
        .iter()
        .filter_map(|name| upper_bound(name))
        .max();
    let mut day = today();
    let last = today()
        .checked_add_days(Days::new(DAYS_AHEAD))
        .unwrap_or(day);
    while day <= last {
        let start = day_start(day);
        let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
        if covered_until.is_none_or(|until| start >= until) {
            // IF NOT EXISTS: another instance may have made it between our look and now.
            let statement = format!(
                "CREATE TABLE IF NOT EXISTS {DAY_PREFIX}{} PARTITION OF inference_logs \
                 FOR VALUES FROM ({}) TO ({})",
                day.format("%Y%m%d"),
                millis(start),
                millis(day_start(next))
            );
            sqlx::query(&statement).execute(&mut *connection).await?;
        }
        if next == day {
            break;
        }
        day = next;
    }
    Ok(())
}

impl Store {
    /// PostgreSQL: drops every partition whose rows are all older than `cutoff`, and makes the
    /// coming days' partitions. Returns the rows dropped (counted before the drop).
    pub(super) async fn drop_partitions_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut transaction = self.pool.begin().await?;
        lock(&mut transaction).await?;
        ensure_days(&mut transaction).await?;
        let mut dropped = 0u64;
        for name in partitions(&mut transaction).await? {
            if upper_bound(&name).is_some_and(|until| until <= cutoff) {
                let rows: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {name}"))
                    .fetch_one(&mut *transaction)
                    .await?
                    .try_get(0)?;
                sqlx::query(&format!("DROP TABLE {name}"))
                    .execute(&mut *transaction)
                    .await?;
                tracing::info!(
                    partition = name,
                    rows,
                    "dropped an inference_logs partition past events.retention"
                );
                dropped += u64::try_from(rows).unwrap_or(0);
            }
        }
        transaction.commit().await?;
        Ok(dropped)
    }

    /// The names of `inference_logs`' partitions (PostgreSQL).
    pub async fn inference_log_partitions(&self) -> Result<Vec<String>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        partitions(&mut connection).await
    }
}

async fn lock(connection: &mut AnyConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)::TEXT")
        .bind(LOCK_KEY)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// `r` for a plain table, `p` for a partitioned one; `None` when it does not exist.
async fn relkind(
    connection: &mut AnyConnection,
    table: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT relkind::TEXT FROM pg_class WHERE relname = $1 \
         AND relnamespace = current_schema()::regnamespace",
    )
    .bind(table)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

async fn partitions(connection: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.relname::TEXT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'inference_logs'::regclass ORDER BY 1",
    )
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}

/// The first instant after every row of partition `name`; `None` for the DEFAULT partition.
fn upper_bound(name: &str) -> Option<DateTime<Utc>> {
    if let Some(day) = name.strip_prefix(DAY_PREFIX) {
        let day = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
        return Some(day_start(day.checked_add_days(Days::new(1))?));
    }
    let day = name.strip_prefix(BEFORE_PREFIX)?;
    Some(day_start(NaiveDate::parse_from_str(day, "%Y%m%d").ok()?))
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_ends_where_its_name_says() {
        let day = upper_bound("inference_logs_p20261203").expect("day");
        assert_eq!(day.to_rfc3339(), "2026-12-04T00:00:00+00:00");
        let before = upper_bound("inference_logs_before_20261203").expect("before");
        assert_eq!(before.to_rfc3339(), "2026-12-03T00:00:00+00:00");
        assert!(upper_bound("inference_logs_default").is_none());
        assert!(upper_bound("inference_logs_pgarbage").is_none());
    }
}
