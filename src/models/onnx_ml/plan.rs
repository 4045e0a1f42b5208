//! Turning an ONNX graph into the executor's schedule: only the nodes the scores depend on,
//! in order, each reading constants or numbered slots; nodes whose inputs are all constant
//! are run once here instead of on every request.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

use super::kernels::{self, Kernel, NodeCtx};
use super::tensor::{Elem, Tensor};
use crate::models::onnx_attrs::numeric_values;

/// Where a step reads an argument.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    Const(usize),
    /// `last`: no later read, so the value can be moved out and reused in place.
    Slot {
        slot: usize,
        last: bool,
    },
}

pub(super) struct Step {
    pub(super) kernel: Box<dyn Kernel>,
    pub(super) inputs: Vec<Source>,
    /// The slot of each output, or None when nothing reads it.
    pub(super) outputs: Vec<Option<usize>>,
    /// `domain:op_type (node name)`, for error messages.
    pub(super) label: String,
}

pub(super) struct Plan {
    pub(super) input_elem: Elem,
    pub(super) steps: Vec<Step>,
    pub(super) consts: Vec<Tensor>,
    pub(super) n_slots: usize,
    pub(super) scores_slot: usize,
    /// Distinct operators the schedule runs (`domain:op_type`), sorted.
    pub(super) operators: Vec<String>,
}

/// Why a graph is not planned.
pub(super) enum Refusal {
    /// Operators the executor does not implement (another runtime may).
    Unsupported(Vec<String>),
    /// The graph is malformed or uses a supported operator in an unsupported way.
    Invalid(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal::Invalid(message)
    }
}

/// The graph's constant tensors by name: initializers and `Constant` nodes.
fn initializers(graph: &pb::GraphProto) -> HashMap<&str, Tensor> {
    graph
        .initializer
        .iter()
        .filter_map(|t| Some((t.name.as_str(), constant(t).ok()?)))
        .collect()
}

/// A constant tensor; string tensors and other types the executor does not hold fail.
fn constant(t: &pb::TensorProto) -> Result<Tensor, String> {
    let elem = Elem::from_onnx(t.data_type).ok_or_else(|| {
        format!(
            "constant `{}` has unsupported data type {}",
            t.name, t.data_type
        )
    })?;
    let shape = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("constant `{}` has dims {:?}", t.name, t.dims))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Tensor::new(elem, shape, numeric_values("value", t)?)
}

fn label(node: &pb::NodeProto) -> String {
    format!("{} (node `{}`)", kernels::qualified_name(node), node.name)
}

/// The nodes `scores` depends on, in graph order (ONNX requires topological order).
fn needed_nodes<'g>(
    graph: &'g pb::GraphProto,
    input: &str,
    consts: &HashMap<&str, Tensor>,
    scores: &str,
) -> Result<Vec<&'g pb::NodeProto>, Refusal> {
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut needed = HashSet::new();
    let mut pending = vec![scores];
    while let Some(name) = pending.pop() {
        if name == input || consts.contains_key(name) {
            continue;
        }
        let Some(&i) = producer.get(name) else {
            if let Some(t) = graph.initializer.iter().find(|t| t.name == name) {
                // A constant the executor cannot hold (a string tensor, say).
                let reason = constant(t).err().unwrap_or_default();
                return Err(Refusal::Invalid(reason));
            }
            return Err(if name == scores {
                Refusal::Invalid(format!("the graph has no tensor named {scores:?}"))
            } else {
                Refusal::Invalid(format!("tensor {name:?} is read but nothing produces it"))
            });
        };
        if needed.insert(i) {
            pending.extend(graph.node[i].input.iter().map(String::as_str));
        }
    }
    let nodes: Vec<_> = (0..graph.node.len())
        .filter(|i| needed.contains(i))
        .map(|i| &graph.node[i])
        .collect();
    if let Some(zipmap) = nodes.iter().find(|n| n.op_type == "ZipMap") {
        return Err(Refusal::Invalid(format!(
            "{} turns scores into a list of maps; name its input {:?} as the model's output tensor instead",
            label(zipmap),
            zipmap.input.first().map_or("", String::as_str)
        )));
    }
    let mut unsupported: Vec<String> = nodes
        .iter()
        .filter(|n| !is_constant_node(n) && kernels::builder(n).is_none())
        .map(|n| kernels::qualified_name(n))
        .collect();
    if !unsupported.is_empty() {
        unsupported.sort();
        unsupported.dedup();
        return Err(Refusal::Unsupported(unsupported));
    }
    Ok(nodes)
}

