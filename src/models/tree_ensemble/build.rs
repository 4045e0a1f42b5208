//! Loading a recognised node: parsing its node, weight and label attributes and flattening
//! the trees into the layout the walk reads.

use std::collections::HashMap;

use super::graph::{Kind, Recognised};
use super::node::{Mode, Node, WalkKind, FEATURE_MASK, TABLE_SHIFT};
use super::transform::{Aggregate, PostTransform};
use super::{
    attr_err, ClassLabels, Finish, Leaves, TreeEnsemble, TreeEnsembleError, Weight, LANES,
};
use crate::models::onnx_attrs::{check_len, Attrs};

/// A node as listed in the attributes, before flattening.
struct RawNode {
    tree: i64,
    id: i64,
    feature: i64,
    value: f64,
    mode: Mode,
    on_true: i64,
    on_false: i64,
    missing_true: bool,
}

fn parse_nodes(a: &Attrs<'_>) -> Result<Vec<RawNode>, TreeEnsembleError> {
    const TREES: &str = "nodes_treeids";
    let trees = a.ints(TREES)?;
    let n = trees.len();
    let ids = a.ints("nodes_nodeids")?;
    check_len("nodes_nodeids", ids.len(), TREES, n)?;
    let features = a.ints("nodes_featureids")?;
    check_len("nodes_featureids", features.len(), TREES, n)?;
    let values = a.reals("nodes_values", "nodes_values_as_tensor")?;
    check_len("nodes_values", values.len(), TREES, n)?;
    let modes = a.strings("nodes_modes")?;
    check_len("nodes_modes", modes.len(), TREES, n)?;
    let trues = a.ints("nodes_truenodeids")?;
    check_len("nodes_truenodeids", trues.len(), TREES, n)?;
    let falses = a.ints("nodes_falsenodeids")?;
    check_len("nodes_falsenodeids", falses.len(), TREES, n)?;
    let missing = a.ints("nodes_missing_value_tracks_true")?;
    if !missing.is_empty() {
        check_len("nodes_missing_value_tracks_true", missing.len(), TREES, n)?;
    }
    (0..n)
        .map(|i| {
            let mode = Mode::parse(modes[i])
                .ok_or_else(|| attr_err("nodes_modes", format!("unknown mode `{}`", modes[i])))?;
            Ok(RawNode {
                tree: trees[i],
                id: ids[i],
                feature: features[i],
                value: values[i],
                mode,
                on_true: trues[i],
                on_false: falses[i],
                missing_true: missing.get(i).is_some_and(|&m| m != 0),
            })
        })
        .collect()
}

/// (tree id, node id) → position in the attribute lists.
type NodeIndex = HashMap<(i64, i64), usize>;

/// The flattened trees: nodes in depth-first order, one tree after the other.
struct Layout {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    depths: Vec<u32>,
    /// (tree id, node id) → raw index, and raw index → flattened index (None: unreachable).
    by_id: NodeIndex,
    flat: Vec<Option<u32>>,
    walk: WalkKind,
    nan_tracked: bool,
}

fn index_nodes(raw: &[RawNode]) -> Result<(NodeIndex, Vec<i64>), TreeEnsembleError> {
    let mut by_id = HashMap::with_capacity(raw.len());
    let mut tree_order = Vec::new();
    for (i, node) in raw.iter().enumerate() {
        if by_id.insert((node.tree, node.id), i).is_some() {
            return Err(attr_err(
                "nodes_nodeids",
                format!("node {} of tree {} is listed twice", node.id, node.tree),
            ));
        }
        if node.id == 0 {
            tree_order.push(node.tree);
        }
    }
    // Trees without a node 0 would otherwise be silently dropped.
    for node in raw {
        if !by_id.contains_key(&(node.tree, 0)) {
            return Err(attr_err(
                "nodes_nodeids",
                format!("tree {} has no root node 0", node.tree),
            ));
        }
    }
    Ok((by_id, tree_order))
}

