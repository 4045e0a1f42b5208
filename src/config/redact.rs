//! Hiding secrets in values shown to operators (config output, logs, error messages).

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
}
