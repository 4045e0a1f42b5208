//! One prediction call for every test: timed, on a [`TestApp`] or on any server by base URL.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
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

/// A response header read as a number (`RateLimit-Limit`, `Retry-After`, …).
pub fn numeric_header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
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

/// One answer a [`Barrage`] client got.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A whole response: its status, and for a 200 its `inference_log_id` (if it has one).
    Answered { status: u16, log_id: Option<String> },
    /// No whole response: the server is gone (refused, reset, or killed mid-answer).
    Gone(String),
}

impl Answer {
    /// The status of a whole response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Answered { status, .. } => Some(*status),
            Answer::Gone(_) => None,
        }
    }

    /// The `inference_log_id` of an acknowledged prediction.
    pub fn acknowledged(&self) -> Option<&str> {
        match self {
            Answer::Answered {
                status: 200,
                log_id: Some(id),
            } => Some(id),
            _ => None,
        }
    }
}

/// Clients predicting against the server at `base` (every input to its default), each one
/// request at a time, until stopped or until the server is gone: load on a real process that
/// may be killed under it.
pub struct Barrage {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    clients: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

impl Barrage {
    pub fn start(client: &reqwest::Client, base: &str, key: &str, clients: usize) -> Barrage {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (client, base, key) = (client.clone(), base.to_string(), key.to_string());
                let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    let body = json!({"inputs": {}});
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let answer = answer(&client, &base, &key, &body).await;
                        if answer.acknowledged().is_some() {
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                        }
                        let gone = matches!(answer, Answer::Gone(_));
                        answers.push(answer);
                        if gone {
                            break;
                        }
                    }
                    answers
                })
            })
            .collect();
        Barrage {
            stop,
            acknowledged,
            clients,
        }
    }

    /// Predictions answered 200 with an `inference_log_id` so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Stops the clients (each finishes the request it is in) and returns every answer.
    pub async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::SeqCst);
        let mut answers = Vec::new();
        for client in self.clients {
            answers.extend(client.await.expect("client"));
        }
        answers
    }
}

async fn answer(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> Answer {
    let response = match client
        .post(format!("{base}{PREDICT}"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => return Answer::Gone(error.to_string()),
    };
    let status = response.status().as_u16();
    // Read whole, error bodies too: a response is only answered once all of it arrived.
    match response.bytes().await {
        Ok(bytes) => Answer::Answered {
            status,
            log_id: serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|body| body["inference_log_id"].as_str().map(String::from)),
        },
        Err(error) => Answer::Gone(error.to_string()),
    }
}
