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
/// The default domain, which nodes may also write as "".
pub const STANDARD_DOMAIN: &str = "ai.onnx";

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

/// Every operator the executor runs, as `(domain, op_type, builder)`.
const OPERATORS: &[(&str, &str, Build)] = &[
    (STANDARD_DOMAIN, "Add", arith::add),
    (STANDARD_DOMAIN, "Sub", arith::sub),
    (STANDARD_DOMAIN, "Mul", arith::mul),
    (STANDARD_DOMAIN, "Div", arith::div),
    (STANDARD_DOMAIN, "Cast", arith::cast),
    (STANDARD_DOMAIN, "Identity", arith::identity),
    (STANDARD_DOMAIN, "Concat", layout::concat),
    (STANDARD_DOMAIN, "Gather", layout::gather),
    (STANDARD_DOMAIN, "Reshape", layout::reshape),
    (STANDARD_DOMAIN, "Flatten", layout::flatten),
    (STANDARD_DOMAIN, "MatMul", dense::matmul),
    (STANDARD_DOMAIN, "Gemm", dense::gemm),
    (STANDARD_DOMAIN, "Relu", dense::relu),
    (STANDARD_DOMAIN, "Sigmoid", dense::sigmoid),
    (STANDARD_DOMAIN, "Tanh", dense::tanh),
    (STANDARD_DOMAIN, "Abs", dense::abs),
    (STANDARD_DOMAIN, "Neg", dense::neg),
    (STANDARD_DOMAIN, "Exp", dense::exp),
    (STANDARD_DOMAIN, "Log", dense::log),
    (STANDARD_DOMAIN, "Sqrt", dense::sqrt),
    (STANDARD_DOMAIN, "ReduceSum", reduce::reduce_sum),
    (STANDARD_DOMAIN, "Softmax", dense::softmax),
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

/// The node's domain, with the default one spelled out.
pub fn domain_of(node: &pb::NodeProto) -> &str {
    if node.domain.is_empty() {
        STANDARD_DOMAIN
    } else {
        &node.domain
    }
}

/// The node's operator as `domain:op_type`.
pub fn qualified_name(node: &pb::NodeProto) -> String {
    format!("{}:{}", domain_of(node), node.op_type)
}

pub fn builder(node: &pb::NodeProto) -> Option<Build> {
    let domain = domain_of(node);
    OPERATORS
        .iter()
        .find(|(d, op, _)| *d == domain && *op == node.op_type)
        .map(|(_, _, build)| *build)
}

/// The operators the executor implements, for documentation and refusals.
pub fn supported() -> impl Iterator<Item = String> {
    OPERATORS
        .iter()
        .map(|(domain, op, _)| format!("{domain}:{op}"))
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
