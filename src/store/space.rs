//! Whether the inference log's last write was refused for want of disk space: health names the
//! disk, and says records wait in the outbox, until a write succeeds again.

use std::sync::atomic::{AtomicBool, Ordering};

use super::StoreError;

#[derive(Debug, Default)]
pub struct DiskFull(AtomicBool);

impl DiskFull {
    /// Remembers how the last write went: set by a disk-full error, cleared by a success
    /// (other errors say nothing about space).
    pub fn observe<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => self.0.store(false, Ordering::Relaxed),
            Err(error) if error.is_disk_full() => {
                if !self.0.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "the database disk is full: inference records go to the outbox");
                }
            }
            Err(_) => {}
        }
    }

    pub fn is_full(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