fn layout(raw: &[RawNode], n_features: usize) -> Result<Layout, TreeEnsembleError> {
    // Indices must fit in u32 with one spare slot for the padding leaf.
    if raw.len() >= u32::MAX as usize {
        return Err(attr_err("nodes_treeids", "too many nodes"));
    }
    let (by_id, tree_order) = index_nodes(raw)?;
    let mut flat: Vec<Option<u32>> = vec![None; raw.len()];
    let mut order = Vec::with_capacity(raw.len());
    let mut roots = Vec::with_capacity(tree_order.len());
    let mut depths = Vec::with_capacity(tree_order.len());
    for tree in tree_order {
        roots.push(order.len() as u32);
        depths.push(visit_tree(
            raw, &by_id, tree, n_features, &mut flat, &mut order,
        )?);
    }
    let mut nodes: Vec<Node> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| flat_node(&raw[i], k as u32, &by_id, &flat))
        .collect();
    let padding = nodes.len() as u32;
    nodes.push(leaf_node(padding));
    let (walk, nan_tracked) = choose_walk(order.iter().map(|&i| &raw[i]));
    Ok(Layout {
        nodes,
        roots,
        depths,
        by_id,
        flat,
        walk,
        nan_tracked,
    })
}

/// Depth-first numbering of one tree; returns its depth (the longest path from the root).
///
/// A node may be reached from several parents: converters share subtrees, e.g. onnxmltools
/// turns a LightGBM categorical split into a chain of BRANCH_EQ nodes whose true sides all
/// lead to one subtree. Such a node is laid out once. A cycle is refused.
fn visit_tree(
    raw: &[RawNode],
    by_id: &NodeIndex,
    tree: i64,
    n_features: usize,
    flat: &mut [Option<u32>],
    order: &mut Vec<usize>,
) -> Result<u32, TreeEnsembleError> {
    let child = |id: i64, parent: &RawNode, attribute: &'static str| {
        by_id.get(&(tree, id)).copied().ok_or_else(|| {
            attr_err(
                attribute,
                format!(
                    "node {} of tree {tree} points to node {id}, which does not exist",
                    parent.id
                ),
            )
        })
    };
    let root = by_id
        .get(&(tree, 0))
        .copied()
        .ok_or_else(|| attr_err("nodes_nodeids", format!("tree {tree} has no root node 0")))?;
    let first = order.len();
    let mut children: HashMap<usize, [usize; 2]> = HashMap::new();
    let mut parents: HashMap<usize, u32> = HashMap::new();
    let mut stack = vec![root];
    while let Some(i) = stack.pop() {
        if flat[i].is_some() {
            continue;
        }
        flat[i] = Some(order.len() as u32);
        order.push(i);
        let node = &raw[i];
        if node.mode != Mode::Leaf {
            check_branch(node, tree, n_features)?;
            let on_false = child(node.on_false, node, "nodes_falsenodeids")?;
            let on_true = child(node.on_true, node, "nodes_truenodeids")?;
            children.insert(i, [on_true, on_false]);
            *parents.entry(on_true).or_default() += 1;
            *parents.entry(on_false).or_default() += 1;
            // True child popped first, so it sits next to its parent in memory.
            stack.push(on_false);
            stack.push(on_true);
        }
    }
    longest_path(&order[first..], root, &children, parents).ok_or_else(|| {
        attr_err(
            "nodes_truenodeids",
            format!("tree {tree} has a cycle (see also nodes_falsenodeids)"),
        )
    })
}

/// The longest root-to-leaf path of a tree whose nodes may share children, by visiting
/// each node after all its parents; None if some node is never freed: a cycle.
fn longest_path(
    nodes: &[usize],
    root: usize,
    children: &HashMap<usize, [usize; 2]>,
    mut parents: HashMap<usize, u32>,
) -> Option<u32> {
    if parents.contains_key(&root) {
        return None;
    }
    let mut depth: HashMap<usize, u32> = HashMap::from([(root, 0)]);
    let mut ready = vec![root];
    let mut visited = 0;
    let mut deepest = 0;
    while let Some(i) = ready.pop() {
        visited += 1;
        let d = depth[&i];
        deepest = deepest.max(d);
        for &c in children.get(&i).into_iter().flatten() {
            let at = depth.entry(c).or_insert(0);
            *at = (*at).max(d + 1);
            let waiting = parents.get_mut(&c)?;
            *waiting -= 1;
            if *waiting == 0 {
                ready.push(c);
            }
        }
    }
    (visited == nodes.len()).then_some(deepest)
}

fn check_branch(node: &RawNode, tree: i64, n_features: usize) -> Result<(), TreeEnsembleError> {
    if !usize::try_from(node.feature).is_ok_and(|f| f < n_features) {
        return Err(attr_err(
            "nodes_featureids",
            format!(
                "node {} of tree {tree} reads feature {}, but the input has {n_features} features",
                node.id, node.feature
            ),
        ));
    }
    // Every comparison with NaN fails, which would make the node's test meaningless.
    if node.value.is_nan() {
        return Err(attr_err(
            "nodes_values",
            format!("node {} of tree {tree} has a NaN threshold", node.id),
        ));
    }
    Ok(())
}

