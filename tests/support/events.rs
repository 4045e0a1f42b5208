//! Reading what the events pipeline wrote: `inference_logs` rows, stream entries, metrics.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One `inference_logs` row, as the tests look at it.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub id: String,
    pub instance: String,
    pub seq: i64,
    pub api_key_id: String,
    pub model_id: String,
    pub model_version: String,
    pub inputs: Value,
    pub outputs: Value,
    pub truncated: bool,
    pub status: String,
    pub protocol: String,
    pub created_at: i64,
}

/// Every row of `inference_logs` in `db_url`, by instance and seq.
pub async fn log_rows(db_url: &str) -> Vec<LogRow> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url)
        .await
        .expect("connect to the test database");
    let rows = sqlx::query(
        "SELECT id, instance, seq, api_key_id, model_id, model_version, inputs, outputs, \
         truncated, status, protocol, created_at FROM inference_logs ORDER BY instance, seq",
    )
    .fetch_all(&pool)
    .await
    .expect("query inference_logs");
    pool.close().await;
    rows.iter()
        .map(|row| LogRow {
            id: row.get("id"),
            instance: row.get("instance"),
            seq: row.get("seq"),
            api_key_id: row.get("api_key_id"),
            model_id: row.get("model_id"),
            model_version: row.get("model_version"),
            inputs: serde_json::from_str(&row.get::<String, _>("inputs")).expect("inputs json"),
            outputs: serde_json::from_str(&row.get::<String, _>("outputs")).expect("outputs json"),
            truncated: row
                .try_get::<i64, _>("truncated")
                .or_else(|_| row.try_get::<i32, _>("truncated").map(i64::from))
                .expect("truncated")
                == 1,
            status: row.get("status"),
            protocol: row.get("protocol"),
            created_at: row.get("created_at"),
        })
        .collect()
}

/// Polls `inference_logs` until it holds `count` rows (or fails after `patience`).
pub async fn wait_for_rows(db_url: &str, count: usize, patience: Duration) -> Vec<LogRow> {
    let started = Instant::now();
    loop {
        let rows = log_rows(db_url).await;
        if rows.len() >= count {
            return rows;
        }
        assert!(
            started.elapsed() < patience,
            "inference_logs has {} rows after {patience:?}, expected {count}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The records of `stream` in stream order (duplicates included).
pub async fn stream_records(stream: &str) -> Vec<Value> {
    stream_records_on(&mut super::direct_redis().await, stream).await
}

/// [`stream_records`] on any Redis connection (a Cluster's, say).
pub async fn stream_records_on(
    redis: &mut impl redis::aio::ConnectionLike,
    stream: &str,
) -> Vec<Value> {
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(redis)
        .await
        .expect("XRANGE");
    entries
        .iter()
        .map(|(_, fields)| {
            let id = &fields["id"];
            let record: Value = serde_json::from_str(&fields["record"]).expect("record is JSON");
            assert_eq!(record["id"], id.as_str(), "the id field names the record");
            record
        })
        .collect()
}

/// The first copy of each record, in arrival order: what a deduplicating consumer keeps.
pub fn dedup(records: &[Value]) -> Vec<Value> {
    let mut seen = HashSet::new();
    records
        .iter()
        .filter(|r| seen.insert(r["id"].as_str().unwrap_or_default().to_string()))
        .cloned()
        .collect()
}

/// Deletes `stream` (tests use their own).
pub async fn delete_stream(stream: &str) {
    if let Ok(client) = redis::Client::open(format!("redis://{}/0", super::REDIS)) {
        if let Ok(mut redis) = client.get_multiplexed_async_connection().await {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(stream).query_async(&mut redis).await;
        }
    }
}

/// Waits up to `patience` for every record of `wanted` (ids) to be in `inference_logs` of
/// `db_url` and in `stream`; how many are still missing from each, `(table, stream)`.
pub async fn undelivered(
    db_url: &str,
    stream: &str,
    wanted: &HashSet<String>,
    patience: Duration,
) -> (usize, usize) {
    let mut redis = super::direct_redis().await;
    undelivered_on(&mut redis, db_url, stream, wanted, patience).await
}

/// [`undelivered`] with the stream on any Redis connection (a Cluster's, say).
///
/// Reads ids only, and the stream from where the last poll stopped: under load both grow by
/// thousands of records a second, and reading them whole each time outgrows a poll.
pub async fn undelivered_on(
    redis: &mut impl redis::aio::ConnectionLike,
    db_url: &str,
    stream: &str,
    wanted: &HashSet<String>,
    patience: Duration,
) -> (usize, usize) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url)
        .await
        .expect("connect to the test database");
    let mut in_stream = HashSet::new();
    let mut after = "-".to_string();
    let started = Instant::now();
    let missing = loop {
        let in_table: HashSet<String> = sqlx::query_scalar("SELECT id FROM inference_logs")
            .fetch_all(&pool)
            .await
            .expect("query inference_logs")
            .into_iter()
            .collect();
        after = read_stream_ids(redis, stream, after, &mut in_stream).await;
        let missing = (
            wanted.difference(&in_table).count(),
            wanted.difference(&in_stream).count(),
        );
        if missing == (0, 0) || started.elapsed() > patience {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    pool.close().await;
    missing
}

/// Adds to `ids` the record id of every entry of `stream` after entry `after` (`-`: from the
/// start); the last entry's id, to go on from.
async fn read_stream_ids(
    redis: &mut impl redis::aio::ConnectionLike,
    stream: &str,
    mut after: String,
    ids: &mut HashSet<String>,
) -> String {
    const BATCH: usize = 1000;
    loop {
        let start = if after == "-" {
            after.clone()
        } else {
            format!("({after}")
        };
        let entries: Vec<(String, std::collections::HashMap<String, String>)> =
            redis::cmd("XRANGE")
                .arg(stream)
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(BATCH)
                .query_async(redis)
                .await
                .expect("XRANGE");
        let full = entries.len() == BATCH;
        for (entry, mut fields) in entries {
            ids.extend(fields.remove("id"));
            after = entry;
        }
        if !full {
            return after;
        }
    }
}
