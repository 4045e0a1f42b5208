//! The registry client: resolves a selector to a version, downloads its graph, probes the
//! server. Every call goes through the registry's [`Dependency`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::artifacts::{self, ArtifactLocation};
use super::download;
use super::error::{display_url, send_error};
use super::{mlmodel, Credentials, MlflowError, Selector};
use crate::resilience::{CallError, Dependency};

/// A registry that does not accept a connection within this is down, whatever the call's
/// deadline: failing here lets the breaker see it before a long download timeout runs out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// MLflow's servers close idle connections after 5 s (uvicorn) or 2 s (gunicorn). A pooled
/// connection reused just as the server closes it fails the request, so the client lets go
/// first; the calls of one resolve or download still share a connection.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Registry answers and MLmodel files are a few kilobytes; anything near this is not one.
const MAX_METADATA_BYTES: u64 = 1 << 20;

/// How much of an error body is read and shown.
const MAX_ERROR_BYTES: u64 = 64 << 10;
const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// How long a graph download may take and how large the graph may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadLimits {
    pub timeout: Duration,
    pub max_bytes: u64,
}

impl Default for DownloadLimits {
    fn default() -> DownloadLimits {
        DownloadLimits {
            timeout: Duration::from_secs(60),
            max_bytes: 512 << 20,
        }
    }
}

/// A model version the registry named, and where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVersion {
    /// The registered model's name.
    pub name: String,
    pub version: String,
    /// The version's artifact root, as `get-download-uri` gives it (in MLflow 3, e.g.
    /// `mlflow-artifacts:/0/models/m-…/artifacts`).
    pub download_uri: String,
    /// The version's `source` (in MLflow 3, `models:/m-…`, the logged model).
    pub source: Option<String>,
    pub run_id: Option<String>,
}

#[derive(Clone)]
pub struct MlflowClient {
    http: reqwest::Client,
    tracking_uri: String,
    credentials: Credentials,
    dependency: Arc<Dependency>,
    limits: DownloadLimits,
}

impl std::fmt::Debug for MlflowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowClient")
            .field("tracking_uri", &display_url(&self.tracking_uri))
            .field("credentials", &self.credentials)
            .field("dependency", &self.dependency.name())
            .field("limits", &self.limits)
            .finish()
    }
}

/// A registry error body: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "…"}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

/// A non-2xx answer, for the caller to interpret in its context.
struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
}

impl Refusal {
    /// The error for a refusal no context explains.
    fn into_error(self, what: &'static str) -> MlflowError {
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => MlflowError::Unauthorized {
                status: self.status.as_u16(),
            },
            status => MlflowError::Status {
                what,
                status: status.as_u16(),
                message: if self.code.is_empty() {
                    self.message
                } else {
                    format!("{}: {}", self.code, self.message)
                },
            },
        }
    }

    fn does_not_exist(&self) -> bool {
        self.status == StatusCode::NOT_FOUND || self.code == "RESOURCE_DOES_NOT_EXIST"
    }
}

#[derive(Deserialize)]
struct ModelVersion {
    version: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
}

#[derive(Deserialize)]
struct ModelVersionReply {
    model_version: ModelVersion,
}

#[derive(Deserialize)]
struct LatestVersionsReply {
    // MLflow answers `{}` when no version is in the stage.
    #[serde(default)]
    model_versions: Vec<ModelVersion>,
}

