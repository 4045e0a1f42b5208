//! The outbox's size cap, shared by every log in it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes on disk against `events.outbox_max_bytes`. Reserving before writing keeps the total
/// under the cap even when several logs append at once.
#[derive(Debug)]
pub struct Budget {
    cap: u64,
    used: AtomicU64,
    /// A record was refused and no space has been freed or used since: records are being lost.
    full: AtomicBool,
    /// Whether this is the outbox's budget, shown in the outbox metrics (the journal has its own).
    published: bool,
}

impl Budget {
    pub fn new(cap: u64) -> Budget {
        let budget = Budget::unpublished(cap);
        let budget = Budget {
            published: true,
            ..budget
        };
        metrics::gauge!(crate::metrics::EVENTS_OUTBOX_MAX_BYTES).set(cap as f64);
        budget.publish();
        budget
    }

    /// A cap of its own, not in the outbox metrics: the journal's (`events.journal_max_bytes`).
    /// Its records are copied into a sink's outbox before they leave it, so one shared cap
    /// would need room for each record twice, and a burst in the journal would take the room
    /// of records waiting for a sink.
    pub fn unpublished(cap: u64) -> Budget {
        Budget {
            cap,
            used: AtomicU64::new(0),
            full: AtomicBool::new(false),
            published: false,
        }
    }

    /// Takes `bytes` of the cap, or refuses (and is then full).
    pub fn try_reserve(&self, bytes: u64) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.cap)
            })
            .is_ok();
        self.full.store(!reserved, Ordering::SeqCst);
        self.publish();
        reserved
    }

    /// Counts bytes already on disk (found at start), whether or not they fit the cap.
    pub fn add_existing(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::SeqCst);
        self.publish();
    }

    pub fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(bytes))
            });
        self.full.store(false, Ordering::SeqCst);
        self.publish();
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    fn publish(&self) {
        if !self.published {
            return;
        }
        metrics::gauge!(crate::metrics::EVENTS_OUTBOX_BYTES).set(self.used() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_never_exceeded_and_freeing_space_clears_full() {
        let budget = Budget::new(100);
        assert!(budget.try_reserve(60));
        assert!(!budget.try_reserve(41));
        assert!(budget.is_full());
        assert!(budget.try_reserve(40));
        assert!(!budget.is_full());
        assert_eq!(budget.used(), 100);
        assert!(!budget.try_reserve(1));
        budget.release(60);
        assert!(!budget.is_full());
        assert_eq!(budget.used(), 40);
    }
}
