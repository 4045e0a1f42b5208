//! `model.toml`: everything about a model that is not its ONNX graph.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: ModelKind,
    #[serde(default)]
    pub description: String,
    /// ONNX file, relative to the model's folder (unused with `source`).
    #[serde(default = "default_file")]
    pub file: String,
    /// `[source]`: the graph comes from an MLflow registry instead of `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::mlflow::MlflowSource>,
    #[serde(default = "default_max_batch")]
    pub max_batch_size: usize,
    /// In the order the graph expects its feature columns.
    pub inputs: Vec<InputSpec>,
    pub output: OutputSpec,
    /// Rows every new version must score without error before it serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
}

/// `[[examples]]`: one input row (`[examples.inputs]`), optionally named for error messages.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// Reads and parses `dir/model.toml`; the text too, which a version's fingerprint covers.
    pub fn read(dir: &Path) -> Result<(String, Manifest), String> {
        let path = dir.join("model.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let manifest =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        Ok((text, manifest))
    }
}

fn default_file() -> String {
    "model.onnx".into()
}

fn default_max_batch() -> usize {
    100
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Classifier,
    Regressor,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    Number,
    Boolean,
    String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Used when the field is missing or null; without one the field is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How the JSON value becomes a number; numbers and booleans need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderSpec {
    /// Case-insensitive lookup; anything not listed takes `fallback`.
    Categorical {
        map: BTreeMap<String, f32>,
        fallback: f32,
    },
    /// First rule with a whole-word (or whole-phrase) match wins, case-insensitively.
    Keywords {
        rules: Vec<KeywordRule>,
        fallback: f32,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRule {
    pub words: Vec<String>,
    pub value: f32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Graph output holding class probabilities (classifier) or values (regressor).
    pub tensor: String,
    /// Classifier: which class's probability is the prediction's `p`. Regressor: which value.
    #[serde(default = "default_positive")]
    pub positive_class: usize,
    /// Field for `p` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability_field: Option<String>,
    /// Field for the largest class probability (classifiers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<ScoreSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<FactorsSpec>,
}

fn default_positive() -> usize {
    1
}

/// `field` = floor(p × scale), an integer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    pub field: String,
    pub scale: f64,
}

/// The first threshold the score (or `p` without a score) reaches names the label.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    pub field: String,
    pub thresholds: Vec<Threshold>,
    pub otherwise: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub at_least: f64,
    pub label: String,
}

/// Human-readable reasons, from the request's own inputs, in rule order.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FactorsSpec {
    pub field: String,
    pub rules: Vec<FactorRule>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FactorRule {
    pub input: String,
    pub text: String,
    /// The input equals this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is: Option<serde_json::Value>,
    /// The (numeric) input is strictly greater.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// The (numeric) input is strictly less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
}
