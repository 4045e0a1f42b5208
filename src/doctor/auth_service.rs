//! The remote auth service: dns, tcp, tls for `https://`, then the contract itself: a bogus
//! key sent exactly as `auth::remote` sends keys must be refused.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use super::net;
use super::tls::{self, Asked};
use super::{Check, DependencyReport};
use crate::auth::RemoteAuth;
use crate::config::AuthConfig;
use crate::resilience::{BreakerConfig, Dependency};

/// Shaped like a key so the service judges it as one; no service can know it.
const BOGUS_KEY: &str = "mg_doctor0000000000000000000000000000000000";

pub(crate) async fn check(config: &AuthConfig, timeout: Duration) -> DependencyReport {
    let Some(url) = config.service_url.as_deref() else {
        return DependencyReport::not_configured(
            "auth_service",
            "keys are checked against the database",
        );
    };
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            let mut check = Check::new("auth_service", true, url, Vec::new(), timeout);
            check.fail(
                "url",
                None,
                format!("the auth service URL does not parse: {e}"),
            );
            return check.finish();
        }
    };
    let https = parsed.scheme().eq_ignore_ascii_case("https");
    let steps = net::http_steps(&parsed, &["roundtrip"]);
    let mut check = Check::new("auth_service", true, url, steps, timeout);
    let host = parsed.host_str().unwrap_or_default().to_string();
    let asked = Asked {
        by: "URL scheme says https://",
        ca_hint: "the auth service needs a certificate from a public CA",
    };
    let Some(addr) = net::reach_http(&mut check, &parsed, &asked).await else {
        return check.finish();
    };
    let remote = RemoteAuth::new(
        url,
        &config.service_id,
        Arc::new(Dependency::new(
            "auth_service",
            timeout,
            BreakerConfig::default(),
        )),
    );
    let silence = "connected, but the service sent no HTTP answer: it is hung or overloaded";
    let contract = contract(&remote, (!https).then(|| (addr, host.clone())));
    check.run("roundtrip", silence, contract).await;
    check.finish()
}

/// Sends the bogus key; `plain` is where to look for TLS when an `http://` call fails.
async fn contract(
    remote: &RemoteAuth,
    plain: Option<(std::net::SocketAddr, String)>,
) -> Result<((), String), String> {
    let response = match remote.request(BOGUS_KEY, None).send().await {
        Ok(response) => response,
        Err(e) => return Err(transport(e, plain).await),
    };
    let status = response.status();
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Ok((
            (),
            format!("a bogus key was refused with {status}, as the contract says"),
        )),
        StatusCode::OK if json => Err(
            "the service accepted a bogus key (200): wrong URL or a misconfigured service".into(),
        ),
        StatusCode::OK => Err("answered 200 with a non-JSON body to a bogus key: the URL points \
                               at something else than the auth service (a web page?)"
            .into()),
        StatusCode::TOO_MANY_REQUESTS => {
            Err("the service is rate limiting this client (429): it answers, but would refuse \
                 real keys too"
                .into())
        }
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST
            if speaks_tls_at(plain.as_ref()).await =>
        {
            Err("TLS mismatch: URL scheme says http:// (plaintext), server speaks TLS: use https://"
                .into())
        }
        StatusCode::METHOD_NOT_ALLOWED => Err(format!(
            "{status}: the URL points at something else than the auth service's \
             POST /api/v1/keys/validate"
        )),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Err(format!(
            "{status}: the service rejects the request's shape: a contract or version mismatch"
        )),
        s if s.is_server_error() => Err(format!(
            "the service is erroring ({status}): see its logs and its own dependencies"
        )),
        s if s.is_redirection() => Err(format!(
            "{status}: the service redirects; set auth.service_url to the final URL"
        )),
        _ => Err(format!(
            "unexpected {status} to a bogus key (expected 401, 403 or 404)"
        )),
    }
}

async fn transport(e: reqwest::Error, plain: Option<(std::net::SocketAddr, String)>) -> String {
    if speaks_tls_at(plain.as_ref()).await {
        return "TLS mismatch: URL scheme says http:// (plaintext), server speaks TLS: use \
                https://"
            .into();
    }
    // reqwest's error text can include the URL (never the bearer token); leave it out.
    let e = e.without_url();
    if e.is_connect() {
        format!("the HTTP connection failed: {e}")
    } else {
        format!("no valid HTTP answer: {e}")
    }
}

async fn speaks_tls_at(plain: Option<&(std::net::SocketAddr, String)>) -> bool {
    match plain {
        Some((addr, host)) => tls::speaks_tls(*addr, host).await,
        None => false,
    }
}
