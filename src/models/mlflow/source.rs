//! Where a model's graph comes from when it lives in an MLflow registry: the `[source]` table
//! of a manifest, checked into a value the client can use without further questions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::display_url;

/// How often the registry is asked whether the alias or stage moved, when the source does not
/// say: quick enough for a promotion to show within a minute, rare enough to cost nothing.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Below this, polling would be a load on the registry rather than a way to notice changes.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The stages MLflow knows (it compares them case-insensitively).
const STAGES: &[&str] = &["None", "Staging", "Production", "Archived"];

/// Which version of a registered model to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The version an alias points at (MLflow 2.3+; the way MLflow 3 recommends).
    Alias(String),
    /// The latest version in a stage (deprecated in MLflow 3, still served).
    Stage(String),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Alias(alias) => write!(f, "alias {alias:?}"),
            Selector::Stage(stage) => write!(f, "stage {stage:?}"),
        }
    }
}

/// A registry source as written in configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowSource {
    /// `"mlflow"` when present; the table that holds this source may use it to pick the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The tracking server; `MLFLOW_TRACKING_URI` when absent, as for MLflow's own clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_uri: Option<String>,
    /// The registered model's name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub poll_interval: Option<Duration>,
}

/// A source that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSource {
    pub tracking_uri: String,
    pub name: String,
    pub selector: Selector,
    pub poll_interval: Duration,
}

/// Why a source cannot be used; each message says what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("source kind must be \"mlflow\", not {0:?}")]
    WrongKind(String),
    #[error("name must be the registered model's name, not empty")]
    EmptyName,
    #[error("registered model {name:?}: set alias or stage, not both")]
    BothSelectors { name: String },
    #[error("registered model {name:?}: set alias (e.g. alias = \"champion\") or stage")]
    NoSelector { name: String },
    #[error("registered model {name:?}: stage {stage:?} is not one of None, Staging, Production, Archived")]
    UnknownStage { name: String, stage: String },
    #[error(
        "registered model {name:?}: no tracking server; set tracking_uri or MLFLOW_TRACKING_URI"
    )]
    NoTrackingUri { name: String },
    #[error(
        "registered model {name:?}: tracking URI {uri} must be an http:// or https:// URL of an \
         MLflow tracking server"
    )]
    BadTrackingUri { name: String, uri: String },
    #[error(
        "registered model {name:?}: poll_interval must be at least {}s",
        MIN_POLL_INTERVAL.as_secs()
    )]
    PollTooShort { name: String },
}

impl MlflowSource {
    /// Checks the source, taking the tracking server from `MLFLOW_TRACKING_URI` when the
    /// source names none.
    pub fn validate(&self) -> Result<ValidSource, SourceError> {
        self.validate_with(std::env::var("MLFLOW_TRACKING_URI").ok())
    }

