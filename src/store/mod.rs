//! Persistent state behind sqlx's `Any` driver: SQLite by default, PostgreSQL when scaled.
//!
//! One set of portable SQL serves both engines (`$N` placeholders work in both), so a query
//! is written once and tested on both.
//!
//! A server reaches the store only through [`GuardedStore`] (deadline and breaker on every
//! call); the raw [`Store`] is for one-shot processes such as `modelgate keys`.

mod deployment_secrets;
mod guarded;
mod inference_logs;
mod keys;
mod location;
mod outcomes;
mod partitions;
mod retention;
mod space;

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

use crate::config::{redact, DatabaseConfig};

pub use guarded::{Guarded, GuardedStore};
pub use inference_logs::InferenceLogRow;
pub use keys::{ApiKeyRecord, KeyList, Revocation};
pub use location::StoreLocation;
pub use outcomes::Outcome;
pub use retention::spawn_pruner;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot create database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database refused a write for want of disk space: SQLITE_FULL (13),
    /// PostgreSQL's `disk_full` (53100), or the OS's ENOSPC.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Query(sqlx::Error::Database(error)) => {
                let code = error.code();
                let code = code.as_deref().unwrap_or_default();
                // SQLite reports extended codes; the primary one is the low byte.
                code == "53100"
                    || code.parse::<i64>().is_ok_and(|c| c & 0xff == 13)
                    || error.message().contains("database or disk is full")
            }
            StoreError::Query(sqlx::Error::Io(error)) => {
                error.kind() == std::io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The store without a guard: for one-shot processes and tests. A server holds a
/// [`GuardedStore`] instead.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite file (absolute); `None` for a server or an in-memory database.
    file: Option<std::path::PathBuf>,
    disk_full: std::sync::Arc<space::DiskFull>,
}

impl Store {
    /// Opens the pool, creating an SQLite file and its folder when needed, and migrates.
    pub async fn open(config: &DatabaseConfig) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if config.is_sqlite() {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(&config.url)?,
            Backend::Postgres => config.url.clone(),
        };
        let connect_error = |source| StoreError::Connect {
            url: redact::url_secrets(&config.url),
            source,
        };
        let options = AnyConnectOptions::from_str(&url).map_err(connect_error)?;
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        if backend == Backend::Sqlite {
            // WAL lets `modelgate keys revoke` write while a server reads the same file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        let store = Store {
            pool,
            backend,
            file: StoreLocation::of(&config.url).file().map(Path::to_path_buf),
            disk_full: Default::default(),
        };
        if backend == Backend::Postgres {
            partitions::partition(&store).await?;
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn sqlite_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// A real round trip, used by health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the database folder and asks SQLite to create the file (`mode=rwc`).
fn prepare_sqlite(url: &str) -> Result<String, StoreError> {
    let (path, query) = location::sqlite_parts(url).unwrap_or_default();
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    Ok(if query.contains("mode=") {
        url.to_string()
    } else if query.is_empty() {
        format!("{url}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    })
}

#[cfg(test)]
mod tests {
    use super::prepare_sqlite;

    #[test]
    fn sqlite_url_gets_create_mode_and_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("nested/more/db.sqlite");
        let url = format!("sqlite://{}", file.display());
        let prepared = prepare_sqlite(&url).expect("prepared");
        assert_eq!(prepared, format!("{url}?mode=rwc"));
        assert!(file.parent().expect("parent").is_dir());
    }

    #[test]
    fn explicit_mode_is_kept() {
        assert_eq!(
            prepare_sqlite("sqlite::memory:?mode=memory").expect("prepared"),
            "sqlite::memory:?mode=memory"
        );
    }
}
