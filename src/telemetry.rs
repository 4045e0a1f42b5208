//! Logging setup: text for people, JSON for log pipelines, written off the request path.
//!
//! A line is formatted on the thread that logs it and handed to one background thread through
//! a bounded queue (tracing-appender's non-blocking writer); that thread does the writing to
//! stderr. When the queue is full (stderr is a pipe nobody drains fast enough, a stalled log
//! shipper) the line is dropped and counted in `modelgate_log_lines_dropped_total`: a request
//! never waits for a log line.

use std::io::{BufWriter, Stderr};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

use crate::config::{AccessLog, LogConfig, LogFormat};

/// Target of access-log lines (`src/http/access_log.rs`); `log.access`, not `log.filter`,
/// decides which requests get one.
pub const ACCESS_TARGET: &str = "access";

/// Lines waiting for the writer thread (about 30 MB of typical lines): seconds of the
/// busiest traffic, so only a writer that is stuck, not one that is merely slow, loses lines.
const BUFFERED_LINES: usize = 128_000;

/// The writer thread batches queued lines into one write each time it drains the queue, so
/// that at tens of thousands of lines per second stderr sees a few large writes, not a system
/// call per line.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Lines the writer dropped because its queue was full; set once the subscriber is installed.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread running; dropping it writes out what is still queued (the writer
/// waits up to a second), so hold it until the command is done, shutdown lines included.
#[must_use = "dropping the guard stops the log writer; hold it until exit"]
pub struct LogGuard {
    _worker: Option<WorkerGuard>,
}

/// Installs the global subscriber; logs go to stderr so stdout stays for command output.
pub fn init(config: &LogConfig) -> LogGuard {
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("modelgate-log")
        .finish(stderr_in_batches());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(config))
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber and its writer; this one's is unused.
    if installed.is_ok() {
        let _ = DROPPED.set(dropped);
    }
    LogGuard {
        _worker: installed.is_ok().then_some(worker),
    }
}

fn stderr_in_batches() -> BufWriter<Stderr> {
    BufWriter::with_capacity(WRITE_BUFFER_BYTES, std::io::stderr())
}

/// `log.filter`, plus the access target at INFO whenever access lines are on: the access log
/// is its own setting, so `log.filter = "warn"` must not silence it.
fn filter(config: &LogConfig) -> EnvFilter {
    // Config validation already rejected filters that do not parse.
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    if config.access == AccessLog::Off {
        return filter;
    }
    match format!("{ACCESS_TARGET}=info").parse::<Directive>() {
        Ok(access) => filter.add_directive(access),
        Err(_) => filter,
    }
}

/// Copies the writer's count of dropped lines into its metric; `GET /metrics` calls it.
///
/// The writer already keeps the count (an atomic it bumps on a drop), so reading it when
/// metrics are rendered costs the logging path nothing and is exact whenever anyone looks; a
/// periodic task would only add wake-ups and staleness.
pub fn publish_dropped_lines() {
    if let Some(dropped) = DROPPED.get() {
        let count = u64::try_from(dropped.dropped_lines()).unwrap_or(u64::MAX);
        metrics::counter!(crate::metrics::LOG_LINES_DROPPED).absolute(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(filter: &str, access: AccessLog) -> LogConfig {
        LogConfig {
            filter: filter.into(),
            access,
            ..LogConfig::default()
        }
    }

    #[test]
    fn access_lines_pass_a_quieter_filter_unless_access_is_off() {
        let on = filter(&config("warn", AccessLog::Errors)).to_string();
        assert!(on.contains("access=info"), "{on}");
        let off = filter(&config("warn", AccessLog::Off)).to_string();
        assert!(!off.contains("access"), "{off}");
    }
}