fn leaf_node(index: u32) -> Node {
    Node {
        feature: 0,
        threshold: 0.0,
        next: [index; 2],
    }
}

fn flat_node(node: &RawNode, index: u32, by_id: &NodeIndex, flat: &[Option<u32>]) -> Node {
    if node.mode == Mode::Leaf {
        return leaf_node(index);
    }
    // visit_tree numbered both children before any Node is built.
    let target = |id: i64| {
        by_id
            .get(&(node.tree, id))
            .and_then(|&i| flat[i])
            .unwrap_or(index)
    };
    let (table, threshold) = node.mode.encode(node.value, node.missing_true);
    Node {
        feature: node.feature as u32 | (table << TABLE_SHIFT),
        threshold,
        next: [target(node.on_false), target(node.on_true)],
    }
}

/// The cheapest walk that is exact for these nodes, and whether any of them tracks NaN.
fn choose_walk<'a>(reachable: impl Iterator<Item = &'a RawNode>) -> (WalkKind, bool) {
    let mut mode = None;
    let mut mixed = false;
    let mut nan_tracked = false;
    for node in reachable.filter(|n| n.mode != Mode::Leaf) {
        mixed |= mode.is_some_and(|m| m != node.mode);
        nan_tracked |= node.missing_true;
        mode = Some(node.mode);
    }
    let walk = match mode {
        _ if mixed => WalkKind::Mixed,
        None | Some(Mode::Leq) => WalkKind::Leq,
        Some(Mode::Lt) => WalkKind::Lt,
        Some(Mode::Gte) => WalkKind::Gte,
        Some(Mode::Gt) => WalkKind::Gt,
        Some(_) => WalkKind::Mixed,
    };
    (walk, nan_tracked)
}

/// The width rows must have: the declared one, else what the branches read.
fn feature_count(
    raw: &[RawNode],
    declared: Option<usize>,
) -> Result<Option<usize>, TreeEnsembleError> {
    let mut max_feature = None;
    for node in raw.iter().filter(|n| n.mode != Mode::Leaf) {
        if !(0..i64::from(FEATURE_MASK)).contains(&node.feature) {
            return Err(attr_err(
                "nodes_featureids",
                format!(
                    "node {} of tree {} reads feature {}",
                    node.id, node.tree, node.feature
                ),
            ));
        }
        max_feature = max_feature.max(Some(node.feature as usize));
    }
    // Leaves read feature 0 while they spin, so rows need at least one value; a zero-width
    // model is left to tract.
    Ok(declared.or(max_feature.map(|f| f + 1)).filter(|&n| n > 0))
}

/// One leaf weight as listed in the attributes.
struct RawWeight {
    tree: i64,
    node: i64,
    output: i64,
    value: f64,
}

/// Attribute names of the leaf-weight tuples for each operator.
struct WeightAttrs {
    trees: &'static str,
    nodes: &'static str,
    ids: &'static str,
    weights: &'static str,
    weights_tensor: &'static str,
}

const CLASS_WEIGHTS: WeightAttrs = WeightAttrs {
    trees: "class_treeids",
    nodes: "class_nodeids",
    ids: "class_ids",
    weights: "class_weights",
    weights_tensor: "class_weights_as_tensor",
};

const TARGET_WEIGHTS: WeightAttrs = WeightAttrs {
    trees: "target_treeids",
    nodes: "target_nodeids",
    ids: "target_ids",
    weights: "target_weights",
    weights_tensor: "target_weights_as_tensor",
};

fn parse_weights(
    a: &Attrs<'_>,
    names: &WeightAttrs,
    n_outputs: usize,
) -> Result<Vec<RawWeight>, TreeEnsembleError> {
    let trees = a.ints(names.trees)?;
    let n = trees.len();
    let nodes = a.ints(names.nodes)?;
    check_len(names.nodes, nodes.len(), names.trees, n)?;
    let ids = a.ints(names.ids)?;
    check_len(names.ids, ids.len(), names.trees, n)?;
    let values = a.reals(names.weights, names.weights_tensor)?;
    check_len(names.weights, values.len(), names.trees, n)?;
    (0..n)
        .map(|i| {
            if !usize::try_from(ids[i]).is_ok_and(|id| id < n_outputs) {
                return Err(attr_err(
                    names.ids,
                    format!("entry {i} is {}, but there are {n_outputs} outputs", ids[i]),
                ));
            }
            Ok(RawWeight {
                tree: trees[i],
                node: nodes[i],
                output: ids[i],
                value: values[i],
            })
        })
        .collect()
}

