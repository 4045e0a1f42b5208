//! Per-row time of every ONNX corpus model through modelgate's runtime, at batch 1 and 64,
//! plus Model 21's single-node forest as the per-tree reference. Prints one JSON object;
//! bench/onnx_corpus.sh runs it beside onnxruntime (bench/onnx_corpus_ort.py) and writes
//! the comparison. Results: docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use modelgate::models::runtime::Runtime;
use prost::Message;
use serde_json::{json, Value};
use tract_onnx::pb;

const BATCHES: [usize; 2] = [1, 64];
const SAMPLE: Duration = Duration::from_millis(200);
const SAMPLES: usize = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Trees in the graph's tree-ensemble nodes (0 for models without trees).
fn tree_count(graph: &[u8]) -> usize {
    let model = pb::ModelProto::decode(graph).expect("onnx protobuf");
    let nodes = model.graph.map(|g| g.node).unwrap_or_default();
    nodes
        .iter()
        .map(|node| {
            let ints = |name: &str| {
                node.attribute
                    .iter()
                    .find(|a| a.name == name)
                    .map(|a| a.ints.clone())
                    .unwrap_or_default()
            };
            match node.op_type.as_str() {
                "TreeEnsembleClassifier" | "TreeEnsembleRegressor" => {
                    let mut ids = ints("nodes_treeids");
                    ids.sort_unstable();
                    ids.dedup();
                    ids.len()
                }
                "TreeEnsemble" => ints("tree_roots").len(),
                _ => 0,
            }
        })
        .sum()
}

/// Median nanoseconds per row over `SAMPLES` samples of about `SAMPLE` each.
fn per_row_ns(runtime: &Runtime, rows: &[f32], features: usize) -> f64 {
    let batch = rows.len() / features;
    let started = Instant::now();
    let mut calibration = 0u64;
    while started.elapsed() < SAMPLE / 4 {
        runtime
            .run(std::hint::black_box(rows), features)
            .expect("run");
        calibration += 1;
    }
    let iterations = (calibration * 4).max(1);
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iterations {
                runtime
                    .run(std::hint::black_box(rows), features)
                    .expect("run");
            }
            t.elapsed().as_nanos() as f64 / (iterations as f64 * batch as f64)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[SAMPLES / 2]
}

fn measure(graph: &[u8], scores: &str, rows: &[Vec<f32>]) -> Value {
    let features = rows[0].len();
    let runtime = Runtime::load(graph, scores, features).expect("model loads");
    let mut entry = json!({"engine": runtime.engine(), "trees": tree_count(graph)});
    for batch in BATCHES {
        let input: Vec<f32> = rows.iter().cycle().take(batch).flatten().copied().collect();
        entry[format!("batch{batch}_ns_per_row")] = json!(per_row_ns(&runtime, &input, features));
    }
    entry
}

fn main() {
    // `cargo bench` passes --bench; a filter argument selects models by substring.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let corpus = root().join("tests/fixtures/onnx-corpus");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(corpus.join("reference.json")).expect("reference.json"),
    )
    .expect("reference json");
    let nan_rows: Vec<u64> = reference["nan_rows"]
        .as_array()
        .expect("nan_rows")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let rows: Vec<Vec<f32>> = reference["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .enumerate()
        .filter(|(i, _)| !nan_rows.contains(&(*i as u64)))
        .map(|(_, row)| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect()
        })
        .take(64)
        .collect();
    let mut results = BTreeMap::new();
    let forest = std::fs::read(root().join("models/21/model.onnx")).expect("model 21");
    results.insert(
        "model21_forest (single node)".to_string(),
        measure(&forest, "probabilities", &rows),
    );
    let models = reference["models"].as_object().expect("models");
    for (name, entry) in models {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let file = entry["file"].as_str().expect("file");
        let graph = std::fs::read(corpus.join(file)).expect("graph");
        let scores = entry["score_output"].as_str().expect("score_output");
        eprintln!("{name}");
        results.insert(name.clone(), measure(&graph, scores, &rows));
    }
    println!("{}", serde_json::to_string_pretty(&results).expect("json"));
}
