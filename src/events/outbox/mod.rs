//! The durable outbox: records a sink could not take wait here, on local disk, until it can.
//!
//! `events.outbox_dir` holds one [`SegmentLog`] per sink (and one for records that overflowed
//! the in-memory queue), all under one size cap. One process owns the folder at a time (an
//! exclusive lock on `LOCK`, released by the kernel even on `kill -9`), since two writers
//! would interleave their segments.

mod budget;
mod frame;
mod log;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use budget::Budget;
pub use log::{Appended, Batch, Position, SegmentLog};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot use outbox folder {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("outbox folder {path} is in use by another modelgate process")]
    Locked { path: String },
}

/// The `reason` of `modelgate_events_dropped_total` for records an outbox write failed to keep:
/// `disk_full` when the disk has no space left (ENOSPC, or a quota), `outbox_error` otherwise.
pub fn drop_reason(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => "disk_full",
        _ => "outbox_error",
    }
}

pub struct Outbox {
    dir: PathBuf,
    segment_bytes: u64,
    budget: Arc<Budget>,
    /// Held for the process's life: the lock is the file's.
    _lock: File,
}

impl Outbox {
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Outbox, OutboxError> {
        let io = |source| OutboxError::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OutboxError::Locked {
                    path: dir.display().to_string(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        Ok(Outbox {
            dir: dir.to_path_buf(),
            segment_bytes,
            budget: Arc::new(Budget::new(max_bytes)),
            _lock: lock,
        })
    }

    /// The log named `name` (a sub-folder), with what it already holds counted against the cap.
    pub fn log(&self, name: &str) -> Result<SegmentLog, OutboxError> {
        self.log_within(name, self.budget.clone())
    }

    /// The log named `name`, under a cap of its own.
    pub fn log_within(&self, name: &str, budget: Arc<Budget>) -> Result<SegmentLog, OutboxError> {
        let dir = self.dir.join(name);
        SegmentLog::open(&dir, self.segment_bytes, budget).map_err(|source| OutboxError::Io {
            path: dir.display().to_string(),
            source,
        })
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().expect("dir");
        let first = Outbox::open(dir.path(), 1024, 1024).expect("first");
        assert!(matches!(
            Outbox::open(dir.path(), 1024, 1024),
            Err(OutboxError::Locked { .. })
        ));
        drop(first);
        Outbox::open(dir.path(), 1024, 1024).expect("free again");
    }

    #[test]
    fn no_space_left_is_a_full_disk() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(drop_reason(&enospc), "disk_full");
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(drop_reason(&other), "outbox_error");
    }
}
