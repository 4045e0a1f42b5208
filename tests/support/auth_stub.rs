//! An in-test HTTP server implementing the remote auth service's contract.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the stub answers for one key: a status and a raw body.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

#[derive(Default)]
struct Shared {
    replies: Mutex<HashMap<String, Reply>>,
    calls: AtomicUsize,
    probe_calls: AtomicUsize,
    last_request: Mutex<Option<(String, Value)>>,
    delay: Mutex<Duration>,
    /// Usage reports received: the key id in the path and the body.
    debits: Mutex<Vec<(String, Value)>>,
    /// What the debit endpoint answers; 0 means 200.
    debit_status: std::sync::atomic::AtomicU16,
}

#[derive(Clone)]
pub struct AuthStub {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The service's usual answer for a valid key.
pub fn valid_body(key_id: &str) -> Value {
    json!({
        "user": {"id": 42, "email": "ada@example.com"},
        "key_id": key_id,
        "scopes": ["predict"],
        "rate_limit_per_hour": 500,
        "has_sufficient_balance": true,
        "balance": 12.5
    })
}

impl AuthStub {
    pub async fn start() -> AuthStub {
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/api/v1/keys/validate", post(validate))
            .route("/api/v1/usage/{key_id}/debit", post(debit))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        AuthStub { addr, shared }
    }

    pub fn reply(&self, key: &str, status: u16, body: impl Into<String>) {
        let reply = Reply {
            status,
            body: body.into(),
        };
        self.shared
            .replies
            .lock()
            .expect("lock")
            .insert(key.to_string(), reply);
    }

    pub fn accept(&self, key: &str, key_id: &str) {
        self.reply(key, 200, valid_body(key_id).to_string());
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("lock") = delay;
    }

    /// Usage reports accepted so far (key id, body).
    pub fn debits(&self) -> Vec<(String, Value)> {
        self.shared.debits.lock().expect("lock").clone()
    }

    /// Makes the debit endpoint answer `status` (and not record) until set back to 200.
    pub fn set_debit_status(&self, status: u16) {
        self.shared.debit_status.store(status, Ordering::SeqCst);
    }

    /// Validation calls for real keys (modelgate's health probes are counted apart).
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    pub fn probe_calls(&self) -> usize {
        self.shared.probe_calls.load(Ordering::SeqCst)
    }

    /// The Authorization header and JSON body of the last call for a real key.
    pub fn last_request(&self) -> Option<(String, Value)> {
        self.shared.last_request.lock().expect("lock").clone()
    }
}

async fn validate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let key = authorization.strip_prefix("Bearer ").unwrap_or_default();
    if key == modelgate::auth::HEALTH_PROBE_KEY {
        shared.probe_calls.fetch_add(1, Ordering::SeqCst);
    } else {
        shared.calls.fetch_add(1, Ordering::SeqCst);
        *shared.last_request.lock().expect("lock") = Some((authorization.clone(), body));
    }
    let delay = *shared.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reply = shared.replies.lock().expect("lock").get(key).cloned();
    let Some(reply) = reply else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": "Invalid API key"})),
        )
            .into_response();
    };
    let status = StatusCode::from_u16(reply.status).expect("status");
    let mut response = (status, [("content-type", "application/json")], reply.body).into_response();
    if reply.status == 429 {
        response
            .headers_mut()
            .insert("retry-after", "7".parse().expect("header"));
    }
    response
}

async fn debit(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(key_id): axum::extract::Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let status = match shared.debit_status.load(Ordering::SeqCst) {
        0 | 200 => StatusCode::OK,
        other => StatusCode::from_u16(other).expect("status"),
    };
    let header = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    assert_eq!(
        header,
        body["idempotency_key"].as_str(),
        "idempotency header and body differ"
    );
    if status == StatusCode::OK {
        shared.debits.lock().expect("lock").push((key_id, body));
    }
    status
}
