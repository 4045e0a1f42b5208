//! Running a graph: our tree-ensemble evaluator when the graph is one, our ONNX-ML executor
//! when it implements every operator the scores need, tract otherwise.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

use super::onnx_ml::{self, NotRunnable};
use super::tree_ensemble::TreeEnsemble;

pub enum Runtime {
    Trees(Box<TreeEnsemble>),
    Graph(Box<onnx_ml::Graph>),
    Tract {
        plan: Arc<TypedRunnableModel>,
        outputs_per_row: usize,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("inference failed: {0}")]
pub struct InferenceError(String);

impl InferenceError {
    pub fn new(message: String) -> Self {
        InferenceError(message)
    }
}

fn parse(onnx: &tract_onnx::Onnx, graph: &[u8]) -> Result<tract_onnx::pb::ModelProto, String> {
    onnx.proto_model_for_read(&mut &graph[..])
        .map_err(|e| format!("cannot read the ONNX graph: {e:#}"))
}

impl Runtime {
    /// Loads the ONNX graph `graph`, keeping only the graph output `scores_output`.
    pub fn load(graph: &[u8], scores_output: &str, features: usize) -> Result<Runtime, String> {
        let onnx = tract_onnx::onnx();
        let proto = parse(&onnx, graph)?;
        if let Some(trees) = TreeEnsemble::from_model(&proto).map_err(|e| e.to_string())? {
            if trees.scores_output_name() != scores_output {
                return Err(format!(
                    "graph output {scores_output:?} not found (it has {:?})",
                    trees.scores_output_name()
                ));
            }
            if trees.n_features() != features {
                return Err(format!(
                    "the graph reads {} features but the manifest declares {features} inputs",
                    trees.n_features()
                ));
            }
            return Ok(Runtime::Trees(Box::new(trees)));
        }
        Self::native_or_tract(&onnx, &proto, scores_output, features)
    }

