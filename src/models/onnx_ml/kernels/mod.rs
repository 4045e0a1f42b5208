//! The operators the executor implements, one family per module, and the table that maps
//! an ONNX `(domain, op_type)` to the function building its kernel from a node.

mod arith;
mod dense;
mod encode;
mod layout;
mod linear;
mod preprocess;
mod reduce;
mod trees;

use std::borrow::Cow;

use tract_onnx::pb;

use super::tensor::Tensor;
use crate::models::onnx_attrs::Attrs;

pub const ML_DOMAIN: &str = "ai.onnx.ml";

/// One node's computation. Arguments arrive owned when this node is their last reader, so
/// element-wise kernels can work in place.
pub trait Kernel: Send + Sync {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String>;
}

/// What a kernel builder knows about its node at load time.
pub struct NodeCtx<'a> {
    pub node: &'a pb::NodeProto,
    /// Each input's value when it is a constant (initializer or folded), else None.
    pub consts: Vec<Option<&'a Tensor>>,
    /// Whether each output is read by a later node or is the graph's scores.
    pub used: Vec<bool>,
}

impl<'a> NodeCtx<'a> {
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs(self.node)
    }

    /// The constant value of input `index`, which this operator needs at load time.
    pub fn const_input(&self, index: usize, what: &str) -> Result<&'a Tensor, String> {
        self.consts.get(index).copied().flatten().ok_or_else(|| {
            format!(
                "{} input {index} ({what}) must be a constant (an initializer)",
                self.node.op_type
            )
        })
    }
}

pub type Build = fn(&NodeCtx<'_>) -> Result<Box<dyn Kernel>, String>;

/// Every operator the executor runs, as `(domain, op_type, builder)`; `""` is `ai.onnx`.
const OPERATORS: &[(&str, &str, Build)] = &[
    ("", "Add", arith::add),
    ("", "Sub", arith::sub),
    ("", "Mul", arith::mul),
    ("", "Div", arith::div),
    ("", "Cast", arith::cast),
    ("", "Identity", arith::identity),
    ("", "Concat", layout::concat),
    ("", "Gather", layout::gather),
    ("", "Reshape", layout::reshape),
    ("", "Flatten", layout::flatten),
    ("", "MatMul", dense::matmul),
    ("", "Gemm", dense::gemm),
    ("", "Relu", dense::relu),
    ("", "Sigmoid", dense::sigmoid),
    ("", "Tanh", dense::tanh),
    ("", "Abs", dense::abs),
    ("", "Neg", dense::neg),
    ("", "Exp", dense::exp),
    ("", "Log", dense::log),
    ("", "Sqrt", dense::sqrt),
    ("", "ReduceSum", reduce::reduce_sum),
    ("", "Softmax", dense::softmax),
    (
        ML_DOMAIN,
        "ArrayFeatureExtractor",
        layout::array_feature_extractor,
    ),
    (ML_DOMAIN, "FeatureVectorizer", layout::feature_vectorizer),
    (ML_DOMAIN, "Scaler", preprocess::scaler),
    (ML_DOMAIN, "Imputer", preprocess::imputer),
    (ML_DOMAIN, "Normalizer", preprocess::normalizer),
    (ML_DOMAIN, "Binarizer", preprocess::binarizer),
    (ML_DOMAIN, "OneHotEncoder", encode::one_hot_encoder),
    (ML_DOMAIN, "LabelEncoder", encode::label_encoder),
    (ML_DOMAIN, "LinearClassifier", linear::classifier),
    (ML_DOMAIN, "LinearRegressor", linear::regressor),
    (ML_DOMAIN, "TreeEnsembleClassifier", trees::ensemble),
    (ML_DOMAIN, "TreeEnsembleRegressor", trees::ensemble),
    (ML_DOMAIN, "TreeEnsemble", trees::ensemble),
];

/// The node's operator as `domain:op_type`, with the default domain spelled out.
pub fn qualified_name(node: &pb::NodeProto) -> String {
    let domain = if node.domain.is_empty() {
        "ai.onnx"
    } else {
        &node.domain
    };
    format!("{domain}:{}", node.op_type)
}

pub fn builder(node: &pb::NodeProto) -> Option<Build> {
    let domain = if node.domain == "ai.onnx" {
        ""
    } else {
        &node.domain
    };
    OPERATORS
        .iter()
        .find(|(d, op, _)| *d == domain && *op == node.op_type)
        .map(|(_, _, build)| *build)
}

/// The operators the executor implements, for documentation and refusals.
pub fn supported() -> impl Iterator<Item = String> {
    OPERATORS.iter().map(|(domain, op, _)| {
        let domain = if domain.is_empty() { "ai.onnx" } else { domain };
        format!("{domain}:{op}")
    })
}

/// The single argument of a one-input kernel.
fn only<'a>(mut args: Vec<Cow<'a, Tensor>>) -> Result<Cow<'a, Tensor>, String> {
    match args.len() {
        1 => Ok(args.remove(0)),
        n => Err(format!("expected 1 input, got {n}")),
    }
}

/// The label of the highest score (the first on ties), as a classifier's label output.
fn best_label<T: Copy + PartialOrd>(scores: &[T], labels: &[i64]) -> f64 {
    let best = (0..scores.len()).fold(0, |best, i| if scores[i] > scores[best] { i } else { best });
    labels.get(best).copied().unwrap_or(0) as f64
}