#[derive(Deserialize)]
struct DownloadUriReply {
    artifact_uri: String,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl MlflowClient {
    /// A client of the registry at `tracking_uri` (an http(s) URL, e.g. from
    /// [`super::ValidSource`]), with the default [`DownloadLimits`].
    pub fn new(
        tracking_uri: &str,
        credentials: Credentials,
        dependency: Arc<Dependency>,
    ) -> Result<MlflowClient, MlflowError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("modelgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MlflowError::Setup {
                reason: super::error::transport_reason(e),
            })?;
        Ok(MlflowClient {
            http,
            tracking_uri: tracking_uri.trim_end_matches('/').to_string(),
            credentials,
            dependency,
            limits: DownloadLimits::default(),
        })
    }

    pub fn with_download_limits(mut self, limits: DownloadLimits) -> MlflowClient {
        self.limits = limits;
        self
    }

    pub fn dependency(&self) -> &Arc<Dependency> {
        &self.dependency
    }

    /// The version `selector` picks for registered model `name`, and where its files are.
    pub async fn resolve(
        &self,
        name: &str,
        selector: &Selector,
    ) -> Result<ResolvedVersion, CallError<MlflowError>> {
        self.guarded(
            self.dependency.timeout(),
            self.resolve_unguarded(name, selector),
        )
        .await
    }

    /// The ONNX graph of `version`: the file its `MLmodel`'s onnx flavor names, read whole
    /// within the download limits.
    pub async fn fetch_graph(
        &self,
        version: &ResolvedVersion,
    ) -> Result<Vec<u8>, CallError<MlflowError>> {
        self.guarded(self.limits.timeout, self.fetch_graph_unguarded(version))
            .await
    }

    /// One cheap authenticated round trip, for health checks: it fails when the registry is
    /// unreachable, erroring, or refuses the credentials.
    pub async fn probe(&self) -> Result<(), CallError<MlflowError>> {
        self.guarded(self.dependency.timeout(), async {
            let request = self
                .http
                .get(self.api("registered-models/search"))
                .query(&[("max_results", "1")]);
            match self.exchange::<serde_json::Value>(request).await? {
                Ok(_) => Ok(()),
                Err(refusal) => Err(refusal.into_error("registered-models/search")),
            }
        })
        .await
    }

    /// Runs `operation` through the dependency. Answers that something is missing or unusable
    /// reach the caller as failures but are not outages, so they leave the breaker alone.
    async fn guarded<T>(
        &self,
        timeout: Duration,
        operation: impl Future<Output = Result<T, MlflowError>>,
    ) -> Result<T, CallError<MlflowError>> {
        let answered = self
            .dependency
            .call_within(timeout, async {
                match operation.await {
                    Err(error) if !error.is_outage() => Ok(Err(error)),
                    other => other.map(Ok),
                }
            })
            .await?;
        answered.map_err(|source| CallError::Failed {
            dependency: self.dependency.name(),
            source,
        })
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.tracking_uri)
    }

    /// Sends `request` with the credentials; a 2xx answer is parsed as `T`, any other is
    /// returned as a [`Refusal`] for the caller to explain.
    async fn exchange<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Result<T, Refusal>, MlflowError> {
        let response = self
            .credentials
            .apply(request)
            .send()
            .await
            .map_err(|e| send_error(&self.tracking_uri, e))?;
        let status = response.status();
        let url = display_url(response.url().as_str());
        let what = "a registry request";
        if !status.is_success() {
            return Ok(Err(refusal(response).await));
        }
        let body = download::body(response, MAX_METADATA_BYTES)
            .await
            .map_err(|e| match e {
                download::ReadError::TooLarge => MlflowError::BadResponse {
                    what,
                    detail: format!("the answer is over {MAX_METADATA_BYTES} bytes"),
                },
                download::ReadError::Failed(reason) => MlflowError::Transport { url, reason },
            })?;
        serde_json::from_slice(&body)
            .map(Ok)
            .map_err(|e| MlflowError::BadResponse {
                what,
                detail: e.to_string(),
            })
    }

    async fn resolve_unguarded(
        &self,
        name: &str,
        selector: &Selector,
    ) -> Result<ResolvedVersion, MlflowError> {
        let model_missing = || MlflowError::ModelNotFound {
            model: name.to_string(),
        };
        let found = match selector {
            Selector::Alias(alias) => {
                let request = self
                    .http
                    .get(self.api("registered-models/alias"))
                    .query(&[("name", name), ("alias", alias)]);
                match self.exchange::<ModelVersionReply>(request).await? {
                    Ok(reply) => reply.model_version,
                    // MLflow 3 answers 404 for a missing model but 400 INVALID_PARAMETER_VALUE
                    // ("Registered model alias X not found.") for a missing alias.
                    Err(r) if r.status == StatusCode::NOT_FOUND => return Err(model_missing()),
                    Err(r)
                        if r.does_not_exist()
                            || (r.code == "INVALID_PARAMETER_VALUE"
                                && r.message.contains("not found")) =>
                    {
                        return Err(MlflowError::AliasNotFound {
                            model: name.to_string(),
                            alias: alias.clone(),
                        })
                    }
                    Err(r) => return Err(r.into_error("registered-models/alias")),
                }
            }
            Selector::Stage(stage) => {
                let request = self
                    .http
                    .post(self.api("registered-models/get-latest-versions"))
                    .json(&serde_json::json!({ "name": name, "stages": [stage] }));
                match self.exchange::<LatestVersionsReply>(request).await? {
                    Ok(reply) => reply
                        .model_versions
                        .into_iter()
                        .max_by_key(|v| v.version.parse::<u64>().unwrap_or(0))
                        .ok_or_else(|| MlflowError::StageEmpty {
                            model: name.to_string(),
                            stage: stage.clone(),
                        })?,
                    Err(r) if r.does_not_exist() => return Err(model_missing()),
                    Err(r) => return Err(r.into_error("registered-models/get-latest-versions")),
                }
            }
        };
        if let Some(status) = found.status.as_deref() {
            if status != "READY" {
                return Err(MlflowError::NotReady {
                    model: name.to_string(),
                    version: found.version,
                    status: status.to_string(),
                });
            }
        }
        let request = self
            .http
            .get(self.api("model-versions/get-download-uri"))
            .query(&[("name", name), ("version", found.version.as_str())]);
        let download_uri = match self.exchange::<DownloadUriReply>(request).await? {
            Ok(reply) => reply.artifact_uri,
            Err(r) if r.does_not_exist() => {
                return Err(MlflowError::VersionNotFound {
                    model: name.to_string(),
                    version: found.version,
                    message: r.message,
                })
            }
            Err(r) => return Err(r.into_error("model-versions/get-download-uri")),
        };
        Ok(ResolvedVersion {
            name: name.to_string(),
            version: found.version,
            download_uri,
            source: non_empty(found.source),
            run_id: non_empty(found.run_id),
        })
    }

    async fn fetch_graph_unguarded(
        &self,
        version: &ResolvedVersion,
    ) -> Result<Vec<u8>, MlflowError> {
        let text = self
            .artifact(version, "MLmodel", MAX_METADATA_BYTES)
            .await?;
        let text = String::from_utf8(text).map_err(|_| MlflowError::BadResponse {
            what: "the MLmodel file",
            detail: "it is not UTF-8 text".to_string(),
        })?;
        let mlmodel = mlmodel::parse(&text, &version.name)?;
        self.artifact(version, &mlmodel.onnx_data, self.limits.max_bytes)
            .await
    }

    /// The file `file` of `version`'s artifacts, up to `max_bytes`.
    async fn artifact(
        &self,
        version: &ResolvedVersion,
        file: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, MlflowError> {
        let model = version.name.as_str();
        match artifacts::locate(&version.download_uri, file, &self.tracking_uri, model)? {
            ArtifactLocation::File(path) => download::file(&path, max_bytes).await.map_err(|e| {
                e.into_mlflow(model, file, path.display().to_string(), max_bytes, true)
            }),
            ArtifactLocation::Http {
                url,
                send_credentials,
            } => {
                let mut request = self.http.get(&url);
                if send_credentials {
                    request = self.credentials.apply(request);
                }
                let response = request.send().await.map_err(|e| send_error(&url, e))?;
                let status = response.status();
                if !status.is_success() {
                    let refusal = refusal(response).await;
                    return Err(if refusal.does_not_exist() {
                        MlflowError::ArtifactNotFound {
                            model: model.to_string(),
                            path: format!("{}/{file}", version.download_uri),
                        }
                    } else {
                        refusal.into_error("an artifact download")
                    });
                }
                download::body(response, max_bytes)
                    .await
                    .map_err(|e| e.into_mlflow(model, file, display_url(&url), max_bytes, false))
            }
        }
    }
}

/// Reads what an error answer says, briefly: MLflow's JSON error, or the start of the text.
async fn refusal(response: reqwest::Response) -> Refusal {
    let status = response.status();
    let body = download::body(response, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
        error_code: String::new(),
        message: String::from_utf8_lossy(&body).trim().to_string(),
    });
    Refusal {
        status,
        code: parsed.error_code,
        message: parsed
            .message
            .chars()
            .take(MAX_ERROR_MESSAGE_CHARS)
            .collect(),
    }
}
