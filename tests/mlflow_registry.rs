//! The MLflow client against a real tracking server (MLflow 3, SQLite registry, proxied
//! artifacts): versions resolved by alias and by stage, graphs downloaded byte for byte, and
//! the errors an operator sees when the alias, the model or the server is missing.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelgate::models::mlflow::{
    Credentials, DownloadLimits, MlflowClient, MlflowError, ResolvedVersion, Selector,
};
use modelgate::resilience::{BreakerConfig, BreakerState, CallError, Dependency};
use support::mlflow::MlflowServer;
use support::redis_server::free_port;

fn dependency() -> Arc<Dependency> {
    Arc::new(Dependency::new(
        "mlflow",
        Duration::from_secs(10),
        BreakerConfig {
            consecutive_failures: 2,
            cooldown: Duration::from_secs(60),
            ..BreakerConfig::default()
        },
    ))
}

fn client(url: &str) -> MlflowClient {
    MlflowClient::new(url, Credentials::None, dependency()).expect("client")
}

fn graph() -> Vec<u8> {
    std::fs::read(support::repo_path("models/21/model.onnx")).expect("model 21")
}

fn alias(name: &str) -> Selector {
    Selector::Alias(name.to_string())
}

/// The registry's own error behind a guarded call's failure.
fn mlflow_error<T: std::fmt::Debug>(result: Result<T, CallError<MlflowError>>) -> MlflowError {
    match result {
        Err(CallError::Failed { source, .. }) => source,
        other => panic!("expected an answer from the registry, got {other:?}"),
    }
}

#[tokio::test]
async fn an_alias_resolves_to_its_version_and_follows_when_moved() {
    let server = MlflowServer::start();
    let onnx = support::repo_path("models/21/model.onnx");
    assert_eq!(server.register("leads", &onnx, Some("champion")), "1");
    let client = client(&server.url());
    client.probe().await.expect("probe");

    let first = client
        .resolve("leads", &alias("champion"))
        .await
        .expect("resolves");
    assert_eq!(first.version, "1");
    assert_eq!(first.name, "leads");
    assert!(
        first.download_uri.starts_with("mlflow-artifacts:/"),
        "{first:?}"
    );
    assert!(first.run_id.is_some(), "{first:?}");
    assert_eq!(client.fetch_graph(&first).await.expect("graph"), graph());

    assert_eq!(server.register("leads", &onnx, Some("champion")), "2");
    let second = client
        .resolve("leads", &alias("champion"))
        .await
        .expect("resolves");
    assert_eq!(second.version, "2");
    assert_ne!(second.download_uri, first.download_uri);
    assert_eq!(client.fetch_graph(&second).await.expect("graph"), graph());

    let missing = mlflow_error(client.resolve("leads", &alias("challenger")).await);
    assert!(
        matches!(&missing, MlflowError::AliasNotFound { model, alias } if model == "leads" && alias == "challenger"),
        "{missing:?}"
    );
    assert_eq!(
        missing.to_string(),
        "registered model \"leads\" has no alias \"challenger\""
    );
    let no_model = mlflow_error(client.resolve("nobody", &alias("champion")).await);
    assert!(
        matches!(&no_model, MlflowError::ModelNotFound { model } if model == "nobody"),
        "{no_model:?}"
    );
    // A configuration mistake in one model is not a registry outage.
    assert_eq!(client.dependency().status().breaker, BreakerState::Closed);
}

#[tokio::test]
async fn a_stage_resolves_to_its_latest_version() {
    let server = MlflowServer::start();
    let onnx = support::repo_path("models/21/model.onnx");
    assert_eq!(
        server.register_in_stage("scoring", &onnx, "Production"),
        "1"
    );
    assert_eq!(server.register_in_stage("scoring", &onnx, "Staging"), "2");
    let client = client(&server.url());

    let production = client
        .resolve("scoring", &Selector::Stage("Production".into()))
        .await
        .expect("resolves");
    assert_eq!(production.version, "1");
    assert_eq!(
        client.fetch_graph(&production).await.expect("graph"),
        graph()
    );
    let staging = client
        .resolve("scoring", &Selector::Stage("Staging".into()))
        .await
        .expect("resolves");
    assert_eq!(staging.version, "2");

    let archived = mlflow_error(
        client
            .resolve("scoring", &Selector::Stage("Archived".into()))
            .await,
    );
    assert!(
        matches!(&archived, MlflowError::StageEmpty { stage, .. } if stage == "Archived"),
        "{archived:?}"
    );

    // The download limit holds even for a graph the registry serves without complaint.
    let small = client.with_download_limits(DownloadLimits {
        timeout: Duration::from_secs(30),
        max_bytes: 1000,
    });
    let too_large = mlflow_error(small.fetch_graph(&production).await);
    assert!(
        matches!(
            &too_large,
            MlflowError::TooLarge {
                max_bytes: 1000,
                ..
            }
        ),
        "{too_large:?}"
    );
}

#[tokio::test]
async fn a_refused_port_is_a_quick_connection_error_and_opens_the_breaker() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let client = client(&url);
    let started = Instant::now();
    let error = mlflow_error(client.resolve("leads", &alias("champion")).await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, MlflowError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(&url), "{error}");

    assert!(client.probe().await.is_err());
    assert_eq!(client.dependency().status().breaker, BreakerState::Open);
    let version = ResolvedVersion {
        name: "leads".into(),
        version: "1".into(),
        download_uri: "mlflow-artifacts:/0/models/m-1/artifacts".into(),
        source: None,
        run_id: None,
    };
    assert!(matches!(
        client.fetch_graph(&version).await,
        Err(CallError::Open { .. })
    ));
}
