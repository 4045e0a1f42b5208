"""Per-row time of every ONNX corpus model through onnxruntime, at batch 1 and 64, measured
like benches/onnx_corpus.rs (same 64 rows, median of 5 samples of ~200 ms, one thread).
Prints one JSON object. Run by bench/onnx_corpus.sh with target/onnx-corpus-venv."""

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

BATCHES = (1, 64)
SAMPLE_S = 0.2
SAMPLES = 5


def per_row_ns(session, input_name, output_name, rows):
    feed = {input_name: rows}
    started = time.perf_counter()
    calibration = 0
    while time.perf_counter() - started < SAMPLE_S / 4:
        session.run([output_name], feed)
        calibration += 1
    iterations = max(calibration * 4, 1)
    samples = []
    for _ in range(SAMPLES):
        t = time.perf_counter()
        for _ in range(iterations):
            session.run([output_name], feed)
        samples.append((time.perf_counter() - t) * 1e9 / (iterations * len(rows)))
    samples.sort()
    return samples[SAMPLES // 2]


def main():
    root = Path(__file__).resolve().parent.parent
    corpus = root / "tests/fixtures/onnx-corpus"
    reference = json.loads((corpus / "reference.json").read_text())
    nan_rows = set(reference["nan_rows"])
    rows = [r for i, r in enumerate(reference["rows"]) if i not in nan_rows][:64]
    rows = np.array(rows, dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    graphs = {"model21_forest (single node)": (root / "models/21/model.onnx", "probabilities")}
    for name, entry in reference["models"].items():
        if wanted is None or wanted in name:
            graphs[name] = (corpus / entry["file"], entry["score_output"])
    results = {}
    for name, (path, output) in sorted(graphs.items()):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        entry = {}
        for batch in BATCHES:
            batch_rows = np.resize(rows, (batch, rows.shape[1])).astype(np.float32)
            entry[f"batch{batch}_ns_per_row"] = per_row_ns(session, input_name, output, batch_rows)
        results[name] = entry
        print(name, file=sys.stderr)
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
