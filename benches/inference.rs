//! Model 21's forest at batch 1 and 64: the native tree-ensemble evaluator against tract,
//! same ONNX file, same run. Results: docs/benchmarks.md.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use modelgate::models::runtime::Runtime;

const FEATURES: usize = 10;

/// Deterministic, varied rows in the ranges Model 21 sees.
fn rows(n: usize) -> Vec<f32> {
    let mut state: u32 = 21;
    let mut next = move |scale: f32| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1u32 << 24) as f32 * scale
    };
    (0..n)
        .flat_map(|_| {
            [
                next(5000.0),
                next(100.0),
                next(60.0),
                next(40.0),
                next(15.0),
                next(1.0).round(),
                next(1.0).round(),
                next(3.0).round(),
                next(3.0).round(),
                next(3.0).round(),
            ]
        })
        .collect()
}

fn forest(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/21/model.onnx");
    let graph = std::fs::read(path).expect("models/21/model.onnx");
    let native = Runtime::load(&graph, "probabilities", FEATURES).expect("native load");
    assert_eq!(native.engine(), "native-tree-ensemble");
    let tract = Runtime::load_tract(&graph, "probabilities", FEATURES).expect("tract load");
    let mut group = c.benchmark_group("model21_forest");
    for batch in [1usize, 64] {
        let input = rows(batch);
        group.throughput(Throughput::Elements(batch as u64));
        for (name, runtime) in [("native", &native), ("tract", &tract)] {
            group.bench_with_input(BenchmarkId::new(name, batch), &input, |b, input| {
                b.iter(|| {
                    runtime
                        .run(std::hint::black_box(input), FEATURES)
                        .expect("run")
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = forest
}
criterion_main!(benches);
