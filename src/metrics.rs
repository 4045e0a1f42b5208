//! Prometheus metrics: the recorder, and the names every module records under.
//!
//! One process-wide recorder (the `metrics` facade allows one); `GET /metrics` renders it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "modelgate_http_requests_total";
pub const HTTP_DURATION: &str = "modelgate_http_request_duration_seconds";
pub const DEPENDENCY_CALLS: &str = "modelgate_dependency_call_duration_seconds";
pub const DEPENDENCY_UP: &str = "modelgate_dependency_up";
pub const BREAKER_STATE: &str = "modelgate_breaker_state";
pub const AUTH_LOOKUPS: &str = "modelgate_auth_lookups_total";
/// Rate-limit decisions by `tier` (global, local) and `outcome` (allowed, limited).
pub const RATELIMIT_DECISIONS: &str = "modelgate_ratelimit_decisions_total";
/// Decisions made locally because Redis could not answer, by `reason` (open, timeout, error).
pub const RATELIMIT_FALLBACKS: &str = "modelgate_ratelimit_redis_fallbacks_total";
pub const INFERENCE_DURATION: &str = "modelgate_inference_duration_seconds";
/// 0 healthy, 1 degraded, 2 unhealthy: the service's verdict, and each dependency's.
pub const HEALTH_STATUS: &str = "modelgate_health_status";
pub const DEPENDENCY_STATUS: &str = "modelgate_dependency_status";
/// Inference records accepted from predictions (queued, or straight to the outbox).
pub const EVENTS_ENQUEUED: &str = "modelgate_events_enqueued_total";
/// Records that found the queue full and went straight to the outbox (not lost).
pub const EVENTS_OVERFLOW: &str = "modelgate_events_queue_overflow_total";
/// Records a sink confirmed on first delivery, by `sink`.
pub const EVENTS_WRITTEN: &str = "modelgate_events_written_total";
/// Records put in a sink's outbox (sink failing, breaker open, or older records waiting).
pub const EVENTS_OUTBOXED: &str = "modelgate_events_outboxed_total";
/// Records a sink confirmed when replayed from its outbox.
pub const EVENTS_REPLAYED: &str = "modelgate_events_replayed_total";
/// Records lost, by `reason`: `outbox_full` (at `events.outbox_max_bytes`), `outbox_error`.
pub const EVENTS_DROPPED: &str = "modelgate_events_dropped_total";
/// Usage reports the remote auth service refused with a 4xx (not retried).
pub const USAGE_REJECTED: &str = "modelgate_usage_rejected_total";
/// Damaged or torn outbox records skipped on replay.
pub const EVENTS_CORRUPT: &str = "modelgate_events_outbox_corrupt_total";
pub const EVENTS_OUTBOX_BYTES: &str = "modelgate_events_outbox_bytes";
/// `events.outbox_max_bytes`, so alerts can compare the fill with the cap.
pub const EVENTS_OUTBOX_MAX_BYTES: &str = "modelgate_events_outbox_max_bytes";
pub const EVENTS_QUEUE_DEPTH: &str = "modelgate_events_queue_depth";
/// Log lines dropped because the log writer's queue was full (stderr not keeping up).
pub const LOG_LINES_DROPPED: &str = "modelgate_log_lines_dropped_total";

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

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

fn build() -> Option<PrometheusHandle> {
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
            Some(handle)
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics recorder not installed; /metrics will be empty");
            None
        }
    }
}

/// The process's recorder, installed on first use.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(build).as_ref()
}

/// Prometheus text for `GET /metrics`.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}