    /// Like [`MlflowSource::validate`], with the environment's tracking URI given.
    pub fn validate_with(
        &self,
        env_tracking_uri: Option<String>,
    ) -> Result<ValidSource, SourceError> {
        if let Some(kind) = &self.kind {
            if kind != "mlflow" {
                return Err(SourceError::WrongKind(kind.clone()));
            }
        }
        let name = self.name.trim();
        if name.is_empty() {
            return Err(SourceError::EmptyName);
        }
        let name = name.to_string();
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let selector = match (given(&self.alias), given(&self.stage)) {
            (Some(_), Some(_)) => return Err(SourceError::BothSelectors { name }),
            (None, None) => return Err(SourceError::NoSelector { name }),
            (Some(alias), None) => Selector::Alias(alias),
            (None, Some(stage)) => match STAGES.iter().find(|s| s.eq_ignore_ascii_case(&stage)) {
                Some(known) => Selector::Stage((*known).to_string()),
                None => return Err(SourceError::UnknownStage { name, stage }),
            },
        };
        let Some(uri) = given(&self.tracking_uri).or(env_tracking_uri
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string))
        else {
            return Err(SourceError::NoTrackingUri { name });
        };
        let is_http = url::Url::parse(&uri)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !is_http {
            // MLFLOW_TRACKING_URI may be a database URL with a password in it.
            let uri = if uri.contains("://") {
                display_url(&uri)
            } else {
                format!("{uri:?}")
            };
            return Err(SourceError::BadTrackingUri { name, uri });
        }
        let poll_interval = self.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL);
        if poll_interval < MIN_POLL_INTERVAL {
            return Err(SourceError::PollTooShort { name });
        }
        Ok(ValidSource {
            tracking_uri: uri.trim_end_matches('/').to_string(),
            name,
            selector,
            poll_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(toml: &str) -> MlflowSource {
        toml::from_str(toml).expect("source parses")
    }

    #[test]
    fn an_alias_source_with_defaults() {
        let valid = source("kind = \"mlflow\"\nname = \"leads\"\nalias = \"champion\"\n")
            .validate_with(Some("http://mlflow:5000/".into()))
            .expect("valid");
        assert_eq!(
            valid,
            ValidSource {
                tracking_uri: "http://mlflow:5000".into(),
                name: "leads".into(),
                selector: Selector::Alias("champion".into()),
                poll_interval: DEFAULT_POLL_INTERVAL,
            }
        );
    }

    #[test]
    fn the_source_s_tracking_uri_wins_and_stages_are_canonical() {
        let valid = source(
            "name = \"leads\"\nstage = \"production\"\ntracking_uri = \"https://r.example\"\npoll_interval = \"2m\"\n",
        )
        .validate_with(Some("http://ignored:5000".into()))
        .expect("valid");
        assert_eq!(valid.tracking_uri, "https://r.example");
        assert_eq!(valid.selector, Selector::Stage("Production".into()));
        assert_eq!(valid.poll_interval, Duration::from_secs(120));
    }

    #[test]
    fn exactly_one_selector() {
        let both = source("name = \"m\"\nalias = \"a\"\nstage = \"Staging\"\n");
        assert_eq!(
            both.validate_with(Some("http://h".into())),
            Err(SourceError::BothSelectors { name: "m".into() })
        );
        let neither = source("name = \"m\"\nalias = \"  \"\n");
        assert_eq!(
            neither.validate_with(Some("http://h".into())),
            Err(SourceError::NoSelector { name: "m".into() })
        );
        let unknown = source("name = \"m\"\nstage = \"Prod\"\n");
        assert!(matches!(
            unknown.validate_with(Some("http://h".into())),
            Err(SourceError::UnknownStage { .. })
        ));
    }

    #[test]
    fn a_tracking_uri_is_required_and_must_be_http() {
        let s = source("name = \"m\"\nalias = \"a\"\n");
        assert_eq!(
            s.validate_with(None),
            Err(SourceError::NoTrackingUri { name: "m".into() })
        );
        let err = s
            .validate_with(Some("postgresql://mlflow:pw@db/mlflow".into()))
            .expect_err("not http");
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(err.to_string().contains("http://"), "{err}");
        assert!(matches!(
            s.validate_with(Some("databricks".into())),
            Err(SourceError::BadTrackingUri { .. })
        ));
    }

    #[test]
    fn other_kinds_short_polls_and_unknown_fields_are_refused() {
        let wrong = source("kind = \"folder\"\nname = \"m\"\nalias = \"a\"\n");
        assert_eq!(
            wrong.validate_with(Some("http://h".into())),
            Err(SourceError::WrongKind("folder".into()))
        );
        let quick = source("name = \"m\"\nalias = \"a\"\npoll_interval = \"100ms\"\n");
        assert!(matches!(
            quick.validate_with(Some("http://h".into())),
            Err(SourceError::PollTooShort { .. })
        ));
        assert!(toml::from_str::<MlflowSource>("name = \"m\"\nalais = \"a\"\n").is_err());
    }
}
