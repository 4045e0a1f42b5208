//! What the API (and `modelgate models list --json`) shows of a loaded model.

use serde::Serialize;

use super::catalog::Problem;
use super::manifest::{InputSpec, ModelKind, OutputSpec};
use super::{Model, VersionInfo};

/// A model as listings show it, in the order docs/api.md gives. `Inputs` is how many inputs
/// the model takes in a listing, and their full specifications in [`ModelInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary<Inputs = usize> {
    pub id: String,
    pub name: String,
    /// The serving version: what `metadata.model_version` of a prediction says.
    pub version: String,
    pub kind: ModelKind,
    pub description: String,
    /// `native-tree-ensemble` or `tract`.
    pub engine: &'static str,
    pub inputs: Inputs,
    pub max_batch_size: usize,
}

/// `GET /api/v1/models/{id}/info`: the summary with every input and the output section.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    #[serde(flatten)]
    pub summary: ModelSummary<Vec<InputSpec>>,
    pub outputs: OutputSpec,
}

impl Model {
    pub fn summary(&self) -> ModelSummary {
        self.describe(self.manifest.inputs.len())
    }

    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            summary: self.describe(self.manifest.inputs.clone()),
            outputs: self.manifest.output.clone(),
        }
    }

    fn describe<Inputs>(&self, inputs: Inputs) -> ModelSummary<Inputs> {
        let m = &self.manifest;
        ModelSummary {
            id: self.id.clone(),
            name: m.name.clone(),
            version: self.version.version.clone(),
            kind: m.kind,
            description: m.description.clone(),
            engine: self.engine(),
            inputs,
            max_batch_size: m.max_batch_size,
        }
    }
}

/// `GET /api/v1/models/{id}`: the model's description, every loaded version (the serving one
/// first), and why it does not serve or why a newer version was refused.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub info: ModelInfo,
    pub versions: Vec<VersionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}
