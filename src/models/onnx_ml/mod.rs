//! Native executor for the ONNX-ML graphs that scikit-learn, XGBoost and LightGBM exports
//! produce: preprocessing (Scaler, Imputer, OneHotEncoder, ...), column plumbing (Gather,
//! Concat, Reshape, ...) and the model (tree ensembles, linear models).
//!
//! Why our own executor rather than tract: tract implements none of the ONNX-ML
//! preprocessing operators, and on these graphs its per-call cost (a plan run, dynamic
//! shapes, tensor allocation and type dispatch per node) is many times the few hundred
//! nanoseconds the model itself takes. Tabular graphs are short chains over `[rows,
//! columns]` values, so a schedule computed once at load, with tensors moved from step to
//! step and modified in place when no one else reads them, runs them at the speed of the
//! model's own arithmetic. Tree ensembles inside the graph run on the native tree
//! evaluator. A graph with any operator this executor does not implement (an MLP's MatMul,
//! say) is left whole to tract; see `docs/models.md`.

mod kernels;
mod plan;
mod tensor;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use tract_onnx::pb;

use plan::{Plan, Refusal, Source};
use tensor::Tensor;

pub use kernels::{supported as supported_operators, ML_DOMAIN};

/// A planned graph; immutable, so one instance serves concurrent requests.
pub struct Graph {
    plan: Plan,
    outputs_per_row: usize,
}

/// Why the executor does not run a graph.
#[derive(Debug)]
pub enum NotRunnable {
    /// Operators it does not implement: the graph may still run elsewhere.
    Unsupported(Vec<String>),
    /// A graph it cannot run, whatever runs it: the message says what is wrong.
    Invalid(String),
}

impl Graph {
    /// Plans `model` to compute the tensor named `scores` from rows of `features` values.
    pub fn load(
        model: &pb::ModelProto,
        scores: &str,
        features: usize,
    ) -> Result<Graph, NotRunnable> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| NotRunnable::Invalid("the model has no graph".into()))?;
        let plan = plan::plan(graph, scores).map_err(|refusal| match refusal {
            Refusal::Unsupported(ops) => NotRunnable::Unsupported(ops),
            Refusal::Invalid(message) => NotRunnable::Invalid(message),
        })?;
        let mut graph = Graph {
            plan,
            outputs_per_row: 0,
        };
        // The scores' width is only known by running: shapes flow through the kernels.
        let probe = graph
            .run(&vec![0.0; features], features)
            .map_err(|e| NotRunnable::Invalid(format!("scoring a row of zeros failed: {e}")))?;
        graph.outputs_per_row = probe.len();
        Ok(graph)
    }

    pub fn outputs_per_row(&self) -> usize {
        self.outputs_per_row
    }

    /// The operators it runs, as `domain:op_type`.
    pub fn operators(&self) -> &[String] {
        &self.plan.operators
    }

    /// Whether it runs any ONNX-ML operator. A graph of standard operators only (a neural
    /// network) is better served by tract's vectorised kernels.
    pub fn uses_onnx_ml(&self) -> bool {
        let ml = format!("{}:", kernels::ML_DOMAIN);
        self.operators().iter().any(|op| op.starts_with(&ml))
    }

    /// Scores for `rows.len() / features` rows, flattened row by row.
    pub fn run(&self, rows: &[f32], features: usize) -> Result<Vec<f32>, String> {
        let plan = &self.plan;
        let n = rows.len() / features.max(1);
        let input = Tensor::coerced(
            plan.input_elem,
            vec![n, features],
            rows[..n * features].iter().map(|&v| f64::from(v)).collect(),
        )?;
        let mut slots: Vec<Option<Tensor>> = vec![None; plan.n_slots];
        slots[0] = Some(input);
        for step in &plan.steps {
            let mut args = Vec::with_capacity(step.inputs.len());
            for source in &step.inputs {
                args.push(match *source {
                    Source::Const(i) => Cow::Borrowed(&plan.consts[i]),
                    Source::Slot { slot, last } => {
                        let value = if last {
                            slots[slot].take()
                        } else {
                            slots[slot].clone()
                        };
                        Cow::Owned(value.ok_or_else(|| format!("{}: input missing", step.label))?)
                    }
                });
            }
            let values = step
                .kernel
                .run(args)
                .map_err(|e| format!("{}: {e}", step.label))?;
            for (value, slot) in values.into_iter().zip(&step.outputs) {
                if let Some(slot) = slot {
                    slots[*slot] = Some(value);
                }
            }
        }
        let scores = slots[plan.scores_slot]
            .take()
            .ok_or("the graph produced no scores")?;
        let rows_match = match scores.shape.as_slice() {
            [rows] | [rows, _] => *rows == n,
            _ => false,
        };
        if !rows_match {
            return Err(format!(
                "the scores have shape {:?}, expected [{n}, k]",
                scores.shape
            ));
        }
        Ok(scores.data.iter().map(|&v| v as f32).collect())
    }
}
