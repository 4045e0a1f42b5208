//! The ai.onnx.ml opset-5 `TreeEnsemble` operator, rewritten as the equivalent
//! TreeEnsembleRegressor node so that one loader and one evaluator serve both.
//!
//! Opset 5 keeps interior nodes and leaves in separate lists, numbers modes, and adds
//! BRANCH_MEMBER (is the feature one of a set of values). A member test becomes a chain of
//! BRANCH_EQ nodes that share the true subtree: `x ∈ {a, b}` is `x == a ? T : (x == b ? T :
//! F)`, which the evaluator walks like any other shared subtree.

use std::collections::HashMap;

use tract_onnx::pb;

use super::{attr_err, TreeEnsembleError};
use crate::models::onnx_attrs::{check_len, make, numeric_values, Attrs, DATA_TYPE_DOUBLE};

pub(super) const OP: &str = "TreeEnsemble";

const MODES: [&str; 6] = [
    "BRANCH_LEQ",
    "BRANCH_LT",
    "BRANCH_GTE",
    "BRANCH_GT",
    "BRANCH_EQ",
    "BRANCH_NEQ",
];
const MEMBER: u8 = 6;
const AGGREGATES: [&str; 4] = ["AVERAGE", "SUM", "MIN", "MAX"];
const POST_TRANSFORMS: [&str; 5] = ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"];

/// A child of an interior node: another interior node or a leaf, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ref {
    Node(usize),
    Leaf(usize),
}

/// The opset-5 node's lists, validated against each other.
struct Parsed {
    features: Vec<i64>,
    splits: Vec<f64>,
    modes: Vec<u8>,
    trues: Vec<Ref>,
    falses: Vec<Ref>,
    missing_true: Vec<bool>,
    /// For each BRANCH_MEMBER node, its set of values.
    members: HashMap<usize, Vec<f64>>,
    leaf_targets: Vec<i64>,
    leaf_weights: Vec<f64>,
    roots: Vec<usize>,
}

fn tensor_attr(a: &Attrs<'_>, name: &'static str) -> Result<Vec<f64>, TreeEnsembleError> {
    let t = a
        .tensor(name)?
        .ok_or_else(|| attr_err(name, "is required"))?;
    Ok(numeric_values(name, t)?)
}

fn children(
    ids: &[i64],
    leafs: &[i64],
    n_nodes: usize,
    n_leaves: usize,
    name: &'static str,
) -> Result<Vec<Ref>, TreeEnsembleError> {
    check_len(name, leafs.len(), "nodes_featureids", n_nodes)?;
    ids.iter()
        .zip(leafs)
        .map(|(&id, &leaf)| {
            let (bound, make): (usize, fn(usize) -> Ref) = if leaf != 0 {
                (n_leaves, Ref::Leaf)
            } else {
                (n_nodes, Ref::Node)
            };
            usize::try_from(id)
                .ok()
                .filter(|&i| i < bound)
                .map(make)
                .ok_or_else(|| attr_err(name, format!("points to {id}, out of range")))
        })
        .collect()
}

