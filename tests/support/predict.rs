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

impl TestApp {
    /// `(status, metadata.model_version)` of one prediction (every input to its default) on
    /// `path`, a model's predict route.
    pub async fn version_served(&self, key: &str, path: &str) -> (u16, Option<String>) {
        let response = self.post_json(path, key, &json!({"inputs": {}})).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        let version = body["metadata"]["model_version"].as_str().map(String::from);
        (status, version)
    }
}

/// `(status, metadata.model_version)` of each answer one client got.
type Answers = Vec<(u16, Option<String>)>;

/// Clients predicting in a loop, each one request at a time, until stopped: the load a model
/// swap must not fail one request of.
pub struct Load {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Answers>>,
}

impl Load {
    pub fn start(app: &std::sync::Arc<TestApp>, key: &str, path: &str, clients: usize) -> Load {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let (app, key, path, done) =
                    (app.clone(), key.to_string(), path.to_string(), done.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        answers.push(app.version_served(&key, &path).await);
                    }
                    answers
                })
            })
            .collect();
        Load { done, clients }
    }

    /// Stops the clients and fails the test if any answer was not a 200; the versions that
    /// answered, in no particular order.
    pub async fn stop(self) -> Vec<String> {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut answers = Vec::new();
        for client in self.clients {
            answers.extend(client.await.expect("client"));
        }
        let failed: Vec<_> = answers
            .iter()
            .filter(|(status, _)| *status != 200)
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} failed: {failed:?}",
            failed.len(),
            answers.len()
        );
        answers
            .into_iter()
            .filter_map(|(_, version)| version)
            .collect()
    }
}
