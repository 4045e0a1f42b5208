//! The client's address: the TCP peer's, or, when the peer is a trusted proxy
//! (`server.trusted_proxies`), the address its `Forwarded` or `X-Forwarded-For` header names.
//!
//! The chain is read from the right (the hop nearest to us) and trusted proxies are skipped:
//! the first address that is not a trusted proxy is the client. Anything to its left was
//! written by the client itself and is worth nothing. An entry that is not an address
//! (`unknown`, an obfuscated name, garbage) ends the walk at the last trusted hop, so that a
//! client can never choose the address it is counted under.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

/// One `for=` node of `Forwarded` (RFC 7239): `192.0.2.1`, `"192.0.2.1:80"`,
/// `"[2001:db8::1]:443"`; or one `X-Forwarded-For` entry.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Every `for=` of every `Forwarded` element, left to right; `None` for a node that is not an
/// address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(FORWARDED)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(value))
            })
        })
        .collect()
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .map(parse_node)
        .collect()
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { networks }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer`. `Forwarded` wins over `X-Forwarded-For`
    /// when a trusted proxy sent both.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut chain = forwarded_for(headers);
        if chain.is_empty() {
            chain = x_forwarded_for(headers);
        }
        let mut client = peer;
        for hop in chain.into_iter().rev() {
            match hop {
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return ip,
                None => return client,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        let config = crate::config::ServerConfig {
            trusted_proxies: nets.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        let networks = config.trusted_networks();
        assert_eq!(networks.len(), nets.len());
        TrustedProxies::new(networks)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(proxies(&[]).client(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        let only_lan = proxies(&["10.0.0.0/8"]);
        assert_eq!(only_lan.client(ip("192.0.2.1"), &h), ip("192.0.2.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client wrote 1.1.1.1 itself; 203.0.113.9 is what our proxies saw.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        let split = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &split), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_is_read_and_wins() {
        let trusted = proxies(&["10.0.0.1"]);
        let h = headers(&[
            (
                "forwarded",
                "for=1.1.1.1, for=\"[2001:db8::7]:4711\";proto=https",
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        let v4_port = headers(&[("forwarded", "proto=http;For=\"198.51.100.4:80\"")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &v4_port), ip("198.51.100.4"));
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.3")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        let none = HeaderMap::new();
        assert_eq!(trusted.client(ip("10.0.0.1"), &none), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_ranges() {
        let trusted = proxies(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            trusted.client(ip("::ffff:127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }
}
