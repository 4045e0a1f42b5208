//! Turning a graph's output row into the prediction fields the manifest declares.

use serde_json::{json, Map, Value};

use super::encoder::Encoder;
use super::manifest::{FactorRule, ModelKind, OutputSpec};

/// Probabilities are reported to 6 decimals: f32 carries about 7 significant digits,
/// and the extra digits of its f64 widening are noise, not information.
fn round6(x: f32) -> f64 {
    (f64::from(x) * 1e6).round() / 1e6
}

#[derive(Debug, Clone)]
pub struct Postprocessor {
    spec: OutputSpec,
    kind: ModelKind,
    /// For each factor rule, the index of the input it reads.
    factor_inputs: Vec<usize>,
}

fn factor_holds(rule: &FactorRule, value: Option<&Value>) -> bool {
    let Some(value) = value else { return false };
    if let Some(expected) = &rule.is {
        return value == expected;
    }
    let Some(x) = value.as_f64() else {
        return false;
    };
    rule.above.is_none_or(|limit| x > limit) && rule.below.is_none_or(|limit| x < limit)
}

impl Postprocessor {
    pub fn new(spec: &OutputSpec, kind: ModelKind, encoders: &[Encoder]) -> Result<Self, String> {
        let mut factor_inputs = Vec::new();
        for rule in spec.factors.iter().flat_map(|f| &f.rules) {
            let conditions = [
                rule.is.is_some(),
                rule.above.is_some() || rule.below.is_some(),
            ];
            if conditions.iter().filter(|c| **c).count() != 1 {
                return Err(format!(
                    "factor {:?}: give either `is` or `above`/`below`",
                    rule.text
                ));
            }
            let index = encoders
                .iter()
                .position(|e| e.name() == rule.input)
                .ok_or_else(|| {
                    format!(
                        "factor {:?} reads unknown input {:?}",
                        rule.text, rule.input
                    )
                })?;
            factor_inputs.push(index);
        }
        if let Some(label) = &spec.label {
            let descending = label
                .thresholds
                .windows(2)
                .all(|pair| pair[0].at_least > pair[1].at_least);
            if !descending {
                return Err("label thresholds must be listed from highest to lowest".into());
            }
        }
        if let Some(score) = &spec.score {
            if !(score.scale.is_finite() && score.scale > 0.0) {
                return Err("score scale must be a positive number".into());
            }
        }
        Ok(Postprocessor {
            spec: spec.clone(),
            kind,
            factor_inputs,
        })
    }

    /// Smallest number of values a graph output row must have.
    pub fn min_outputs(&self) -> usize {
        self.spec.positive_class + 1
    }

    pub fn render(
        &self,
        scores: &[f32],
        inputs: &Map<String, Value>,
        encoders: &[Encoder],
    ) -> Map<String, Value> {
        let spec = &self.spec;
        let mut out = Map::new();
        let p = round6(scores.get(spec.positive_class).copied().unwrap_or(f32::NAN));
        let score = spec.score.as_ref().map(|s| (p * s.scale).floor());
        if let Some(s) = &spec.score {
            out.insert(s.field.clone(), json!(score.unwrap_or_default() as i64));
        }
        if let Some(field) = &spec.probability_field {
            out.insert(field.clone(), json!(p));
        }
        if let Some(label) = &spec.label {
            let measured = score.unwrap_or(p);
            let name = label
                .thresholds
                .iter()
                .find(|t| measured >= t.at_least)
                .map_or(&label.otherwise, |t| &t.label);
            out.insert(label.field.clone(), json!(name));
        }
        if let Some(factors) = &spec.factors {
            let texts: Vec<&str> = factors
                .rules
                .iter()
                .zip(&self.factor_inputs)
                .filter(|(rule, index)| factor_holds(rule, encoders[**index].resolve(inputs)))
                .map(|(rule, _)| rule.text.as_str())
                .collect();
            out.insert(factors.field.clone(), json!(texts));
        }
        if let (Some(field), ModelKind::Classifier) = (&spec.confidence_field, self.kind) {
            let best = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            out.insert(field.clone(), json!(round6(best)));
        }
        out
    }
}
