//! Whole-number fields of request bodies that accept any JSON number without a fraction.
//!
//! serde refuses `150.0` for an `i64`, but JSON has one number type and JSON Schema calls
//! `150.0` (and `1.5e2`) an integer, so clients that compute or re-serialize numbers as
//! floating point (JavaScript, Python's `json` after arithmetic) send exactly that.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// What a refusal says the field must be (see `serde_words`).
const EXPECTED: &str = "a whole number";

/// Largest magnitude below which every `f64` whole number is exact and fits an `i64`.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() != 0.0 || !v.is_finite() || v.abs() > EXACT_LIMIT {
            return Err(E::invalid_value(Unexpected::Float(v), &self));
        }
        // Exact: whole and within ±2^53.
        Ok(v as i64)
    }
}

/// `#[serde(deserialize_with = "whole_number::i64")]`
pub fn i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

/// `#[serde(default, deserialize_with = "whole_number::optional_i64")]`: absent or `null` is
/// `None`.
pub fn optional_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct Optional;

    impl<'de> Visitor<'de> for Optional {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            i64(d).map(Some)
        }
    }

    deserializer.deserialize_option(Optional)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::i64")]
        count: i64,
        #[serde(default, deserialize_with = "super::optional_i64")]
        extra: Option<i64>,
    }

    fn parse(value: serde_json::Value) -> Result<Body, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers() {
        for text in ["150", "150.0", "1.5e2", "-3.0", "0.0"] {
            let value: serde_json::Value = serde_json::from_str(text).expect("number");
            let body = parse(json!({ "count": value })).expect(text);
            assert_eq!(body.count as f64, value.as_f64().expect("f64"), "{text}");
        }
        assert_eq!(
            parse(json!({"count": 1, "extra": 7.0})).expect("ok").extra,
            Some(7)
        );
        assert_eq!(
            parse(json!({"count": 1, "extra": null})).expect("ok").extra,
            None
        );
        assert_eq!(parse(json!({"count": 1})).expect("ok").extra, None);
    }

    #[test]
    fn fractions_and_other_types_are_refused_in_plain_words() {
        for value in [
            json!(150.5),
            json!("150"),
            json!(true),
            json!(1e300),
            json!(u64::MAX),
        ] {
            let err = parse(json!({ "count": value })).expect_err("refused");
            assert!(err.contains("expected a whole number"), "{value}: {err}");
        }
        let err = parse(json!({"count": 1, "extra": 0.5})).expect_err("refused");
        assert!(err.contains("expected a whole number"), "{err}");
    }
}