/// Resolves each weight to its flattened leaf; weights on unreachable nodes are dropped.
fn bind_weights(
    weights: &[RawWeight],
    raw: &[RawNode],
    layout: &Layout,
    names: &WeightAttrs,
) -> Result<Vec<(u32, Weight)>, TreeEnsembleError> {
    let mut bound = Vec::with_capacity(weights.len());
    for w in weights {
        let Some(&i) = layout.by_id.get(&(w.tree, w.node)) else {
            return Err(attr_err(
                names.nodes,
                format!(
                    "a weight targets node {} of tree {}, which does not exist",
                    w.node, w.tree
                ),
            ));
        };
        if raw[i].mode != Mode::Leaf {
            return Err(attr_err(
                names.nodes,
                format!(
                    "a weight targets node {} of tree {}, which is not a leaf",
                    w.node, w.tree
                ),
            ));
        }
        if let Some(leaf) = layout.flat[i] {
            let output = w.output as u32; // range-checked in parse_weights
            bound.push((
                leaf,
                Weight {
                    output,
                    value: w.value,
                },
            ));
        }
    }
    Ok(bound)
}

fn build_leaves(bound: &mut [(u32, Weight)], n_nodes: usize, aggregate: Aggregate) -> Leaves {
    let single_output = match bound.split_first() {
        None => Some(0),
        Some(((_, first), rest)) => rest
            .iter()
            .all(|(_, w)| w.output == first.output)
            .then_some(first.output as usize),
    };
    if let (Some(output), Aggregate::Sum | Aggregate::Average) = (single_output, aggregate) {
        let mut values = vec![0.0; n_nodes];
        for (leaf, w) in bound.iter() {
            values[*leaf as usize] += w.value;
        }
        return Leaves::Single { output, values };
    }
    // Stable sort keeps each leaf's weights in attribute order, so sums match onnxruntime's.
    bound.sort_by_key(|(leaf, _)| *leaf);
    let mut ranges = vec![[0u32; 2]; n_nodes];
    let mut start = 0;
    while start < bound.len() {
        let leaf = bound[start].0;
        let end = start
            + bound[start..]
                .iter()
                .take_while(|(l, _)| *l == leaf)
                .count();
        ranges[leaf as usize] = [start as u32, end as u32];
        start = end;
    }
    Leaves::Sparse {
        ranges,
        weights: bound.iter().map(|(_, w)| *w).collect(),
    }
}

fn parse_labels(a: &Attrs<'_>) -> Result<ClassLabels, TreeEnsembleError> {
    let ints = a.ints("classlabels_int64s")?;
    let strings = a.strings("classlabels_strings")?;
    match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Ok(ClassLabels::Int64(ints.to_vec())),
        (true, false) => Ok(ClassLabels::Strings(
            strings.into_iter().map(str::to_owned).collect(),
        )),
        (true, true) => Err(attr_err(
            "classlabels_int64s",
            "classifier has neither classlabels_int64s nor classlabels_strings",
        )),
        (false, false) => Err(attr_err(
            "classlabels_int64s",
            "classifier has both classlabels_int64s and classlabels_strings",
        )),
    }
}

fn parse_aggregate(a: &Attrs<'_>, kind: Kind) -> Result<Aggregate, TreeEnsembleError> {
    // TreeEnsembleClassifier has no aggregate_function: its votes always add up.
    if kind == Kind::Classifier {
        return Ok(Aggregate::Sum);
    }
    match a.string("aggregate_function")?.unwrap_or("SUM") {
        "SUM" => Ok(Aggregate::Sum),
        "AVERAGE" => Ok(Aggregate::Average),
        "MIN" => Ok(Aggregate::Min),
        "MAX" => Ok(Aggregate::Max),
        other => Err(attr_err(
            "aggregate_function",
            format!("unknown aggregate function `{other}`"),
        )),
    }
}

