//! Turning a request's JSON inputs into the feature row a graph expects.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::manifest::{EncoderSpec, InputSpec, InputType};

/// One wrong input, named by its path in the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
enum Encoding {
    Number,
    Boolean,
    Categorical {
        map: HashMap<String, f32>,
        fallback: f32,
    },
    Keywords {
        /// (lowercase phrases, value) in priority order.
        rules: Vec<(Vec<String>, f32)>,
        fallback: f32,
    },
}

/// A manifest input, checked and ready to encode values.
#[derive(Debug, Clone)]
pub struct Encoder {
    name: String,
    kind: InputType,
    default: Option<Value>,
    encoding: Encoding,
}

fn type_name(kind: InputType) -> &'static str {
    match kind {
        InputType::Number => "a number",
        InputType::Boolean => "a boolean",
        InputType::String => "a string",
    }
}

fn matches_type(kind: InputType, value: &Value) -> bool {
    match kind {
        InputType::Number => value.is_number(),
        InputType::Boolean => value.is_boolean(),
        InputType::String => value.is_string(),
    }
}

/// Whether `phrase` occurs in `text` bounded by non-alphanumeric characters or the ends.
fn contains_whole(text: &str, phrase: &str) -> bool {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(phrase).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + phrase.len()..].chars().next();
        !is_word(before) && !is_word(after)
    })
}

