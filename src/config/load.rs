//! Loading: defaults, overlaid by an optional TOML file, overlaid by environment variables,
//! then checked (`validate.rs`).

use std::collections::HashMap;
use std::path::Path;

use super::{env, Config, ConfigError};

impl Config {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(file, &vars)
    }

    /// Like [`Config::load`] with an explicit environment, so tests need not mutate the process.
    pub fn load_from(
        file: Option<&Path>,
        vars: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let sources = env::overlay(&mut tree, vars)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|err| {
                let path = err.path().to_string();
                let key = sources.describe(&path);
                // The TOML error repeats the path on a second line; one line is enough.
                let message = err.into_inner().to_string();
                let first = message.lines().next().unwrap_or_default().to_string();
                ConfigError::invalid(key, first)
            })?;
        config.redis.url = env::redis_url(config.redis.url.take(), vars)
            .map_err(|e| ConfigError::invalid(sources.describe("redis.url"), e.to_string()))?;
        config.validate(&sources)?;
        Ok(config)
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let first = e.message().lines().next().unwrap_or_default();
        ConfigError::Syntax {
            path: path.to_path_buf(),
            message: match line {
                Some(line) => format!("{first} (line {line})"),
                None => first.to_string(),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::AccessLog;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_documented_values() {
        let config = Config::load_from(None, &HashMap::new()).expect("defaults load");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database.url, "sqlite://data/modelgate.db");
        assert_eq!(config.models_dir, PathBuf::from("models"));
        assert_eq!(config.redis.url, None);
        assert_eq!(config.auth.service_id, "platform");
        assert_eq!(config.auth.cache_ttl, Duration::from_secs(30));
        assert_eq!(config.auth.negative_ttl, Duration::from_secs(5));
        assert_eq!(config.http.body_limit_bytes, 1024 * 1024);
        assert!(config.status.enabled);
        assert!(!config.status.require_admin);
        assert_eq!(config.status.refresh, Duration::from_secs(2));
    }

    /// The example in docs/configuration.md is a file operators copy: it must load as it is.
    #[test]
    fn the_documented_example_file_loads() {
        let docs = include_str!("../../docs/configuration.md");
        let example = docs
            .split("## Example file")
            .nth(1)
            .and_then(|rest| rest.split("```toml\n").nth(1))
            .and_then(|rest| rest.split("```").next())
            .expect("docs/configuration.md has an example file");
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("modelgate.toml");
        std::fs::write(&path, example).expect("write");
        let config = Config::load_from(Some(&path), &HashMap::new()).expect("the example loads");
        assert_eq!(config.server.trusted_proxies, ["10.0.0.0/8"]);
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list_of_exact_origins() {
        let config = Config::load_from(
            None,
            &env(&[(
                "MODELGATE_HTTP_CORS_ALLOWED_ORIGINS",
                " https://app.example.com, http://localhost:3000 ,",
            )]),
        )
        .expect("loads");
        assert_eq!(
            config.http.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(Config::default().http.cors_allowed_origins.is_empty());
        let any = Config::load_from(None, &env(&[("MODELGATE_HTTP_CORS_ALLOWED_ORIGINS", "*")]))
            .expect("loads");
        assert_eq!(any.http.cors_allowed_origins, ["*"]);
        for bad in [
            "https://app.example.com/",
            "app.example.com",
            "https://app.example.com/path",
            "ftp://files.example.com",
            "https://APP.example.com",
        ] {
            let err =
                Config::load_from(None, &env(&[("MODELGATE_HTTP_CORS_ALLOWED_ORIGINS", bad)]))
                    .expect_err(bad)
                    .to_string();
            assert!(err.contains("http.cors_allowed_origins"), "{bad}: {err}");
        }
    }

    #[test]
    fn status_settings_come_from_the_environment_and_are_checked() {
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_STATUS_ENABLED", "false"),
                ("MODELGATE_STATUS_REQUIRE_ADMIN", "yes"),
                ("MODELGATE_STATUS_REFRESH", "5s"),
            ]),
        )
        .expect("loads");
        assert!(!config.status.enabled);
        assert!(config.status.require_admin);
        assert_eq!(config.status.refresh, Duration::from_secs(5));
        let err = Config::load_from(None, &env(&[("MODELGATE_STATUS_REFRESH", "10ms")]))
            .expect_err("too fast");
        assert!(
            err.to_string()
                .contains("status.refresh (from MODELGATE_STATUS_REFRESH)"),
            "{err}"
        );
    }

    #[test]
    fn access_log_settings_come_from_the_environment_and_are_checked() {
        let defaults = Config::load_from(None, &HashMap::new()).expect("defaults load");
        assert_eq!(defaults.log.access, AccessLog::Errors);
        assert_eq!(defaults.log.slow_request, Duration::from_millis(500));
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_LOG_ACCESS", "all"),
                ("MODELGATE_LOG_SLOW_REQUEST", "2s"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.log.access, AccessLog::All);
        assert_eq!(config.log.slow_request, Duration::from_secs(2));
        let err = Config::load_from(None, &env(&[("MODELGATE_LOG_ACCESS", "loud")]))
            .expect_err("unknown value");
        let message = err.to_string();
        assert!(
            message.contains("log.access (from MODELGATE_LOG_ACCESS)")
                && message.contains("`all`, `errors`, `off`"),
            "{message}"
        );
        let err = Config::load_from(None, &env(&[("MODELGATE_LOG_SLOW_REQUEST", "0s")]))
            .expect_err("zero");
        assert!(err.to_string().contains("log.slow_request"), "{err}");
    }

    #[test]
    fn rate_limit_settings_come_from_the_environment_and_are_checked() {
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_RATELIMIT_LOCAL_SHARE", "0.25"),
                ("MODELGATE_RATELIMIT_DEFAULT", "100/m"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.ratelimit.local_share, 0.25);
        assert_eq!(config.ratelimit.default, "100/m".parse().ok());
        for (var, value) in [
            ("MODELGATE_RATELIMIT_LOCAL_SHARE", "0"),
            ("MODELGATE_RATELIMIT_LOCAL_SHARE", "1.5"),
            ("MODELGATE_RATELIMIT_DEFAULT", "lots"),
        ] {
            let err = Config::load_from(None, &env(&[(var, value)])).expect_err(value);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn fixed_environment_names_are_honoured() {
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_LISTEN", "0.0.0.0:9999"),
                ("MODELGATE_DATABASE_URL", "postgres://u@db/x"),
                ("MODELGATE_MODELS_DIR", "/srv/models"),
                ("MODELGATE_REDIS_URL", "cache"),
                ("MODELGATE_AUTH_SERVICE_URL", "http://auth:8000"),
                ("MODELGATE_AUTH_SERVICE_ID", "billing"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(config.database.url, "postgres://u@db/x");
        assert_eq!(config.models_dir, PathBuf::from("/srv/models"));
        assert_eq!(config.redis.url.as_deref(), Some("redis://cache:6379"));
        assert_eq!(config.auth.service_url.as_deref(), Some("http://auth:8000"));
        assert_eq!(config.auth.service_id, "billing");
    }

    #[test]
    fn models_settings_come_from_the_environment_and_are_checked() {
        let config = Config::load_from(
            None,
            &env(&[
                ("MODELGATE_MODELS_POLL_INTERVAL", "0"),
                ("MODELGATE_MODELS_CACHE_DIR", "/var/cache/modelgate"),
            ]),
        )
        .expect("loads");
        assert!(config.models.poll_interval.is_zero());
        assert_eq!(
            config.models.cache_dir,
            PathBuf::from("/var/cache/modelgate")
        );
        let err = Config::load_from(None, &env(&[("MODELGATE_MODELS_POLL_INTERVAL", "1ms")]))
            .expect_err("too fast");
        assert!(
            err.to_string()
                .contains("models.poll_interval (from MODELGATE_MODELS_POLL_INTERVAL)"),
            "{err}"
        );
    }
}
