//! What can be wrong with a configuration.

use std::path::PathBuf;

/// A configuration problem, rendered as one line that names the key and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration: {key}: {expected}")]
    Invalid { key: String, expected: String },
}

impl ConfigError {
    pub(super) fn invalid(key: impl Into<String>, expected: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            expected: expected.into(),
        }
    }
}
