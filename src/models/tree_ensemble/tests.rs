use serde::Deserialize;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;

use super::graph::{CLASSIFIER_OP, ML_DOMAIN, REGRESSOR_OP};
use super::node::WalkKind;
use super::transform::probit;
use super::{ClassLabels, TreeEnsemble, TreeEnsembleError};
use crate::models::onnx_attrs::{DATA_TYPE_DOUBLE, DATA_TYPE_FLOAT};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/model21");
const FOREST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/21/model.onnx");

#[derive(Deserialize)]
struct Reference {
    rows: Vec<ReferenceRow>,
}

#[derive(Deserialize)]
struct ReferenceRow {
    features: Vec<f32>,
    forest: Vec<f64>,
    boosting: Vec<f64>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(format!("{FIXTURES}/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every reference row's features, flattened, and the probabilities `pick` selects.
fn reference_rows(pick: impl Fn(&ReferenceRow) -> &Vec<f64>) -> (Vec<f32>, Vec<f64>) {
    let reference = reference();
    let rows = reference
        .rows
        .iter()
        .flat_map(|r| r.features.clone())
        .collect();
    let want = reference
        .rows
        .iter()
        .flat_map(|r| pick(r).clone())
        .collect();
    (rows, want)
}

fn load(path: &str) -> TreeEnsemble {
    let bytes = std::fs::read(path).unwrap();
    TreeEnsemble::from_onnx_bytes(&bytes)
        .unwrap()
        .expect("tree ensemble should be recognised")
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() <= tol,
            "{what}[{k}]: got {g}, want {w} (all: {got:?} vs {want:?})"
        );
    }
}

// ---- hand-built models ----------------------------------------------------------

use crate::models::onnx_attrs::make::{attr, floats, int, ints, string, strings};

fn doubles_tensor(name: &str, v: &[f64]) -> pb::AttributeProto {
    pb::AttributeProto {
        t: Some(pb::TensorProto {
            dims: vec![v.len() as i64],
            data_type: DATA_TYPE_DOUBLE,
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        }),
        ..attr(name, AttributeType::Tensor)
    }
}

#[derive(Clone, Copy)]
struct N {
    tree: i64,
    id: i64,
    feature: i64,
    value: f32,
    mode: &'static str,
    on_true: i64,
    on_false: i64,
    missing_true: bool,
}

fn branch(tree: i64, id: i64, feature: i64, value: f32, mode: &'static str) -> N {
    N {
        tree,
        id,
        feature,
        value,
        mode,
        on_true: id + 1,
        on_false: id + 2,
        missing_true: false,
    }
}

fn leaf(tree: i64, id: i64) -> N {
    N {
        tree,
        id,
        feature: 0,
        value: 0.0,
        mode: "LEAF",
        on_true: 0,
        on_false: 0,
        missing_true: false,
    }
}

/// One split on `feature`: node 1 (true) and node 2 (false) are leaves.
fn stump(tree: i64, feature: i64, value: f32, mode: &'static str) -> [N; 3] {
    [
        branch(tree, 0, feature, value, mode),
        leaf(tree, 1),
        leaf(tree, 2),
    ]
}

fn node_attrs(nodes: &[N]) -> Vec<pb::AttributeProto> {
    let col = |f: fn(&N) -> i64| nodes.iter().map(f).collect::<Vec<_>>();
    vec![
        ints("nodes_treeids", &col(|n| n.tree)),
        ints("nodes_nodeids", &col(|n| n.id)),
        ints("nodes_featureids", &col(|n| n.feature)),
        floats(
            "nodes_values",
            &nodes.iter().map(|n| n.value).collect::<Vec<_>>(),
        ),
        strings(
            "nodes_modes",
            &nodes.iter().map(|n| n.mode).collect::<Vec<_>>(),
        ),
        ints("nodes_truenodeids", &col(|n| n.on_true)),
        ints("nodes_falsenodeids", &col(|n| n.on_false)),
        ints(
            "nodes_missing_value_tracks_true",
            &col(|n| i64::from(n.missing_true)),
        ),
    ]
}

/// `(tree, node, output, weight)` tuples under the `class_` or `target_` prefix.
fn weight_attrs(prefix: &str, weights: &[(i64, i64, i64, f32)]) -> Vec<pb::AttributeProto> {
    let ids = if prefix == "class" {
        "class_ids"
    } else {
        "target_ids"
    };
    vec![
        ints(
            &format!("{prefix}_treeids"),
            &weights.iter().map(|w| w.0).collect::<Vec<_>>(),
        ),
        ints(
            &format!("{prefix}_nodeids"),
            &weights.iter().map(|w| w.1).collect::<Vec<_>>(),
        ),
        ints(ids, &weights.iter().map(|w| w.2).collect::<Vec<_>>()),
        floats(
            &format!("{prefix}_weights"),
            &weights.iter().map(|w| w.3).collect::<Vec<_>>(),
        ),
    ]
}

fn value_info(name: &str, elem_type: i32, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(if d < 0 {
                Value::DimParam("N".into())
            } else {
                Value::DimValue(d)
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tree_node(op: &str, attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    let output = if op == CLASSIFIER_OP {
        vec!["label".to_owned(), "probabilities".to_owned()]
    } else {
        vec!["variable".to_owned()]
    };
    pb::NodeProto {
        input: vec!["X".into()],
        output,
        op_type: op.into(),
        domain: ML_DOMAIN.into(),
        attribute,
        ..Default::default()
    }
}

fn model_of(nodes: Vec<pb::NodeProto>, outputs: &[&str], n_features: i64) -> pb::ModelProto {
    pb::ModelProto {
        graph: Some(pb::GraphProto {
            node: nodes,
            input: vec![value_info("X", DATA_TYPE_FLOAT, &[-1, n_features])],
            output: outputs
                .iter()
                .map(|o| value_info(o, DATA_TYPE_FLOAT, &[]))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn regressor(attrs: Vec<pb::AttributeProto>, n_features: i64) -> pb::ModelProto {
    model_of(
        vec![tree_node(REGRESSOR_OP, attrs)],
        &["variable"],
        n_features,
    )
}

fn classifier(attrs: Vec<pb::AttributeProto>, n_features: i64) -> pb::ModelProto {
    model_of(
        vec![tree_node(CLASSIFIER_OP, attrs)],
        &["label", "probabilities"],
        n_features,
    )
}

/// Single-target regressor over `nodes` whose node 1 pays 10 and node 2 pays 20 in tree 0.
fn ten_or_twenty(nodes: &[N], extra: Vec<pb::AttributeProto>) -> TreeEnsemble {
    let mut attrs = node_attrs(nodes);
    attrs.extend(weight_attrs("target", &[(0, 1, 0, 10.0), (0, 2, 0, 20.0)]));
    attrs.push(int("n_targets", 1));
    attrs.extend(extra);
    TreeEnsemble::from_model(&regressor(attrs, 2))
        .unwrap()
        .unwrap()
}

fn eval(te: &TreeEnsemble, row: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; te.n_outputs()];
    te.predict_row(row, &mut out);
    out
}

fn load_err(model: &pb::ModelProto) -> String {
    match TreeEnsemble::from_model(model) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("expected an error, got {:?}", r.map(|t| t.n_outputs())),
    }
}

// ---- fixtures -------------------------------------------------------------------

#[test]
fn forest_matches_scikit_learn() {
    let te = load(FOREST);
    assert_eq!(te.input_name(), "input");
    assert_eq!(te.n_features(), 10);
    assert_eq!(te.n_outputs(), 2);
    assert_eq!(te.scores_output_name(), "probabilities");
    assert_eq!(te.label_output_name(), Some("label"));
    assert_eq!(te.class_labels(), Some(&ClassLabels::Int64(vec![0, 1])));
    let (rows, want) = reference_rows(|r| &r.forest);
    assert_close(&te.predict(&rows), &want, 1e-5, "forest");
}

#[test]
fn boosting_matches_scikit_learn() {
    let te = load(&format!("{FIXTURES}/boosting.onnx"));
    assert_eq!(te.n_outputs(), 2);
    assert_eq!(te.scores_output_name(), "probabilities");
    let (rows, want) = reference_rows(|r| &r.boosting);
    assert_close(&te.predict(&rows), &want, 1e-5, "boosting");
}

#[test]
fn standard_ops_graph_is_not_recognised() {
    let bytes = std::fs::read(format!("{FIXTURES}/logistic.onnx")).unwrap();
    assert!(TreeEnsemble::from_onnx_bytes(&bytes).unwrap().is_none());
}

#[test]
fn garbage_bytes_are_a_decode_error() {
    let err = TreeEnsemble::from_onnx_bytes(b"\xff\xff\xff\xff").unwrap_err();
    assert!(matches!(err, TreeEnsembleError::Decode(_)), "{err}");
}

#[test]
fn batch_predict_equals_row_by_row() {
    let reference = reference();
    let mut rows: Vec<f32> = reference
        .rows
        .iter()
        .flat_map(|r| r.features.clone())
        .collect();
    // Missing values and extremes must take the same path in both entry points.
    rows.extend([
        f32::NAN,
        1.0,
        f32::INFINITY,
        -1.0,
        0.0,
        1.0,
        f32::NAN,
        2.0,
        3.0,
        1e30,
    ]);
    for path in [FOREST.to_owned(), format!("{FIXTURES}/boosting.onnx")] {
        let te = load(&path);
        let batch = te.predict(&rows);
        let mut single = Vec::new();
        for row in rows.chunks_exact(te.n_features()) {
            single.extend(eval(&te, row));
        }
        assert_eq!(batch.len(), single.len());
        for (b, s) in batch.iter().zip(&single) {
            assert_eq!(b.to_bits(), s.to_bits(), "{path}");
        }
        // A trailing partial row is ignored.
        assert_eq!(
            te.predict(&rows[..rows.len() - 3]).len(),
            batch.len() - te.n_outputs()
        );
    }
}

#[test]
fn evaluator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TreeEnsemble>();
}

// ---- semantics ------------------------------------------------------------------

#[test]
fn comparison_modes_at_equality() {
    let cases = [
        ("BRANCH_LEQ", 1.0, 10.0),
        ("BRANCH_LT", 1.0, 20.0),
        ("BRANCH_GTE", 1.0, 10.0),
        ("BRANCH_GT", 1.0, 20.0),
        ("BRANCH_EQ", 1.0, 10.0),
        ("BRANCH_EQ", 2.0, 20.0),
        ("BRANCH_NEQ", 1.0, 20.0),
        ("BRANCH_NEQ", 0.5, 10.0),
    ];
    for (mode, x, want) in cases {
        let te = ten_or_twenty(&stump(0, 1, 1.0, mode), vec![]);
        assert_eq!(eval(&te, &[0.0, x]), [want], "{mode} at x = {x}");
    }
}

#[test]
fn nan_goes_where_missing_value_tracking_says() {
    let mut tracked = stump(0, 0, 1.0, "BRANCH_LEQ");
    tracked[0].missing_true = true;
    let te = ten_or_twenty(&tracked, vec![]);
    assert_eq!((te.walk, te.nan_tracked), (WalkKind::Leq, true));
    assert_eq!(eval(&te, &[f32::NAN, 0.0]), [10.0]);
    assert_eq!(eval(&te, &[2.0, 0.0]), [20.0]);

    // Without tracking NaN fails the comparison: false branch for LEQ, true for NEQ.
    let te = ten_or_twenty(&stump(0, 0, 1.0, "BRANCH_LEQ"), vec![]);
    assert_eq!((te.walk, te.nan_tracked), (WalkKind::Leq, false));
    assert_eq!(eval(&te, &[f32::NAN, 0.0]), [20.0]);
    let te = ten_or_twenty(&stump(0, 0, 1.0, "BRANCH_NEQ"), vec![]);
    assert_eq!(eval(&te, &[f32::NAN, 0.0]), [10.0]);
}

#[test]
fn nan_tracking_is_per_node() {
    // Root (feature 0) does not track; its true child (feature 1) does.
    let mut nodes = vec![
        branch(0, 0, 0, 1.0, "BRANCH_LEQ"),
        branch(0, 1, 1, 1.0, "BRANCH_LEQ"),
        leaf(0, 2),
        leaf(0, 3),
        leaf(0, 4),
    ];
    nodes[0].on_true = 1;
    nodes[0].on_false = 4;
    nodes[1].on_true = 2;
    nodes[1].on_false = 3;
    nodes[1].missing_true = true;
    let mut attrs = node_attrs(&nodes);
    attrs.extend(weight_attrs(
        "target",
        &[(0, 2, 0, 1.0), (0, 3, 0, 2.0), (0, 4, 0, 3.0)],
    ));
    let te = TreeEnsemble::from_model(&regressor(attrs, 2))
        .unwrap()
        .unwrap();
    assert_eq!(eval(&te, &[f32::NAN, 0.0]), [3.0]);
    assert_eq!(eval(&te, &[0.0, f32::NAN]), [1.0]);
    assert_eq!(eval(&te, &[0.0, 5.0]), [2.0]);
}

#[test]
fn double_thresholds_keep_their_exact_meaning() {
    let t = 0.1f64; // 0.1f32 is slightly above it
    let x = 0.1f32;
    let below = x.next_down();
    for (mode, at_x, at_below) in [
        ("BRANCH_LEQ", 20.0, 10.0),
        ("BRANCH_LT", 20.0, 10.0),
        ("BRANCH_GT", 10.0, 20.0),
        ("BRANCH_GTE", 10.0, 20.0),
        ("BRANCH_EQ", 20.0, 20.0),
        ("BRANCH_NEQ", 10.0, 10.0),
    ] {
        let te = ten_or_twenty(
            &stump(0, 0, 0.0, mode),
            vec![doubles_tensor("nodes_values_as_tensor", &[t, 0.0, 0.0])],
        );
        assert_eq!(eval(&te, &[x, 0.0]), [at_x], "{mode} at 0.1f32");
        assert_eq!(eval(&te, &[below, 0.0]), [at_below], "{mode} below 0.1f32");
    }
    // Tracking NaN must not make an unrepresentable equality true for numbers.
    let mut tracked = stump(0, 0, 0.0, "BRANCH_EQ");
    tracked[0].missing_true = true;
    let te = ten_or_twenty(
        &tracked,
        vec![doubles_tensor("nodes_values_as_tensor", &[t, 0.0, 0.0])],
    );
    assert_eq!(eval(&te, &[x, 0.0]), [20.0]);
    assert_eq!(eval(&te, &[f32::NAN, 0.0]), [10.0]);
}

#[test]
fn mixed_walk_agrees_with_uniform_walk() {
    let mut rows: Vec<f32> = reference()
        .rows
        .iter()
        .flat_map(|r| r.features.clone())
        .collect();
    rows.extend([f32::NAN; 10]);
    let mut te = load(FOREST);
    assert_eq!(te.walk, WalkKind::Leq);
    let uniform = te.predict(&rows);
    te.nan_tracked = true;
    assert_eq!(te.predict(&rows), uniform);
    te.walk = WalkKind::Mixed;
    assert_eq!(te.predict(&rows), uniform);
}

fn two_target_forest(aggregate: &str, base: Option<&[f32]>) -> TreeEnsemble {
    let nodes: Vec<N> = stump(0, 0, 0.5, "BRANCH_LEQ")
        .into_iter()
        .chain(stump(1, 1, 0.5, "BRANCH_LEQ"))
        .collect();
    let mut attrs = node_attrs(&nodes);
    attrs.extend(weight_attrs(
        "target",
        &[
            (0, 1, 0, 1.0),
            (0, 1, 1, 2.0),
            (0, 2, 0, 3.0),
            (0, 2, 1, 4.0),
            (1, 1, 0, 5.0),
            (1, 1, 1, 6.0),
            (1, 2, 0, 7.0),
            (1, 2, 1, 8.0),
        ],
    ));
    attrs.push(int("n_targets", 2));
    attrs.push(string("aggregate_function", aggregate));
    if let Some(base) = base {
        attrs.push(floats("base_values", base));
    }
    TreeEnsemble::from_model(&regressor(attrs, 2))
        .unwrap()
        .unwrap()
}

#[test]
fn regressor_average_adds_base_values() {
    let te = two_target_forest("AVERAGE", Some(&[10.0, 20.0]));
    assert_eq!(te.n_outputs(), 2);
    assert_eq!(te.scores_output_name(), "variable");
    assert_eq!(te.class_labels(), None);
    assert_eq!(eval(&te, &[0.0, 0.0]), [13.0, 24.0]);
    assert_eq!(eval(&te, &[1.0, 1.0]), [15.0, 26.0]);
    assert_eq!(eval(&te, &[0.0, 1.0]), [14.0, 25.0]);
    assert_eq!(te.predict(&[0.0, 0.0, 1.0, 1.0]), [13.0, 24.0, 15.0, 26.0]);
}

#[test]
fn regressor_sum_min_max() {
    let row = [0.0, 1.0]; // tree 0 → node 1 (1, 2); tree 1 → node 2 (7, 8)
    assert_eq!(eval(&two_target_forest("SUM", None), &row), [8.0, 10.0]);
    assert_eq!(eval(&two_target_forest("MIN", None), &row), [1.0, 2.0]);
    assert_eq!(
        eval(&two_target_forest("MAX", Some(&[0.5, 0.5])), &row),
        [7.5, 8.5]
    );
}

#[test]
fn softmax_over_three_classes() {
    let mut attrs = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
    attrs.extend(weight_attrs(
        "class",
        &[
            (0, 1, 0, 1.0),
            (0, 1, 1, 2.0),
            (0, 1, 2, 3.0),
            (0, 2, 2, 0.5),
        ],
    ));
    attrs.push(ints("classlabels_int64s", &[7, 8, 9]));
    attrs.push(floats("base_values", &[0.1, 0.2, 0.3]));
    attrs.push(string("post_transform", "SOFTMAX"));
    let te = TreeEnsemble::from_model(&classifier(attrs, 1))
        .unwrap()
        .unwrap();
    assert_eq!(te.n_outputs(), 3);
    assert_eq!(te.scores_output_name(), "probabilities");
    let softmax = |s: [f64; 3]| {
        let e = s.map(f64::exp);
        let sum: f64 = e.iter().sum();
        e.map(|v| v / sum)
    };
    assert_close(
        &eval(&te, &[0.0]),
        &softmax([1.1, 2.2, 3.3]),
        1e-6,
        "true leaf",
    );
    assert_close(
        &eval(&te, &[1.0]),
        &softmax([0.1, 0.2, 0.8]),
        1e-6,
        "false leaf",
    );
}

fn one_class_binary(weights: [f32; 2], post: &str, base: Option<f32>) -> TreeEnsemble {
    let mut attrs = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
    attrs.extend(weight_attrs(
        "class",
        &[(0, 1, 0, weights[0]), (0, 2, 0, weights[1])],
    ));
    attrs.push(ints("classlabels_int64s", &[0, 1]));
    attrs.push(string("post_transform", post));
    if let Some(b) = base {
        attrs.push(floats("base_values", &[b]));
    }
    TreeEnsemble::from_model(&classifier(attrs, 1))
        .unwrap()
        .unwrap()
}

/// Expected values were produced by onnxruntime 1.32 on the same graphs.
#[test]
fn binary_with_one_weighted_class_follows_onnxruntime() {
    let te = one_class_binary([0.3, 0.8], "NONE", None);
    assert_close(&eval(&te, &[0.0]), &[0.7, 0.3], 1e-6, "positive NONE");
    let te = one_class_binary([-0.3, 0.8], "NONE", None);
    assert_close(&eval(&te, &[0.0]), &[0.3, -0.3], 1e-6, "mixed NONE");
    let te = one_class_binary([0.3, 0.8], "LOGISTIC", None);
    assert_close(
        &eval(&te, &[0.0]),
        &[0.425558, 0.574442],
        1e-6,
        "positive LOGISTIC",
    );
    let te = one_class_binary([-0.3, 0.8], "LOGISTIC", Some(0.2));
    assert_close(
        &eval(&te, &[0.0]),
        &[0.524979, 0.475021],
        1e-6,
        "LOGISTIC + base",
    );
    assert_close(
        &eval(&te, &[1.0]),
        &[0.268941, 0.731059],
        1e-6,
        "LOGISTIC + base",
    );
}

#[test]
fn probit_matches_onnxruntime_approximation() {
    let te = ten_or_twenty(
        &stump(0, 0, 1.0, "BRANCH_LEQ"),
        vec![string("post_transform", "PROBIT")],
    );
    assert_eq!(eval(&te, &[0.0, 0.0]).len(), 1);
    assert!((probit(0.3) - -0.524_445_891_380_310_1).abs() < 1e-6);
    assert!((probit(0.8) - 0.841_756_105_422_973_6).abs() < 1e-6);
}

#[test]
fn identity_renamed_outputs_are_followed() {
    let mut node = tree_node(CLASSIFIER_OP, {
        let mut a = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
        a.extend(weight_attrs("class", &[(0, 1, 0, 1.0), (0, 2, 1, 1.0)]));
        a.push(strings("classlabels_strings", &["no", "yes"]));
        a
    });
    node.output[1] = "proba_output".into();
    let identity = pb::NodeProto {
        input: vec!["proba_output".into()],
        output: vec!["probabilities".into()],
        op_type: "Identity".into(),
        ..Default::default()
    };
    let model = model_of(vec![node.clone(), identity], &["label", "probabilities"], 1);
    let te = TreeEnsemble::from_model(&model).unwrap().unwrap();
    assert_eq!(te.scores_output_name(), "probabilities");
    assert_eq!(
        te.class_labels(),
        Some(&ClassLabels::Strings(vec!["no".into(), "yes".into()]))
    );
    assert_eq!(eval(&te, &[0.0]), [1.0, 0.0]);

    // Any other extra operator means the graph is not ours to evaluate.
    let mut scaler = node.clone();
    scaler.op_type = "Scaler".into();
    scaler.domain = ML_DOMAIN.into();
    scaler.attribute.clear();
    scaler.input = vec!["X".into()];
    scaler.output = vec!["scaled".into()];
    let model = model_of(vec![scaler, node], &["label", "probabilities"], 1);
    assert!(TreeEnsemble::from_model(&model).unwrap().is_none());
}

#[test]
fn non_float_input_is_left_to_tract() {
    let mut model = regressor(node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ")), 1);
    let graph = model.graph.as_mut().unwrap();
    graph.input[0] = value_info("X", DATA_TYPE_DOUBLE, &[-1, 1]);
    assert!(TreeEnsemble::from_model(&model).unwrap().is_none());
}

// ---- malformed models -----------------------------------------------------------

#[test]
fn child_id_out_of_range_is_rejected() {
    let mut nodes = stump(0, 0, 0.5, "BRANCH_LEQ");
    nodes[0].on_true = 7;
    let err = load_err(&regressor(node_attrs(&nodes), 1));
    assert!(
        err.contains("nodes_truenodeids") && err.contains("node 7"),
        "{err}"
    );
}

#[test]
fn cycles_are_rejected() {
    let mut nodes = stump(0, 0, 0.5, "BRANCH_LEQ");
    nodes[1] = branch(0, 1, 0, 0.5, "BRANCH_LEQ");
    nodes[1].on_true = 0;
    nodes[1].on_false = 2;
    let err = load_err(&regressor(node_attrs(&nodes), 1));
    assert!(err.contains("has a cycle"), "{err}");
}

/// onnxmltools writes a LightGBM categorical split as a chain of BRANCH_EQ nodes whose true
/// sides share one subtree; the shared node is laid out once and reached from both.
#[test]
fn shared_subtrees_are_walked_from_every_parent() {
    // 0: x0 == 1 → 3, else 1; 1: x0 == 2 → 3, else 2 (leaf 5.0); 3: x1 <= 0.5 → 4 (1.0), else 6 (2.0)
    let mut nodes = vec![
        branch(0, 0, 0, 1.0, "BRANCH_EQ"),
        branch(0, 1, 0, 2.0, "BRANCH_EQ"),
        leaf(0, 2),
        branch(0, 3, 1, 0.5, "BRANCH_LEQ"),
        leaf(0, 4),
        leaf(0, 6),
    ];
    nodes[0].on_true = 3;
    nodes[0].on_false = 1;
    nodes[1].on_true = 3;
    nodes[1].on_false = 2;
    nodes[3].on_true = 4;
    nodes[3].on_false = 6;
    let mut attrs = node_attrs(&nodes);
    attrs.extend(weight_attrs(
        "target",
        &[(0, 2, 0, 5.0), (0, 4, 0, 1.0), (0, 6, 0, 2.0)],
    ));
    let te = TreeEnsemble::from_model(&regressor(attrs, 2))
        .unwrap()
        .unwrap();
    assert_eq!(eval(&te, &[1.0, 0.0]), [1.0]);
    assert_eq!(eval(&te, &[2.0, 1.0]), [2.0]);
    assert_eq!(eval(&te, &[3.0, 0.0]), [5.0]);
}

#[test]
fn feature_outside_declared_input_is_rejected() {
    let err = load_err(&regressor(node_attrs(&stump(0, 3, 0.5, "BRANCH_LEQ")), 2));
    assert!(
        err.contains("nodes_featureids") && err.contains("feature 3"),
        "{err}"
    );
}

#[test]
fn mismatched_lengths_and_unknown_modes_are_rejected() {
    let mut attrs = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
    attrs[4] = strings("nodes_modes", &["BRANCH_LEQ", "LEAF"]);
    let err = load_err(&regressor(attrs, 1));
    assert!(
        err.contains("nodes_modes") && err.contains("has 2 entries"),
        "{err}"
    );

    let err = load_err(&regressor(
        node_attrs(&stump(0, 0, 0.5, "BRANCH_SOMETIMES")),
        1,
    ));
    assert!(
        err.contains("nodes_modes") && err.contains("BRANCH_SOMETIMES"),
        "{err}"
    );
}

#[test]
fn bad_weights_are_rejected() {
    let mut attrs = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
    attrs.extend(weight_attrs("class", &[(0, 1, 2, 1.0)]));
    attrs.push(ints("classlabels_int64s", &[0, 1]));
    let err = load_err(&classifier(attrs, 1));
    assert!(err.contains("class_ids"), "{err}");

    let mut attrs = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
    attrs.extend(weight_attrs("target", &[(0, 9, 0, 1.0)]));
    let err = load_err(&regressor(attrs, 1));
    assert!(
        err.contains("target_nodeids") && err.contains("node 9"),
        "{err}"
    );

    let mut attrs = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
    attrs.push(floats("base_values", &[1.0, 2.0, 3.0]));
    let err = load_err(&regressor(attrs, 1));
    assert!(err.contains("base_values"), "{err}");
}

#[test]
fn wrongly_typed_attribute_is_rejected() {
    let mut attrs = node_attrs(&stump(0, 0, 0.5, "BRANCH_LEQ"));
    attrs[3] = ints("nodes_values", &[1, 0, 0]);
    let err = load_err(&regressor(attrs, 1));
    assert!(
        err.contains("nodes_values") && err.contains("FLOATS"),
        "{err}"
    );
}