impl Encoder {
    pub fn new(spec: &InputSpec) -> Result<Encoder, String> {
        let encoding = match (spec.kind, &spec.encoder) {
            (InputType::Number, None) => Encoding::Number,
            (InputType::Boolean, None) => Encoding::Boolean,
            (InputType::String, Some(EncoderSpec::Categorical { map, fallback })) => {
                Encoding::Categorical {
                    map: map.iter().map(|(k, v)| (k.to_lowercase(), *v)).collect(),
                    fallback: *fallback,
                }
            }
            (InputType::String, Some(EncoderSpec::Keywords { rules, fallback })) => {
                Encoding::Keywords {
                    rules: rules
                        .iter()
                        .map(|r| (r.words.iter().map(|w| w.to_lowercase()).collect(), r.value))
                        .collect(),
                    fallback: *fallback,
                }
            }
            (InputType::String, None) => {
                return Err("a string input needs an encoder (categorical or keywords)".into())
            }
            (_, Some(_)) => return Err("only string inputs take an encoder".into()),
        };
        if let Some(default) = &spec.default {
            if !matches_type(spec.kind, default) {
                return Err(format!("default must be {}", type_name(spec.kind)));
            }
        }
        Ok(Encoder {
            name: spec.name.clone(),
            kind: spec.kind,
            default: spec.default.clone(),
            encoding,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value the model sees for this input: the request's, else the default.
    pub fn resolve<'a>(&'a self, inputs: &'a Map<String, Value>) -> Option<&'a Value> {
        inputs
            .get(&self.name)
            .filter(|v| !v.is_null())
            .or(self.default.as_ref())
    }

    /// Encodes one resolved value; `path` names the field in errors.
    pub fn encode(&self, value: Option<&Value>, path: &str) -> Result<f32, FieldError> {
        let error = |message: String| FieldError {
            field: path.to_string(),
            message,
        };
        let Some(value) = value else {
            return match &self.encoding {
                Encoding::Categorical { fallback, .. } | Encoding::Keywords { fallback, .. } => {
                    Ok(*fallback)
                }
                _ => Err(error("is required".into())),
            };
        };
        if !matches_type(self.kind, value) {
            return Err(error(format!("expected {}", type_name(self.kind))));
        }
        match (&self.encoding, value) {
            (Encoding::Number, Value::Number(n)) => {
                // Compared before narrowing: values just past f32::MAX round down to it, and
                // the documented range (|x| ≤ f32::MAX) must be the one enforced.
                let x = n.as_f64().unwrap_or(f64::NAN);
                if x.abs() <= f64::from(f32::MAX) {
                    Ok(x as f32)
                } else {
                    Err(error("is out of range".into()))
                }
            }
            (Encoding::Boolean, Value::Bool(b)) => Ok(if *b { 1.0 } else { 0.0 }),
            (Encoding::Categorical { map, fallback }, Value::String(s)) => {
                Ok(*map.get(&s.trim().to_lowercase()).unwrap_or(fallback))
            }
            (Encoding::Keywords { rules, fallback }, Value::String(s)) => {
                let text = s.to_lowercase();
                Ok(rules
                    .iter()
                    .find(|(words, _)| words.iter().any(|w| contains_whole(&text, w)))
                    .map_or(*fallback, |(_, value)| *value))
            }
            _ => Err(error(format!("expected {}", type_name(self.kind)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::manifest::KeywordRule;
    use serde_json::json;

    fn spec(kind: InputType, encoder: Option<EncoderSpec>, default: Option<Value>) -> InputSpec {
        InputSpec {
            name: "x".into(),
            kind,
            default,
            description: String::new(),
            encoder,
        }
    }

    fn title_encoder() -> Encoder {
        let rule = |words: &[&str], value| KeywordRule {
            words: words.iter().map(|w| w.to_string()).collect(),
            value,
        };
        Encoder::new(&spec(
            InputType::String,
            Some(EncoderSpec::Keywords {
                rules: vec![
                    rule(&["vp", "vice president"], 3.0),
                    rule(&["director"], 2.0),
                    rule(&["manager"], 1.0),
                ],
                fallback: 0.0,
            }),
            None,
        ))
        .expect("valid")
    }

    #[test]
    fn keywords_match_whole_words_only() {
        let enc = title_encoder();
        let cases = [
            ("VP of Sales", 3.0),
            ("Senior VP/Operations", 3.0),
            ("Vice President, Marketing", 3.0),
            ("MVP Engineer", 0.0),
            ("Sales Director", 2.0),
            ("Directorate Analyst", 0.0),
            ("Director-Marketing", 2.0),
            ("Engineering Manager", 1.0),
            ("Managerial Assistant", 0.0),
            ("vp and director", 3.0),
            ("", 0.0),
        ];
        for (title, expected) in cases {
            assert_eq!(
                enc.encode(Some(&json!(title)), "t"),
                Ok(expected),
                "{title}"
            );
        }
    }

    #[test]
    fn categorical_is_case_insensitive_with_fallback() {
        let map = [("Technology".to_string(), 3.0), ("retail".to_string(), 1.0)]
            .into_iter()
            .collect();
        let enc = Encoder::new(&spec(
            InputType::String,
            Some(EncoderSpec::Categorical { map, fallback: 1.5 }),
            None,
        ))
        .expect("valid");
        assert_eq!(enc.encode(Some(&json!("TECHNOLOGY")), "i"), Ok(3.0));
        assert_eq!(enc.encode(Some(&json!("Retail")), "i"), Ok(1.0));
        assert_eq!(enc.encode(Some(&json!("Mining")), "i"), Ok(1.5));
        assert_eq!(enc.encode(None, "i"), Ok(1.5));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let number = Encoder::new(&spec(InputType::Number, None, Some(json!(0)))).expect("ok");
        let err = number
            .encode(Some(&json!("high")), "inputs.x")
            .expect_err("type");
        assert_eq!(err.field, "inputs.x");
        assert_eq!(err.message, "expected a number");
        let boolean = Encoder::new(&spec(InputType::Boolean, None, None)).expect("ok");
        assert!(boolean.encode(Some(&json!(1)), "b").is_err());
        assert_eq!(boolean.encode(Some(&json!(true)), "b"), Ok(1.0));
    }

    #[test]
    fn numbers_are_bounded_by_f32_max_exactly() {
        let number = Encoder::new(&spec(InputType::Number, None, None)).expect("ok");
        let max = f64::from(f32::MAX);
        assert_eq!(number.encode(Some(&json!(max)), "x"), Ok(f32::MAX));
        assert_eq!(number.encode(Some(&json!(-max)), "x"), Ok(f32::MIN));
        // The next double would round down to f32::MAX if narrowed first.
        let past = f64::from_bits(max.to_bits() + 1);
        let err = number.encode(Some(&json!(past)), "x").expect_err("range");
        assert_eq!(err.message, "is out of range");
        assert!(number.encode(Some(&json!(-past)), "x").is_err());
    }

    #[test]
    fn missing_without_default_is_required() {
        let number = Encoder::new(&spec(InputType::Number, None, None)).expect("ok");
        let err = number.encode(None, "inputs.x").expect_err("required");
        assert_eq!(err.message, "is required");
    }

    #[test]
    fn null_takes_the_default() {
        let number = Encoder::new(&spec(InputType::Number, None, Some(json!(7)))).expect("ok");
        let inputs = json!({"x": null});
        let value = number.resolve(inputs.as_object().expect("object"));
        assert_eq!(number.encode(value, "x"), Ok(7.0));
    }

    #[test]
    fn huge_numbers_are_out_of_range() {
        let number = Encoder::new(&spec(InputType::Number, None, None)).expect("ok");
        assert!(number.encode(Some(&json!(1e300)), "x").is_err());
    }

    #[test]
    fn inconsistent_specs_are_rejected() {
        assert!(Encoder::new(&spec(InputType::String, None, None)).is_err());
        assert!(Encoder::new(&spec(InputType::Number, None, Some(json!("zero")))).is_err());
    }
}
