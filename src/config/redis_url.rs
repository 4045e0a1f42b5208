//! Redis URL normalization, compatible with the environment of the service modelgate replaces.
//!
//! That service accepted `REDIS_URL` with or without a scheme, or `REDIS_HOST`/`REDIS_PORT`,
//! plus `REDIS_AUTH_TOKEN` and `REDIS_TLS_ENABLED`; deployments still set them, so the same
//! values must produce the same connection here.
//!
//! [`target`] then reads a normalized URL into the parts a client needs; `modelgate doctor`
//! uses it, so doctor and configuration agree on what a Redis URL means.

use std::path::PathBuf;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

const DEFAULT_PORT: u16 = 6379;

/// The URL schemes that name a Redis server.
pub const SCHEMES: [&str; 3] = ["redis", "rediss", "unix"];

/// Characters that cannot appear raw in the userinfo part of a URL.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The raw, possibly absent settings a Redis location can be given by.
#[derive(Debug, Default, Clone)]
pub struct RedisSettings {
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub token: Option<String>,
    pub tls: Option<String>,
}

/// Why the settings, or a URL, do not describe a Redis location.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedisUrlError {
    #[error("expected a port number between 1 and 65535, got {0:?}")]
    BadPort(String),
    #[error("the Redis URL does not parse: {0}")]
    Unparsable(url::ParseError),
    #[error("the Redis URL's database {0:?} is not a number")]
    BadDatabase(String),
    #[error("the Redis URL has no host")]
    NoHost,
    #[error("{0}:// is not a Redis URL scheme")]
    Scheme(String),
}

fn clean(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn has_scheme(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    lower
        .split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme))
}

fn tls_enabled(settings: &RedisSettings) -> bool {
    clean(&settings.tls).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn parse_port(raw: &str) -> Result<u16, RedisUrlError> {
    match raw.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(RedisUrlError::BadPort(raw.to_string())),
    }
}

/// Splits `host` or `host:port`; a trailing `:digits` is a port, anything else is host.
fn split_host_port(value: &str) -> Result<(&str, u16), RedisUrlError> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Ok((host, parse_port(port)?))
        }
        _ => Ok((value, DEFAULT_PORT)),
    }
}

fn build(scheme: &str, token: Option<&str>, host: &str, port: u16, db_suffix: bool) -> String {
    let auth = token
        .map(|t| format!(":{}@", utf8_percent_encode(t, USERINFO)))
        .unwrap_or_default();
    let suffix = if db_suffix || token.is_some() {
        "/0"
    } else {
        ""
    };
    format!("{scheme}://{auth}{host}:{port}{suffix}")
}

/// The nodes a Redis location names: a comma-separated list of seed nodes (a Cluster's), or one
/// URL. A comma may also sit in a URL's password, so the list is taken as one only when every
/// part reads as a node of its own (a URL with a scheme, or `host[:port]`).
pub fn nodes(location: &str) -> Vec<&str> {
    let parts: Vec<&str> = location.split(',').map(str::trim).collect();
    let is_node =
        |part: &&str| has_scheme(part) || !(part.is_empty() || part.contains(['@', '/', ' ']));
    if parts.len() > 1 && parts.iter().all(is_node) {
        parts
    } else {
        vec![location.trim()]
    }
}

/// One node's URL: as given when it has a scheme, else built from `host[:port]`.
fn node_url(node: &str, scheme: &str, token: Option<&str>) -> Result<String, RedisUrlError> {
    if has_scheme(node) {
        return Ok(node.to_string());
    }
    let (host, port) = split_host_port(node)?;
    Ok(build(scheme, token, host, port, false))
}

/// Returns the normalized Redis URL, or `None` when nothing configures Redis. A
/// comma-separated list (a Cluster's seed nodes) is normalized node by node.
pub fn normalize(settings: &RedisSettings) -> Result<Option<String>, RedisUrlError> {
    let scheme = if tls_enabled(settings) {
        "rediss"
    } else {
        "redis"
    };
    let token = clean(&settings.token);
    if let Some(url) = clean(&settings.url) {
        let nodes = nodes(url)
            .into_iter()
            .map(|node| node_url(node, scheme, token))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Some(nodes.join(",")));
    }
    let Some(host) = clean(&settings.host) else {
        return Ok(None);
    };
    let port = match clean(&settings.port) {
        Some(raw) => parse_port(raw)?,
        None => DEFAULT_PORT,
    };
    Ok(Some(build(scheme, token, host, port, true)))
}

/// Where a Redis server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Tcp { host: String, port: u16, tls: bool },
    Unix(PathBuf),
}

