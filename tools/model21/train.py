#!/usr/bin/env python3
"""Train and export the bundled lead-scoring model (model 21) and its fixtures.

Produces, relative to --out-root (default: the repository root):
  models/21/model.onnx                      RandomForestClassifier (ai.onnx.ml TreeEnsembleClassifier)
  tests/fixtures/model21/boosting.onnx      GradientBoostingClassifier (TreeEnsembleClassifier, LOGISTIC)
  tests/fixtures/model21/logistic.onnx      LogisticRegression as standard ONNX ops only (opset 13)
  tests/fixtures/model21/reference.json     raw inputs -> features -> sklearn probabilities

Everything is deterministic (seed 21). Before writing anything, the exported
graphs are checked against scikit-learn with onnxruntime and the encoder is
re-applied to every fixture row; any mismatch aborts the script.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

SEED = 21
N_ROWS = 5000
TEST_FRACTION = 0.25
N_FIXTURE_ROWS = 300
TOL = 1e-5
TARGET_OPSET = {"": 13, "ai.onnx.ml": 3}

FEATURE_ORDER = [
    "company_size",
    "engagement_score",
    "website_visits",
    "email_opens",
    "content_downloads",
    "demo_requested",
    "budget_confirmed",
    "industry",
    "decision_timeline",
    "title",
]
NUMERIC_FIELDS = FEATURE_ORDER[:5]
BOOL_FIELDS = FEATURE_ORDER[5:7]

INDUSTRIES = [
    "Technology", "technology", "FINANCE", "Finance", "Healthcare",
    "Retail", "Other", "Agriculture", "Manufacturing",
]
TIMELINES = ["Q1 2025", "Q2 2025", "q2 2025", "Q3 2025", "Q4 2025", "Next year", "Unknown"]
TITLES = [
    "VP of Sales", "vp marketing", "Vice President, Engineering", "Senior VP/Operations",
    "Sales Director", "director of ops", "Director-Marketing",
    "Engineering Manager", "Account manager",
    "MVP Engineer", "Directorate Analyst", "Managerial Assistant", "Intern", "CEO", "",
]

INDUSTRY_MAP = {"technology": 3.0, "finance": 3.0, "healthcare": 2.0, "retail": 1.0, "other": 1.0}
INDUSTRY_DEFAULT = 1.0
TIMELINE_MAP = {"q1 2025": 3.0, "q2 2025": 2.0, "q3 2025": 1.0, "q4 2025": 1.0}
TIMELINE_DEFAULT = 0.0

# Fixed per-feature scale used only to condition the logistic-regression fit;
# it is folded into the exported coefficients (w_raw = w_scaled / scale).
LOGISTIC_SCALE = np.array([1000.0, 100.0, 60.0, 40.0, 15.0, 1.0, 1.0, 3.0, 3.0, 3.0])


# --------------------------------------------------------------------------- encoding

def _contains_word(text: str, word: str) -> bool:
    """Whole-word match: bounded by string start/end or a non-[a-z0-9] character."""
    pattern = r"(?<![a-z0-9])" + re.escape(word) + r"(?![a-z0-9])"
    return re.search(pattern, text) is not None


def title_code(title) -> float:
    if not isinstance(title, str):
        return 0.0
    t = title.lower()
    if _contains_word(t, "vp") or _contains_word(t, "vice president"):
        return 3.0
    if _contains_word(t, "director"):
        return 2.0
    if _contains_word(t, "manager"):
        return 1.0
    return 0.0


def encode(record: dict) -> np.ndarray:
    """Raw JSON-like record -> float32[10] in FEATURE_ORDER. Unknown keys are ignored."""
    out = np.zeros(10, dtype=np.float32)
    for i, name in enumerate(NUMERIC_FIELDS):
        v = record.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = np.float32(float(v))
    for j, name in enumerate(BOOL_FIELDS):
        out[5 + j] = np.float32(1.0 if record.get(name) is True else 0.0)
    ind = record.get("industry")
    out[7] = INDUSTRY_MAP.get(ind.lower(), INDUSTRY_DEFAULT) if isinstance(ind, str) else INDUSTRY_DEFAULT
    tl = record.get("decision_timeline")
    out[8] = TIMELINE_MAP.get(tl.lower(), TIMELINE_DEFAULT) if isinstance(tl, str) else TIMELINE_DEFAULT
    out[9] = title_code(record.get("title"))
    return out


def encode_all(records) -> np.ndarray:
    return np.stack([encode(r) for r in records]).astype(np.float32)


# --------------------------------------------------------------------------- data

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def generate_records(rng: np.random.Generator, n: int):
    """Synthetic leads; a latent 'interest' drives the engagement signals."""
    interest = rng.normal(0.0, 1.0, n)
    size = np.clip(np.round(np.exp(rng.uniform(0.0, math.log(5000.0), n))), 1, 5000).astype(int)
    engagement = np.round(np.clip(50 + 22 * interest + rng.normal(0, 12, n), 0, 100), 2)
    visits = np.clip(np.round(rng.poisson(np.exp(1.8 + 0.55 * interest))), 0, 60).astype(int)
    opens = np.clip(rng.poisson(np.exp(1.6 + 0.45 * interest)), 0, 40).astype(int)
    downloads = np.clip(rng.poisson(np.exp(0.3 + 0.6 * interest)), 0, 15).astype(int)
    demo = rng.random(n) < sigmoid(-0.8 + 1.2 * interest)
    budget = rng.random(n) < sigmoid(-0.5 + 0.4 * interest + 0.15 * np.log(size))
    industry = rng.choice(INDUSTRIES, n)
    timeline = rng.choice(TIMELINES, n)
    title = rng.choice(TITLES, n)

    records = []
    for i in range(n):
        rec = {
            "company_size": int(size[i]),
            "engagement_score": float(engagement[i]),
            "website_visits": int(visits[i]),
            "email_opens": int(opens[i]),
            "content_downloads": int(downloads[i]),
            "demo_requested": bool(demo[i]),
            "budget_confirmed": bool(budget[i]),
            "industry": str(industry[i]),
            "decision_timeline": str(timeline[i]),
            "title": str(title[i]),
        }
        # A few raw records arrive incomplete.
        if rng.random() < 0.03:
            for k in rng.choice(FEATURE_ORDER, int(rng.integers(1, 3)), replace=False):
                del rec[str(k)]
        records.append(rec)
    return records


def make_labels(rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
    """Label = Bernoulli(logistic(weighted sum of encoded features + noise))."""
    z = (
        -7.4
        + 0.30 * np.log1p(X[:, 0])
        + 0.035 * X[:, 1]
        + 0.040 * X[:, 2]
        + 0.050 * X[:, 3]
        + 0.120 * X[:, 4]
        + 1.30 * X[:, 5]
        + 1.10 * X[:, 6]
        + 0.35 * X[:, 7]
        + 0.45 * X[:, 8]
        + 0.50 * X[:, 9]
        + 0.8 * X[:, 5] * X[:, 6]  # mild interaction
        + rng.normal(0.0, 0.6, X.shape[0])
    )
    return (rng.random(X.shape[0]) < sigmoid(z)).astype(int)


# --------------------------------------------------------------------------- export

def export_tree_model(model, graph_name: str) -> onnx.ModelProto:
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, 10]))],
        options={id(model): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    onx.graph.name = graph_name  # skl2onnx uses a random UUID; keep reruns byte-identical
    outs = [o.name for o in onx.graph.output]
    if outs != ["label", "probabilities"]:
        sys.exit(f"unexpected output names {outs}")
    ops = [(n.op_type, n.domain) for n in onx.graph.node]
    if ("TreeEnsembleClassifier", "ai.onnx.ml") not in ops:
        sys.exit(f"expected ai.onnx.ml TreeEnsembleClassifier, got {ops}")
    onnx.checker.check_model(onx)
    return onx


def export_logistic(coef_raw: np.ndarray, intercept: float) -> onnx.ModelProto:
    W = numpy_helper.from_array(coef_raw.astype(np.float32).reshape(10, 1), "coef")
    B = numpy_helper.from_array(np.array([intercept], dtype=np.float32), "intercept")
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one")
    nodes = [
        helper.make_node("MatMul", ["input", "coef"], ["logit_raw"], name="matmul"),
        helper.make_node("Add", ["logit_raw", "intercept"], ["logit"], name="add_bias"),
        helper.make_node("Sigmoid", ["logit"], ["p1"], name="sigmoid"),
        helper.make_node("Sub", ["one", "p1"], ["p0"], name="one_minus"),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], name="concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "model21_logistic",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 10])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[W, B, one],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="modelgate-tools-model21",
    )
    model.ir_version = 7  # matches opset 13
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_probabilities(onx: onnx.ModelProto, X: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["probabilities"], {"input": X.astype(np.float32)})[0]


# --------------------------------------------------------------------------- fixture

def forest_band(p1: float) -> str:
    return "cold" if p1 < 0.4 else ("warm" if p1 < 0.7 else "hot")


def coverage_keys(rec: dict, p1: float):
    keys = {("band", forest_band(p1))}
    for f in ("industry", "decision_timeline", "title"):
        if f in rec:
            keys.add((f, rec[f]))
    for f in BOOL_FIELDS:
        if f in rec:
            keys.add((f, rec[f]))
    return keys


def required_keys():
    req = {("band", b) for b in ("cold", "warm", "hot")}
    req |= {("industry", v) for v in INDUSTRIES}
    req |= {("decision_timeline", v) for v in TIMELINES}
    req |= {("title", v) for v in TITLES}
    req |= {(f, v) for f in BOOL_FIELDS for v in (True, False)}
    return req


def build_fixture_inputs(rng, test_records, forest_p1):
    """Pick held-out rows covering every variant, then perturb some of the rest."""
    order = rng.permutation(len(test_records))
    need = required_keys()
    chosen, protected = [], set()
    # Greedy coverage pass (rows kept intact so coverage survives).
    while need:
        best, best_gain = None, 0
        for idx in order:
            if idx in protected:
                continue
            gain = len(coverage_keys(test_records[idx], forest_p1[idx]) & need)
            if gain > best_gain:
                best, best_gain = idx, gain
        if best is None:
            sys.exit(f"held-out data cannot cover {sorted(map(str, need))}")
        protected.add(best)
        chosen.append(best)
        need -= coverage_keys(test_records[best], forest_p1[best])
    for idx in order:
        if len(chosen) >= N_FIXTURE_ROWS:
            break
        if idx not in protected:
            chosen.append(idx)

    inputs = []
    for idx in chosen:
        rec = dict(test_records[idx])
        if idx not in protected:
            if rng.random() < 0.15:
                present = [k for k in FEATURE_ORDER if k in rec]
                k_drop = min(len(present), int(rng.integers(1, 4)))
                for k in rng.choice(present, k_drop, replace=False):
                    del rec[str(k)]
            u = rng.random()
            if u < 0.08:
                rec["utm_source"] = str(rng.choice(["x", "newsletter", "linkedin"]))
            elif u < 0.11:
                rec["utm_source"] = "x"
                rec["lead_id"] = int(rng.integers(10000, 99999))
        inputs.append(rec)
    return inputs


# --------------------------------------------------------------------------- main

def main() -> None:
    default_root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-root", type=Path, default=default_root)
    args = ap.parse_args()
    out_root: Path = args.out_root.resolve()

    rng = np.random.default_rng(SEED)
    records = generate_records(rng, N_ROWS)
    X = encode_all(records)
    y = make_labels(rng, X)

    perm = rng.permutation(N_ROWS)
    n_test = int(N_ROWS * TEST_FRACTION)
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    X_train, y_train = X[train_idx], y[train_idx]
    X_test, y_test = X[test_idx], y[test_idx]
    X_train64 = X_train.astype(np.float64)
    X_test64 = X_test.astype(np.float64)

    forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=SEED)
    forest.fit(X_train, y_train)
    boosting = GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=SEED)
    boosting.fit(X_train, y_train)
    logistic = LogisticRegression(max_iter=2000)
    logistic.fit(X_train64 / LOGISTIC_SCALE, y_train)

    def lr_proba(X32):
        return logistic.predict_proba(X32.astype(np.float64) / LOGISTIC_SCALE)

    probas = {
        "forest": lambda X32: forest.predict_proba(X32),
        "boosting": lambda X32: boosting.predict_proba(X32),
        "logistic": lr_proba,
    }

    print(f"dataset: {N_ROWS} rows, positive rate {y.mean():.3f}; train {len(train_idx)}, held-out {n_test}")
    for name, fn in probas.items():
        p = fn(X_test)
        acc = accuracy_score(y_test, (p[:, 1] >= 0.5).astype(int))
        auc = roc_auc_score(y_test, p[:, 1])
        bands = [forest_band(v) for v in p[:, 1]]
        print(
            f"  {name:9s} held-out accuracy {acc:.4f}  AUC {auc:.4f}  "
            f"cold/warm/hot {bands.count('cold')}/{bands.count('warm')}/{bands.count('hot')}"
        )

    # ---- fixture rows
    test_records = [records[i] for i in test_idx]
    forest_p1_test = forest.predict_proba(X_test)[:, 1]
    fixture_inputs = build_fixture_inputs(rng, test_records, forest_p1_test)
    F = encode_all(fixture_inputs)
    fixture_probas = {name: fn(F) for name, fn in probas.items()}

    # ---- exports
    forest_onnx = export_tree_model(forest, "model21_forest")
    boosting_onnx = export_tree_model(boosting, "model21_boosting")
    coef_raw = logistic.coef_.reshape(-1) / LOGISTIC_SCALE
    logistic_onnx = export_logistic(coef_raw, float(logistic.intercept_[0]))
    exported = {"forest": forest_onnx, "boosting": boosting_onnx, "logistic": logistic_onnx}

    # ---- verification (fail loudly)
    max_diff = {}
    for name, onx in exported.items():
        got = ort_probabilities(onx, F)
        want = fixture_probas[name]
        if got.shape != want.shape:
            sys.exit(f"{name}: onnxruntime shape {got.shape} != sklearn {want.shape}")
        d = float(np.max(np.abs(got.astype(np.float64) - want)))
        max_diff[name] = d
        if not d <= TOL:
            sys.exit(f"{name}: onnxruntime vs sklearn max abs diff {d:.3g} > {TOL}")
        # Also check the held-out set as a whole for good measure.
        d_all = float(np.max(np.abs(ort_probabilities(onx, X_test).astype(np.float64) - probas[name](X_test))))
        if not d_all <= TOL:
            sys.exit(f"{name}: onnxruntime vs sklearn on held-out set max abs diff {d_all:.3g} > {TOL}")

    rows = []
    for i, rec in enumerate(fixture_inputs):
        feats = [float(v) for v in F[i]]  # exact float32 values
        rows.append({
            "inputs": rec,
            "features": feats,
            "forest": [float(v) for v in fixture_probas["forest"][i]],
            "boosting": [float(v) for v in fixture_probas["boosting"][i]],
            "logistic": [float(v) for v in fixture_probas["logistic"][i]],
        })
    fixture = {"feature_order": FEATURE_ORDER, "rows": rows}
    text = json.dumps(fixture, indent=1) + "\n"

    # Round-trip the JSON and re-check the encoder and coverage.
    back = json.loads(text)
    for i, row in enumerate(back["rows"]):
        enc = encode(row["inputs"])
        if not np.array_equal(enc, np.array(row["features"], dtype=np.float32)):
            sys.exit(f"fixture row {i}: encoder {enc.tolist()} != features {row['features']}")
        if row["features"] != [float(v) for v in np.array(row["features"], dtype=np.float32)]:
            sys.exit(f"fixture row {i}: features are not exact float32 values")
    covered = set()
    for row in back["rows"]:
        covered |= coverage_keys(row["inputs"], row["forest"][1])
    missing = required_keys() - covered
    if missing:
        sys.exit(f"fixture misses variants: {sorted(map(str, missing))}")
    n_omit = sum(1 for r in back["rows"] if any(k not in r["inputs"] for k in FEATURE_ORDER))
    n_extra = sum(1 for r in back["rows"] if any(k not in FEATURE_ORDER for k in r["inputs"]))
    if len(back["rows"]) < 250:
        sys.exit("fewer than 250 fixture rows")

    # ---- write
    paths = {
        "forest": out_root / "models/21/model.onnx",
        "boosting": out_root / "tests/fixtures/model21/boosting.onnx",
        "logistic": out_root / "tests/fixtures/model21/logistic.onnx",
    }
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(exported[name].SerializeToString())
    ref_path = out_root / "tests/fixtures/model21/reference.json"
    ref_path.write_text(text)

    bands = [forest_band(r["forest"][1]) for r in back["rows"]]
    print(
        f"fixture: {len(rows)} rows ({n_omit} with omitted fields, {n_extra} with unknown fields); "
        f"forest bands cold/warm/hot {bands.count('cold')}/{bands.count('warm')}/{bands.count('hot')}"
    )
    print("max abs diff onnxruntime vs sklearn: " + ", ".join(f"{k} {v:.2e}" for k, v in max_diff.items()))
    for name, path in list(paths.items()) + [("reference", ref_path)]:
        print(f"wrote {path.relative_to(out_root)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
