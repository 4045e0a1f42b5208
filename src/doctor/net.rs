//! Name resolution and TCP connection steps, with the causes their failures usually have.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::tls::{self, Asked, Roots};
use super::{detached, Check};

/// What the `dns` and `tcp` steps found.
pub(crate) struct Connected {
    pub stream: TcpStream,
    pub addr: SocketAddr,
}

fn is_https(url: &url::Url) -> bool {
    url.scheme().eq_ignore_ascii_case("https")
}

/// The steps an HTTP service at `url` is reached by (`tls` only for https://), then `after`.
pub(crate) fn http_steps(url: &url::Url, after: &[&'static str]) -> Vec<&'static str> {
    let mut steps = vec!["dns", "tcp"];
    if is_https(url) {
        steps.push("tls");
    }
    steps.extend_from_slice(after);
    steps
}

/// Runs the `dns`, `tcp` and, for https://, `tls` steps (against the built-in Mozilla roots,
/// which reqwest trusts too) of an HTTP service at `url`; where it was reached, or `None` when
/// a step failed.
pub(crate) async fn reach_http(
    check: &mut Check,
    url: &url::Url,
    asked: &Asked<'_>,
) -> Option<SocketAddr> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let Connected { stream, addr } = dns_and_tcp(check, host, port).await?;
    if is_https(url) {
        let silence = "connected, but the TLS handshake got no answer";
        let handshake = tls::handshake(stream, host, &Roots::WebPki, asked);
        check.run("tls", silence, handshake).await?;
    }
    Some(addr)
}

/// Cause of a connect that got no answer at all.
const DROPPED: &str = "packets are being dropped (firewall, security group or wrong network)";

/// Runs the `dns` and `tcp` steps for `host:port`; `None` when one failed.
pub(crate) async fn dns_and_tcp(check: &mut Check, host: &str, port: u16) -> Option<Connected> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = match host.parse::<IpAddr>() {
        Ok(ip) => {
            check.pass("dns", format!("{ip} is an IP address: nothing to resolve"));
            vec![SocketAddr::new(ip, port)]
        }
        Err(_) => {
            check
                .run(
                    "dns",
                    "the DNS resolver does not answer (resolv.conf, network to the resolver)",
                    resolve(host.to_string(), port),
                )
                .await?
        }
    };
    check.run("tcp", DROPPED, connect(addrs)).await
}

async fn resolve(host: String, port: u16) -> Result<(Vec<SocketAddr>, String), String> {
    let name = host.clone();
    let looked_up = detached(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
            .map(|addrs| addrs.collect::<Vec<_>>())
    })
    .await
    .ok_or_else(|| "name resolution stopped unexpectedly".to_string())?;
    match looked_up {
        Ok(addrs) if addrs.is_empty() => Err(format!("{host} resolves to no address")),
        Ok(addrs) => {
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            Ok((addrs, format!("{host} → {}", shown.join(", "))))
        }
        Err(e) if e.to_string().contains("Temporary failure") => Err(format!(
            "cannot resolve {host}: the DNS server did not answer (temporary failure: resolver \
             unreachable or overloaded)"
        )),
        Err(e) => Err(format!(
            "name does not resolve: {host} is unknown to DNS (typo, missing record, or a \
             private name used outside its network) ({e})"
        )),
    }
}

/// Tries each address in turn, as clients do, and keeps the first connection.
async fn connect(addrs: Vec<SocketAddr>) -> Result<(Connected, String), String> {
    let mut refused = Vec::new();
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let mut detail = format!("connected to {addr}");
                if !refused.is_empty() {
                    detail.push_str(&format!(" (after {})", refused.join("; ")));
                }
                let connected = Connected {
                    stream,
                    addr: *addr,
                };
                return Ok((connected, detail));
            }
            Err(e) => refused.push(connect_error(*addr, &e)),
        }
    }
    Err(refused.join("; "))
}

/// The usual cause behind a failed TCP connect.
pub(crate) fn connect_error(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => format!(
            "connection refused by {addr}: nothing listening there (service down or wrong port)"
        ),
        ErrorKind::ConnectionReset => format!(
            "connection to {addr} reset: a firewall or proxy actively rejects it, or the \
             service crashed"
        ),
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            format!("no route to {addr}: wrong network, VPN down or a routing problem ({e})")
        }
        ErrorKind::TimedOut => format!("connecting to {addr} timed out: {DROPPED}"),
        ErrorKind::PermissionDenied => {
            format!("connecting to {addr} was refused by this machine (local firewall or policy)")
        }
        _ => format!("cannot connect to {addr}: {e}"),
    }
}