fn is_constant_node(node: &pb::NodeProto) -> bool {
    node.op_type == "Constant" && kernels::domain_of(node) == kernels::STANDARD_DOMAIN
}

pub(super) fn plan(graph: &pb::GraphProto, scores: &str) -> Result<Plan, Refusal> {
    let mut consts_by_name = initializers(graph);
    let real_inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .collect();
    let [input] = real_inputs.as_slice() else {
        return Err(Refusal::Invalid(format!(
            "the graph has {} inputs; modelgate feeds it one [batch, features] tensor",
            real_inputs.len()
        )));
    };
    let input_elem = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => Elem::from_onnx(t.elem_type),
        None => Some(Elem::F32),
    }
    .filter(|e| e.is_float())
    .ok_or_else(|| {
        Refusal::Invalid(format!(
            "the graph input `{}` is not a float tensor; modelgate feeds it float rows",
            input.name
        ))
    })?;
    let nodes = needed_nodes(graph, &input.name, &consts_by_name, scores)?;

    // The step index of each tensor's last reader; the scores are read after the last step.
    let mut last_read: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for name in &node.input {
            last_read.insert(name, i);
        }
    }
    last_read.insert(scores, usize::MAX);

    let mut slots: HashMap<&str, usize> = HashMap::from([(input.name.as_str(), 0)]);
    let mut consts: Vec<Tensor> = Vec::new();
    let mut const_index: HashMap<&str, usize> = HashMap::new();
    let mut steps = Vec::new();
    let mut operators = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if is_constant_node(node) {
            let value = crate::models::onnx_attrs::Attrs(node)
                .tensor("value")
                .map_err(String::from)?
                .ok_or_else(|| format!("{}: only a `value` tensor is supported", label(node)))?;
            let output = node.output.first().map_or("", String::as_str);
            consts_by_name.insert(
                output,
                constant(value).map_err(|e| format!("{}: {e}", label(node)))?,
            );
            continue;
        }
        let ctx = NodeCtx {
            node,
            consts: node
                .input
                .iter()
                .map(|name| consts_by_name.get(name.as_str()))
                .collect(),
            used: node
                .output
                .iter()
                .map(|o| last_read.get(o.as_str()).is_some_and(|&r| r > i))
                .collect(),
        };
        let build =
            kernels::builder(node).ok_or_else(|| format!("{} has no kernel", label(node)))?;
        let kernel = build(&ctx).map_err(|e| format!("{}: {e}", label(node)))?;
        if !node.input.is_empty() && ctx.consts.iter().all(Option::is_some) {
            let args = ctx
                .consts
                .iter()
                .flatten()
                .map(|t| Cow::Borrowed(*t))
                .collect();
            let values = kernel
                .run(args)
                .map_err(|e| format!("{}: {e}", label(node)))?;
            for (name, value) in node.output.iter().zip(values) {
                consts_by_name.insert(name, value);
            }
            continue;
        }
        let mut inputs = Vec::with_capacity(node.input.len());
        for (k, name) in node.input.iter().enumerate() {
            let name = name.as_str();
            if let Some(value) = consts_by_name.get(name) {
                let index = *const_index.entry(name).or_insert_with(|| {
                    consts.push(value.clone());
                    consts.len() - 1
                });
                inputs.push(Source::Const(index));
                continue;
            }
            let slot = *slots
                .get(name)
                .ok_or_else(|| format!("{} reads {name:?} before it is produced", label(node)))?;
            let read_again_here = node.input[k + 1..].iter().any(|later| later == name);
            let last = last_read.get(name) == Some(&i) && !read_again_here;
            inputs.push(Source::Slot { slot, last });
        }
        let outputs = node
            .output
            .iter()
            .zip(&ctx.used)
            .map(|(name, &used)| {
                used.then(|| {
                    let slot = slots.len();
                    *slots.entry(name.as_str()).or_insert(slot)
                })
            })
            .collect();
        operators.push(kernels::qualified_name(node));
        steps.push(Step {
            kernel,
            inputs,
            outputs,
            label: label(node),
        });
    }
    let scores_slot = *slots
        .get(scores)
        .filter(|&&s| s != 0)
        .ok_or_else(|| format!("{scores:?} is not computed from the graph input"))?;
    operators.sort();
    operators.dedup();
    Ok(Plan {
        input_elem,
        steps,
        consts,
        n_slots: slots.len(),
        scores_slot,
        operators,
    })
}
