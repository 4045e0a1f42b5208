//! How a `rediss://` server's certificate is checked; shared with `modelgate doctor` so that it
//! checks what serving uses.

use super::ClientError;
use redis::cluster::{ClusterClient, ClusterClientBuilder};

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

/// A `rediss://` URL as the client must be given it under `trust`.
fn trusted_url(url: &str, trust: &TlsTrust) -> String {
    match trust {
        TlsTrust::Insecure if !url.contains('#') => format!("{url}#insecure"),
        _ => url.to_string(),
    }
}

/// The CA certificates to verify the server against, when they are not the system's.
fn certificates(trust: &TlsTrust) -> Option<redis::TlsCertificates> {
    match trust {
        TlsTrust::Ca(root_cert) => Some(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert.clone()),
        }),
        TlsTrust::Insecure | TlsTrust::System => None,
    }
}

/// The trust for `urls`: verification as `config` asks when any of them is `rediss://`.
fn trust_for(config: &RedisConfig, urls: &[&str]) -> Result<Option<TlsTrust>, ClientError> {
    if !urls
        .iter()
        .any(|url| url.to_ascii_lowercase().starts_with("rediss://"))
    {
        return Ok(None);
    }
    let trust = tls_trust(config)?;
    if matches!(trust, TlsTrust::Insecure) {
        tracing::warn!(
            "redis.tls_insecure is set: the Redis server's TLS certificate is NOT verified; \
             anyone on the network path can impersonate it and read API key hashes"
        );
    }
    Ok(Some(trust))
}

/// The client's own error text can echo the URL, password included; say only what kind.
fn kind(e: redis::RedisError) -> ClientError {
    ClientError::Url(format!("{:?}", e.kind()))
}

/// The Redis client for `url`: `rediss://` verifies the server's certificate against the
/// system's roots, or `redis.tls_ca_file`, unless verification is explicitly turned off.
pub(super) fn client(config: &RedisConfig, url: &str) -> Result<redis::Client, ClientError> {
    let Some(trust) = trust_for(config, &[url])? else {
        return redis::Client::open(url).map_err(kind);
    };
    let url = trusted_url(url, &trust);
    match certificates(&trust) {
        Some(certificates) => redis::Client::build_with_tls(url, certificates),
        None => redis::Client::open(url),
    }
    .map_err(kind)
}

/// The cluster client for the seed nodes `seeds`, with the same certificate checks as
/// [`client`]. RESP3: a cluster connection carries a subscription only as pushes.
pub(super) fn cluster_client(
    config: &RedisConfig,
    seeds: &[&str],
) -> Result<ClusterClient, ClientError> {
    let trust = trust_for(config, seeds)?;
    let urls: Vec<String> = seeds
        .iter()
        .map(|seed| match &trust {
            Some(trust) => trusted_url(seed, trust),
            None => seed.to_string(),
        })
        .collect();
    let mut builder = ClusterClientBuilder::new(urls)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .retries(RETRIES)
        .min_retry_wait(RETRY_WAIT_MS.0)
        .max_retry_wait(RETRY_WAIT_MS.1);
    if let Some(certificates) = trust.as_ref().and_then(certificates) {
        builder = builder.certs(certificates);
    }
    builder.build().map_err(kind)
}

/// Attempts after the first for one cluster command: enough to follow a `MOVED` and a slot-map
/// refresh; a node that is down fails the call, and our breaker takes it from there.
const RETRIES: u32 = 3;

/// Between retries of a cluster command (a redirect, a node being replaced): short, since our
/// own deadline (tens of milliseconds on the request path) bounds the whole call anyway.
const RETRY_WAIT_MS: (u64, u64) = (5, 50);
