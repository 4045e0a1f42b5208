//! The executor on hand-built graphs: what it prunes, folds and refuses, and the kernels'
//! shape rules. The corpus test (tests/onnx_corpus.rs) checks values against onnxruntime.

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;

use super::{Graph, NotRunnable};
use crate::models::onnx_attrs::{DATA_TYPE_FLOAT, DATA_TYPE_INT64};
use crate::models::runtime::Runtime;

use crate::models::onnx_attrs::make::{attr, floats, int, ints, tensor as tensor_attr};

fn node(
    domain: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        name: format!("{op}_{}", outputs.first().unwrap_or(&"")),
        domain: domain.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn ml(op: &str, inputs: &[&str], outputs: &[&str], a: Vec<pb::AttributeProto>) -> pb::NodeProto {
    node("ai.onnx.ml", op, inputs, outputs, a)
}

fn std_op(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    a: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    node("", op, inputs, outputs, a)
}

fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DATA_TYPE_FLOAT,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DATA_TYPE_INT64,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn float_input(width: i64) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: "input".into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DATA_TYPE_FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(Value::DimParam("N".into())),
                        dim(Value::DimValue(width)),
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>, width: i64) -> pb::ModelProto {
    let outputs = nodes
        .last()
        .map(|n| n.output.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|name| pb::ValueInfoProto {
            name,
            ..Default::default()
        })
        .collect();
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            pb::OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![float_input(width)],
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn bytes(model: &pb::ModelProto) -> Vec<u8> {
    use prost::Message;
    model.encode_to_vec()
}

fn load(model: &pb::ModelProto, scores: &str, width: usize) -> Graph {
    match Graph::load(model, scores, width) {
        Ok(graph) => graph,
        Err(e) => panic!("graph should load: {e:?}"),
    }
}

fn refusal(model: &pb::ModelProto, scores: &str, width: usize) -> NotRunnable {
    match Graph::load(model, scores, width) {
        Ok(_) => panic!("graph should be refused"),
        Err(e) => e,
    }
}

/// Why `Runtime::load` refuses `model`: the message a user sees.
fn runtime_refusal(model: &pb::ModelProto, scores: &str, width: usize) -> String {
    match Runtime::load(&bytes(model), scores, width) {
        Ok(_) => panic!("graph should be refused"),
        Err(message) => message,
    }
}

fn scaler(input: &str, output: &str, offset: &[f32], scale: &[f32]) -> pb::NodeProto {
    ml(
        "Scaler",
        &[input],
        &[output],
        vec![floats("offset", offset), floats("scale", scale)],
    )
}

/// A binary LinearClassifier with one coefficient row, as scikit-learn exports it.
fn logistic(input: &str, coefficients: &[f32]) -> pb::NodeProto {
    let mut post = attr("post_transform", AttributeType::String);
    post.s = b"LOGISTIC".to_vec();
    ml(
        "LinearClassifier",
        &[input],
        &["label", "probabilities"],
        vec![
            floats("coefficients", coefficients),
            floats("intercepts", &[0.0]),
            ints("classlabels_ints", &[0, 1]),
            post,
        ],
    )
}

fn zipmap(input: &str, output: &str) -> pb::NodeProto {
    ml(
        "ZipMap",
        &[input],
        &[output],
        vec![ints("classlabels_int64s", &[0, 1])],
    )
}

#[test]
fn a_scaler_before_a_linear_model_runs_natively() {
    let m = model(
        vec![
            scaler("input", "scaled", &[1.0, 2.0], &[2.0, 0.5]),
            logistic("scaled", &[1.0, 1.0]),
        ],
        vec![],
        2,
    );
    let runtime = Runtime::load(&bytes(&m), "probabilities", 2).expect("loads");
    assert_eq!(runtime.engine(), "native-onnx-ml");
    assert_eq!(runtime.outputs_per_row(), 2);
    // (1-1)*2 + (4-2)*0.5 = 1 → σ(1)
    let p = 1.0 / (1.0 + (-1.0f64).exp());
    let got = runtime.run(&[1.0, 4.0, 1.0, 2.0], 2).expect("runs");
    let want = [1.0 - p, p, 0.5, 0.5];
    for (g, w) in got.iter().zip(want) {
        assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
}

#[test]
fn nodes_the_scores_do_not_need_are_neither_run_nor_required() {
    let m = model(
        vec![
            logistic("input", &[1.0]),
            // A ZipMap on the probabilities and an operator nobody implements on the label.
            zipmap("probabilities", "output_probability"),
            ml("Frobnicate", &["label"], &["frobnicated"], vec![]),
        ],
        vec![],
        1,
    );
    let graph = load(&m, "probabilities", 1);
    assert_eq!(graph.operators(), ["ai.onnx.ml:LinearClassifier"]);
}

#[test]
fn a_zipmap_on_the_scores_path_is_refused_with_the_tensor_to_name_instead() {
    let m = model(
        vec![
            logistic("input", &[1.0]),
            zipmap("probabilities", "output_probability"),
        ],
        vec![],
        1,
    );
    let err = runtime_refusal(&m, "output_probability", 1);
    assert!(
        err.contains("ZipMap") && err.contains("\"probabilities\""),
        "{err}"
    );
}

#[test]
fn an_operator_nobody_implements_is_named_in_the_refusal() {
    let m = model(
        vec![
            scaler("input", "scaled", &[0.0], &[1.0]),
            ml("Frobnicate", &["scaled"], &["scores"], vec![]),
        ],
        vec![],
        2,
    );
    match refusal(&m, "scores", 2) {
        NotRunnable::Unsupported(ops) => assert_eq!(ops, ["ai.onnx.ml:Frobnicate"]),
        other => panic!("{other:?}"),
    }
    let err = runtime_refusal(&m, "scores", 2);
    assert!(
        err.contains("ai.onnx.ml:Frobnicate") && err.contains("neither"),
        "{err}"
    );
}

#[test]
fn a_missing_scores_tensor_is_named() {
    let m = model(vec![scaler("input", "scaled", &[0.0], &[1.0])], vec![], 2);
    match refusal(&m, "probabilities", 2) {
        NotRunnable::Invalid(message) => {
            assert!(message.contains("\"probabilities\""), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn constant_subgraphs_are_folded_at_load() {
    let mut constant = std_op("Constant", &[], &["two"], vec![]);
    let mut value = attr("value", AttributeType::Tensor);
    value.t = Some(tensor_f32("", &[], &[2.0]));
    constant.attribute.push(value);
    let m = model(
        vec![
            constant,
            // Cast of an int initializer: computed once, then used as a plain constant.
            std_op("Cast", &["three_int"], &["three"], vec![int("to", 1)]),
            std_op("Mul", &["input", "two"], &["doubled"], vec![]),
            std_op("Add", &["doubled", "three"], &["scores"], vec![]),
        ],
        vec![tensor_i64("three_int", &[1], &[3])],
        2,
    );
    let graph = load(&m, "scores", 2);
    assert_eq!(graph.operators(), ["ai.onnx:Add", "ai.onnx:Mul"]);
    assert_eq!(graph.run(&[1.0, -1.0], 2).expect("runs"), [5.0, 1.0]);
}

#[test]
fn broadcasting_follows_numpy() {
    let m = model(
        vec![
            std_op(
                "Gather",
                &["input", "first"],
                &["column"],
                vec![int("axis", 1)],
            ),
            std_op("Add", &["column", "row"], &["scores"], vec![]),
        ],
        vec![
            tensor_i64("first", &[1], &[0]),
            tensor_f32("row", &[1, 3], &[10.0, 20.0, 30.0]),
        ],
        2,
    );
    // column is [N, 1]; plus [1, 3] gives [N, 3].
    let graph = load(&m, "scores", 2);
    assert_eq!(graph.outputs_per_row(), 3);
    assert_eq!(
        graph.run(&[1.0, 9.0, 2.0, 9.0], 2).expect("runs"),
        [11.0, 21.0, 31.0, 12.0, 22.0, 32.0]
    );
}

#[test]
fn a_constant_on_the_left_keeps_operand_order() {
    let m = model(
        vec![
            std_op("Sub", &["ten", "input"], &["less"], vec![]),
            std_op("Div", &["less", "two"], &["scores"], vec![]),
        ],
        vec![
            tensor_f32("ten", &[1, 2], &[10.0, 20.0]),
            tensor_f32("two", &[], &[2.0]),
        ],
        2,
    );
    let graph = load(&m, "scores", 2);
    assert_eq!(
        graph.run(&[1.0, 2.0, 3.0, 4.0], 2).expect("runs"),
        [4.5, 9.0, 3.5, 8.0]
    );
}

#[test]
fn column_plumbing_selects_reshapes_and_joins() {
    let m = model(
        vec![
            // Last column by a negative index, as [N, 1] after a reshape of [N].
            std_op(
                "Gather",
                &["input", "last"],
                &["picked"],
                vec![int("axis", 1)],
            ),
            std_op("Reshape", &["picked", "column"], &["as_column"], vec![]),
            ml(
                "ArrayFeatureExtractor",
                &["input", "front"],
                &["front_cols"],
                vec![],
            ),
            std_op(
                "Concat",
                &["as_column", "front_cols"],
                &["joined"],
                vec![int("axis", -1)],
            ),
            std_op("Flatten", &["joined"], &["scores"], vec![int("axis", 1)]),
        ],
        vec![
            tensor_i64("last", &[], &[-1]),
            tensor_i64("column", &[2], &[-1, 1]),
            tensor_i64("front", &[2], &[0, 1]),
        ],
        3,
    );
    let graph = load(&m, "scores", 3);
    assert_eq!(
        graph.run(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).expect("runs"),
        [3.0, 1.0, 2.0, 6.0, 4.0, 5.0]
    );
}

#[test]
fn a_scaler_before_a_small_network_runs_natively() {
    // The pipeline tract cannot load (no Scaler): scaler → dense → relu → dense → softmax.
    let m = model(
        vec![
            scaler("input", "scaled", &[0.0], &[2.0]),
            std_op("MatMul", &["scaled", "w1"], &["h"], vec![]),
            std_op("Relu", &["h"], &["a"], vec![]),
            std_op("Gemm", &["a", "w2", "b2"], &["logits"], vec![]),
            std_op("Softmax", &["logits"], &["scores"], vec![int("axis", -1)]),
        ],
        vec![
            tensor_f32("w1", &[2, 2], &[1.0, -1.0, 1.0, -1.0]),
            tensor_f32("w2", &[2, 2], &[1.0, 0.0, 0.0, 1.0]),
            tensor_f32("b2", &[2], &[0.0, 1.0]),
        ],
        2,
    );
    let runtime = Runtime::load(&bytes(&m), "scores", 2).expect("loads");
    assert_eq!(runtime.engine(), "native-onnx-ml");
    // scaled (1, 0.5) → h (1.5, -1.5) → a (1.5, 0) → logits (1.5, 1) → softmax
    let got = runtime.run(&[0.5, 0.25], 2).expect("runs");
    let e = (-0.5f64).exp();
    assert!(
        (f64::from(got[0]) - 1.0 / (1.0 + e)).abs() < 1e-6,
        "{got:?}"
    );
    assert!((f64::from(got[1]) - e / (1.0 + e)).abs() < 1e-6, "{got:?}");
}

#[test]
fn a_graph_of_standard_operators_only_stays_on_tract() {
    let m = model(
        vec![
            std_op("MatMul", &["input", "w"], &["h"], vec![]),
            std_op("Sigmoid", &["h"], &["scores"], vec![]),
        ],
        vec![tensor_f32("w", &[2, 1], &[1.0, 1.0])],
        2,
    );
    let runtime = Runtime::load(&bytes(&m), "scores", 2).expect("loads");
    assert_eq!(runtime.engine(), "tract");
}

#[test]
fn one_hot_and_label_encoders_map_numeric_categories() {
    let m = model(
        vec![
            ml(
                "LabelEncoder",
                &["input"],
                &["codes"],
                vec![
                    ints("keys_int64s", &[]),
                    floats("keys_floats", &[1.0, 2.0]),
                    ints("values_int64s", &[7, 8]),
                    int("default_int64", 9),
                ],
            ),
            ml(
                "OneHotEncoder",
                &["codes"],
                &["hot"],
                vec![ints("cats_int64s", &[7, 8, 9]), int("zeros", 1)],
            ),
            std_op("Reshape", &["hot", "shape"], &["scores"], vec![]),
        ],
        vec![tensor_i64("shape", &[2], &[-1, 3])],
        1,
    );
    let graph = load(&m, "scores", 1);
    assert_eq!(
        graph.run(&[2.0, 5.0, 1.0], 1).expect("runs"),
        [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    );
}

#[test]
fn a_string_label_read_downstream_is_refused() {
    let mut post = attr("post_transform", AttributeType::String);
    post.s = b"NONE".to_vec();
    let mut labels = attr("classlabels_strings", AttributeType::Strings);
    labels.strings = vec![b"no".to_vec(), b"yes".to_vec()];
    let m = model(
        vec![
            ml(
                "LinearClassifier",
                &["input"],
                &["label", "probabilities"],
                vec![
                    floats("coefficients", &[1.0]),
                    floats("intercepts", &[0.0]),
                    labels,
                    post,
                ],
            ),
            std_op("Identity", &["label"], &["scores"], vec![]),
        ],
        vec![],
        1,
    );
    match refusal(&m, "scores", 1) {
        NotRunnable::Invalid(message) => {
            assert!(message.contains("string labels"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_opset_5_tree_ensemble_tests_set_membership() {
    const UINT8: i32 = 2;
    // Tree 0: x0 ∈ {1, 3} → 10, else x1 <= 0.5 → 1 or 2. Tree 1: one leaf, 100.
    let modes = pb::TensorProto {
        dims: vec![3],
        data_type: UINT8,
        raw_data: vec![6, 0, 0],
        ..Default::default()
    };
    let v5 = ml(
        "TreeEnsemble",
        &["input"],
        &["scores"],
        vec![
            ints("nodes_featureids", &[0, 1, 0]),
            tensor_attr("nodes_splits", tensor_f32("", &[3], &[0.0, 0.5, 0.0])),
            tensor_attr("nodes_modes", modes),
            ints("nodes_truenodeids", &[0, 1, 3]),
            ints("nodes_trueleafs", &[1, 1, 1]),
            ints("nodes_falsenodeids", &[1, 2, 3]),
            ints("nodes_falseleafs", &[0, 1, 1]),
            tensor_attr(
                "membership_values",
                tensor_f32("", &[3], &[1.0, 3.0, f32::NAN]),
            ),
            ints("leaf_targetids", &[0, 0, 0, 0]),
            tensor_attr(
                "leaf_weights",
                tensor_f32("", &[4], &[10.0, 1.0, 2.0, 100.0]),
            ),
            ints("tree_roots", &[0, 2]),
            int("n_targets", 1),
            int("aggregate_function", 1),
        ],
    );
    let graph = load(&model(vec![v5], vec![], 2), "scores", 2);
    assert_eq!(graph.operators(), ["ai.onnx.ml:TreeEnsemble"]);
    let rows = [1.0, 0.0, 3.0, 9.0, 2.0, 0.0, 2.0, 1.0, f32::NAN, 0.0];
    assert_eq!(
        graph.run(&rows, 2).expect("runs"),
        [110.0, 110.0, 101.0, 102.0, 101.0]
    );
}

#[test]
fn docs_list_every_operator_the_executor_runs() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/models.md"))
        .expect("docs/models.md");
    let table = docs
        .split("### Operators")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").nth(1))
        .expect("an operator table under ### Operators");
    let missing: Vec<String> = super::supported_operators()
        .filter(|op| {
            let (domain, name) = op.rsplit_once(':').expect("domain:op");
            !table
                .lines()
                .any(|line| line.contains(&format!("`{name}`")) && line.contains(domain))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/models.md does not list {missing:?}"
    );
}
