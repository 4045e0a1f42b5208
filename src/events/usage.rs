//! Sink: usage reports to the remote auth service (`POST {auth}/api/v1/usage/{key_id}/debit`),
//! after the response and through the outbox like any other sink.
//!
//! Its own dependency (`auth_usage`): a failing billing endpoint must not open the breaker
//! that key validation goes through. Each report carries the inference id as its idempotency
//! key, so a replay after a lost answer never charges twice.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde::de::IgnoredAny;
use serde_json::{json, Value};

use super::sink::{Sink, SinkError};
use super::{Protocol, Record, RecordStatus};
use crate::resilience::{BreakerConfig, Dependency};

/// Reports sent at once within a batch.
const CONCURRENCY: usize = 8;

pub struct UsageSink {
    http: reqwest::Client,
    base_url: String,
    service_id: String,
    dependency: Arc<Dependency>,
    timeout: Duration,
}

impl UsageSink {
    /// `timeout` bounds one report; a batch gets enough for its reports at [`CONCURRENCY`].
    pub fn new(
        base_url: &str,
        service_id: &str,
        timeout: Duration,
        breaker: BreakerConfig,
    ) -> UsageSink {
        UsageSink {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_string(),
            service_id: service_id.to_string(),
            dependency: Arc::new(Dependency::new("auth_usage", timeout, breaker)),
            timeout,
        }
    }

    async fn report(&self, record: &Record) -> Result<(), SinkError> {
        let url = format!(
            "{}/api/v1/usage/{}/debit",
            self.base_url,
            percent_encoding::utf8_percent_encode(
                &record.api_key_id,
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let idempotency_key = record.id.to_string();
        let response = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header("Idempotency-Key", &idempotency_key)
            .json(&debit(record, &self.service_id, &idempotency_key))
            .send()
            .await
            .map_err(|e| SinkError::from(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() || status == StatusCode::CONFLICT {
            return Ok(());
        }
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        if retryable {
            return Err(format!("usage report answered {status}").into());
        }
        // Retrying cannot change a 4xx verdict, and holding it would stall every later report.
        tracing::warn!(key_id = %record.api_key_id, inference_log_id = %record.id, %status, "usage report rejected by the auth service");
        metrics::counter!(crate::metrics::USAGE_REJECTED).increment(1);
        Ok(())
    }
}

/// The debit body of the auth service's contract.
fn debit(record: &Record, service_id: &str, idempotency_key: &str) -> Value {
    let status_code = match (record.status, record.protocol) {
        (RecordStatus::Ok, _) => 200,
        (RecordStatus::InferenceFailed, _) => 500,
        (RecordStatus::ValidationFailed, Protocol::V1) => 422,
        // The Open Inference Protocol answers every bad request 400.
        (RecordStatus::ValidationFailed, _) => 400,
    };
    let model = &record.model_id;
    let endpoint = match record.protocol {
        Protocol::V1 => format!("/api/v1/models/{model}/predict"),
        Protocol::V2Http => format!("/v2/models/{model}/infer"),
        Protocol::V2Grpc => "/inference.GRPCInferenceService/ModelInfer".to_string(),
    };
    let outputs = record.outputs.as_str();
    let predictions_count = match serde_json::from_str::<Vec<IgnoredAny>>(outputs) {
        Ok(rows) => rows.len(),
        Err(_) if outputs == "null" => 0,
        Err(_) => 1,
    };
    json!({
        "model_id": record.model_id,
        "endpoint": endpoint,
        "response_time_ms": record.latency_ms,
        "status_code": status_code,
        "service_id": service_id,
        "idempotency_key": idempotency_key,
        "compute_ms": record.latency_ms,
        "predictions_count": predictions_count,
    })
}

impl Sink for UsageSink {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn dependency(&self) -> &Arc<Dependency> {
        &self.dependency
    }

    fn timeout(&self) -> Duration {
        self.timeout * 4
    }

    /// Reports every record; any retryable failure fails the batch, which then replays from
    /// the outbox (the reports that had succeeded are deduplicated by their idempotency key).
    fn write<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let reports: Vec<_> = records.iter().map(|record| self.report(record)).collect();
            futures::stream::iter(reports)
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::record::sample;

    #[test]
    fn a_report_names_the_endpoint_and_status_of_the_protocol_it_came_by() {
        let mut record = sample(1);
        record.status = RecordStatus::ValidationFailed;
        let v1 = debit(&record, "svc", "k");
        assert_eq!(v1["endpoint"], "/api/v1/models/21/predict");
        assert_eq!(v1["status_code"], 422);
        record.protocol = Protocol::V2Http;
        let rest = debit(&record, "svc", "k");
        assert_eq!(rest["endpoint"], "/v2/models/21/infer");
        assert_eq!(rest["status_code"], 400);
        record.protocol = Protocol::V2Grpc;
        let grpc = debit(&record, "svc", "k");
        assert_eq!(
            grpc["endpoint"],
            "/inference.GRPCInferenceService/ModelInfer"
        );
    }
}
