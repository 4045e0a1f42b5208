//! The one prediction path every front end ends in (`/api/v1` JSON, `/v2` REST, gRPC): the
//! credit, the model, the record and the per-model metrics. Authentication, scope, the key's
//! models and its rate limit come before, from the same functions in every front end.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use uuid::Uuid;

use super::problem::ApiError;
use super::AppState;
use crate::auth::Principal;
use crate::events::{Prediction, Protocol, RecordStatus};
use crate::models::{Model, PredictError};

/// A prediction answered.
pub struct Scored {
    /// One object, or an array in request order.
    pub predictions: Value,
    pub latency_ms: f64,
    /// Absent when the record could not be kept (docs/events.md): an id is handed out only
    /// for a record that is in the journal.
    pub inference_log_id: Option<Uuid>,
    /// Only for prepaid keys: what the key has left after this prediction.
    pub credits_remaining: Option<i64>,
}

/// Charges, scores `inputs` (as `Model::predict` takes them) and records the prediction.
pub async fn score(
    state: &AppState,
    model: &Arc<Model>,
    principal: &Principal,
    inputs: Value,
    protocol: Protocol,
    started: Instant,
) -> Result<Scored, ApiError> {
    let scored = async {
        let charge = super::credits::charge(state, principal).await?;
        let (inputs, predicted) = if model.may_block() {
            let model = model.clone();
            tokio::task::spawn_blocking(move || {
                let predicted = model.predict(&inputs);
                (inputs, predicted)
            })
            .await
            .map_err(|_| ApiError::internal("The model could not score this request."))?
        } else {
            let predicted = model.predict(&inputs);
            (inputs, predicted)
        };
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let inference_log_id = Uuid::now_v7();
        let (outputs, status) = match predicted {
            Ok(predictions) => (Ok(predictions.into_json()), RecordStatus::Ok),
            Err(err @ PredictError::Invalid(_)) => (Err(err), RecordStatus::ValidationFailed),
            Err(err @ PredictError::Inference(_)) => (Err(err), RecordStatus::InferenceFailed),
        };
        // In the journal (one write shared with concurrent requests) before the answer, so the id
        // the client gets survives a crash; a record that could not be kept gets no id.
        let recorded = state
            .events
            .record(Prediction {
                id: inference_log_id,
                api_key_id: &principal.key_id,
                model_id: model.id(),
                model_version: &model.version().version,
                inputs: &inputs,
                outputs: outputs.as_ref().unwrap_or(&Value::Null),
                latency_ms,
                status,
                protocol,
            })
            .await;
        let inference_log_id = recorded.is_ok().then_some(inference_log_id);
        // A failed prediction drops its charge, which gives the credit back.
        let predictions = outputs?;
        let credits_remaining = charge.map(|charge| {
            let remaining = charge.remaining;
            charge.keep();
            remaining
        });
        tracing::debug!(model = %model.id(), latency_ms, "predicted");
        Ok(Scored {
            predictions,
            latency_ms,
            inference_log_id,
            credits_remaining,
        })
    }
    .await;
    count(model, protocol, &scored);
    scored
}

/// The per-model counters a Triton user looks for: requests by outcome, rows scored.
fn count(model: &Model, protocol: Protocol, scored: &Result<Scored, ApiError>) {
    let (model_id, version) = (model.id().to_string(), model.version().version.clone());
    let protocol = protocol.as_str();
    let outcome = match scored {
        Ok(_) => "ok",
        Err(error) => error.code.as_str(),
    };
    metrics::counter!(crate::metrics::INFERENCE_REQUESTS, "model" => model_id.clone(),
        "version" => version.clone(), "protocol" => protocol, "outcome" => outcome)
    .increment(1);
    if let Ok(scored) = scored {
        let rows = match &scored.predictions {
            Value::Array(rows) => rows.len(),
            _ => 1,
        };
        metrics::counter!(crate::metrics::INFERENCE_ROWS, "model" => model_id,
            "version" => version, "protocol" => protocol)
        .increment(rows as u64);
    }
}
