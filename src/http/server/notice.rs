//! Rate-limited log lines for events that come per connection.
//!
//! A flood of connections must not become a flood of log lines (each costs the writer thread
//! and the log pipeline more than the refused connection cost us): the first event is logged,
//! then at most one line per interval, counting the events it stands for.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Once a minute at most, after the first.
const INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Notice {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    /// Events since the last line.
    since: u64,
}

impl Notice {
    /// Counts an event; returns how many events the caller's line should report (this one
    /// included), or `None` when this event goes unlogged.
    pub fn due(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.since += 1;
        let now = Instant::now();
        if state
            .last
            .is_some_and(|last| now.duration_since(last) < INTERVAL)
        {
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_logged_then_none_within_the_interval() {
        let notice = Notice::default();
        assert_eq!(notice.due(), Some(1));
        for _ in 0..1000 {
            assert_eq!(notice.due(), None);
        }
    }
}
