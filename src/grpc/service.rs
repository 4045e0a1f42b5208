//! `inference.GRPCInferenceService`: the protocol's six calls over the same admission and
//! scoring as REST (`http::authn`, `http::ratelimit`, `http::scoring`), each under the request
//! deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ConnectInfo;
use tonic::{Request, Response, Status};

use super::proto::grpc_inference_service_server::GrpcInferenceService;
use super::proto::model_metadata_response::TensorMetadata;
use super::proto::*;
use super::{status, tensors};
use crate::auth::{allows, extract, AuthError, Principal, Scope};
use crate::events::Protocol;
use crate::http::access_log::AccessPolicy;
use crate::http::problem::ApiError;
use crate::http::v2::{self as rest, server_metadata};
use crate::http::{authn, health, ratelimit, scoring, AppState};
use crate::resilience::deadline;
use crate::telemetry::ACCESS_TARGET;
use crate::v2::{mapping, TensorSpec};

pub struct Inference {
    state: AppState,
    access: AccessPolicy,
}

impl Inference {
    pub fn new(state: AppState) -> Inference {
        let access = AccessPolicy::new(&state.config.log);
        Inference { state, access }
    }

    /// The caller's key, checked as REST checks it (throttle of failed keys included), with
    /// scope `predict` and, when `model` is named, the right to use it.
    async fn admit<T>(
        &self,
        request: &Request<T>,
        model: Option<&str>,
    ) -> Result<Arc<Principal>, ApiError> {
        let state = &self.state;
        let headers: &axum::http::HeaderMap = request.metadata().as_ref();
        // As REST names the client: behind a trusted proxy, the address it forwards for.
        let client_ip = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| state.trusted_proxies.client(info.0.ip(), headers));
        let key = extract::api_key(headers, None, false);
        let principal = authn::principal(state, key, client_ip).await?;
        if !allows(&principal.scopes, Scope::Predict) {
            return Err(AuthError::InsufficientScope {
                needed: Scope::Predict,
            }
            .into());
        }
        if let Some(model) = model.filter(|m| !principal.may_use(m)) {
            return Err(AuthError::ModelNotAllowed {
                model_id: model.to_string(),
            }
            .into());
        }
        Ok(principal)
    }

    async fn infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<ModelInferResponse, ApiError> {
        let started = Instant::now();
        let state = &self.state;
        let name = request.get_ref().model_name.clone();
        let principal = self.admit(&request, Some(&name)).await?;
        if let Some(decision) = ratelimit::decide(state, &principal).await {
            if !decision.allowed {
                return Err(ApiError::rate_limited(decision.retry_after));
            }
        }
        let request = request.into_inner();
        let model = rest::resolve(state, &name, version(&request.model_version))?;
        let raw = !request.raw_input_contents.is_empty();
        let inputs = tensors::inputs(request.inputs, request.raw_input_contents)?;
        let requested: Vec<&str> = request.outputs.iter().map(|o| o.name.as_str()).collect();
        let (rows, selected) = rest::prepare(&model, &inputs, &requested)?;
        let scored = scoring::score(
            state,
            &model,
            &principal,
            serde_json::Value::Array(rows),
            Protocol::V2Grpc,
            started,
        )
        .await?;
        let outputs = mapping::tensors(&selected, &rest::rows_of(scored.predictions));
        let (outputs, raw_output_contents) = tensors::outputs(outputs, raw);
        let mut parameters = std::collections::HashMap::new();
        if let Some(id) = scored.inference_log_id {
            parameters.insert(
                "inference_log_id".to_string(),
                tensors::string_parameter(id.to_string()),
            );
        }
        if let Some(credits) = scored.credits_remaining {
            parameters.insert(
                "credits_remaining".to_string(),
                tensors::int_parameter(credits),
            );
        }
        Ok(ModelInferResponse {
            model_name: model.id().to_string(),
            model_version: model.version().version.clone(),
            id: request.id,
            parameters,
            outputs,
            raw_output_contents,
        })
    }

    /// Runs `work` under the request deadline, counts and (as `log.access` says) logs it,
    /// and answers its error as a gRPC status.
    async fn answer<T>(
        &self,
        rpc: &'static str,
        work: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let answered = deadline::with_budget(self.state.config.http.request_deadline, work).await;
        let latency = started.elapsed();
        let (status, outcome) = match &answered {
            Ok(_) => (axum::http::StatusCode::OK, "ok"),
            Err(error) => (error.v2_status(), error.code.as_str()),
        };
        metrics::counter!(crate::metrics::GRPC_REQUESTS, "rpc" => rpc, "outcome" => outcome)
            .increment(1);
        if self.access.wants(status, latency) {
            tracing::info!(
                target: ACCESS_TARGET,
                rpc,
                outcome,
                // The HTTP status REST would have answered, for one filter over both.
                status = status.as_u16(),
                latency_ms = latency.as_micros() as f64 / 1000.0,
                "grpc"
            );
        }
        answered
            .map(Response::new)
            .map_err(|error| status::status(&error))
    }
}

/// The protocol's empty version: the one serving now.
fn version(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn tensor_metadata(specs: Vec<TensorSpec>) -> Vec<TensorMetadata> {
    specs
        .into_iter()
        .map(|spec| TensorMetadata {
            name: spec.name,
            datatype: spec.datatype.as_str().to_string(),
            shape: spec.shape.to_vec(),
        })
        .collect()
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = health::not_ready(&self.state).is_none();
        Ok(Response::new(ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        self.answer("ModelReady", async {
            let name = &request.get_ref().name;
            self.admit(&request, Some(name)).await?;
            let found = rest::resolve(&self.state, name, version(&request.get_ref().version));
            match found {
                Ok(_) => Ok(ModelReadyResponse { ready: true }),
                // Known but with no version that can answer: not ready, which is the answer.
                Err(error) if error.status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
                    Ok(ModelReadyResponse { ready: false })
                }
                Err(error) => Err(error),
            }
        })
        .await
    }

    async fn server_metadata(
        &self,
        request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.answer("ServerMetadata", async {
            self.admit(&request, None).await?;
            let metadata = server_metadata();
            Ok(ServerMetadataResponse {
                name: metadata.name.to_string(),
                version: metadata.version.to_string(),
                extensions: metadata.extensions.iter().map(|e| e.to_string()).collect(),
            })
        })
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.answer("ModelMetadata", async {
            let name = &request.get_ref().name;
            self.admit(&request, Some(name)).await?;
            let metadata =
                rest::model_metadata(&self.state, name, version(&request.get_ref().version))?;
            Ok(ModelMetadataResponse {
                name: metadata.name,
                versions: metadata.versions,
                platform: metadata.platform.to_string(),
                inputs: tensor_metadata(metadata.inputs),
                outputs: tensor_metadata(metadata.outputs),
            })
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        self.answer("ModelInfer", self.infer(request)).await
    }
}
