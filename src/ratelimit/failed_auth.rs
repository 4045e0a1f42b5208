//! The failed-authentication throttle: GCRA on failures only, one state per client address,
//! in this instance's memory (the local tier's [`LocalLimiter`], with one quota for everyone).
//!
//! An address may fail `failed_auth_burst` times at once, refilling `failed_auth_per_minute`.
//! Once it has no failures left, its requests are refused (429) before any cache, Redis or
//! store is asked, except those carrying a key the in-process cache knows valid: so a guesser
//! gets about one lookup per refill interval, while a real client behind the same address is
//! never slowed by it. Successes cost nothing here; only failures are counted.
//!
//! Per instance and not shared through Redis, on purpose: it must cost nothing and work while
//! Redis is down; behind N instances an address gets N times the burst, which is still a
//! bounded trickle.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::gcra::Quota;
use super::local::LocalLimiter;
use crate::config::AuthConfig;

/// Client addresses remembered at most (a few hundred bytes each); the least recently failing
/// go first, and are idle-forgotten after an hour in any case.
const ADDRESSES: u64 = 100_000;

pub struct FailedAuthThrottle {
    limiter: LocalLimiter,
    /// `None` when the throttle is off (`failed_auth_burst = 0`).
    quota: Option<Quota>,
}

/// What failures are counted under: the address itself for IPv4, the /64 for IPv6 (a single
/// host commonly holds a whole /64, and would otherwise get a fresh burst per address).
fn bucket(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", Ipv6Addr::from(network))
        }
    }
}

impl FailedAuthThrottle {
    pub fn new(config: &AuthConfig) -> FailedAuthThrottle {
        let quota = (config.failed_auth_burst > 0).then(|| {
            let per_minute = config.failed_auth_per_minute.max(1);
            Quota::with_burst(
                config.failed_auth_burst,
                Duration::from_secs(60) / per_minute,
            )
        });
        FailedAuthThrottle {
            limiter: LocalLimiter::new(ADDRESSES),
            quota,
        }
    }

    /// How long until `client` may fail again, when it has used up its failures.
    pub async fn throttled(&self, client: IpAddr) -> Option<Duration> {
        let quota = self.quota?;
        self.limiter.refusal(&bucket(client), quota).await
    }

    /// Counts one failed authentication of `client`.
    pub async fn failed(&self, client: IpAddr) {
        if let Some(quota) = self.quota {
            self.limiter.check(&bucket(client), quota).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(burst: u32, per_minute: u32) -> FailedAuthThrottle {
        FailedAuthThrottle::new(&AuthConfig {
            failed_auth_burst: burst,
            failed_auth_per_minute: per_minute,
            ..AuthConfig::default()
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[tokio::test]
    async fn an_address_is_throttled_after_its_burst_of_failures() {
        let throttle = throttle(3, 60);
        let client = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(throttle.throttled(client).await, None);
            throttle.failed(client).await;
        }
        let wait = throttle.throttled(client).await;
        assert!(
            wait.is_some_and(|w| w <= Duration::from_secs(1)),
            "{wait:?}"
        );
        assert_eq!(throttle.throttled(ip("192.0.2.2")).await, None);
    }

    #[tokio::test]
    async fn ipv6_addresses_share_their_64() {
        let throttle = throttle(2, 60);
        throttle.failed(ip("2001:db8:1:2::1")).await;
        throttle.failed(ip("2001:db8:1:2:ffff::9")).await;
        assert!(throttle.throttled(ip("2001:db8:1:2::77")).await.is_some());
        assert_eq!(throttle.throttled(ip("2001:db8:1:3::1")).await, None);
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(bucket(ip("2001:db8::1")), "2001:db8::/64");
    }

    #[tokio::test]
    async fn a_zero_burst_turns_the_throttle_off() {
        let throttle = throttle(0, 60);
        let client = ip("192.0.2.1");
        for _ in 0..100 {
            throttle.failed(client).await;
        }
        assert_eq!(throttle.throttled(client).await, None);
    }
}
