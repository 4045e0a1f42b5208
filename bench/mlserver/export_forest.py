#!/usr/bin/env python3
"""Rebuild Model 21's forest for MLServer: the same trees as models/21/model.onnx, as a joblib
file with MLServer's scikit-learn runtime settings.

Usage: export_forest.py OUT_DIR      (run with target/mlserver-venv's python; bench/protocols.sh does)

Writes OUT_DIR/model.joblib and OUT_DIR/model-settings.json (model name "21",
mlserver_sklearn.SKLearnModel, `predict_proba` as the default output, so it does the same work
as modelgate's forest: the class probabilities).

The forest is not retrained here with copied code: tools/model21/train.py's own main() runs (seed
21, its pinned scikit-learn 1.5.2) into a scratch folder, and the forest is taken from its call to
export_tree_model. Before writing anything this checks, and exits 1 on any mismatch, that
  - the rerun's ONNX export is byte-identical to models/21/model.onnx (the same trees, thresholds
    and leaf values);
  - the forest's predict_proba equals the scikit-learn probabilities in
    tests/fixtures/model21/reference.json (300 rows) exactly;
  - onnxruntime on models/21/model.onnx agrees with it within 1e-6 on those rows.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
import sklearn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "model21"))
import train  # noqa: E402  (tools/model21/train.py)

TOL = 1e-6


def retrain_forest(scratch: Path):
    """Runs train.py's main() into `scratch`; returns the forest it exported and its ONNX bytes."""
    captured = {}
    export = train.export_tree_model

    def capture(model, graph_name):
        captured[graph_name] = model
        return export(model, graph_name)

    train.export_tree_model = capture
    argv = sys.argv
    sys.argv = ["train.py", "--out-root", str(scratch)]
    try:
        # Its report names the scratch folder's files as if they were the repository's.
        with contextlib.redirect_stdout(io.StringIO()):
            train.main()
    finally:
        sys.argv = argv
        train.export_tree_model = export
    return captured["model21_forest"], (scratch / "models/21/model.onnx").read_bytes()


def fail(message: str):
    sys.exit(f"export_forest: {message}")


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: export_forest.py OUT_DIR")
    out = Path(sys.argv[1])
    if sklearn.__version__ != "1.5.2":
        print(f"warning: scikit-learn {sklearn.__version__}, train.py pins 1.5.2", file=sys.stderr)

    with tempfile.TemporaryDirectory() as scratch:
        forest, onnx_bytes = retrain_forest(Path(scratch))

    shipped = ROOT / "models/21/model.onnx"
    if onnx_bytes != shipped.read_bytes():
        fail(f"the retrained forest's ONNX export differs from {shipped}")

    reference = json.loads((ROOT / "tests/fixtures/model21/reference.json").read_text())
    X = np.array([r["features"] for r in reference["rows"]], dtype=np.float32)
    want = np.array([r["forest"] for r in reference["rows"]])
    got = forest.predict_proba(X)
    if not np.array_equal(got, want):
        fail(f"predict_proba differs from reference.json by {np.max(np.abs(got - want)):.3g}")

    session = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])
    onnx_p = session.run(["probabilities"], {"input": X})[0].astype(np.float64)
    diff = float(np.max(np.abs(onnx_p - got)))
    if diff > TOL:
        fail(f"onnxruntime on {shipped} differs from predict_proba by {diff:.3g}")

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(forest, out / "model.joblib")
    settings = {
        "name": "21",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {
            "uri": "./model.joblib",
            "version": "1.0.0",
            "extra": {"predict_fn": "predict_proba"},
        },
    }
    (out / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(
        f"forest: {forest.n_estimators} trees, scikit-learn {sklearn.__version__}; ONNX export "
        f"byte-identical to models/21/model.onnx; predict_proba = reference.json on {len(X)} rows; "
        f"onnxruntime max abs diff {diff:.2e}; wrote {out}/model.joblib"
    )


if __name__ == "__main__":
    main()
