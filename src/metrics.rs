//! Prometheus metrics: the recorder, and the names every module records under.
//!
//! One process-wide recorder (the `metrics` facade allows one); `GET /metrics` renders it.
//!
//! Every metric is declared once, in the `catalogue!` below: its constant, kind and help text
//! come from the same line, so a metric cannot be recorded by name without also getting its
//! `# HELP`. Counters whose label values are known in advance are listed in [`KNOWN_SERIES`]
//! and start at 0, so that `rate()` and the alerts see them before the first event.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How a metric is recorded (and rendered in `# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One catalogue entry: what `# HELP` and `# TYPE` say about a metric.
#[derive(Debug)]
pub struct Described {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

/// Declares each metric's constant (documented by its help text) and its catalogue entry.
macro_rules! catalogue {
    ($($konst:ident: $kind:ident $(in $unit:ident)? = $name:literal, $help:literal;)+) => {
        $(
            #[doc = $help]
            pub const $konst: &str = $name;
        )+
        /// Every metric modelgate records itself (the `process_*` ones come from
        /// `metrics-process`, which describes its own).
        pub const CATALOGUE: &[Described] = &[$(Described {
            name: $konst,
            kind: Kind::$kind,
            unit: catalogue!(@unit $($unit)?),
            help: $help,
        }),+];
    };
    (@unit) => { None };
    (@unit $unit:ident) => { Some(Unit::$unit) };
}

catalogue! {
    BUILD_INFO: Gauge = "modelgate_build_info",
        "Always 1, labelled with the running `version`; while it is there, the instance is being scraped.";
    HTTP_REQUESTS: Counter = "modelgate_http_requests_total",
        "Requests answered, by `route` (its template; `unmatched` for unknown paths), `method` and `status`.";
    HTTP_DURATION: Histogram in Seconds = "modelgate_http_request_duration_seconds",
        "Server time per request, by `route`.";
    DEPENDENCY_CALLS: Histogram in Seconds = "modelgate_dependency_call_duration_seconds",
        "Guarded calls to a `dependency`, by `outcome` (ok, error, timeout; open: refused by the breaker without a call).";
    DEPENDENCY_UP: Gauge = "modelgate_dependency_up",
        "1 if the last call to `dependency` succeeded, else 0.";
    BREAKER_STATE: Gauge = "modelgate_breaker_state",
        "Circuit breaker of `dependency`: 0 closed, 1 half-open, 2 open.";
    AUTH_LOOKUPS: Counter = "modelgate_auth_lookups_total",
        "Key checks by the `tier` that answered: l1 (in-process cache), l2 (Redis), source, stale.";
    AUTH_CACHE_REJECTED: Counter = "modelgate_auth_cache_rejected_total",
        "Shared (Redis) auth cache entries ignored because they failed verification, by `reason`: malformed (unsigned), bad_signature (forged, or another auth.cache_secret), expired, admin (admin principals are never taken from Redis).";
    AUTH_REJECTED_OFFLINE: Counter = "modelgate_auth_rejected_offline_total",
        "Keys refused as not ours from their shape alone (no cache or store asked), by `reason`: prefix, length, alphabet, checksum.";
    AUTH_FAILURES_THROTTLED: Counter = "modelgate_auth_failures_throttled_total",
        "Requests answered 429 too_many_failed_auth because their client address failed authentication too often.";
    RATELIMIT_DECISIONS: Counter = "modelgate_ratelimit_decisions_total",
        "Rate-limit decisions by `tier` (global: Redis, local: this instance) and `outcome` (allowed, limited).";
    RATELIMIT_FALLBACKS: Counter = "modelgate_ratelimit_redis_fallbacks_total",
        "Rate-limit decisions made locally because Redis could not answer, by `reason` (open, timeout, error).";
    INFERENCE_DURATION: Histogram in Seconds = "modelgate_inference_duration_seconds",
        "Time in the runtime (native evaluator or tract) per prediction call, by `model`.";
    GRPC_REQUESTS: Counter = "modelgate_grpc_requests_total",
        "gRPC calls answered, by `rpc` (ModelInfer, ModelMetadata, ...) and `outcome` (ok, or the error code the client got).";
    INFERENCE_REQUESTS: Counter = "modelgate_inference_requests_total",
        "Predictions that reached a model, by `model`, `version`, `protocol` (v1, v2_http, v2_grpc) and `outcome` (ok, or the error code the client got).";
    INFERENCE_ROWS: Counter = "modelgate_inference_rows_total",
        "Rows scored by successful predictions, by `model`, `version` and `protocol`.";
    MODEL_VERSION_INFO: Gauge = "modelgate_model_version_info",
        "1 for the version of each `model` that serves (with its `version` and `source`: folder or mlflow), 0 for one it replaced.";
    MODEL_SWAPS: Counter = "modelgate_model_swaps_total",
        "Changes reloads made to a `model`, by `outcome`: added, swapped, removed, refused (a new version that failed to load or its checks, and does not serve).";
    HEALTH_STATUS: Gauge = "modelgate_health_status",
        "The service's verdict: 0 healthy, 1 degraded, 2 unhealthy.";
    DEPENDENCY_STATUS: Gauge = "modelgate_dependency_status",
        "Each `dependency`'s status from the background probes: 0 healthy, 1 degraded, 2 unhealthy.";
    EVENTS_ENQUEUED: Counter = "modelgate_events_enqueued_total",
        "Inference records accepted from predictions (put in the journal, or dropped and counted).";
    EVENTS_OVERFLOW: Counter = "modelgate_events_queue_overflow_total",
        "Inference records that found the queue full and waited in the journal only (not lost).";
    EVENTS_WRITTEN: Counter = "modelgate_events_written_total",
        "Inference records a `sink` confirmed on first delivery.";
    EVENTS_OUTBOXED: Counter = "modelgate_events_outboxed_total",
        "Inference records put in a `sink`'s outbox (sink failing, breaker open, or older records waiting).";
    EVENTS_REPLAYED: Counter = "modelgate_events_replayed_total",
        "Inference records a `sink` confirmed when replayed from its outbox.";
    EVENTS_DROPPED: Counter = "modelgate_events_dropped_total",
        "Inference records lost, by `reason`: outbox_full (at events.outbox_max_bytes), journal_full (at events.journal_max_bytes), disk_full, outbox_error.";
    USAGE_REJECTED: Counter = "modelgate_usage_rejected_total",
        "Usage reports the remote auth service refused with a 4xx (not retried).";
    EVENTS_CORRUPT: Counter = "modelgate_events_outbox_corrupt_total",
        "Damaged or torn outbox records skipped on replay.";
    EVENTS_OUTBOX_BYTES: Gauge in Bytes = "modelgate_events_outbox_bytes",
        "Bytes of inference records waiting in the outbox.";
    EVENTS_OUTBOX_MAX_BYTES: Gauge in Bytes = "modelgate_events_outbox_max_bytes",
        "events.outbox_max_bytes, so that alerts can compare the outbox's fill with its cap.";
    EVENTS_PRUNED: Counter = "modelgate_events_pruned_total",
        "Inference log rows removed because they were older than events.retention.";
    EVENTS_TABLE_BYTES: Gauge in Bytes = "modelgate_events_table_bytes",
        "Bytes the inference log takes in the database (PostgreSQL: table, partitions, indexes; SQLite: the file's pages in use).";
    DISK_FREE_BYTES: Gauge in Bytes = "modelgate_disk_free_bytes",
        "Free bytes (for unprivileged writers) on the disk of each `volume`: database (SQLite) and outbox.";
    EVENTS_QUEUE_DEPTH: Gauge = "modelgate_events_queue_depth",
        "Inference records waiting in memory (sampled after each batch).";
    CONNECTIONS_OPEN: Gauge = "modelgate_connections_open",
        "Client connections open on the public listener (server.max_connections caps them).";
    CONNECTIONS_REFUSED: Counter = "modelgate_connections_refused_total",
        "Connections answered 503 and closed at once because server.max_connections were open.";
    CONNECTION_TIMEOUTS: Counter = "modelgate_connection_timeouts_total",
        "Connections closed for taking too long, by `phase`: header (headers not complete within server.header_read_timeout), idle (no request within the idle or header timeout), body (body not complete within http.request_deadline).";
    ACCEPT_ERRORS: Counter = "modelgate_accept_errors_total",
        "Failed accepts on a listener (such as EMFILE: out of file descriptors); each is followed by a short pause.";
    LOG_LINES_DROPPED: Counter = "modelgate_log_lines_dropped_total",
        "Log lines dropped because the log writer's queue was full (stderr not keeping up); read from the writer when /metrics is rendered.";
}

/// A label and every value it takes.
type LabelValues = (&'static str, &'static [&'static str]);

/// Counters whose every series is known in advance, with each label's values: they are
/// registered at 0 when the recorder is installed. Without it a series appears only at its
/// first event, and `rate()`/`increase()` (and so the alerts) miss that first event.
/// The values are those the recording modules use; a value missing here only loses the 0 start.
const KNOWN_SERIES: &[(&str, &[LabelValues])] = &[
    (LOG_LINES_DROPPED, &[]),
    (CONNECTIONS_REFUSED, &[]),
    (
        CONNECTION_TIMEOUTS,
        &[("phase", &["header", "idle", "body"])],
    ),
    (ACCEPT_ERRORS, &[]),
    (AUTH_LOOKUPS, &[("tier", &["l1", "l2", "source", "stale"])]),
    (
        AUTH_CACHE_REJECTED,
        &[(
            "reason",
            &["malformed", "bad_signature", "expired", "admin"],
        )],
    ),
    (
        AUTH_REJECTED_OFFLINE,
        &[("reason", &["prefix", "length", "alphabet", "checksum"])],
    ),
    (AUTH_FAILURES_THROTTLED, &[]),
    (
        RATELIMIT_DECISIONS,
        &[
            ("tier", &["global", "local"]),
            ("outcome", &["allowed", "limited"]),
        ],
    ),
    (
        RATELIMIT_FALLBACKS,
        &[("reason", &["open", "timeout", "error"])],
    ),
    (EVENTS_ENQUEUED, &[]),
    (EVENTS_OVERFLOW, &[]),
    (
        EVENTS_DROPPED,
        &[(
            "reason",
            &["outbox_full", "journal_full", "disk_full", "outbox_error"],
        )],
    ),
    (EVENTS_CORRUPT, &[]),
    (EVENTS_PRUNED, &[]),
    (USAGE_REJECTED, &[]),
];

/// Request latencies: from well under a millisecond to the 1 s request budget and beyond.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Dependency calls: the 25 ms Redis read deadline and the 300-500 ms source timeouts.
const DEPENDENCY_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Inference: microseconds for the tree evaluator, milliseconds for large tract graphs.
const INFERENCE_BUCKETS: &[f64] = &[
    0.000002, 0.000005, 0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
];

/// The installed recorder and the `process_*` collector that `render` refreshes.
struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static EXPORTER: OnceLock<Option<Exporter>> = OnceLock::new();

fn build() -> Option<Exporter> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), REQUEST_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(DEPENDENCY_CALLS.into()), DEPENDENCY_BUCKETS)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(INFERENCE_DURATION.into()), INFERENCE_BUCKETS)
        });
    match builder.and_then(|b| b.install_recorder()) {
        Ok(handle) => {
            let upkeep = handle.clone();
            // Histograms are drained into their buckets by upkeep; without it they only grow.
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
            let process = metrics_process::Collector::default();
            process.describe();
            describe_catalogue();
            start_known_series();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(Exporter { handle, process })
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics recorder not installed; /metrics will be empty");
            None
        }
    }
}

