//! Models: manifests, input encoding, runtimes, output post-processing, and the registry.

mod cache;
mod catalog;
pub mod encoder;
mod folder;
mod load;
pub mod manifest;
pub mod mlflow;
mod onnx_attrs;
pub mod onnx_ml;
mod postprocess;
mod registry;
pub mod registry_sync;
pub mod reload;
pub mod runtime;
mod self_test;
mod summary;
pub mod tree_ensemble;
mod version;

use serde_json::{Map, Value};

pub use cache::CachedVersion;
pub use catalog::{Catalog, LoadError, Problem, Unavailable, Verdict};
pub use encoder::FieldError;
pub use manifest::Manifest;
pub use registry::{configured_sources, Registry};
pub use runtime::InferenceError;
pub use summary::{ModelDetail, ModelInfo, ModelSummary};
pub use version::{SourceKind, VersionInfo};

use encoder::Encoder;
use postprocess::Postprocessor;
use runtime::Runtime;

/// A loaded version of a model, shared read-only by every request that started on it.
pub struct Model {
    id: String,
    version: VersionInfo,
    /// The registry version, for a model from a registry.
    registry: Option<CachedVersion>,
    /// Manifest and graph together, to tell a changed version from a touched file.
    fingerprint: [u8; 32],
    manifest: Manifest,
    encoders: Vec<Encoder>,
    postprocessor: Postprocessor,
    runtime: Runtime,
}

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("invalid inputs")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// Predictions for a request: one object, or an array in request order.
#[derive(Debug)]
pub enum Predictions {
    One(Map<String, Value>),
    Many(Vec<Map<String, Value>>),
}

impl Predictions {
    pub fn into_json(self) -> Value {
        match self {
            Predictions::One(one) => Value::Object(one),
            Predictions::Many(many) => Value::Array(many.into_iter().map(Value::Object).collect()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Predictions::One(_) => 1,
            Predictions::Many(many) => many.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn invalid(field: &str, message: impl Into<String>) -> PredictError {
    PredictError::Invalid(vec![FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

/// Where a version's graph comes from, before it is loaded.
pub struct Origin {
    /// The registry version it is (`None`: the folder's graph, named by the manifest's
    /// `version`).
    pub registry: Option<CachedVersion>,
    /// The folder, or the registry and what selects the version (never with credentials).
    pub location: String,
}

impl Model {
    /// A model from its manifest (`text` parsed as `manifest`) and its graph's bytes.
    pub fn build(
        id: &str,
        text: &str,
        manifest: Manifest,
        graph: &[u8],
        origin: Origin,
    ) -> Result<Model, String> {
        let encoders = manifest
            .inputs
            .iter()
            .map(|spec| Encoder::new(spec).map_err(|e| format!("input {:?}: {e}", spec.name)))
            .collect::<Result<Vec<_>, _>>()?;
        if manifest.max_batch_size == 0 {
            return Err("max_batch_size must be at least 1".into());
        }
        let postprocessor = Postprocessor::new(&manifest.output, manifest.kind, &encoders)?;
        let runtime = Runtime::load(graph, &manifest.output.tensor, encoders.len())?;
        if runtime.outputs_per_row() < postprocessor.min_outputs() {
            return Err(format!(
                "output {:?} has {} values per row; positive_class {} is out of range",
                manifest.output.tensor,
                runtime.outputs_per_row(),
                manifest.output.positive_class
            ));
        }
        let (version, source) = match &origin.registry {
            Some(registry) => (registry.version.clone(), SourceKind::Mlflow),
            None => (manifest.version.clone(), SourceKind::Folder),
        };
        let version = VersionInfo {
            version,
            source,
            location: origin.location,
            checksum: version::checksum(graph),
            loaded_at: chrono::Utc::now(),
        };
        Ok(Model {
            id: id.to_string(),
            registry: origin.registry,
            version,
            fingerprint: version::fingerprint(text, graph),
            manifest,
            encoders,
            postprocessor,
            runtime,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The version responses and records carry, its source and checksum.
    pub fn version(&self) -> &VersionInfo {
        &self.version
    }

    /// The registry version this is, for a model from a registry.
    pub fn registry_version(&self) -> Option<&CachedVersion> {
        self.registry.as_ref()
    }

    /// Whether `other` was built from the same manifest and graph.
    pub fn same_as(&self, other: &Model) -> bool {
        self.fingerprint == other.fingerprint
    }

    pub fn engine(&self) -> &'static str {
        self.runtime.engine()
    }

    /// Whether scoring may take long enough (milliseconds) to stall an async worker: tract
    /// graphs can be arbitrarily large; the tree evaluator takes microseconds per row.
    pub fn may_block(&self) -> bool {
        matches!(self.runtime, Runtime::Tract { .. })
    }

    /// Validates and scores `inputs`: one JSON object, or an array of up to `max_batch_size`.
    pub fn predict(&self, inputs: &Value) -> Result<Predictions, PredictError> {
        match inputs {
            Value::Object(row) => {
                let mut out = self.predict_rows(&[(row, "inputs".to_string())])?;
                Ok(Predictions::One(out.pop().unwrap_or_default()))
            }
            Value::Array(items) => {
                let max = self.manifest.max_batch_size;
                if items.is_empty() || items.len() > max {
                    return Err(invalid(
                        "inputs",
                        format!("expected between 1 and {max} rows, got {}", items.len()),
                    ));
                }
                let rows = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::Object(row) => Ok((row, format!("inputs[{i}]"))),
                        _ => Err(invalid(&format!("inputs[{i}]"), "expected an object")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Predictions::Many(self.predict_rows(&rows)?))
            }
            _ => Err(invalid(
                "inputs",
                "expected an object or an array of objects",
            )),
        }
    }

    fn predict_rows(
        &self,
        rows: &[(&Map<String, Value>, String)],
    ) -> Result<Vec<Map<String, Value>>, PredictError> {
        let width = self.encoders.len();
        let mut features = Vec::with_capacity(rows.len() * width);
        let mut errors = Vec::new();
        for (row, path) in rows {
            for encoder in &self.encoders {
                let field = format!("{path}.{}", encoder.name());
                match encoder.encode(encoder.resolve(row), &field) {
                    Ok(x) => features.push(x),
                    Err(e) => errors.push(e),
                }
            }
        }
        if !errors.is_empty() {
            return Err(PredictError::Invalid(errors));
        }
        let started = std::time::Instant::now();
        let scores = self.runtime.run(&features, width)?;
        metrics::histogram!(crate::metrics::INFERENCE_DURATION, "model" => self.id.clone())
            .record(started.elapsed().as_secs_f64());
        let per_row = self.runtime.outputs_per_row();
        if scores.len() != rows.len() * per_row {
            return Err(InferenceError::new(format!(
                "expected {} scores, the graph returned {}",
                rows.len() * per_row,
                scores.len()
            ))
            .into());
        }
        Ok(scores
            .chunks(per_row.max(1))
            .zip(rows)
            .map(|(row_scores, (row, _))| {
                self.postprocessor.render(row_scores, row, &self.encoders)
            })
            .collect())
    }
}
