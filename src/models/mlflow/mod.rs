//! Graphs from an MLflow Model Registry.
//!
//! A manifest may name a registered model and an alias (or, for older registries, a stage)
//! instead of a local file. [`MlflowClient::resolve`] asks the registry which version that
//! selects and where its artifacts are; [`MlflowClient::fetch_graph`] reads the version's
//! `MLmodel` to find the ONNX file its onnx flavor names and downloads it, size-capped. The
//! catalog decides when to poll and whether a new version may serve; this module only talks
//! to the registry.
//!
//! The registry is an optional dependency in the sense of DESIGN.md: every call goes through
//! its [`crate::resilience::Dependency`], and only outages (unreachable, 5xx, refused
//! credentials, nonsense) count against its breaker. A missing alias is a configuration
//! problem of one model, reported as such, not a reason to mark the registry down.
//!
//! Only the REST API is used (`/api/2.0/mlflow/…` and the artifact proxy
//! `/api/2.0/mlflow-artifacts/…`), so no Python and no cloud SDK is needed at run time;
//! artifacts in cloud stores must be proxied by the tracking server (`--serve-artifacts`).

mod artifacts;
mod client;
mod credentials;
mod download;
mod error;
mod mlmodel;
mod source;

pub use client::{DownloadLimits, MlflowClient, ResolvedVersion};
pub use credentials::Credentials;
pub(crate) use error::display_url;
pub use error::MlflowError;
pub use source::{
    MlflowSource, Selector, SourceError, ValidSource, DEFAULT_POLL_INTERVAL, MIN_POLL_INTERVAL,
};