    /// A graph that is not a lone tree node: the executor when it runs ONNX-ML operators,
    /// tract first otherwise, each the other's fallback.
    fn native_or_tract(
        onnx: &tract_onnx::Onnx,
        proto: &tract_onnx::pb::ModelProto,
        scores_output: &str,
        features: usize,
    ) -> Result<Runtime, String> {
        let plan = || onnx_ml::Graph::load(proto, scores_output, features);
        let uses_onnx_ml = proto
            .graph
            .iter()
            .flat_map(|g| &g.node)
            .any(|n| n.domain == onnx_ml::ML_DOMAIN);
        // A graph of standard operators only is planned natively only if tract fails on it.
        let planned = if uses_onnx_ml {
            match plan() {
                Ok(graph) if graph.uses_onnx_ml() => return Ok(Runtime::Graph(Box::new(graph))),
                // A malformed ONNX-ML node is not handed on: tract's ML operators assert,
                // and index unchecked, on attributes that do not add up.
                Err(NotRunnable::Invalid(message)) => return Err(message),
                other => Some(other),
            }
        } else {
            None
        };
        // tract is third-party code reading an untrusted file: a panic in it is a refusal.
        let tract = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::tract_from_proto(onnx, proto, scores_output, features)
        }));
        let tract_error = match tract {
            Ok(Ok(runtime)) => return Ok(runtime),
            Ok(Err(e)) => e,
            Err(_) => "tract panicked on this graph".into(),
        };
        match planned.unwrap_or_else(plan) {
            Ok(graph) => Ok(Runtime::Graph(Box::new(graph))),
            Err(NotRunnable::Invalid(message)) => Err(format!(
                "{message} (and tract cannot load it either: {tract_error})"
            )),
            Err(NotRunnable::Unsupported(ops)) => {
                Err(unsupported_everywhere(onnx, &ops, &tract_error))
            }
        }
    }

    /// Loads `graph` in tract even when the native evaluator could run it (for comparisons).
    pub fn load_tract(
        graph: &[u8],
        scores_output: &str,
        features: usize,
    ) -> Result<Runtime, String> {
        let onnx = tract_onnx::onnx();
        let proto = parse(&onnx, graph)?;
        Self::tract_from_proto(&onnx, &proto, scores_output, features)
    }

    fn tract_from_proto(
        onnx: &tract_onnx::Onnx,
        proto: &tract_onnx::pb::ModelProto,
        scores_output: &str,
        features: usize,
    ) -> Result<Runtime, String> {
        let tract = |e: TractError| format!("{e:#}");
        let mut model = onnx.model_for_proto_model(proto).map_err(tract)?;
        model
            .select_outputs_by_name([scores_output])
            .map_err(|_| format!("graph output {scores_output:?} not found"))?;
        let batch = model.sym("batch");
        model
            .set_input_fact(0, f32::fact([batch.to_dim(), features.to_dim()]).into())
            .map_err(tract)?;
        let typed = model.into_optimized().map_err(tract)?;
        let shape = &typed.output_fact(0).map_err(tract)?.shape;
        let outputs_per_row = match &**shape {
            [_, k] => k.to_usize().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            format!("output {scores_output} has shape {shape:?}, expected [batch, k]")
        })?;
        let runtime = Runtime::Tract {
            plan: typed.into_runnable().map_err(tract)?,
            outputs_per_row,
        };
        // tract loads some graphs it cannot run (a Sigmoid over doubles, say): find out now.
        runtime
            .run(&vec![0.0; features], features)
            .map_err(|e| format!("scoring a row of zeros failed: {e}"))?;
        Ok(runtime)
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Runtime::Trees(_) => "native-tree-ensemble",
            Runtime::Graph(_) => "native-onnx-ml",
            Runtime::Tract { .. } => "tract",
        }
    }

    pub fn outputs_per_row(&self) -> usize {
        match self {
            Runtime::Trees(trees) => trees.n_outputs(),
            Runtime::Graph(graph) => graph.outputs_per_row(),
            Runtime::Tract {
                outputs_per_row, ..
            } => *outputs_per_row,
        }
    }

    /// Scores for `rows.len() / features` rows, flattened row by row.
    pub fn run(&self, rows: &[f32], features: usize) -> Result<Vec<f32>, InferenceError> {
        match self {
            Runtime::Trees(trees) => Ok(trees.predict(rows)),
            Runtime::Graph(graph) => graph.run(rows, features).map_err(InferenceError::new),
            Runtime::Tract { plan, .. } => {
                let n = rows.len() / features.max(1);
                let input = Tensor::from_shape(&[n, features], rows)
                    .map_err(|e| InferenceError::new(e.to_string()))?;
                let outputs = plan
                    .run(tvec!(input.into_tvalue()))
                    .map_err(|e| InferenceError::new(format!("{e:#}")))?;
                let scores = outputs
                    .first()
                    .ok_or_else(|| InferenceError::new("the graph returned nothing".into()))?
                    .to_plain_array_view::<f32>()
                    .map_err(|e| InferenceError::new(e.to_string()))?;
                Ok(scores.iter().copied().collect())
            }
        }
    }
}

/// Why neither runtime loads a graph: the operators that no runtime implements when there
/// are some (what the user must change), else tract's own error.
fn unsupported_everywhere(
    onnx: &tract_onnx::Onnx,
    native_missing: &[String],
    tract: &str,
) -> String {
    let nowhere: Vec<&str> = native_missing
        .iter()
        .map(String::as_str)
        // tract registers operators by bare name, whatever their domain.
        .filter(|op| {
            let name = op.rsplit_once(':').map_or(*op, |(_, name)| name);
            !onnx.op_register.0.contains_key(name)
        })
        .collect();
    if nowhere.is_empty() {
        format!("tract cannot load the graph: {tract}")
    } else {
        format!(
            "unsupported operator{} {}: neither modelgate's ONNX-ML executor nor tract implements {}",
            if nowhere.len() == 1 { "" } else { "s" },
            nowhere.join(", "),
            if nowhere.len() == 1 { "it" } else { "them" },
        )
    }
}
