//! The inference record: what one prediction did, as stored and published.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::Value;
use uuid::Uuid;

/// One prediction that reached the model, successful or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The response's `inference_log_id` (UUIDv7): the key consumers deduplicate by.
    pub id: Uuid,
    /// Which modelgate process recorded it.
    pub instance: String,
    /// Position in this instance's sequence (1, 2, 3, ...): gaps and order are checkable.
    pub seq: u64,
    pub api_key_id: String,
    pub model_id: String,
    pub model_version: String,
    pub inputs: Payload,
    pub outputs: Payload,
    /// `inputs` or `outputs` was longer than `events.max_payload_bytes`; it then holds the
    /// start of its JSON text as a string.
    #[serde(default)]
    pub truncated: bool,
    pub latency_ms: f64,
    /// `ok`, or the problem code the client got (`validation_failed`, `inference_failed`).
    pub status: RecordStatus,
    /// The protocol the prediction came in by; records written before protocols were
    /// recorded were all `/api/v1`.
    #[serde(default)]
    pub protocol: Protocol,
    pub created_at: DateTime<Utc>,
}

/// The front end a prediction came in by. The strings are part of the record's contract
/// (docs/events.md) and label the inference metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// modelgate's own JSON, `/api/v1`.
    #[default]
    V1,
    /// The Open Inference Protocol over REST, `/v2`.
    V2Http,
    /// The Open Inference Protocol over gRPC.
    V2Grpc,
}

impl Protocol {
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::V2Http => "v2_http",
            Protocol::V2Grpc => "v2_grpc",
        }
    }
}

/// How a prediction that reached the model ended, as written to the log and the stream.
/// The strings are part of the record's contract (docs/events.md) and must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Answered 200.
    Ok,
    /// Refused 422 for its inputs: the client's `validation_failed`.
    ValidationFailed,
    /// The model failed on valid inputs, answered 500: the client's `inference_failed`.
    InferenceFailed,
}

impl RecordStatus {
    /// The text stored in `inference_logs.status`: the same as in the record's JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Ok => "ok",
            RecordStatus::ValidationFailed => "validation_failed",
            RecordStatus::InferenceFailed => "inference_failed",
        }
    }
}

impl Record {
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and JSON text always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A JSON value kept as its compact text. Serialized once, when the prediction is recorded:
/// the size check, the table's columns, the stream entry and the outbox all reuse the text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// `value`'s JSON text, or, when that is longer than `max_bytes`, its start as a JSON
    /// string; the flag says which.
    pub fn capture(value: &Value, max_bytes: usize) -> (Payload, bool) {
        // Serializing a `Value` cannot fail (its map keys are strings).
        let Ok(whole) = to_raw_value(value) else {
            return (Payload::null(), false);
        };
        let text = whole.get();
        if text.len() <= max_bytes {
            return (Payload(whole), false);
        }
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = to_raw_value(&text[..end]).map_or_else(|_| Payload::null(), Payload);
        (cut, true)
    }

    fn null() -> Payload {
        Payload(to_raw_value(&Value::Null).unwrap_or_default())
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
pub(crate) fn sample(seq: u64) -> Record {
    Record {
        id: Uuid::now_v7(),
        instance: "test".into(),
        seq,
        api_key_id: "key".into(),
        model_id: "21".into(),
        model_version: "1.0.0".into(),
        inputs: Payload::capture(&serde_json::json!({"company_size": 250}), 1000).0,
        outputs: Payload::capture(&serde_json::json!({"score": 0.5}), 1000).0,
        truncated: false,
        latency_ms: 0.1,
        status: RecordStatus::Ok,
        protocol: Protocol::V1,
        created_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_are_cut_and_flagged_not_dropped() {
        let (cut, truncated) = Payload::capture(&serde_json::json!({"text": "é".repeat(100)}), 51);
        assert!(truncated);
        let Value::String(cut) = cut.to_value() else {
            panic!("expected a string, got {cut:?}")
        };
        assert!(cut.len() <= 51 && cut.starts_with("{\"text\":\"é"), "{cut}");
        let mut record = sample(1);
        record.inputs = Payload::capture(&serde_json::json!({"text": "é".repeat(100)}), 51).0;
        record.truncated = true;
        let again = Record::from_json(&record.to_json()).expect("round trip");
        assert_eq!(again, record);
        assert_eq!(again.outputs.to_value(), serde_json::json!({"score": 0.5}));
    }

    #[test]
    fn status_text_is_the_same_in_the_table_and_the_json() {
        for status in [
            RecordStatus::Ok,
            RecordStatus::ValidationFailed,
            RecordStatus::InferenceFailed,
        ] {
            let json = serde_json::to_value(status).expect("serializes");
            assert_eq!(json, Value::from(status.as_str()));
            let back: RecordStatus = serde_json::from_value(json).expect("deserializes");
            assert_eq!(back, status);
        }
    }

    #[test]
    fn a_record_from_before_protocols_reads_as_v1() {
        let mut json: Value = serde_json::from_slice(&sample(1).to_json()).expect("json");
        json.as_object_mut().expect("object").remove("protocol");
        let old = Record::from_json(json.to_string().as_bytes()).expect("reads");
        assert_eq!(old.protocol, Protocol::V1);
        let mut grpc = sample(2);
        grpc.protocol = Protocol::V2Grpc;
        let json: Value = serde_json::from_slice(&grpc.to_json()).expect("json");
        assert_eq!(json["protocol"], "v2_grpc");
    }

    #[test]
    fn small_payloads_are_kept_whole() {
        let value = serde_json::json!({"company_size": 250, "title": "VP \"Sales\""});
        let (payload, truncated) = Payload::capture(&value, 1000);
        assert!(!truncated);
        assert_eq!(payload.to_value(), value);
        assert_eq!(payload.as_str(), value.to_string());
    }
}
