//! How a `rediss://` server's certificate is checked; shared with `modelgate doctor` so that it
//! checks what serving uses.

use super::ClientError;
use crate::config::RedisConfig;

/// How the certificate of a `rediss://` server is checked.
pub(crate) enum TlsTrust {
    /// Against the system's trust store.
    System,
    /// Against the CA certificates of `redis.tls_ca_file` (PEM), and nothing else.
    Ca(Vec<u8>),
    /// Not at all (`redis.tls_insecure`).
    Insecure,
}

/// The trust `config` asks for.
pub(crate) fn tls_trust(config: &RedisConfig) -> Result<TlsTrust, ClientError> {
    if config.tls_insecure {
        return Ok(TlsTrust::Insecure);
    }
    match &config.tls_ca_file {
        Some(path) => std::fs::read(path)
            .map(TlsTrust::Ca)
            .map_err(|e| ClientError::CaFile {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        None => Ok(TlsTrust::System),
    }
}

/// The Redis client for `url`: `rediss://` verifies the server's certificate against the
/// system's roots, or `redis.tls_ca_file`, unless verification is explicitly turned off.
pub(super) fn client(config: &RedisConfig, url: &str) -> Result<redis::Client, ClientError> {
    // The client's own error text can echo the URL, password included; say only what kind.
    let kind = |e: redis::RedisError| ClientError::Url(format!("{:?}", e.kind()));
    if !url.to_ascii_lowercase().starts_with("rediss://") {
        return redis::Client::open(url).map_err(kind);
    }
    match tls_trust(config)? {
        TlsTrust::Insecure => {
            tracing::warn!(
                "redis.tls_insecure is set: the Redis server's TLS certificate is NOT verified; \
                 anyone on the network path can impersonate it and read API key hashes"
            );
            let insecure = if url.contains('#') {
                url.to_string()
            } else {
                format!("{url}#insecure")
            };
            redis::Client::open(insecure).map_err(kind)
        }
        TlsTrust::Ca(root_cert) => {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(url, certificates).map_err(kind)
        }
        TlsTrust::System => redis::Client::open(url).map_err(kind),
    }
}
