//! Native evaluator for ONNX-ML TreeEnsembleClassifier / TreeEnsembleRegressor graphs.
//!
//! tract interprets these operators generically (milliseconds per row for a 100-tree
//! forest) and rejects some scikit-learn exports, so a graph that is nothing but one tree
//! ensemble is evaluated here instead. At load time every tree is flattened into one array
//! of 16-byte nodes laid out depth-first; at run time several trees are walked in lockstep
//! so that their dependent memory loads overlap instead of queueing behind each other.
//!
//! Semantics follow the ONNX-ML operator spec, and onnxruntime where the spec is silent
//! (notably two-class classifiers whose weights name a single class, which is how
//! scikit-learn forests and gradient boosting are exported). Deliberate differences from
//! onnxruntime 1.32, none of them on graphs that scikit-learn exports produce:
//! - a single-target regressor applies LOGISTIC / SOFTMAX / SOFTMAX_ZERO as the spec says
//!   (onnxruntime ignores everything but PROBIT there);
//! - a target or class that no reached leaf contributes to still receives its base value
//!   (onnxruntime reports 0 for it in several code paths);
//! - in the one-weighted-class binary layout, SOFTMAX, SOFTMAX_ZERO and PROBIT are applied
//!   to `[-s, s]` (onnxruntime leaves SOFTMAX scores raw and writes PROBIT half-initialised),
//!   and the score lands in the positive slot whichever class id carries it (onnxruntime
//!   gives `[0, s]` when that id is 1);
//! - a two-class model with weights for both classes is scored like a multi-class one
//!   (onnxruntime's output there depends on which classes the reached leaves happen to name).

mod build;
mod graph;
mod node;
#[cfg(test)]
mod tests;
pub(crate) mod transform;
mod v5;

use prost::Message;
use tract_onnx::pb;

use super::onnx_attrs::{self, AttrError};

use node::{
    GtRule, GteRule, LeqRule, LtRule, MixedRule, NanTracked, Node, Rule, WalkKind, FEATURE_MASK,
};
use transform::{Aggregate, PostTransform};

/// Trees walked together. Eight independent load chains hide most of the L1/L2 latency
/// without spilling the lane indices out of registers.
const LANES: usize = 8;

/// Scores of up to this many outputs live on the stack in `predict_row`.
const INLINE_OUTPUTS: usize = 16;

/// Why a tree-ensemble graph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TreeEnsembleError {
    #[error("invalid ONNX protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("tree ensemble {0}")]
    Attribute(#[from] AttrError),
}

fn attr_err(attribute: &'static str, reason: impl Into<String>) -> TreeEnsembleError {
    onnx_attrs::attr_err(attribute, reason).into()
}

/// Class labels of a classifier, in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassLabels {
    Int64(Vec<i64>),
    Strings(Vec<String>),
}

