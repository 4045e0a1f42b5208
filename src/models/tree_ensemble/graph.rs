//! Recognising a graph this evaluator can run: one tree-ensemble node fed by the single
//! float input, optionally followed by Identity renames.

use tract_onnx::pb;

use crate::models::onnx_attrs::DATA_TYPE_FLOAT;

pub(super) const ML_DOMAIN: &str = "ai.onnx.ml";
pub(super) const CLASSIFIER_OP: &str = "TreeEnsembleClassifier";
pub(super) const REGRESSOR_OP: &str = "TreeEnsembleRegressor";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Classifier,
    Regressor,
}

/// The parts of a recognised graph that loading needs.
pub(super) struct Recognised<'a> {
    pub(super) node: &'a pb::NodeProto,
    pub(super) kind: Kind,
    pub(super) input_name: &'a str,
    /// Input width declared by the graph, when it is a static `[N, F]` shape.
    pub(super) declared_features: Option<usize>,
    pub(super) scores_output: String,
    pub(super) label_output: Option<String>,
}

pub(super) fn recognise(graph: &pb::GraphProto) -> Option<Recognised<'_>> {
    let input = single_real_input(graph)?;
    if !is_float_input(input) {
        return None;
    }
    let mut tree_node = None;
    for node in &graph.node {
        if node.domain == ML_DOMAIN
            && [CLASSIFIER_OP, REGRESSOR_OP, super::v5::OP].contains(&node.op_type.as_str())
        {
            if tree_node.replace(node).is_some() {
                return None;
            }
        } else if !is_identity(node) {
            return None;
        }
    }
    let node = tree_node?;
    if node.input.len() != 1 || node.input[0] != input.name {
        return None;
    }
    let (kind, scores_index) = if node.op_type == CLASSIFIER_OP {
        (Kind::Classifier, 1)
    } else {
        (Kind::Regressor, 0)
    };
    let scores_output = graph_output_for(graph, node.output.get(scores_index)?)?;
    let label_output = match kind {
        Kind::Classifier => node.output.first().and_then(|l| graph_output_for(graph, l)),
        Kind::Regressor => None,
    };
    Some(Recognised {
        node,
        kind,
        input_name: &input.name,
        declared_features: declared_width(input),
        scores_output,
        label_output,
    })
}

/// One tree-ensemble node taken out of a larger graph: its input and outputs are the
/// node's own, and its width is whatever its splits read.
pub(super) fn standalone(node: &pb::NodeProto) -> Option<Recognised<'_>> {
    let kind = match (node.domain.as_str(), node.op_type.as_str()) {
        (ML_DOMAIN, CLASSIFIER_OP) => Kind::Classifier,
        (ML_DOMAIN, REGRESSOR_OP | super::v5::OP) => Kind::Regressor,
        _ => return None,
    };
    let scores_index = usize::from(kind == Kind::Classifier);
    Some(Recognised {
        node,
        kind,
        input_name: node.input.first()?,
        declared_features: None,
        scores_output: node.output.get(scores_index)?.clone(),
        label_output: match kind {
            Kind::Classifier => node.output.first().cloned(),
            Kind::Regressor => None,
        },
    })
}

/// The one graph input that is not an initializer (older IRs list initializers as inputs).
fn single_real_input(graph: &pb::GraphProto) -> Option<&pb::ValueInfoProto> {
    let mut real = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name));
    let input = real.next()?;
    real.next().is_none().then_some(input)
}

fn input_tensor_type(input: &pb::ValueInfoProto) -> Option<&pb::type_proto::Tensor> {
    match input.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t),
    }
}

/// Rows are evaluated as f32, so other element types are left to tract.
fn is_float_input(input: &pb::ValueInfoProto) -> bool {
    input_tensor_type(input).is_none_or(|t| t.elem_type == DATA_TYPE_FLOAT)
}

fn declared_width(input: &pb::ValueInfoProto) -> Option<usize> {
    let dims = &input_tensor_type(input)?.shape.as_ref()?.dim;
    match dims.as_slice() {
        [_, width] => match width.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(w)) if w > 0 => {
                usize::try_from(w).ok()
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_identity(node: &pb::NodeProto) -> bool {
    node.op_type == "Identity"
        && (node.domain.is_empty() || node.domain == "ai.onnx")
        && node.input.len() == 1
        && node.output.len() == 1
}

/// Follows Identity renames from a tree-node output to the graph output that exposes it.
fn graph_output_for(graph: &pb::GraphProto, tensor: &str) -> Option<String> {
    let mut name = tensor;
    // Each hop consumes one node, so this bound only stops Identity cycles.
    for _ in 0..=graph.node.len() {
        if graph.output.iter().any(|o| o.name == name) {
            return Some(name.to_owned());
        }
        let next = graph
            .node
            .iter()
            .find(|n| is_identity(n) && n.input[0] == name)?;
        name = &next.output[0];
    }
    None
}