/// The parts of a Redis URL a client needs, percent-decoded.
#[derive(Debug, Clone)]
pub struct Target {
    pub location: Location,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

/// Reads a (normalized) Redis URL.
pub fn target(url: &str) -> Result<Target, RedisUrlError> {
    let parsed = url::Url::parse(url).map_err(RedisUrlError::Unparsable)?;
    let scheme = parsed.scheme().to_ascii_lowercase();
    // unix:// carries the database in the query (`?db=N`), TCP URLs in the path (`/N`).
    let db = match scheme.as_str() {
        "unix" => parsed
            .query_pairs()
            .find(|(key, _)| key == "db")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default(),
        _ => parsed.path().trim_matches('/').to_string(),
    };
    let db = match db.as_str() {
        "" => 0,
        raw => raw
            .parse()
            .map_err(|_| RedisUrlError::BadDatabase(raw.to_string()))?,
    };
    let location = match scheme.as_str() {
        "unix" => Location::Unix(parsed.path().into()),
        "redis" | "rediss" => Location::Tcp {
            host: parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or(RedisUrlError::NoHost)?
                .to_string(),
            port: parsed.port().unwrap_or(DEFAULT_PORT),
            tls: scheme == "rediss",
        },
        other => return Err(RedisUrlError::Scheme(other.to_string())),
    };
    let decode = |raw: &str| percent_decode_str(raw).decode_utf8_lossy().into_owned();
    Ok(Target {
        location,
        user: Some(decode(parsed.username())).filter(|u| !u.is_empty()),
        password: parsed.password().map(decode),
        db,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(url: &str) -> RedisSettings {
        RedisSettings {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    fn norm(settings: RedisSettings) -> Option<String> {
        normalize(&settings).expect("valid settings")
    }

    #[test]
    fn nothing_set_means_no_redis() {
        assert_eq!(norm(RedisSettings::default()), None);
    }

    #[test]
    fn blank_values_count_as_unset() {
        let settings = RedisSettings {
            url: Some("   ".into()),
            host: Some(" ".into()),
            ..Default::default()
        };
        assert_eq!(norm(settings), None);
    }

    #[test]
    fn a_comma_in_a_password_does_not_make_a_list() {
        for one in [
            "redis://:pa,ss@cache:6379/0",
            "rediss://u:a,b@cache",
            "redis://h:1/0",
        ] {
            assert_eq!(nodes(one), vec![one]);
        }
        assert_eq!(
            nodes("redis://:p@a:1/0, b:2,rediss://c"),
            vec!["redis://:p@a:1/0", "b:2", "rediss://c"]
        );
    }

    #[test]
    fn seed_nodes_are_normalized_one_by_one() {
        let settings = RedisSettings {
            url: Some("10.0.0.1:7000, redis://10.0.0.2:7001 ,10.0.0.3".into()),
            token: Some("p@ss".into()),
            ..Default::default()
        };
        assert_eq!(
            norm(settings).as_deref(),
            Some("redis://:p%40ss@10.0.0.1:7000/0,redis://10.0.0.2:7001,redis://:p%40ss@10.0.0.3:6379/0")
        );
        assert_eq!(
            normalize(&url("a:1,b:x")),
            Err(RedisUrlError::BadPort("x".into()))
        );
    }

    #[test]
    fn url_with_scheme_is_kept_whatever_its_case() {
        for value in [
            "redis://cache:6380/2",
            "rediss://cache.example.com:6379",
            "unix:///run/redis.sock",
            "REDIS://Cache:6379",
            "Rediss://cache:1",
        ] {
            assert_eq!(norm(url(value)).as_deref(), Some(value));
        }
    }

    #[test]
    fn url_with_scheme_ignores_token_and_tls_flag() {
        let settings = RedisSettings {
            url: Some("redis://cache:6379".into()),
            token: Some("secret".into()),
            tls: Some("true".into()),
            ..Default::default()
        };
        assert_eq!(norm(settings).as_deref(), Some("redis://cache:6379"));
    }

    #[test]
    fn bare_host_gets_scheme_and_default_port() {
        assert_eq!(norm(url("cache")).as_deref(), Some("redis://cache:6379"));
    }

    #[test]
    fn host_and_port_keeps_its_port() {
        assert_eq!(
            norm(url("cache:6380")).as_deref(),
            Some("redis://cache:6380")
        );
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(
            norm(url("  cache:6380 \n")).as_deref(),
            Some("redis://cache:6380")
        );
        assert_eq!(
            norm(url(" redis://cache:1 ")).as_deref(),
            Some("redis://cache:1")
        );
    }

    #[test]
    fn tls_flag_selects_rediss_in_any_case_with_spaces() {
        for flag in ["true", "TRUE", " True ", "tRuE"] {
            let settings = RedisSettings {
                url: Some("cache".into()),
                tls: Some(flag.into()),
                ..Default::default()
            };
            assert_eq!(norm(settings).as_deref(), Some("rediss://cache:6379"));
        }
    }

    #[test]
    fn tls_flag_other_than_true_is_plaintext() {
        for flag in ["false", "1", "yes", ""] {
            let settings = RedisSettings {
                url: Some("cache".into()),
                tls: Some(flag.into()),
                ..Default::default()
            };
            assert_eq!(norm(settings).as_deref(), Some("redis://cache:6379"));
        }
    }

    #[test]
    fn token_on_bare_host_adds_auth_and_db_zero() {
        let settings = RedisSettings {
            url: Some("cache:6380".into()),
            token: Some("s3cret".into()),
            ..Default::default()
        };
        assert_eq!(
            norm(settings).as_deref(),
            Some("redis://:s3cret@cache:6380/0")
        );
    }

    #[test]
    fn token_with_reserved_characters_is_percent_encoded() {
        let settings = RedisSettings {
            url: Some("cache".into()),
            token: Some("a@b/c:d".into()),
            ..Default::default()
        };
        assert_eq!(
            norm(settings).as_deref(),
            Some("redis://:a%40b%2Fc%3Ad@cache:6379/0")
        );
    }

    #[test]
    fn host_and_port_variables_build_url_with_db_zero() {
        let settings = RedisSettings {
            host: Some("cache".into()),
            port: Some("6390".into()),
            ..Default::default()
        };
        assert_eq!(norm(settings).as_deref(), Some("redis://cache:6390/0"));
    }

    #[test]
    fn host_variable_alone_uses_default_port() {
        let settings = RedisSettings {
            host: Some(" cache ".into()),
            ..Default::default()
        };
        assert_eq!(norm(settings).as_deref(), Some("redis://cache:6379/0"));
    }

    #[test]
    fn host_port_token_and_tls_build_full_url() {
        let settings = RedisSettings {
            host: Some("cache".into()),
            port: Some("6380".into()),
            token: Some("tok".into()),
            tls: Some("true".into()),
            ..Default::default()
        };
        assert_eq!(
            norm(settings).as_deref(),
            Some("rediss://:tok@cache:6380/0")
        );
    }

    #[test]
    fn explicit_url_wins_over_host_and_port() {
        let settings = RedisSettings {
            url: Some("primary:7000".into()),
            host: Some("other".into()),
            port: Some("7001".into()),
            ..Default::default()
        };
        assert_eq!(norm(settings).as_deref(), Some("redis://primary:7000"));
    }

    #[test]
    fn port_alone_configures_nothing() {
        let settings = RedisSettings {
            port: Some("6380".into()),
            ..Default::default()
        };
        assert_eq!(norm(settings), None);
    }

    #[test]
    fn bad_port_is_an_error() {
        let settings = RedisSettings {
            host: Some("cache".into()),
            port: Some("http".into()),
            ..Default::default()
        };
        assert_eq!(
            normalize(&settings),
            Err(RedisUrlError::BadPort("http".into()))
        );
        assert_eq!(
            normalize(&url("cache:99999")),
            Err(RedisUrlError::BadPort("99999".into()))
        );
    }

    #[test]
    fn url_parts_are_decoded() {
        let t = target("rediss://app:p%40ss@cache.example:6380/2").expect("parses");
        assert!(matches!(
            t.location,
            Location::Tcp { ref host, port: 6380, tls: true } if host == "cache.example"
        ));
        assert_eq!(t.user.as_deref(), Some("app"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.db, 2);
        let t = target("redis://cache").expect("parses");
        assert!(matches!(
            t.location,
            Location::Tcp {
                port: DEFAULT_PORT,
                tls: false,
                ..
            }
        ));
        assert_eq!(t.db, 0);
        assert!(t.password.is_none() && t.user.is_none());
        let t = target("unix:///run/redis.sock?db=3").expect("parses");
        assert!(matches!(t.location, Location::Unix(ref p) if p.ends_with("redis.sock")));
        assert_eq!(t.db, 3);
    }

    #[test]
    fn unusable_urls_are_explained() {
        assert!(target("redis://cache/x").is_err());
        assert!(target("http://cache").is_err());
    }
}