fn regressor_targets(a: &Attrs<'_>) -> Result<usize, TreeEnsembleError> {
    match a.int("n_targets")? {
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| attr_err("n_targets", format!("must be positive, got {n}"))),
        None => {
            let max_id = a.ints("target_ids")?.iter().copied().max().unwrap_or(0);
            Ok(usize::try_from(max_id).unwrap_or(0) + 1)
        }
    }
}

/// Chooses how scores become outputs, validating base_values against that choice.
fn choose_finish(
    kind: Kind,
    n_outputs: usize,
    weights: &[RawWeight],
    base_values: &[f64],
    post: PostTransform,
) -> Result<Finish, TreeEnsembleError> {
    let first_output = weights.first().map(|w| w.output);
    let one_class = first_output.is_some_and(|o| weights.iter().all(|w| w.output == o));
    if kind == Kind::Classifier && n_outputs == 2 && one_class && base_values.len() <= 1 {
        let non_negative = weights.iter().all(|w| w.value >= 0.0);
        return Ok(Finish::Binary {
            score_index: first_output.map_or(0, |o| o as usize),
            complement: post == PostTransform::None && non_negative,
        });
    }
    if !base_values.is_empty() && base_values.len() != n_outputs {
        return Err(attr_err(
            "base_values",
            format!(
                "has {} entries, expected 0 or {n_outputs}",
                base_values.len()
            ),
        ));
    }
    Ok(Finish::PerOutput)
}

/// Groups roots by `LANES`, padding with the weightless leaf, and records each group's depth.
/// A tail of fewer than half a group is instead walked tree by tree (returned as (root,
/// depth) pairs): padding one tree to `LANES` lanes would walk eight times the nodes.
fn group_roots(
    roots: &[u32],
    depths: &[u32],
    padding: u32,
) -> (Vec<u32>, Vec<u32>, Vec<(u32, u32)>) {
    let tail = roots.len() % LANES;
    let grouped = if tail < LANES / 2 {
        roots.len() - tail
    } else {
        roots.len()
    };
    let mut padded = roots[..grouped].to_vec();
    padded.resize(grouped.div_ceil(LANES) * LANES, padding);
    let steps = depths[..grouped]
        .chunks(LANES)
        .map(|d| d.iter().copied().max().unwrap_or(0))
        .collect();
    let single = roots[grouped..]
        .iter()
        .copied()
        .zip(depths[grouped..].iter().copied())
        .collect();
    (padded, steps, single)
}

pub(super) fn build(shape: Recognised<'_>) -> Result<Option<TreeEnsemble>, TreeEnsembleError> {
    if shape.node.op_type == super::v5::OP {
        let converted = super::v5::to_regressor(shape.node)?;
        return build(Recognised {
            node: &converted,
            ..shape
        });
    }
    let a = Attrs(shape.node);
    let raw = parse_nodes(&a)?;
    let Some(n_features) = feature_count(&raw, shape.declared_features)? else {
        return Ok(None);
    };
    let layout = layout(&raw, n_features)?;
    let (class_labels, n_outputs, names) = match shape.kind {
        Kind::Classifier => {
            let labels = parse_labels(&a)?;
            let n = labels.len();
            (Some(labels), n, &CLASS_WEIGHTS)
        }
        Kind::Regressor => (None, regressor_targets(&a)?, &TARGET_WEIGHTS),
    };
    let weights = parse_weights(&a, names, n_outputs)?;
    let aggregate = parse_aggregate(&a, shape.kind)?;
    let post_transform = PostTransform::from_attrs(&a)?;
    let base_values = a.reals("base_values", "base_values_as_tensor")?;
    let finish = choose_finish(
        shape.kind,
        n_outputs,
        &weights,
        &base_values,
        post_transform,
    )?;
    let mut bound = bind_weights(&weights, &raw, &layout, names)?;
    let leaves = build_leaves(&mut bound, layout.nodes.len(), aggregate);
    let padding = (layout.nodes.len() - 1) as u32;
    let (roots, group_steps, single_roots) = group_roots(&layout.roots, &layout.depths, padding);
    Ok(Some(TreeEnsemble {
        input_name: shape.input_name.to_owned(),
        scores_output: shape.scores_output,
        label_output: shape.label_output,
        class_labels,
        n_features,
        n_outputs,
        n_trees: layout.roots.len(),
        nodes: layout.nodes,
        roots,
        group_steps,
        single_roots,
        walk: layout.walk,
        nan_tracked: layout.nan_tracked,
        leaves,
        aggregate,
        finish,
        base_values,
        post_transform,
    }))
}
