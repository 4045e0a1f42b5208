//! GCRA (the generic cell rate algorithm): the arithmetic both tiers share.
//!
//! A key's whole state is one number, its theoretical arrival time (TAT): the instant its
//! allowance would be full again. Each admitted request pushes the TAT one emission interval
//! (`period / limit`) further; a request is refused when that would put the TAT more than a
//! full allowance (`limit` intervals) ahead of now. So a key may burst `limit` requests at
//! once and then sustain `limit` per `period`, with no counter windows to reset. Times are
//! whole microseconds: exact in Lua's doubles (the Redis twin, `gcra.lua`) for ages to come.

use std::time::Duration;

use crate::vocabulary::RateLimit;

/// One key's allowance: `limit` requests per `period`, all of which may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u32,
    period_us: u64,
}

/// What one request was told, and what its response headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The quota the decision was made under (a share of the key's limit when made locally).
    pub quota: Quota,
    /// Requests that would be admitted right now, after this one.
    pub remaining: u32,
    /// Until the allowance is full again.
    pub reset: Duration,
    /// Until the next request would be admitted (zero while some remain).
    pub retry_after: Duration,
}

impl Decision {
    /// Until the allowance grows by one request beyond `remaining`: the time within which the
    /// client can use no more than `remaining` (the "effective window" of the current
    /// RateLimit draft). On a refusal it equals `retry_after`. `None` while the allowance is full.
    pub fn until_next_request(&self) -> Option<Duration> {
        let ahead = micros(self.reset);
        if ahead == 0 {
            return None;
        }
        let interval = self.quota.interval_us();
        // The TAT runs `ahead` of now; `remaining` grows each time it falls back onto a
        // multiple of the interval.
        let partial = ahead % interval;
        Some(Duration::from_micros(if partial == 0 {
            interval
        } else {
            partial
        }))
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl Quota {
    pub fn new(limit: RateLimit) -> Quota {
        Quota {
            limit: limit.requests.max(1),
            period_us: micros(limit.per.duration()),
        }
    }

    /// A burst of `burst` requests refilling one per `interval` (a quota not tied to a key's
    /// [`RateLimit`]).
    pub fn with_burst(burst: u32, interval: Duration) -> Quota {
        let limit = burst.max(1);
        Quota {
            limit,
            period_us: micros(interval).max(1).saturating_mul(u64::from(limit)),
        }
    }

    /// `share` of this quota, rate and burst alike, rounded down but at least one request per
    /// period: rounding up could grant more than the key's limit across instances.
    pub fn share(self, share: f64) -> Quota {
        let scaled = (f64::from(self.limit) * share).floor();
        Quota {
            // Saturating float-to-int cast; `share` is validated to (0, 1].
            limit: (scaled as u32).clamp(1, self.limit),
            ..self
        }
    }

    pub fn limit(self) -> u32 {
        self.limit
    }

    pub fn period(self) -> Duration {
        Duration::from_micros(self.period_us)
    }

    /// What one request costs: the period spread evenly over the limit.
    pub fn interval_us(self) -> u64 {
        (self.period_us / u64::from(self.limit)).max(1)
    }

    /// How far ahead of now the TAT may run: a full allowance.
    pub fn window_us(self) -> u64 {
        self.interval_us() * u64::from(self.limit)
    }

    /// The TAT after admitting one request at `now`, or `None` when it must be refused.
    pub fn admit(self, tat: u64, now: u64) -> Option<u64> {
        let next = tat.max(now) + self.interval_us();
        (next - now <= self.window_us()).then_some(next)
    }

    /// The TAT after counting a request some other tier admitted: like [`Quota::admit`], but
    /// never refused and never further ahead than an empty allowance, so that a busy key is not
    /// locked out for longer than one period when this tier takes over.
    pub fn charge(self, tat: u64, now: u64) -> u64 {
        (tat.max(now) + self.interval_us()).min(now + self.window_us())
    }

    /// The decision for a request, given whether it was admitted and the key's TAT after it.
    pub fn decision(self, allowed: bool, tat: u64, now: u64) -> Decision {
        let ahead = tat.saturating_sub(now);
        let window = self.window_us();
        let interval = self.interval_us();
        let remaining = window.saturating_sub(ahead) / interval;
        Decision {
            allowed,
            quota: self,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(ahead),
            retry_after: Duration::from_micros((ahead + interval).saturating_sub(window)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Period;

    const SECOND: u64 = 1_000_000;

    fn quota(requests: u32, per: Period) -> Quota {
        Quota::new(RateLimit { requests, per })
    }

    /// Runs one request at `now` against `tat` the way the tiers do.
    fn request(quota: Quota, tat: &mut u64, now: u64) -> Decision {
        match quota.admit(*tat, now) {
            Some(next) => {
                *tat = next;
                quota.decision(true, next, now)
            }
            None => quota.decision(false, *tat, now),
        }
    }

    #[test]
    fn a_burst_quota_refills_one_per_interval() {
        let q = Quota::with_burst(20, Duration::from_secs(1));
        assert_eq!(q.limit(), 20);
        assert_eq!(q.interval_us(), SECOND);
        let mut tat = 0;
        let now = 50 * SECOND;
        for _ in 0..20 {
            assert!(request(q, &mut tat, now).allowed);
        }
        let refused = request(q, &mut tat, now);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(request(q, &mut tat, now + SECOND).allowed);
    }

    #[test]
    fn a_fresh_key_may_burst_its_whole_limit_then_is_refused() {
        let q = quota(5, Period::Minute);
        let mut tat = 0;
        let now = 100 * SECOND;
        let remaining: Vec<u32> = (0..5)
            .map(|_| request(q, &mut tat, now).remaining)
            .collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        let refused = request(q, &mut tat, now);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        // One request's worth frees up after one interval (12 s), the whole limit after 60 s.
        assert_eq!(refused.retry_after, Duration::from_secs(12));
        assert_eq!(refused.reset, Duration::from_secs(60));
    }

    #[test]
    fn the_steady_rate_is_one_request_per_interval() {
        let q = quota(10, Period::Second);
        let mut tat = 0;
        let start = 7 * SECOND;
        for _ in 0..10 {
            assert!(request(q, &mut tat, start).allowed);
        }
        // After the burst, exactly one request per 100 ms, however often the client asks.
        let mut admitted = 0;
        for ms in (1..=2001).step_by(10) {
            if request(q, &mut tat, start + ms * 1000).allowed {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 20);
    }

    #[test]
    fn an_idle_key_is_full_again_after_reset() {
        let q = quota(3, Period::Second);
        let mut tat = 0;
        let now = SECOND;
        for _ in 0..2 {
            request(q, &mut tat, now);
        }
        let reset = request(q, &mut tat, now).reset;
        assert_eq!(reset, Duration::from_micros(999_999));
        let later = now + micros(reset);
        assert_eq!(request(q, &mut tat, later).remaining, 2);
    }

    #[test]
    fn retry_after_is_exactly_when_the_next_request_passes() {
        let q = quota(4, Period::Second);
        let mut tat = 0;
        for _ in 0..4 {
            request(q, &mut tat, 0);
        }
        let refused = request(q, &mut tat, 30_000);
        let wait = micros(refused.retry_after);
        assert_eq!(wait, 220_000);
        assert!(!request(q, &mut tat, 30_000 + wait - 1).allowed);
        assert!(request(q, &mut tat, 30_000 + wait).allowed);
    }

    #[test]
    fn until_next_request_is_when_remaining_grows() {
        let q = quota(4, Period::Second);
        let mut tat = 0;
        let admitted = request(q, &mut tat, 0);
        assert_eq!(admitted.remaining, 3);
        assert_eq!(
            admitted.until_next_request(),
            Some(Duration::from_millis(250))
        );
        let later = request(q, &mut tat, 100_000);
        assert_eq!(later.remaining, 2);
        assert_eq!(later.until_next_request(), Some(Duration::from_millis(150)));
        for _ in 0..2 {
            request(q, &mut tat, 100_000);
        }
        let refused = request(q, &mut tat, 100_000);
        assert!(!refused.allowed);
        assert_eq!(refused.until_next_request(), Some(refused.retry_after));
        assert_eq!(q.decision(true, 0, 5).until_next_request(), None);
    }

    #[test]
    fn a_share_scales_burst_and_rate_and_never_reaches_zero() {
        let q = quota(60, Period::Minute);
        assert_eq!(q.share(0.5).limit(), 30);
        assert_eq!(q.share(0.5).interval_us(), 2 * SECOND);
        assert_eq!(q.share(1.0), q);
        assert_eq!(quota(1, Period::Hour).share(0.5).limit(), 1);
        assert_eq!(quota(5, Period::Second).share(0.5).limit(), 2);
    }

    #[test]
    fn charging_counts_without_refusing_and_saturates_at_an_empty_allowance() {
        let q = quota(2, Period::Second);
        let now = 5 * SECOND;
        let mut tat = 0;
        for _ in 0..10 {
            tat = q.charge(tat, now);
        }
        assert_eq!(tat, now + SECOND, "at most one period ahead");
        assert!(q.admit(tat, now).is_none());
        assert!(q.admit(tat, now + SECOND / 2).is_some());
    }

    #[test]
    fn uneven_periods_lose_at_most_a_microsecond_per_request() {
        let q = quota(7, Period::Second);
        assert_eq!(q.interval_us(), 142_857);
        assert!(q.window_us() <= SECOND && q.window_us() > SECOND - 7);
    }
}
