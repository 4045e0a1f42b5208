//! One prediction call for every test: timed, on a [`TestApp`] or on any server by base URL.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TestApp;

pub const PREDICT: &str = "/api/v1/models/21/predict";

/// One answer of the prediction route, its body left unread for the test to look at.
pub struct Predicted {
    pub status: u16,
    /// Until the response head arrived.
    pub took: Duration,
    pub response: reqwest::Response,
}

impl Predicted {
    /// The body's `inference_log_id`; `None` for an answer without one (an error).
    pub async fn log_id(self) -> Option<String> {
        let body: Value = self.response.json().await.expect("json body");
        body["inference_log_id"].as_str().map(String::from)
    }
}

/// `POST {base}/api/v1/models/21/predict` with `body`, authenticated as `key`.
pub async fn predict_at(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> Predicted {
    let started = Instant::now();
    let response = client
        .post(format!("{base}{PREDICT}"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("predict");
    Predicted {
        status: response.status().as_u16(),
        took: started.elapsed(),
        response,
    }
}

impl TestApp {
    /// A prediction with every input left to its default.
    pub async fn predict(&self, key: &str) -> Predicted {
        self.predict_with(key, &json!({"inputs": {}})).await
    }

    pub async fn predict_with(&self, key: &str, body: &Value) -> Predicted {
        predict_at(&self.client, &self.url(""), key, body).await
    }
}
