//! Every graph of the ONNX corpus (tools/onnx-corpus: scikit-learn pipelines, XGBoost,
//! LightGBM, hand-built ONNX-ML graphs) loads, runs natively, and gives onnxruntime's
//! scores for every fixture row, one row at a time and as one batch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use modelgate::models::runtime::Runtime;
use serde::Deserialize;

/// Absolute, or relative to the value's magnitude above 1 (regressors reach the hundreds,
/// where one f32 step is already 1e-5).
const TOLERANCE: f64 = 1e-5;

/// PROBIT outputs only. onnxruntime evaluates its erfinv approximation in f32, where
/// `(1 - x)(1 + x)` cancels near p = 0.5: one ulp of difference in the score (its dot
/// product sums in another order than ours) moves the output by up to ~3e-4 there. The
/// same formula is used here (`tree_ensemble::transform::probit`), and most rows agree
/// exactly.
const PROBIT_TOLERANCE: f64 = 1e-3;

#[derive(Deserialize)]
struct Reference {
    input_name: String,
    rows: Vec<Vec<Option<f32>>>,
    nan_rows: Vec<usize>,
    models: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    file: String,
    score_output: String,
    nan_rows_scored: bool,
    operator_details: Vec<String>,
    outputs: Vec<Option<Vec<f64>>>,
}

impl Entry {
    fn tolerance(&self) -> f64 {
        if self
            .operator_details
            .iter()
            .any(|d| d.contains("post_transform=PROBIT"))
        {
            PROBIT_TOLERANCE
        } else {
            TOLERANCE
        }
    }
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx-corpus")
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(corpus().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

fn row(values: &[Option<f32>]) -> Vec<f32> {
    values.iter().map(|v| v.unwrap_or(f32::NAN)).collect()
}

fn close(got: f32, want: f64, tolerance: f64) -> bool {
    (f64::from(got) - want).abs() <= tolerance * want.abs().max(1.0)
}

/// Mismatches between `scores` (rows × k, flattened) and the reference for `rows`.
fn mismatches(name: &str, entry: &Entry, rows: &[usize], scores: &[f32]) -> Vec<String> {
    let k = scores.len() / rows.len().max(1);
    let mut found = Vec::new();
    for (i, &r) in rows.iter().enumerate() {
        let want = entry.outputs[r].as_ref().expect("scored row");
        let got = &scores[i * k..(i + 1) * k];
        let tolerance = entry.tolerance();
        if got.len() != want.len() || !got.iter().zip(want).all(|(&g, &w)| close(g, w, tolerance)) {
            found.push(format!("{name} row {r}: got {got:?}, onnxruntime {want:?}"));
        }
    }
    found
}

#[test]
fn every_corpus_model_matches_onnxruntime_natively() {
    let reference = reference();
    assert_eq!(reference.input_name, "input");
    assert!(reference.models.len() >= 92, "the corpus lost models");
    let features = reference.rows[0].len();
    let mut failures = Vec::new();
    for (name, entry) in &reference.models {
        let graph = std::fs::read(corpus().join(&entry.file)).expect("graph file");
        let runtime = match Runtime::load(&graph, &entry.score_output, features) {
            Ok(runtime) => runtime,
            Err(e) => {
                failures.push(format!("{name} does not load: {e}"));
                continue;
            }
        };
        if runtime.engine() == "tract" {
            failures.push(format!("{name} runs on tract, not natively"));
        }
        let scored: Vec<usize> = (0..reference.rows.len())
            .filter(|r| entry.nan_rows_scored || !reference.nan_rows.contains(r))
            .collect();
        assert!(scored.iter().all(|&r| entry.outputs[r].is_some()), "{name}");
        let batch: Vec<f32> = scored
            .iter()
            .flat_map(|&r| row(&reference.rows[r]))
            .collect();
        match runtime.run(&batch, features) {
            Ok(scores) => failures.extend(mismatches(name, entry, &scored, &scores)),
            Err(e) => failures.push(format!("{name} batch failed: {e}")),
        }
        for &r in scored.iter().take(20) {
            match runtime.run(&row(&reference.rows[r]), features) {
                Ok(scores) => failures.extend(mismatches(name, entry, &[r], &scores)),
                Err(e) => failures.push(format!("{name} row {r} failed: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every attribute of every ONNX-ML node of the corpus, removed, cut short by one entry or
/// pushed out of range, must give a load error or a working model: never a panic. Graphs
/// arrive from registries, so a malformed one is an input like any other.
#[test]
fn malformed_attributes_are_refused_without_panicking() {
    use prost::Message;
    use tract_onnx::pb;

    let reference = reference();
    let features = reference.rows[0].len();
    let row = row(&reference.rows[0]);
    type Mutation = fn(&mut pb::AttributeProto);
    let mutations: [(&str, Mutation); 3] = [
        ("cut short", |a| {
            a.ints.pop();
            a.floats.pop();
            a.strings.pop();
        }),
        ("out of range", |a| {
            a.ints
                .iter_mut()
                .for_each(|v| *v = v.wrapping_mul(1_000_003).wrapping_sub(7));
            a.i = a.i.wrapping_mul(1_000_003).wrapping_sub(7);
            a.floats.iter_mut().for_each(|v| *v = f32::NAN);
        }),
        ("emptied", |a| {
            a.ints.clear();
            a.floats.clear();
            a.strings.clear();
            a.t = None;
        }),
    ];
    let mut panics = Vec::new();
    let mut tried = 0;
    for (name, entry) in &reference.models {
        let bytes = std::fs::read(corpus().join(&entry.file)).expect("graph file");
        let model = pb::ModelProto::decode(&bytes[..]).expect("onnx");
        let nodes = model.graph.as_ref().map_or(0, |g| g.node.len());
        for n in 0..nodes {
            let node = &model.graph.as_ref().expect("graph").node[n];
            if node.domain != "ai.onnx.ml" {
                continue;
            }
            for a in 0..node.attribute.len() {
                for (what, mutate) in &mutations {
                    let mut broken = model.clone();
                    let attribute = &mut broken.graph.as_mut().expect("graph").node[n].attribute[a];
                    let attribute_name = attribute.name.clone();
                    mutate(attribute);
                    let broken = broken.encode_to_vec();
                    tried += 1;
                    let outcome = std::panic::catch_unwind(|| {
                        if let Ok(runtime) = Runtime::load(&broken, &entry.score_output, features) {
                            let _ = runtime.run(&row, features);
                        }
                    });
                    if outcome.is_err() {
                        panics.push(format!("{name}: {attribute_name} {what}"));
                    }
                }
            }
        }
    }
    assert!(tried > 1000, "only {tried} mutations");
    assert!(panics.is_empty(), "panicked on:\n{}", panics.join("\n"));
}