fn parse(node: &pb::NodeProto) -> Result<Parsed, TreeEnsembleError> {
    let a = Attrs(node);
    let features = a.ints("nodes_featureids")?.to_vec();
    let n = features.len();
    let splits = tensor_attr(&a, "nodes_splits")?;
    check_len("nodes_splits", splits.len(), "nodes_featureids", n)?;
    let modes = tensor_attr(&a, "nodes_modes")?
        .iter()
        .map(|&m| {
            u8::try_from(m as i64)
                .ok()
                .filter(|&m| m <= MEMBER)
                .ok_or_else(|| attr_err("nodes_modes", format!("unknown mode {m}")))
        })
        .collect::<Result<Vec<u8>, _>>()?;
    check_len("nodes_modes", modes.len(), "nodes_featureids", n)?;
    let leaf_targets = a.ints("leaf_targetids")?.to_vec();
    let leaf_weights = tensor_attr(&a, "leaf_weights")?;
    check_len(
        "leaf_weights",
        leaf_weights.len(),
        "leaf_targetids",
        leaf_targets.len(),
    )?;
    let n_leaves = leaf_targets.len();
    let true_ids = a.ints("nodes_truenodeids")?;
    check_len("nodes_truenodeids", true_ids.len(), "nodes_featureids", n)?;
    let false_ids = a.ints("nodes_falsenodeids")?;
    check_len("nodes_falsenodeids", false_ids.len(), "nodes_featureids", n)?;
    let trues = children(
        true_ids,
        a.ints("nodes_trueleafs")?,
        n,
        n_leaves,
        "nodes_trueleafs",
    )?;
    let falses = children(
        false_ids,
        a.ints("nodes_falseleafs")?,
        n,
        n_leaves,
        "nodes_falseleafs",
    )?;
    let missing = a.ints("nodes_missing_value_tracks_true")?;
    if !missing.is_empty() {
        check_len(
            "nodes_missing_value_tracks_true",
            missing.len(),
            "nodes_featureids",
            n,
        )?;
    }
    let member_nodes: Vec<usize> = (0..n).filter(|&i| modes[i] == MEMBER).collect();
    let mut sets: Vec<Vec<f64>> = Vec::new();
    if !member_nodes.is_empty() {
        let values = tensor_attr(&a, "membership_values")?;
        sets = values.split(|v| v.is_nan()).map(<[f64]>::to_vec).collect();
        // The list may end with a delimiter.
        if sets.last().is_some_and(Vec::is_empty) {
            sets.pop();
        }
    }
    if sets.len() != member_nodes.len() || sets.iter().any(Vec::is_empty) {
        return Err(attr_err(
            "membership_values",
            format!(
                "holds {} sets (NaN-delimited, none empty) for {} BRANCH_MEMBER nodes",
                sets.len(),
                member_nodes.len()
            ),
        ));
    }
    let roots = a
        .ints("tree_roots")?
        .iter()
        .map(|&r| {
            usize::try_from(r)
                .ok()
                .filter(|&r| r < n)
                .ok_or_else(|| attr_err("tree_roots", format!("root {r} is not a node")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        features,
        splits,
        modes,
        trues,
        falses,
        missing_true: (0..n)
            .map(|i| missing.get(i).is_some_and(|&m| m != 0))
            .collect(),
        members: member_nodes.into_iter().zip(sets).collect(),
        leaf_targets,
        leaf_weights,
        roots,
    })
}

/// The legacy node's parallel lists, filled tree by tree.
#[derive(Default)]
struct Legacy {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    features: Vec<i64>,
    values: Vec<f64>,
    modes: Vec<Vec<u8>>,
    trues: Vec<i64>,
    falses: Vec<i64>,
    missing: Vec<i64>,
    target_trees: Vec<i64>,
    target_nodes: Vec<i64>,
    target_ids: Vec<i64>,
    target_weights: Vec<f64>,
}

/// One legacy node's test and children (true, false).
struct Split {
    feature: i64,
    value: f64,
    mode: &'static str,
    on: [i64; 2],
    missing_true: bool,
}

const LEAF: Split = Split {
    feature: 0,
    value: 0.0,
    mode: "LEAF",
    on: [0, 0],
    missing_true: false,
};

impl Legacy {
    fn push(&mut self, tree: i64, id: i64, split: Split) {
        self.tree_ids.push(tree);
        self.node_ids.push(id);
        self.features.push(split.feature);
        self.values.push(split.value);
        self.modes.push(split.mode.as_bytes().to_vec());
        self.trues.push(split.on[0]);
        self.falses.push(split.on[1]);
        self.missing.push(i64::from(split.missing_true));
    }

    /// One tree: ids are numbered from 0 at the root in visiting order; each member test
    /// takes one id per value.
    fn add_tree(&mut self, p: &Parsed, tree: i64, root: usize) {
        let mut ids: HashMap<Ref, i64> = HashMap::new();
        let mut next = 0i64;
        let mut pending = Vec::new();
        let mut id_of = |r: Ref, pending: &mut Vec<Ref>| {
            *ids.entry(r).or_insert_with(|| {
                let id = next;
                next += match r {
                    Ref::Node(i) => p.members.get(&i).map_or(1, |set| set.len() as i64),
                    Ref::Leaf(_) => 1,
                };
                pending.push(r);
                id
            })
        };
        id_of(Ref::Node(root), &mut pending);
        let mut at = 0;
        while at < pending.len() {
            let r = pending[at];
            at += 1;
            let id = id_of(r, &mut pending);
            match r {
                Ref::Leaf(l) => {
                    self.push(tree, id, LEAF);
                    self.target_trees.push(tree);
                    self.target_nodes.push(id);
                    self.target_ids.push(p.leaf_targets[l]);
                    self.target_weights.push(p.leaf_weights[l]);
                }
                Ref::Node(i) => {
                    let on_true = id_of(p.trues[i], &mut pending);
                    let on_false = id_of(p.falses[i], &mut pending);
                    match p.members.get(&i) {
                        Some(set) => {
                            for (k, &v) in set.iter().enumerate() {
                                let chain_id = id + k as i64;
                                let last = k + 1 == set.len();
                                let split = Split {
                                    feature: p.features[i],
                                    value: v,
                                    mode: "BRANCH_EQ",
                                    on: [on_true, if last { on_false } else { chain_id + 1 }],
                                    // NaN is in no set; when it goes true, the first test sends it.
                                    missing_true: p.missing_true[i] && k == 0,
                                };
                                self.push(tree, chain_id, split);
                            }
                        }
                        None => {
                            let split = Split {
                                feature: p.features[i],
                                value: p.splits[i],
                                mode: MODES[usize::from(p.modes[i])],
                                on: [on_true, on_false],
                                missing_true: p.missing_true[i],
                            };
                            self.push(tree, id, split);
                        }
                    }
                }
            }
        }
    }
}

fn doubles(name: &str, v: Vec<f64>) -> pb::AttributeProto {
    make::tensor(
        name,
        pb::TensorProto {
            dims: vec![v.len() as i64],
            data_type: DATA_TYPE_DOUBLE,
            double_data: v,
            ..Default::default()
        },
    )
}

/// An enumerated int attribute's name in the legacy operator.
fn named(
    a: &Attrs<'_>,
    name: &'static str,
    names: &[&'static str],
    default: usize,
) -> Result<&'static str, TreeEnsembleError> {
    let v = a.int(name)?.unwrap_or(default as i64);
    usize::try_from(v)
        .ok()
        .and_then(|i| names.get(i).copied())
        .ok_or_else(|| attr_err(name, format!("unknown value {v}")))
}

/// The TreeEnsembleRegressor node equivalent to the opset-5 `node`.
pub(super) fn to_regressor(node: &pb::NodeProto) -> Result<pb::NodeProto, TreeEnsembleError> {
    let p = parse(node)?;
    let mut legacy = Legacy::default();
    for (tree, &root) in p.roots.iter().enumerate() {
        legacy.add_tree(&p, tree as i64, root);
    }
    let a = Attrs(node);
    let n_targets = a
        .int("n_targets")?
        .ok_or_else(|| attr_err("n_targets", "is required"))?;
    let attribute = vec![
        make::ints("nodes_treeids", &legacy.tree_ids),
        make::ints("nodes_nodeids", &legacy.node_ids),
        make::ints("nodes_featureids", &legacy.features),
        doubles("nodes_values_as_tensor", legacy.values),
        make::strings("nodes_modes", &legacy.modes),
        make::ints("nodes_truenodeids", &legacy.trues),
        make::ints("nodes_falsenodeids", &legacy.falses),
        make::ints("nodes_missing_value_tracks_true", &legacy.missing),
        make::ints("target_treeids", &legacy.target_trees),
        make::ints("target_nodeids", &legacy.target_nodes),
        make::ints("target_ids", &legacy.target_ids),
        doubles("target_weights_as_tensor", legacy.target_weights),
        make::int("n_targets", n_targets),
        make::string(
            "aggregate_function",
            named(&a, "aggregate_function", &AGGREGATES, 1)?,
        ),
        make::string(
            "post_transform",
            named(&a, "post_transform", &POST_TRANSFORMS, 0)?,
        ),
    ];
    Ok(pb::NodeProto {
        domain: super::graph::ML_DOMAIN.into(),
        op_type: super::graph::REGRESSOR_OP.into(),
        input: node.input.clone(),
        output: node.output.clone(),
        name: node.name.clone(),
        attribute,
        ..Default::default()
    })
}