/// Gives every catalogue metric its `# HELP` (and unit).
fn describe_catalogue() {
    metrics::with_recorder(|recorder| {
        for metric in CATALOGUE {
            let (name, help) = (metric.name.into(), metric.help.into());
            match metric.kind {
                Kind::Counter => recorder.describe_counter(name, metric.unit, help),
                Kind::Gauge => recorder.describe_gauge(name, metric.unit, help),
                Kind::Histogram => recorder.describe_histogram(name, metric.unit, help),
            }
        }
    });
}

/// Registers every series of [`KNOWN_SERIES`] at 0.
fn start_known_series() {
    for (name, labels) in KNOWN_SERIES {
        for series in label_combinations(labels) {
            metrics::counter!(*name, series).increment(0);
        }
    }
}

/// Every combination of one value per label (one empty combination for no labels).
fn label_combinations(labels: &[LabelValues]) -> Vec<Vec<metrics::Label>> {
    labels
        .iter()
        .fold(vec![Vec::new()], |combinations, (label, values)| {
            combinations
                .iter()
                .flat_map(|prefix| {
                    values.iter().map(move |value| {
                        let mut series = prefix.clone();
                        series.push(metrics::Label::new(*label, *value));
                        series
                    })
                })
                .collect()
        })
}

/// The process's recorder, installed on first use.
pub fn handle() -> Option<&'static PrometheusHandle> {
    EXPORTER
        .get_or_init(build)
        .as_ref()
        .map(|exporter| &exporter.handle)
}

