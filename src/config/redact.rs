//! Hiding secrets in values shown to operators (config output, logs, error messages).

use super::Config;

impl Config {
    /// The configuration as shown to operators: every secret replaced by `***`.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.database.url = url_secrets(&shown.database.url);
        shown.redis.url = shown.redis.url.as_deref().map(url_secrets);
        shown.auth.service_url = shown.auth.service_url.as_deref().map(url_secrets);
        // The whole URL: Slack-style webhooks carry their token in the path.
        shown.alerts.webhook_url = shown.alerts.webhook_url.as_ref().map(|_| "***".into());
        shown
    }
}

/// Replaces the password (and a token-style username with no password) of a URL with `***`.
/// Anything that does not parse as a URL is returned unchanged: it then holds no userinfo.
pub fn url_secrets(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_string();
    };
    if url.password().is_some() {
        // set_password only fails for URLs that cannot have credentials, which have none to hide.
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::url_secrets;
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
        let shown = config.redacted();
        assert_eq!(shown.database.url, "postgres://app:***@db/main");
        assert_eq!(
            shown.redis.url.as_deref(),
            Some("redis://:***@cache:6379/0")
        );
        assert_eq!(config.database.url, "postgres://app:pw@db/main");
    }
}
