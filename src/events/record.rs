//! The inference record: what one prediction did, as stored and published.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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
    pub inputs: Value,
    pub outputs: Value,
    /// `inputs` or `outputs` was longer than `events.max_payload_bytes`; it then holds the
    /// start of its JSON text as a string.
    #[serde(default)]
    pub truncated: bool,
    pub latency_ms: f64,
    /// `ok`, or the problem code the client got (`invalid_inputs`, `inference_failed`).
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl Record {
    /// Cuts `inputs` and `outputs` to `max_bytes` of JSON each, marking the record truncated.
    pub fn limit_payloads(&mut self, max_bytes: usize) {
        for payload in [&mut self.inputs, &mut self.outputs] {
            if let Some(cut) = truncated(payload, max_bytes) {
                *payload = Value::String(cut);
                self.truncated = true;
            }
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and JSON values always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The start of `value`'s JSON text when that text is longer than `max_bytes`.
fn truncated(value: &Value, max_bytes: usize) -> Option<String> {
    let text = serde_json::to_string(value).ok()?;
    if text.len() <= max_bytes {
        return None;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_string())
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
        inputs: serde_json::json!({"company_size": 250}),
        outputs: serde_json::json!({"score": 0.5}),
        truncated: false,
        latency_ms: 0.1,
        status: "ok".into(),
        created_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_are_cut_and_flagged_not_dropped() {
        let mut record = sample(1);
        record.inputs = serde_json::json!({"text": "é".repeat(100)});
        record.limit_payloads(51);
        assert!(record.truncated);
        let Value::String(cut) = &record.inputs else {
            panic!("expected a string, got {}", record.inputs)
        };
        assert!(cut.len() <= 51 && cut.starts_with("{\"text\":\"é"), "{cut}");
        assert_eq!(record.outputs, serde_json::json!({"score": 0.5}));
        let again = Record::from_json(&record.to_json()).expect("round trip");
        assert_eq!(again, record);
    }

    #[test]
    fn small_payloads_are_untouched() {
        let mut record = sample(1);
        let before = record.clone();
        record.limit_payloads(1000);
        assert_eq!(record, before);
    }
}
