//! The disks modelgate writes to: the SQLite database's and the outbox's. Down while the
//! database refuses inference records for want of space, or while the outbox's disk is about
//! to refuse them too; the error names the disk, its free space and what is being lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::events::outbox::Budget;
use crate::store::GuardedStore;

/// Below this much free space the outbox's disk counts as full: a writer batch of records
/// (hundreds of kilobytes at most) may no longer fit.
const LOW_WATER: u64 = 1024 * 1024;

pub struct DiskWatch {
    store: GuardedStore,
    /// The folder of the SQLite file; `None` for PostgreSQL (its disk is the server's).
    database: Option<PathBuf>,
    outbox: Option<(PathBuf, Arc<Budget>)>,
}

impl DiskWatch {
    pub fn new(store: GuardedStore, outbox: Option<(PathBuf, Arc<Budget>)>) -> DiskWatch {
        let database = store
            .sqlite_file()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        DiskWatch {
            store,
            database,
            outbox,
        }
    }

    /// `Err` names the full disk and what is lost; publishes the free-space gauges.
    pub fn check(&self) -> Result<(), String> {
        let database_free = self.database.as_deref().and_then(|d| free(d, "database"));
        let outbox_free = self
            .outbox
            .as_ref()
            .and_then(|(dir, _)| free(dir, "outbox"));
        let outbox_full = self
            .outbox
            .as_ref()
            .is_some_and(|(_, budget)| budget.is_full())
            || outbox_free.is_some_and(|bytes| bytes < LOW_WATER);
        let outbox_dir = self
            .outbox
            .as_ref()
            .map(|(dir, _)| dir.display().to_string());
        if self.store.disk_full() {
            let at = match (&self.database, database_free) {
                (Some(dir), Some(bytes)) => format!("{} ({bytes} bytes free)", dir.display()),
                (Some(dir), None) => dir.display().to_string(),
                (None, _) => "the PostgreSQL server".into(),
            };
            let lost = if outbox_full {
                format!(
                    "inference records are being dropped: the outbox at {} has no room either",
                    outbox_dir.unwrap_or_default()
                )
            } else {
                "inference records wait in the outbox".into()
            };
            return Err(format!("disk full at {at}: {lost}"));
        }
        match (outbox_dir, outbox_free) {
            (Some(dir), Some(bytes)) if bytes < LOW_WATER => Err(format!(
                "disk almost full at {dir} ({bytes} bytes free): records a sink cannot take now \
                 are being dropped"
            )),
            _ => Ok(()),
        }
    }
}

/// Free bytes on `dir`'s disk for an unprivileged writer, published as a gauge.
fn free(dir: &Path, volume: &'static str) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let bytes = stat.f_bavail.saturating_mul(stat.f_frsize);
    metrics::gauge!(crate::metrics::DISK_FREE_BYTES, "volume" => volume).set(bytes as f64);
    Some(bytes)
}
