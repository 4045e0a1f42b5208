//! The remote auth service of the system modelgate replaces, so modelgate can front it
//! unchanged: `POST {url}/api/v1/keys/validate` with the key as a bearer token.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Lookup, Principal, RateLimit, Scope};
use crate::resilience::{CallError, Dependency};

/// Requests per hour the service grants when it does not say.
const DEFAULT_RATE_LIMIT_PER_HOUR: u32 = 1000;

/// Shaped like a key so the service looks it up, but it spells its purpose in the service's logs.
pub const HEALTH_PROBE_KEY: &str = "mg_modelgateHealthProbeNotARealKey00000000";

/// Why the service gave no verdict on the key.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("auth service answered {0}")]
    Status(StatusCode),
    #[error("auth service is unreachable: {0}")]
    Transport(String),
    #[error("auth service answered 200 without a JSON object")]
    NotAnObject,
    #[error(
        "auth service accepted a key that was never issued (wrong URL or misconfigured service)"
    )]
    AcceptedBogusKey,
}

/// The service's verdict.
#[derive(Debug)]
pub enum Verdict {
    Known(Lookup),
    /// The service is rate limiting us (or the caller); the client gets 429 with this delay.
    RateLimited {
        retry_after: Duration,
    },
}

#[derive(Clone)]
pub struct RemoteAuth {
    http: reqwest::Client,
    endpoint: String,
    service_id: String,
    dependency: Arc<Dependency>,
}

#[derive(Deserialize, Default)]
struct User {
    id: Option<Value>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct Validated {
    user_id: Option<Value>,
    email: Option<String>,
    user: Option<User>,
    key_id: Option<Value>,
    #[serde(default)]
    scopes: Vec<String>,
    rate_limit_per_hour: Option<u32>,
    has_sufficient_balance: Option<bool>,
    balance: Option<f64>,
    /// Absent or null: every model. An empty list is taken at its word: no model.
    models: Option<Vec<String>>,
}

/// Ids arrive as strings or numbers; either way they are text to us.
fn text(value: Option<Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn principal(body: Validated, key_prefix: String) -> Principal {
    let user = body.user.unwrap_or_default();
    let user_id = text(body.user_id).or(text(user.id));
    // Scopes this service does not know are ignored; a key with none of ours may predict,
    // as every key of the replaced system could.
    let mut scopes: Vec<Scope> = body.scopes.iter().filter_map(|s| s.parse().ok()).collect();
    if scopes.is_empty() {
        scopes.push(Scope::Predict);
    }
    let requests = body
        .rate_limit_per_hour
        .unwrap_or(DEFAULT_RATE_LIMIT_PER_HOUR)
        .max(1);
    Principal {
        key_id: text(body.key_id)
            .or_else(|| user_id.clone())
            .unwrap_or_else(|| key_prefix.clone()),
        name: body
            .email
            .clone()
            .or(user.email.clone())
            .unwrap_or_default(),
        prefix: key_prefix,
        scopes,
        rate_limit: Some(RateLimit {
            requests,
            per: super::Period::Hour,
        }),
        expires_at: None,
        user_id,
        email: body.email.or(user.email),
        balance: body.balance,
        has_sufficient_balance: body.has_sufficient_balance.unwrap_or(true),
        // The service keeps the balance; usage is reported to it after each prediction.
        prepaid: false,
        models: body.models,
    }
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

impl RemoteAuth {
    pub fn new(base_url: &str, service_id: &str, dependency: Arc<Dependency>) -> RemoteAuth {
        RemoteAuth {
            // One pooled client for every call; timeouts come from the dependency wrapper.
            http: reqwest::Client::new(),
            endpoint: format!("{}/api/v1/keys/validate", base_url.trim_end_matches('/')),
            service_id: service_id.to_string(),
            dependency,
        }
    }

    pub fn dependency(&self) -> &Arc<Dependency> {
        &self.dependency
    }

    /// The validation call for `key`, as the service expects it; `modelgate doctor` sends the
    /// same request to check the contract.
    pub(crate) fn request(&self, key: &str, client_ip: Option<IpAddr>) -> reqwest::RequestBuilder {
        self.http
            .post(&self.endpoint)
            .bearer_auth(key)
            .json(&json!({
                "service_id": self.service_id,
                "client_ip": client_ip.map(|ip| ip.to_string()),
            }))
    }

    pub async fn validate(
        &self,
        key: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Verdict, CallError<RemoteError>> {
        self.dependency.call(self.exchange(key, client_ip)).await
    }

    /// Health probe: asks about a key that cannot exist. A service that answers "unknown" (or
    /// rate limits) is up and speaks the contract; one that accepts the key is misconfigured.
    pub async fn probe(&self) -> Result<(), CallError<RemoteError>> {
        match self
            .dependency
            .call(self.exchange(HEALTH_PROBE_KEY, None))
            .await?
        {
            Verdict::Known(Lookup::Valid(_)) => Err(CallError::Failed {
                dependency: self.dependency.name(),
                source: RemoteError::AcceptedBogusKey,
            }),
            Verdict::Known(_) | Verdict::RateLimited { .. } => Ok(()),
        }
    }

    /// One validation round trip, unguarded: the caller wraps it in the dependency.
    async fn exchange(&self, key: &str, client_ip: Option<IpAddr>) -> Result<Verdict, RemoteError> {
        let prefix = super::secret::display_prefix(key);
        // reqwest's error text can include the URL but never the bearer token.
        let response = self
            .request(key, client_ip)
            .send()
            .await
            .map_err(|e| RemoteError::Transport(e.without_url().to_string()))?;
        match response.status() {
            StatusCode::OK => {
                let body: Value = response
                    .json()
                    .await
                    .map_err(|_| RemoteError::NotAnObject)?;
                if !body.is_object() {
                    return Err(RemoteError::NotAnObject);
                }
                let validated: Validated =
                    serde_json::from_value(body).map_err(|_| RemoteError::NotAnObject)?;
                Ok(Verdict::Known(Lookup::Valid(Arc::new(principal(
                    validated, prefix,
                )))))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                Ok(Verdict::Known(Lookup::Unknown))
            }
            StatusCode::TOO_MANY_REQUESTS => Ok(Verdict::RateLimited {
                retry_after: retry_after(&response),
            }),
            other => Err(RemoteError::Status(other)),
        }
    }
}