/// Prometheus text for `GET /metrics`; the `process_*` figures are read now, at the scrape
/// (a few reads of /proc), rather than on any request path.
pub fn render() -> String {
    match EXPORTER.get_or_init(build) {
        Some(exporter) => {
            exporter.process.collect();
            exporter.handle.render()
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metric name declared outside `catalogue!` would be recorded without `# HELP`.
    #[test]
    fn every_metric_name_is_declared_in_the_catalogue() {
        let source = include_str!("metrics.rs");
        let stray: Vec<&str> = source
            .lines()
            .map(str::trim)
            // The macro's own `pub const $konst: &str` is the one allowed declaration.
            .filter(|line| {
                line.starts_with("pub const") && line.contains(": &str") && !line.contains('$')
            })
            .collect();
        assert!(
            stray.is_empty(),
            "declare these in catalogue! so they get a # HELP: {stray:?}"
        );
        assert!(CATALOGUE.len() >= 20, "catalogue not read");
    }

    /// A name spelt out at a call site would bypass the catalogue (and its `# HELP`).
    #[test]
    fn metrics_are_recorded_under_catalogue_constants_only() {
        fn rust_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("read src").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    rust_files(&path, found);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    found.push(path);
                }
            }
        }
        let mut files = Vec::new();
        rust_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 20, "sources not found");
        let literal_names: Vec<String> = files
            .iter()
            .flat_map(|path| {
                let text = std::fs::read_to_string(path).expect("read source");
                let hits: Vec<String> = ["counter!(\"", "gauge!(\"", "histogram!(\""]
                    .iter()
                    .filter(|pattern| text.contains(*pattern))
                    .map(|pattern| format!("{}: {pattern}", path.display()))
                    .collect();
                hits
            })
            .collect();
        assert!(
            literal_names.is_empty(),
            "use a catalogue! constant: {literal_names:?}"
        );
    }

    #[test]
    fn catalogue_entries_are_described_and_named_by_the_conventions() {
        let mut names = std::collections::BTreeSet::new();
        for metric in CATALOGUE {
            assert!(names.insert(metric.name), "{} declared twice", metric.name);
            assert!(metric.name.starts_with("modelgate_"), "{}", metric.name);
            assert!(metric.help.len() > 10, "{}: help too short", metric.name);
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                metric.name
            );
        }
    }

    #[test]
    fn known_series_are_catalogued_counters() {
        for (name, _) in KNOWN_SERIES {
            let entry = CATALOGUE.iter().find(|m| m.name == *name);
            assert!(
                entry.is_some_and(|m| m.kind == Kind::Counter),
                "{name} is not a catalogued counter"
            );
        }
    }

    #[test]
    fn label_combinations_are_the_cartesian_product() {
        let render = |labels| -> Vec<String> {
            label_combinations(labels)
                .iter()
                .map(|series| {
                    series
                        .iter()
                        .map(|l| format!("{}={}", l.key(), l.value()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect()
        };
        assert_eq!(render(&[]), vec![""]);
        assert_eq!(
            render(&[
                ("tier", &["global", "local"]),
                ("outcome", &["allowed", "limited"])
            ]),
            vec![
                "tier=global,outcome=allowed",
                "tier=global,outcome=limited",
                "tier=local,outcome=allowed",
                "tier=local,outcome=limited"
            ]
        );
    }
}