impl ClassLabels {
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Int64(v) => v.len(),
            ClassLabels::Strings(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A loaded tree ensemble; immutable, so one instance can serve concurrent requests.
pub struct TreeEnsemble {
    input_name: String,
    scores_output: String,
    label_output: Option<String>,
    class_labels: Option<ClassLabels>,
    n_features: usize,
    n_outputs: usize,
    n_trees: usize,
    nodes: Vec<Node>,
    /// Root of every tree, padded with a weightless leaf to a multiple of `LANES`.
    roots: Vec<u32>,
    /// For each group of `LANES` roots, the steps after which all of them sit on a leaf.
    group_steps: Vec<u32>,
    /// Trees walked alone after the groups, with their depths.
    single_roots: Vec<(u32, u32)>,
    walk: WalkKind,
    /// Some branch sends NaN to its true side; uniform walks then also check for NaN.
    nan_tracked: bool,
    leaves: Leaves,
    aggregate: Aggregate,
    finish: Finish,
    base_values: Vec<f64>,
    post_transform: PostTransform,
}

// Summarised by hand: a derived Debug would print every node of a large forest into logs.
impl std::fmt::Debug for TreeEnsemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeEnsemble")
            .field("input", &self.input_name)
            .field("scores_output", &self.scores_output)
            .field("n_features", &self.n_features)
            .field("n_outputs", &self.n_outputs)
            .field("n_trees", &self.n_trees)
            .field("n_nodes", &self.nodes.len())
            .field("walk", &self.walk)
            .field("nan_tracked", &self.nan_tracked)
            .field("aggregate", &self.aggregate)
            .field("finish", &self.finish)
            .field("post_transform", &self.post_transform)
            .finish_non_exhaustive()
    }
}
/// Where each leaf's contribution goes.
#[derive(Debug)]
enum Leaves {
    /// Every weight feeds the same output under SUM/AVERAGE (binary classifiers exported
    /// with one weighted class, single-target regressors): one value per node, no loop.
    Single { output: usize, values: Vec<f64> },
    /// General case: `ranges[node]` delimits that node's weights.
    Sparse {
        ranges: Vec<[u32; 2]>,
        weights: Vec<Weight>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Weight {
    output: u32,
    value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Each output is its aggregated score plus its base value.
    PerOutput,
    /// Two labels but weights for one class only (onnxruntime's binary convention): the
    /// single score `s` becomes `[1 - s, s]` when it is a probability (no post-transform and
    /// no negative weight), otherwise `[-s, s]` before the post-transform.
    Binary {
        score_index: usize,
        complement: bool,
    },
}

impl TreeEnsemble {
    /// Decodes an ONNX model and loads it like [`TreeEnsemble::from_model`].
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Option<TreeEnsemble>, TreeEnsembleError> {
        let model = pb::ModelProto::decode(bytes)?;
        Self::from_model(&model)
    }

    /// Ok(None) when the graph is not one this evaluator recognises (caller then uses tract).
    /// Recognised: the graph's nodes are exactly one TreeEnsembleClassifier or
    /// TreeEnsembleRegressor (domain "ai.onnx.ml") fed directly by the single float graph
    /// input, optionally followed by Identity nodes that rename its outputs (skl2onnx adds
    /// one for some estimators and opsets).
    pub fn from_model(model: &pb::ModelProto) -> Result<Option<TreeEnsemble>, TreeEnsembleError> {
        let Some(graph) = model.graph.as_ref() else {
            return Ok(None);
        };
        let Some(shape) = graph::recognise(graph) else {
            return Ok(None);
        };
        build::build(shape)
    }

    /// Loads one TreeEnsembleClassifier / TreeEnsembleRegressor / opset-5 TreeEnsemble node
    /// of a larger graph. Its rows must hold at least `n_features()` values: one past the highest feature it tests.
    pub fn from_node(node: &pb::NodeProto) -> Result<TreeEnsemble, TreeEnsembleError> {
        let shape = graph::standalone(node)
            .ok_or_else(|| attr_err("op_type", "not a tree-ensemble node with an input"))?;
        build::build(shape)?.ok_or_else(|| attr_err("nodes_featureids", "no split reads a feature"))
    }

    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of class probabilities (classifier) or targets (regressor) per row.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Name of the graph output holding the scores/probabilities (e.g. "probabilities", "variable").
    pub fn scores_output_name(&self) -> &str {
        &self.scores_output
    }

    /// Name of the graph output holding predicted labels, for classifiers that expose one.
    pub fn label_output_name(&self) -> Option<&str> {
        self.label_output.as_deref()
    }

    /// Class labels in score order; `None` for regressors.
    pub fn class_labels(&self) -> Option<&ClassLabels> {
        self.class_labels.as_ref()
    }

    /// Evaluates one row.
    ///
    /// Precondition: `row.len() >= n_features()` (extra values are ignored) and
    /// `out.len() == n_outputs()`. A call that breaks it trips a debug assertion; release
    /// builds fill `out` with NaN instead of panicking.
    pub fn predict_row(&self, row: &[f32], out: &mut [f32]) {
        debug_assert!(row.len() >= self.n_features, "row shorter than n_features");
        debug_assert_eq!(out.len(), self.n_outputs, "out length must equal n_outputs");
        if row.len() < self.n_features || out.len() != self.n_outputs {
            out.fill(f32::NAN);
            return;
        }
        let row = &row[..self.n_features];
        if self.n_outputs <= INLINE_OUTPUTS {
            let mut scores = [0.0; INLINE_OUTPUTS];
            let mut seen = [false; INLINE_OUTPUTS];
            let n = self.n_outputs;
            self.dispatch_rows(row, out, &mut scores[..n], &mut seen[..n]);
        } else {
            let mut scores = vec![0.0; self.n_outputs];
            let mut seen = vec![false; self.n_outputs];
            self.dispatch_rows(row, out, &mut scores, &mut seen);
        }
    }

    /// Evaluates `rows.len() / n_features()` rows into a flat Vec of n_rows * n_outputs
    /// (a trailing partial row is ignored).
    pub fn predict(&self, rows: &[f32]) -> Vec<f32> {
        let n_rows = rows.len() / self.n_features;
        let mut out = vec![0.0; n_rows * self.n_outputs];
        let mut scores = vec![0.0; self.n_outputs];
        let mut seen = vec![false; self.n_outputs];
        self.dispatch_rows(
            &rows[..n_rows * self.n_features],
            &mut out,
            &mut scores,
            &mut seen,
        );
        out
    }

    /// Picks the walk specialisation once for a whole batch.
    fn dispatch_rows(&self, rows: &[f32], out: &mut [f32], scores: &mut [f64], seen: &mut [bool]) {
        match self.walk {
            WalkKind::Leq => self.eval_uniform::<LeqRule>(rows, out, scores, seen),
            WalkKind::Lt => self.eval_uniform::<LtRule>(rows, out, scores, seen),
            WalkKind::Gte => self.eval_uniform::<GteRule>(rows, out, scores, seen),
            WalkKind::Gt => self.eval_uniform::<GtRule>(rows, out, scores, seen),
            WalkKind::Mixed => self.eval_rows::<MixedRule>(rows, out, scores, seen),
        }
    }

    fn eval_uniform<R: Rule>(
        &self,
        rows: &[f32],
        out: &mut [f32],
        scores: &mut [f64],
        seen: &mut [bool],
    ) {
        if self.nan_tracked {
            self.eval_rows::<NanTracked<R>>(rows, out, scores, seen);
        } else {
            self.eval_rows::<R>(rows, out, scores, seen);
        }
    }

    fn eval_rows<R: Rule>(
        &self,
        rows: &[f32],
        out: &mut [f32],
        scores: &mut [f64],
        seen: &mut [bool],
    ) {
        let rows = rows.chunks_exact(self.n_features);
        for (row, out) in rows.zip(out.chunks_exact_mut(self.n_outputs)) {
            scores.fill(0.0);
            seen.fill(false);
            self.accumulate::<R>(row, scores, seen);
            self.finish(scores, seen, out);
        }
    }

    fn accumulate<R: Rule>(&self, row: &[f32], scores: &mut [f64], seen: &mut [bool]) {
        match &self.leaves {
            Leaves::Single { output, values } => {
                let mut sum = 0.0;
                self.for_each_leaf::<R>(row, |leaf| sum += values[leaf as usize]);
                scores[*output] = sum;
                seen[*output] = true;
            }
            Leaves::Sparse { ranges, weights } => {
                self.for_each_leaf::<R>(row, |leaf| {
                    let [start, end] = ranges[leaf as usize];
                    for w in &weights[start as usize..end as usize] {
                        self.aggregate.add(scores, seen, w.output as usize, w.value);
                    }
                });
            }
        }
    }

    /// The leaf `row` reaches in every tree (padding lanes reach the weightless leaf).
    #[inline(always)]
    fn for_each_leaf<R: Rule>(&self, row: &[f32], mut visit: impl FnMut(u32)) {
        let groups = self.roots.chunks_exact(LANES).zip(&self.group_steps);
        for (roots, &steps) in groups {
            for leaf in self.walk_group::<R>(row, roots, steps) {
                visit(leaf);
            }
        }
        for &(root, steps) in &self.single_roots {
            let mut at = root;
            for _ in 0..steps {
                at = self.step::<R>(row, at);
            }
            visit(at);
        }
    }

    /// Walks `LANES` trees for `steps` levels; lanes that reach a leaf early spin on it.
    #[inline(always)]
    fn walk_group<R: Rule>(&self, row: &[f32], roots: &[u32], steps: u32) -> [u32; LANES] {
        let mut at = [0u32; LANES];
        at.copy_from_slice(roots);
        for _ in 0..steps {
            for lane in &mut at {
                *lane = self.step::<R>(row, *lane);
            }
        }
        at
    }

    /// One level down from node `at`.
    #[inline(always)]
    fn step<R: Rule>(&self, row: &[f32], at: u32) -> u32 {
        let node = &self.nodes[at as usize];
        let x = row[(node.feature & FEATURE_MASK) as usize];
        node.next[usize::from(R::holds(x, node))]
    }

    fn finish(&self, scores: &mut [f64], seen: &[bool], out: &mut [f32]) {
        match self.finish {
            Finish::Binary {
                score_index,
                complement,
            } => {
                let s = scores[score_index] + self.base_values.first().copied().unwrap_or(0.0);
                let pair = if complement { [1.0 - s, s] } else { [-s, s] };
                scores.copy_from_slice(&pair);
            }
            Finish::PerOutput => {
                for (k, score) in scores.iter_mut().enumerate() {
                    *score = self.aggregate.finish(*score, seen[k], self.n_trees);
                    if let Some(base) = self.base_values.get(k) {
                        *score += base;
                    }
                }
            }
        }
        self.post_transform.apply(scores);
        for (o, s) in out.iter_mut().zip(scores.iter()) {
            *o = *s as f32;
        }
    }
}
