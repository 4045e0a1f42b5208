//! How modelgate authenticates to the registry: the environment variables MLflow's own
//! clients read, so one deployment secret serves both.

use std::fmt;

/// Credentials for the tracking server. `Debug` never shows them.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
}

impl Credentials {
    /// `MLFLOW_TRACKING_TOKEN` (bearer) wins over `MLFLOW_TRACKING_USERNAME` and
    /// `MLFLOW_TRACKING_PASSWORD` (basic), as in MLflow's Python client.
    pub fn from_env() -> Credentials {
        Credentials::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Credentials::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Credentials {
        let set = |name: &str| lookup(name).filter(|value| !value.is_empty());
        if let Some(token) = set("MLFLOW_TRACKING_TOKEN") {
            return Credentials::Bearer(token);
        }
        match (
            set("MLFLOW_TRACKING_USERNAME"),
            set("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(username), password) => Credentials::Basic {
                username,
                password: password.unwrap_or_default(),
            },
            _ => Credentials::None,
        }
    }

    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The username is not secret and helps tell which account is configured.
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::Bearer(_) => f.write_str("Credentials::Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Credentials::Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Credentials {
        Credentials::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn a_token_wins_over_a_username() {
        let credentials = from(&[
            ("MLFLOW_TRACKING_TOKEN", "tok"),
            ("MLFLOW_TRACKING_USERNAME", "alice"),
            ("MLFLOW_TRACKING_PASSWORD", "pw"),
        ]);
        assert!(matches!(credentials, Credentials::Bearer(t) if t == "tok"));
    }

    #[test]
    fn username_and_password_make_basic_and_empty_values_count_as_unset() {
        let credentials = from(&[
            ("MLFLOW_TRACKING_TOKEN", ""),
            ("MLFLOW_TRACKING_USERNAME", "alice"),
            ("MLFLOW_TRACKING_PASSWORD", "pw"),
        ]);
        assert!(matches!(
            credentials,
            Credentials::Basic { ref username, ref password } if username == "alice" && password == "pw"
        ));
        assert!(matches!(from(&[]), Credentials::None));
        assert!(matches!(
            from(&[("MLFLOW_TRACKING_PASSWORD", "pw")]),
            Credentials::None
        ));
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let bearer = format!("{:?}", Credentials::Bearer("s3cret-token".into()));
        let basic = format!(
            "{:?}",
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret-pw".into()
            }
        );
        assert!(!bearer.contains("s3cret"), "{bearer}");
        assert!(!basic.contains("s3cret"), "{basic}");
        assert!(basic.contains("alice"));
    }
}
