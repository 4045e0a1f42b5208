//! The words several layers share: what a key may do (scopes) and how often (rate limit).
//!
//! A leaf: it imports nothing from the crate, so that config, store, auth and ratelimit can
//! all speak of a `Scope` or a `RateLimit` without importing one another (auth re-exports
//! these names for its callers' convenience).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Call models.
    Predict,
    /// Manage keys; implies every other scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Predict, Scope::Admin];

    fn as_str(self) -> &'static str {
        match self {
            Scope::Predict => "predict",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown scope {s:?}, expected predict or admin"))
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `granted` scopes allow an action that needs `needed`.
pub fn allows(granted: &[Scope], needed: Scope) -> bool {
    granted.contains(&Scope::Admin) || granted.contains(&needed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Second,
    Minute,
    Hour,
}

impl Period {
    fn suffix(self) -> char {
        match self {
            Period::Second => 's',
            Period::Minute => 'm',
            Period::Hour => 'h',
        }
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3600,
        })
    }
}

/// `N` requests per second, minute or hour, written `N/s`, `N/m` or `N/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Period,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.requests, self.per.suffix())
    }
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("expected N/s, N/m or N/h with N ≥ 1, got {s:?}");
        let (count, unit) = s.trim().split_once('/').ok_or_else(expected)?;
        let requests: u32 = count.trim().parse().map_err(|_| expected())?;
        let per = match unit.trim() {
            "s" => Period::Second,
            "m" => Period::Minute,
            "h" => Period::Hour,
            _ => return Err(expected()),
        };
        if requests == 0 {
            return Err(expected());
        }
        Ok(RateLimit { requests, per })
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_case_insensitively_and_round_trip() {
        assert_eq!("PREDICT".parse::<Scope>(), Ok(Scope::Predict));
        assert_eq!(Scope::Admin.to_string().parse::<Scope>(), Ok(Scope::Admin));
        assert!("write".parse::<Scope>().is_err());
    }

    #[test]
    fn admin_implies_predict_but_not_the_reverse() {
        assert!(allows(&[Scope::Admin], Scope::Predict));
        assert!(allows(&[Scope::Predict], Scope::Predict));
        assert!(!allows(&[Scope::Predict], Scope::Admin));
        assert!(!allows(&[], Scope::Predict));
    }

    #[test]
    fn rate_limits_parse_and_round_trip() {
        for text in ["10/s", "600/m", "1000/h"] {
            let limit: RateLimit = text.parse().expect("valid");
            assert_eq!(limit.to_string(), text);
        }
        assert_eq!(
            "5/m".parse::<RateLimit>().map(|r| r.per.duration()),
            Ok(Duration::from_secs(60))
        );
    }

    #[test]
    fn bad_rate_limits_are_rejected() {
        for text in ["", "10", "0/s", "-1/s", "10/d", "ten/s", "10/"] {
            assert!(text.parse::<RateLimit>().is_err(), "{text} accepted");
        }
    }
}
