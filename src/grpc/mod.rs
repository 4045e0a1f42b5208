//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) and the standard
//! gRPC health service, served on `grpc_listen` by the same accept loop as REST (its
//! timeouts, connection cap and graceful shutdown).

mod service;
pub mod status;
mod tensors;

use std::time::Duration;

use tonic_health::ServingStatus;

use crate::http::{health, AppState};

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

/// The service name `grpc.health.v1.Health` answers for, besides the server as a whole ("").
const SERVICE_NAME: &str = "inference.GRPCInferenceService";

/// How often the health service's answer follows the instance's readiness.
const HEALTH_REFRESH: Duration = Duration::from_secs(1);

/// Both services as one router, for `server::Listener`, and the task that keeps the health
/// service's answer that of `/health/ready` (for the caller to run while it serves).
pub fn router(state: &AppState) -> (axum::Router, impl std::future::Future<Output = ()>) {
    let body_limit = usize::try_from(state.config.http.body_limit_bytes).unwrap_or(usize::MAX);
    let inference = proto::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        service::Inference::new(state.clone()),
    )
    // The same bound as a REST body: a message is decoded whole before anything checks it.
    .max_decoding_message_size(body_limit);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let state = state.clone();
    let follow = async move {
        let mut last = None;
        loop {
            let status = match health::not_ready(&state) {
                None => ServingStatus::Serving,
                Some(_) => ServingStatus::NotServing,
            };
            if last != Some(status) {
                reporter.set_service_status("", status).await;
                reporter.set_service_status(SERVICE_NAME, status).await;
                last = Some(status);
            }
            tokio::time::sleep(HEALTH_REFRESH).await;
        }
    };
    let router = tonic::service::Routes::new(inference)
        .add_service(health_service)
        .into_axum_router();
    (router, follow)
}
