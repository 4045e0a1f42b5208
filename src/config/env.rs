//! Environment variables: `MODELGATE_<SECTION>_<KEY>` for every setting, plus the fixed
//! compatibility names of the Redis location (see `redis_url`).

use std::collections::HashMap;

use super::redis_url::{self, RedisSettings, RedisUrlError};
use super::{Config, ConfigError};

/// One environment variable and the setting it overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    /// Dotted path of the setting, e.g. `auth.cache_ttl`.
    pub key: String,
}

/// Settings with no default value do not appear when the defaults are serialized,
/// so they are listed here.
const OPTIONAL_KEYS: &[&str] = &[
    "server.admin_listen",
    "redis.url",
    "redis.tls_ca_file",
    "auth.service_url",
    "auth.cache_secret",
    "alerts.webhook_url",
    "ratelimit.default",
];

/// Settings an empty value turns off (rather than leaving at their default).
const EMPTY_IS_OFF: &[&str] = &["grpc_listen"];

/// Shorter names for settings, as `(variable, key)`; the `MODELGATE_<SECTION>_<KEY>` name wins.
const ALIASES: &[(&str, &str)] = &[("MODELGATE_ADMIN_LISTEN", "server.admin_listen")];

/// Compatibility names from the system modelgate replaces; the `MODELGATE_` name wins.
const REDIS_URL_VARS: &[&str] = &["MODELGATE_REDIS_URL", "REDIS_URL"];

fn env_name(key: &str) -> String {
    format!("MODELGATE_{}", key.replace('.', "_").to_ascii_uppercase())
}

fn leaf_keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => leaf_keys(&key, inner, out),
            _ => out.push(key),
        }
    }
}

fn defaults_table() -> toml::Table {
    // Serializing plain structs of strings, numbers and durations cannot fail.
    toml::Table::try_from(Config::default()).unwrap_or_default()
}

/// Every variable that overrides a setting, in a stable order (used by docs and tests).
pub fn documented_env_vars() -> Vec<EnvVar> {
    let mut keys = Vec::new();
    leaf_keys("", &defaults_table(), &mut keys);
    keys.extend(OPTIONAL_KEYS.iter().map(|k| k.to_string()));
    keys.sort();
    keys.into_iter()
        .map(|key| EnvVar {
            name: env_name(&key),
            key,
        })
        .collect()
}

/// Which settings came from which variable, so errors name what the operator actually set.
#[derive(Debug, Default)]
pub struct Sources {
    by_key: HashMap<String, String>,
}

impl Sources {
    pub fn describe(&self, key: &str) -> String {
        match self.by_key.get(key) {
            Some(var) => format!("{key} (from {var})"),
            None => key.to_string(),
        }
    }
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn insert(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        current = next;
    }
    current.insert(last.to_string(), value);
}

/// Environment values are text; they take the type of the setting's default.
fn typed(
    var: &str,
    key: &str,
    raw: &str,
    default: Option<&toml::Value>,
) -> Result<toml::Value, ConfigError> {
    let raw = raw.trim();
    match default {
        Some(toml::Value::Integer(_)) => {
            raw.parse::<i64>().map(toml::Value::Integer).map_err(|_| {
                ConfigError::invalid(format!("{key} (from {var})"), "expected a whole number")
            })
        }
        Some(toml::Value::Float(_)) => raw
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| ConfigError::invalid(format!("{key} (from {var})"), "expected a number")),
        Some(toml::Value::Boolean(_)) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(ConfigError::invalid(
                format!("{key} (from {var})"),
                "expected true or false",
            )),
        },
        // Lists are comma-separated; an empty item (a trailing comma) is ignored.
        Some(toml::Value::Array(_)) => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        )),
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

