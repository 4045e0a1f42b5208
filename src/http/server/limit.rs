//! The cap on open connections, and the file-descriptor limit it is derived from.
//!
//! Each connection holds a file descriptor. Without a cap, clients that hold connections open
//! use up the process's descriptors, and then every accept fails (`EMFILE`), the health probes'
//! included. With one, the connection over the cap is answered at once and closed, and the
//! descriptors left over stay free for the process's own files and dependency connections.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept out of the derived cap: at least this many…
const MIN_RESERVE: u64 = 128;
/// …or this share of the limit (database and Redis connections, outbox segments, models, logs).
const RESERVE_SHARE: u64 = 8;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit now in force.
/// `None` where the limit cannot be read (the cap then falls back to a fixed number).
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(err) => {
            tracing::warn!(error = %err, "cannot raise the file-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Used when the descriptor limit is unknown.
const FALLBACK_CAP: usize = 1024;

/// `configured`, or (0) the descriptor limit less the reserve.
pub fn derive_cap(configured: u32, fd_limit: Option<u64>) -> usize {
    if configured > 0 {
        return usize::try_from(configured).unwrap_or(usize::MAX);
    }
    match fd_limit {
        Some(limit) => {
            let reserve = (limit / RESERVE_SHARE).max(MIN_RESERVE);
            usize::try_from(limit.saturating_sub(reserve).max(1)).unwrap_or(usize::MAX)
        }
        None => FALLBACK_CAP,
    }
}

/// Permits for open connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    /// Whether `modelgate_connections_open` follows this limit (the public listener's only).
    counted: bool,
}

impl ConnectionLimit {
    pub fn new(cap: usize, counted: bool) -> ConnectionLimit {
        if counted {
            metrics::gauge!(crate::metrics::CONNECTIONS_OPEN).set(0.0);
        }
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(cap.min(Semaphore::MAX_PERMITS))),
            counted,
        }
    }

    /// A permit for one more connection, or `None` at the cap.
    pub fn try_open(&self) -> Option<Open> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        if self.counted {
            metrics::gauge!(crate::metrics::CONNECTIONS_OPEN).increment(1.0);
        }
        Some(Open {
            _permit: permit,
            counted: self.counted,
        })
    }
}

/// One open connection's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct Open {
    _permit: OwnedSemaphorePermit,
    counted: bool,
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.counted {
            metrics::gauge!(crate::metrics::CONNECTIONS_OPEN).decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_cap_wins_else_the_limit_less_a_reserve() {
        assert_eq!(derive_cap(50, Some(20_000)), 50);
        assert_eq!(derive_cap(0, Some(20_000)), 17_500);
        assert_eq!(derive_cap(0, Some(1024)), 896);
        assert_eq!(derive_cap(0, Some(100)), 1);
        assert_eq!(derive_cap(0, None), FALLBACK_CAP);
    }

    #[test]
    fn permits_come_back_when_connections_close() {
        let limit = ConnectionLimit::new(2, false);
        let first = limit.try_open();
        let second = limit.try_open();
        assert!(first.is_some() && second.is_some());
        assert!(limit.try_open().is_none(), "over the cap");
        drop(first);
        assert!(limit.try_open().is_some());
    }
}
