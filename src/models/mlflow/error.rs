//! What can go wrong between modelgate and an MLflow registry, worded for the operator who
//! has to fix it. No message carries a credential: URLs are shown without user info or query.

/// Why a registry call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("cannot connect to the MLflow registry at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the MLflow registry at {url} failed mid-request: {reason}")]
    Transport { url: String, reason: String },
    #[error(
        "the registry refused the credentials (HTTP {status}): set MLFLOW_TRACKING_TOKEN or \
         MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
    )]
    Unauthorized { status: u16 },
    #[error("registered model {model:?} does not exist in the registry")]
    ModelNotFound { model: String },
    #[error("registered model {model:?} has no alias {alias:?}")]
    AliasNotFound { model: String, alias: String },
    #[error("registered model {model:?} has no version in stage {stage:?}")]
    StageEmpty { model: String, stage: String },
    #[error("version {version} of registered model {model:?} not found: {message}")]
    VersionNotFound {
        model: String,
        version: String,
        message: String,
    },
    #[error("version {version} of registered model {model:?} is {status}, not READY")]
    NotReady {
        model: String,
        version: String,
        status: String,
    },
    #[error("artifact {path} of {model:?} not found in the registry's artifact store")]
    ArtifactNotFound { model: String, path: String },
    #[error("the registry answered {what} with HTTP {status}: {message}")]
    Status {
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("the registry's answer to {what} is not what MLflow sends: {detail}")]
    BadResponse { what: &'static str, detail: String },
    #[error(
        "{model:?} keeps its artifacts at a {scheme}: URI, which modelgate cannot download \
         (it reads mlflow-artifacts:, http(s): and file: artifacts); let the tracking server \
         proxy them (mlflow server --serve-artifacts)"
    )]
    UnsupportedScheme { scheme: String, model: String },
    #[error("{what} of {model:?} is larger than the {max_bytes}-byte download limit")]
    TooLarge {
        model: String,
        what: String,
        max_bytes: u64,
    },
    #[error(
        "the MLmodel of {model:?} has no onnx flavor (flavors: {flavors}); log the model with \
         mlflow.onnx.log_model"
    )]
    NoOnnxFlavor { model: String, flavors: String },
    #[error("cannot read {path}: {reason}")]
    LocalFile { path: String, reason: String },
    #[error("cannot set up the MLflow client: {reason}")]
    Setup { reason: String },
}

impl MlflowError {
    /// Whether the registry itself is failing (unreachable, erroring, refusing us, answering
    /// nonsense), as opposed to answering that what was asked for is missing or unusable.
    /// Only outages count against the registry's circuit breaker: a mistyped alias must not
    /// mark the registry down for every other model.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            MlflowError::Connect { .. }
                | MlflowError::Transport { .. }
                | MlflowError::Unauthorized { .. }
                | MlflowError::Status { .. }
                | MlflowError::BadResponse { .. }
        )
    }
}

/// `url` as it may appear in a message: scheme, host, port and path only, since user info and
/// query strings are where credentials hide.
pub(crate) fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_string(),
    }
}

/// The causes of a reqwest error, without the URL it carries (which may hold user info).
pub(crate) fn transport_reason(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        reason.push_str(": ");
        reason.push_str(&inner.to_string());
        cause = inner.source();
    }
    reason
}

/// Maps a failed send to a connection or a mid-request failure.
pub(crate) fn send_error(url: &str, error: reqwest::Error) -> MlflowError {
    let url = display_url(url);
    if error.is_connect() {
        MlflowError::Connect {
            url,
            reason: transport_reason(error),
        }
    } else {
        MlflowError::Transport {
            url,
            reason: transport_reason(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_lose_user_info_and_query() {
        assert_eq!(
            display_url("https://alice:s3cret@mlflow.example:8443/base/?token=abc#x"),
            "https://mlflow.example:8443/base/"
        );
        assert_eq!(display_url("not a url"), "<unparseable URL>");
    }

    #[test]
    fn only_registry_failures_are_outages() {
        assert!(MlflowError::Unauthorized { status: 401 }.is_outage());
        assert!(!MlflowError::AliasNotFound {
            model: "m".into(),
            alias: "a".into()
        }
        .is_outage());
        assert!(!MlflowError::UnsupportedScheme {
            scheme: "s3".into(),
            model: "m".into()
        }
        .is_outage());
    }

    #[test]
    fn messages_name_what_to_fix() {
        let alias = MlflowError::AliasNotFound {
            model: "leads".into(),
            alias: "champion".into(),
        };
        assert_eq!(
            alias.to_string(),
            "registered model \"leads\" has no alias \"champion\""
        );
        let scheme = MlflowError::UnsupportedScheme {
            scheme: "s3".into(),
            model: "leads".into(),
        };
        assert!(scheme.to_string().contains("s3:"));
        assert!(scheme.to_string().contains("\"leads\""));
        assert!(MlflowError::Unauthorized { status: 401 }
            .to_string()
            .contains("MLFLOW_TRACKING_TOKEN"));
    }
}