/// Writes every set `MODELGATE_*` variable over the file's values.
pub(super) fn overlay(
    tree: &mut toml::Table,
    vars: &HashMap<String, String>,
) -> Result<Sources, ConfigError> {
    let defaults = defaults_table();
    let mut sources = Sources::default();
    for var in documented_env_vars() {
        if var.key == "redis.url" {
            continue; // resolved with its compatibility aliases in `redis_url`
        }
        // An empty value is unset, except where empty is how a setting is turned off.
        let off_when_empty = EMPTY_IS_OFF.contains(&var.key.as_str());
        let set = |name: &str| {
            vars.get(name)
                .filter(|v| off_when_empty || !v.trim().is_empty())
        };
        let alias = ALIASES
            .iter()
            .find(|(_, key)| *key == var.key)
            .map(|(name, _)| *name);
        let Some((name, raw)) = set(&var.name)
            .map(|raw| (var.name.as_str(), raw))
            .or_else(|| alias.and_then(|name| set(name).map(|raw| (name, raw))))
        else {
            continue;
        };
        let value = typed(name, &var.key, raw, lookup(&defaults, &var.key))?;
        insert(tree, &var.key, value);
        sources.by_key.insert(var.key.clone(), name.to_string());
    }
    if let Some(name) = REDIS_URL_VARS.iter().find(|n| vars.contains_key(**n)) {
        sources.by_key.insert("redis.url".into(), name.to_string());
    }
    Ok(sources)
}

/// The Redis URL from `MODELGATE_REDIS_URL`, `REDIS_URL`, the file, or `REDIS_HOST`/`REDIS_PORT`.
pub(super) fn redis_url(
    from_file: Option<String>,
    vars: &HashMap<String, String>,
) -> Result<Option<String>, RedisUrlError> {
    let get = |name: &str| vars.get(name).cloned();
    let url = REDIS_URL_VARS
        .iter()
        .filter_map(|name| get(name))
        .find(|v| !v.trim().is_empty())
        .or(from_file);
    redis_url::normalize(&RedisSettings {
        url,
        host: get("REDIS_HOST"),
        port: get("REDIS_PORT"),
        token: get("REDIS_AUTH_TOKEN"),
        tls: get("REDIS_TLS_ENABLED"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_an_environment_variable() {
        let names: Vec<String> = documented_env_vars().into_iter().map(|v| v.name).collect();
        for expected in [
            "MODELGATE_LISTEN",
            "MODELGATE_DATABASE_URL",
            "MODELGATE_MODELS_DIR",
            "MODELGATE_REDIS_URL",
            "MODELGATE_AUTH_SERVICE_URL",
            "MODELGATE_AUTH_SERVICE_ID",
            "MODELGATE_AUTH_CACHE_TTL",
            "MODELGATE_AUTH_NEGATIVE_TTL",
            "MODELGATE_SHUTDOWN_GRACE",
            "MODELGATE_DATABASE_CONNECT_TIMEOUT",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
    }

    #[test]
    fn an_alias_sets_its_setting_unless_the_full_name_is_set() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let admin = |tree: &toml::Table| lookup(tree, "server.admin_listen").cloned();
        let mut tree = toml::Table::new();
        overlay(
            &mut tree,
            &vars(&[("MODELGATE_ADMIN_LISTEN", "127.0.0.1:9090")]),
        )
        .expect("ok");
        assert_eq!(
            admin(&tree),
            Some(toml::Value::String("127.0.0.1:9090".into()))
        );
        let mut tree = toml::Table::new();
        let both = vars(&[
            ("MODELGATE_ADMIN_LISTEN", "127.0.0.1:9090"),
            ("MODELGATE_SERVER_ADMIN_LISTEN", "127.0.0.1:9191"),
        ]);
        overlay(&mut tree, &both).expect("ok");
        assert_eq!(
            admin(&tree),
            Some(toml::Value::String("127.0.0.1:9191".into()))
        );
    }

    #[test]
    fn configuration_reference_lists_every_variable() {
        let docs = include_str!("../../docs/configuration.md");
        for var in documented_env_vars() {
            assert!(
                docs.contains(&var.name),
                "docs/configuration.md lacks {}",
                var.name
            );
        }
    }
}
