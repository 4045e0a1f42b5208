//! Hiding secrets in values shown to operators (config output, logs, error messages).

use super::Config;

impl Config {
    /// The configuration as shown to operators: every secret replaced by `***`.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.database.url = url_secrets(&shown.database.url);
        // Each seed node of a Cluster's list carries its own password.
        shown.redis.url = shown.redis.url.as_deref().map(|location| {
            super::redis_url::nodes(location)
                .into_iter()
                .map(url_secrets)
                .collect::<Vec<_>>()
                .join(",")
        });
        shown.auth.service_url = shown.auth.service_url.as_deref().map(url_secrets);
        shown.auth.cache_secret = shown.auth.cache_secret.as_ref().map(|_| "***".into());
        // The whole URL: Slack-style webhooks carry their token in the path.
        shown.alerts.webhook_url = shown.alerts.webhook_url.as_ref().map(|_| "***".into());
        shown
    }
}

/// Query parameters that carry a secret: libpq and sqlx take `password` (and `sslpassword`
/// for the client key) from the query as well as from the userinfo; the rest are the usual
/// spellings of tokens in connection URLs.
const SECRET_PARAMETERS: &[&str] = &[
    "password",
    "sslpassword",
    "passwd",
    "pass",
    "passfile",
    "secret",
    "token",
    "access_token",
    "auth_token",
    "api_key",
    "apikey",
];

fn is_secret_parameter(name: &str) -> bool {
    SECRET_PARAMETERS
        .iter()
        .any(|secret| name.eq_ignore_ascii_case(secret))
}

/// Replaces the password of a URL, and the value of every secret query parameter (such as
/// `?password=`), with `***`. Anything that does not parse as a URL is returned unchanged: it
/// then holds no userinfo.
pub fn url_secrets(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_string();
    };
    if url.password().is_some() {
        // set_password only fails for URLs that cannot have credentials, which have none to hide.
        let _ = url.set_password(Some("***"));
    }
    if url
        .query_pairs()
        .any(|(name, _)| is_secret_parameter(&name))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let shown = if is_secret_parameter(&name) {
                    "***".to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), shown)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// The password a connection URL carries, in its userinfo or as `?password=`: what must be
/// scrubbed from anything a server says back about a failed login.
pub fn url_password(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    if let Some(password) = url.password() {
        return Some(password.to_string());
    }
    url.query_pairs()
        .find(|(name, _)| name.eq_ignore_ascii_case("password"))
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::{url_password, url_secrets};
    use crate::config::Config;

    #[test]
    fn password_is_replaced() {
        assert_eq!(
            url_secrets("redis://:s3cret@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            url_secrets("postgres://app:pw@db:5432/main"),
            "postgres://app:***@db:5432/main"
        );
    }

    #[test]
    fn every_seed_node_password_is_replaced() {
        let mut config = Config::default();
        config.redis.url = Some("redis://:s3cret@a:7000/0,redis://:s3cret@b:7001/0".into());
        assert_eq!(
            config.redacted().redis.url.as_deref(),
            Some("redis://:***@a:7000/0,redis://:***@b:7001/0")
        );
    }

    #[test]
    fn secret_query_parameters_are_replaced() {
        let shown = url_secrets(
            "postgres://app@db:5432/main?sslmode=require&password=s3cret&sslpassword=k3y&PassFile=/p",
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("k3y"),
            "{shown}"
        );
        assert!(!shown.contains("/p"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        assert_eq!(
            url_password("postgres://app@db/main?password=s3cret").as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            url_password("postgres://app:pw@db/main").as_deref(),
            Some("pw")
        );
        assert_eq!(url_password("postgres://app@db/main"), None);
    }

    #[test]
    fn url_without_password_is_unchanged() {
        assert_eq!(
            url_secrets("postgres://app@db:5432/main"),
            "postgres://app@db:5432/main"
        );
        assert_eq!(
            url_secrets("sqlite://data/modelgate.db"),
            "sqlite://data/modelgate.db"
        );
    }

    #[test]
    fn redacted_hides_passwords_only() {
        let mut config = Config::default();
        config.database.url = "postgres://app:pw@db/main".into();
        config.redis.url = Some("redis://:tok@cache:6379/0".into());
        config.auth.cache_secret = Some("a-long-shared-signing-secret-0123456789".into());
        let shown = config.redacted();
        assert_eq!(shown.auth.cache_secret.as_deref(), Some("***"));
        assert_eq!(shown.database.url, "postgres://app:***@db/main");
        assert_eq!(
            shown.redis.url.as_deref(),
            Some("redis://:***@cache:6379/0")
        );
        assert_eq!(config.database.url, "postgres://app:pw@db/main");
    }
}
