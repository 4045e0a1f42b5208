#!/usr/bin/env python3
"""Export the ONNX conformance corpus (issue 14, "A corpus that proves it").

Trains a fixed, seeded matrix of small models on synthetic Model-21-like data
(10 float32 features, binary "converts" label, continuous "lead value" target),
exports each one to ONNX and records onnxruntime's outputs on 300 fixed rows.

Writes, relative to --out-root (default: the repository root):
  tests/fixtures/onnx-corpus/<name>.onnx    one graph per model, input `input` float32 [None, 10]
  tests/fixtures/onnx-corpus/reference.json rows + onnxruntime outputs for every model
  tests/fixtures/onnx-corpus/OPERATORS.md   model -> operators table, distinct ONNX-ML operators

Deterministic: fixed seeds, single-threaded training, graph names fixed, JSON
with sorted keys, no timestamps. Every exported graph is checked against the
original library's predictions; a mismatch above TOL aborts before writing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

SEED = 14
N_TRAIN = 4000
N_FIXTURE_ROWS = 300
N_NAN_ROWS = 30           # fixture rows with one numeric column set to NaN (imputer pipelines only)
TRAIN_NAN_FRACTION = 0.05  # training rows with a NaN, for the imputer pipelines only
N_TREES = 20
MAX_DEPTH = 4
MC_TREES = 8              # multiclass boosters grow one tree per class per round: fewer rounds, depth 3
N_TIERS = 3               # multiclass target: the lead value binned at its training tertiles
TOL = 1e-4
INPUT_NAME = "input"      # same as models/21/model.onnx
ML_OPSET = 3              # ai.onnx.ml cap for broad runtime support
HANDMADE_OPSET = 21       # ai.onnx opset of the hand-built graphs
HANDMADE_IR = 10          # IR version of the hand-built graphs (ai.onnx.ml 5 needs >= 10)
OUT_DIR = "tests/fixtures/onnx-corpus"

FEATURE_ORDER = [
    "company_size", "engagement_score", "website_visits", "email_opens", "content_downloads",
    "demo_requested", "budget_confirmed", "industry", "decision_timeline", "title",
]
NUMERIC_COLS = [0, 1, 2, 3, 4]
INDUSTRY_COL = 7
N_INDUSTRIES = 5  # industry is an integer code 0..4 in this corpus (one-hot / categorical tests)


# --------------------------------------------------------------------------- data

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def generate(rng: np.random.Generator, n: int):
    """Already-encoded Model-21-like features (float32 [n, 10]), class label and regression target."""
    interest = rng.normal(0.0, 1.0, n)
    size = np.clip(np.round(np.exp(rng.uniform(0.0, math.log(5000.0), n))), 1, 5000)
    engagement = np.round(np.clip(50 + 22 * interest + rng.normal(0, 12, n), 0, 100), 2)
    visits = np.clip(rng.poisson(np.exp(1.8 + 0.55 * interest)), 0, 60)
    opens = np.clip(rng.poisson(np.exp(1.6 + 0.45 * interest)), 0, 40)
    downloads = np.clip(rng.poisson(np.exp(0.3 + 0.6 * interest)), 0, 15)
    demo = (rng.random(n) < sigmoid(-0.8 + 1.2 * interest)).astype(float)
    budget = (rng.random(n) < sigmoid(-0.5 + 0.4 * interest + 0.15 * np.log(size))).astype(float)
    industry = rng.integers(0, N_INDUSTRIES, n).astype(float)
    timeline = rng.integers(0, 4, n).astype(float)
    title = rng.integers(0, 4, n).astype(float)
    X = np.column_stack([size, engagement, visits, opens, downloads, demo, budget, industry, timeline, title])
    X = X.astype(np.float32)

    industry_effect = np.array([0.9, 0.7, 0.3, -0.2, -0.6])[industry.astype(int)]
    z = (
        -6.9
        + 0.30 * np.log1p(size)
        + 0.035 * engagement
        + 0.040 * visits
        + 0.050 * opens
        + 0.120 * downloads
        + 1.30 * demo
        + 1.10 * budget
        + industry_effect
        + 0.45 * timeline
        + 0.50 * title
        + 0.8 * demo * budget
    )
    y_class = (rng.random(n) < sigmoid(z + rng.normal(0.0, 0.6, n))).astype(np.int64)
    # Regression target: expected deal value (k$), noisy, industry-dependent.
    y_reg = (5.0 + 2.0 * np.log1p(size) + 3.0 * z + 4.0 * industry_effect + rng.normal(0.0, 1.5, n))
    return X, y_class, y_reg.astype(np.float64)


def with_nans(rng: np.random.Generator, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Copy of X with one random numeric column set to NaN in each row of idx."""
    Xn = X.copy()
    for i in idx:
        Xn[i, NUMERIC_COLS[int(rng.integers(0, len(NUMERIC_COLS)))]] = np.nan
    return Xn


# --------------------------------------------------------------------------- model matrix

def build_matrix():
    """[(name, kind, estimator, library, needs_nan_training)] in a fixed order."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier, GradientBoostingRegressor,
        HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    import lightgbm
    import xgboost

    forest = dict(n_estimators=N_TREES, max_depth=MAX_DEPTH, random_state=SEED, n_jobs=1)
    boost = dict(n_estimators=N_TREES, max_depth=3, learning_rate=0.2, random_state=SEED)
    hgb = dict(max_iter=N_TREES, max_depth=MAX_DEPTH, max_leaf_nodes=15, learning_rate=0.2,
               early_stopping=False, random_state=SEED)
    base = {
        # name: (kind, factory)
        "decision_tree_classifier": ("classifier", lambda: DecisionTreeClassifier(max_depth=MAX_DEPTH, random_state=SEED)),
        "decision_tree_regressor": ("regressor", lambda: DecisionTreeRegressor(max_depth=MAX_DEPTH, random_state=SEED)),
        "random_forest_classifier": ("classifier", lambda: RandomForestClassifier(**forest)),
        "random_forest_regressor": ("regressor", lambda: RandomForestRegressor(**forest)),
        "extra_trees_classifier": ("classifier", lambda: ExtraTreesClassifier(**forest)),
        "extra_trees_regressor": ("regressor", lambda: ExtraTreesRegressor(**forest)),
        "gradient_boosting_classifier": ("classifier", lambda: GradientBoostingClassifier(**boost)),
        "gradient_boosting_regressor": ("regressor", lambda: GradientBoostingRegressor(**boost)),
        "hist_gradient_boosting_classifier": ("classifier", lambda: HistGradientBoostingClassifier(**hgb)),
        "hist_gradient_boosting_regressor": ("regressor", lambda: HistGradientBoostingRegressor(**hgb)),
        "logistic_regression": ("classifier", lambda: LogisticRegression(max_iter=5000)),
        "linear_regression": ("regressor", lambda: LinearRegression()),
    }
    pre = {
        "standard_scaler": StandardScaler,
        "minmax_scaler": MinMaxScaler,
        "simple_imputer": SimpleImputer,
    }
    out = []
    for name, (kind, make) in base.items():
        out.append((name, kind, make(), "sklearn", False))
    for pname, pmake in pre.items():
        for name, (kind, make) in base.items():
            out.append((f"{pname}__{name}", kind, make_pipeline(pmake(), make()), "sklearn",
                        pname == "simple_imputer"))
    for name in ("random_forest_classifier", "logistic_regression"):
        kind, make = base[name]
        ct = ColumnTransformer(
            [("industry", OneHotEncoder(categories=[list(range(N_INDUSTRIES))], handle_unknown="ignore",
                                        sparse_output=False, dtype=np.float32), [INDUSTRY_COL])],
            remainder="passthrough",
        )
        out.append((f"onehot_industry__{name}", kind, make_pipeline(ct, make()), "sklearn", False))

    xgb = dict(n_estimators=N_TREES, max_depth=MAX_DEPTH, learning_rate=0.2, random_state=SEED,
               n_jobs=1, tree_method="hist")
    out.append(("xgboost_classifier", "classifier", xgboost.XGBClassifier(**xgb), "xgboost", False))
    out.append(("xgboost_regressor", "regressor", xgboost.XGBRegressor(**xgb), "xgboost", False))
    lgb = dict(n_estimators=N_TREES, max_depth=MAX_DEPTH, num_leaves=15, learning_rate=0.2,
               random_state=SEED, n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)
    out.append(("lightgbm_classifier", "classifier", lightgbm.LGBMClassifier(**lgb), "lightgbm", False))
    out.append(("lightgbm_regressor", "regressor", lightgbm.LGBMRegressor(**lgb), "lightgbm", False))
    out.append(("lightgbm_classifier_categorical_industry", "classifier",
                lightgbm.LGBMClassifier(**lgb, min_data_per_group=20, cat_smooth=1.0), "lightgbm_cat", False))
    return out


def fit(est, library, X, y):
    if library == "lightgbm_cat":
        est.fit(X, y, categorical_feature=[INDUSTRY_COL])
    else:
        est.fit(X, y)
    return est


def native_scores(est, kind, X):
    if kind == "classifier":
        return np.asarray(est.predict_proba(X), dtype=np.float64)
    return np.asarray(est.predict(X), dtype=np.float64).reshape(-1, 1)


# --------------------------------------------------------------------------- export

def final_step(est):
    return est.steps[-1][1] if hasattr(est, "steps") else est


def export(name, kind, est, library) -> tuple[onnx.ModelProto, list[str]]:
    notes = []
    if library == "sklearn":
        from skl2onnx import convert_sklearn, get_latest_tested_opset_version
        from skl2onnx.common.data_types import FloatTensorType
        options = {id(final_step(est)): {"zipmap": False}} if kind == "classifier" else None
        onx = convert_sklearn(
            est,
            initial_types=[(INPUT_NAME, FloatTensorType([None, 10]))],
            options=options,
            # main domain: skl2onnx's latest tested opset (its default when onnx is newer)
            target_opset={"": get_latest_tested_opset_version(), "ai.onnx.ml": ML_OPSET},
        )
    else:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
        types = [(INPUT_NAME, FloatTensorType([None, 10]))]
        if library == "xgboost":
            onx = onnxmltools.convert_xgboost(est, initial_types=types)
        else:
            onx = onnxmltools.convert_lightgbm(est, initial_types=types, zipmap=False)
    # Keep reruns byte-identical: converters may use random graph names, and skl2onnx lists
    # opset_import in set order (varies with PYTHONHASHSEED).
    onx.graph.name = f"onnx_corpus_{name}"
    ordered = sorted(((o.domain, o.version) for o in onx.opset_import))
    del onx.opset_import[:]
    for dom, ver in ordered:
        onx.opset_import.add(domain=dom, version=ver)
    if any(n.op_type == "ZipMap" for n in onx.graph.node):
        notes.append("converter kept ZipMap")
    ml = [o.version for o in onx.opset_import if o.domain == "ai.onnx.ml"]
    if ml and ml[0] > ML_OPSET:
        notes.append(f"ai.onnx.ml opset {ml[0]} > {ML_OPSET}")
    onnx.checker.check_model(onx)
    return onx, notes


def operators(onx: onnx.ModelProto) -> list[str]:
    ops = set()
    for n in onx.graph.node:
        ops.add(f"{n.domain or 'ai.onnx'}:{n.op_type}")
    return sorted(ops)


def op_details(onx: onnx.ModelProto) -> list[str]:
    """Attribute facts a runtime must honour: post_transform, node modes, missing-value tracking, ..."""
    out = []
    for n in onx.graph.node:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        facts = []
        if "post_transform" in a:
            facts.append(f"post_transform={a['post_transform'].decode()}")
        if "nodes_modes" in a:
            modes = sorted({m.decode() for m in a["nodes_modes"]} - {"LEAF"})
            facts.append("modes=" + "/".join(modes))
        if any(a.get("nodes_missing_value_tracks_true", [])):
            facts.append("missing_value_tracks_true")
        if "base_values" in a:
            facts.append("base_values")
        if "aggregate_function" in a:
            facts.append(f"aggregate={a['aggregate_function'].decode()}")
        if "classlabels_int64s" in a:
            facts.append(f"classes={len(a['classlabels_int64s'])}")
        if n.op_type == "Imputer":
            facts.append(f"replaced_value={a.get('replaced_value_float', 'nan')}")
        if n.op_type == "OneHotEncoder":
            facts.append(f"cats_int64s={'/'.join(str(c) for c in a.get('cats_int64s', []))} zeros={a.get('zeros', 1)}")
        if n.op_type == "Cast":
            facts.append(f"to={onnx.TensorProto.DataType.Name(a['to'])}")
        if facts:
            out.append(f"{n.op_type}: {' '.join(facts)}")
    return sorted(set(out))


def opsets(onx: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): o.version for o in onx.opset_import}


def score_output(onx: onnx.ModelProto, kind: str) -> str:
    names = [o.name for o in onx.graph.output]
    if kind == "classifier":
        for cand in ("probabilities",):
            if cand in names:
                return cand
        return names[1]
    return names[0]


def run_ort(data: bytes, output: str, X: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    out = sess.run([output], {INPUT_NAME: X.astype(np.float32)})[0]
    out = np.asarray(out, dtype=np.float32)
    return out.reshape(out.shape[0], -1)


# --------------------------------------------------------------------------- output

def f32(v) -> float | None:
    """Shortest decimal that round-trips the float32 value (compact, exact); NaN -> None."""
    v = np.float32(v)
    if np.isnan(v):
        return None
    return float(str(v))


def write_operators_md(path: Path, entries: dict, opset_summary: dict) -> None:
    lines = [
        "# ONNX corpus operators",
        "",
        "Generated by `tools/onnx-corpus/export.py`; do not edit. `ai.onnx` is the default domain.",
        "",
        "| model | kind | opsets | operators | details |",
        "| --- | --- | --- | --- | --- |",
    ]
    all_ops = set()
    for name in sorted(entries):
        e = entries[name]
        all_ops |= set(e["operators"])
        ops = ", ".join(f"`{o}`" for o in e["operators"])
        osets = ", ".join(f"{k} {v}" for k, v in sorted(e["opsets"].items()))
        details = "<br>".join(e["operator_details"])
        lines.append(f"| {name} | {e['kind']} | {osets} | {ops} | {details} |")
    ml = sorted(o for o in all_ops if o.startswith("ai.onnx.ml:"))
    std = sorted(o for o in all_ops if not o.startswith("ai.onnx.ml:"))
    lines += ["", "## Distinct ONNX-ML operators (domain `ai.onnx.ml`)", ""]
    lines += [f"- `{o}`" for o in ml]
    lines += ["", "## Distinct standard operators (domain `ai.onnx`)", ""]
    lines += [f"- `{o}`" for o in std]
    lines += ["", "## Opset imports seen", ""]
    for dom in sorted(opset_summary):
        lines.append(f"- `{dom}`: {', '.join(str(v) for v in sorted(opset_summary[dom]))}")
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- main

def main() -> None:
    default_root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-root", type=Path, default=default_root)
    args = ap.parse_args()
    out_dir = args.out_root.resolve() / OUT_DIR
    t0 = time.monotonic()

    rng = np.random.default_rng(SEED)
    X_train, yc_train, yr_train = generate(rng, N_TRAIN)
    X_train_nan = with_nans(rng, X_train, rng.choice(N_TRAIN, int(N_TRAIN * TRAIN_NAN_FRACTION), replace=False))
    X_fix, _, _ = generate(rng, N_FIXTURE_ROWS)
    nan_rows = sorted(int(i) for i in rng.choice(N_FIXTURE_ROWS, N_NAN_ROWS, replace=False))
    X_fix_nan = with_nans(rng, X_fix, nan_rows)
    clean_rows = np.array([i for i in range(N_FIXTURE_ROWS) if i not in set(nan_rows)])
    print(f"train {N_TRAIN} rows (positive rate {yc_train.mean():.3f}); fixture {N_FIXTURE_ROWS} rows, "
          f"{N_NAN_ROWS} with a NaN")

    models, blobs, max_diff, notes_all = {}, {}, {}, {}
    opset_summary: dict[str, set] = {}
    for name, kind, est, library, nan_training in build_matrix():
        y = yc_train if kind == "classifier" else yr_train
        fit(est, library, X_train_nan if nan_training else X_train, y)
        onx, notes = export(name, kind, est, library)
        data = onx.SerializeToString()
        out_name = score_output(onx, kind)
        got = run_ort(data, out_name, X_fix_nan)
        want = native_scores(est, kind, X_fix_nan if nan_training else X_fix)
        if got.shape != want.shape:
            sys.exit(f"{name}: onnxruntime shape {got.shape} != native {want.shape}")
        rows = slice(None) if nan_training else clean_rows
        d = float(np.max(np.abs(got[rows].astype(np.float64) - want[rows])))
        scale = max(1.0, float(np.max(np.abs(want[rows]))))
        if not d <= TOL * scale:
            sys.exit(f"{name}: onnxruntime vs native max abs diff {d:.3g} > {TOL * scale:.3g}")
        max_diff[name] = d
        outputs = []
        for i in range(N_FIXTURE_ROWS):
            if not nan_training and i in nan_rows:
                outputs.append(None)
            else:
                outputs.append([f32(v) for v in got[i]])
        models[name] = {
            "kind": kind,
            "file": f"{name}.onnx",
            "library": library.split("_")[0],
            "score_output": out_name,
            "graph_outputs": [o.name for o in onx.graph.output],
            "operators": operators(onx),
            "operator_details": op_details(onx),
            "opsets": opsets(onx),
            "nan_rows_scored": nan_training,
            "outputs": outputs,
        }
        for dom, v in models[name]["opsets"].items():
            opset_summary.setdefault(dom, set()).add(v)
        if notes:
            notes_all[name] = notes
        blobs[name] = data

    reference = {
        "description": "onnxruntime outputs for every graph in this folder; generated by tools/onnx-corpus/export.py. "
                       "outputs[i] is score_output for rows[i] (probabilities [k] or value [1]); it is null "
                       "for rows in nan_rows unless nan_rows_scored (imputer pipelines).",
        "feature_order": FEATURE_ORDER,
        "input_name": INPUT_NAME,
        "onnxruntime": ort.__version__,
        "nan_rows": nan_rows,
        "rows": [[f32(v) for v in row] for row in X_fix_nan],
        "models": models,
    }
    # One row / output per line keeps diffs readable while staying compact.
    text = json.dumps(reference, sort_keys=True, indent=1, allow_nan=False)
    text = compact_lists(text) + "\n"
    back = json.loads(text)
    for i, row in enumerate(back["rows"]):
        expect = [None if np.isnan(v) else float(v) for v in X_fix_nan[i]]
        if [None if v is None else float(np.float32(v)) for v in row] != expect:
            sys.exit(f"reference row {i} does not round-trip to float32")

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.onnx"):
        if old.stem not in blobs:
            old.unlink()
    for name, data in blobs.items():
        (out_dir / f"{name}.onnx").write_bytes(data)
    (out_dir / "reference.json").write_text(text)
    write_operators_md(out_dir / "OPERATORS.md", models, opset_summary)

    total = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    biggest = max(blobs, key=lambda k: len(blobs[k]))
    for name in blobs:
        print(f"  {name:58s} {len(blobs[name]):7d} B  diff {max_diff[name]:.1e}  {' '.join(models[name]['operators'])}")
    for name, notes in notes_all.items():
        print(f"  NOTE {name}: {'; '.join(notes)}")
    print(f"{len(blobs)} models; reference.json {(out_dir / 'reference.json').stat().st_size} B; "
          f"largest graph {biggest} {len(blobs[biggest])} B; total {total} B; {time.monotonic() - t0:.1f}s")


def compact_lists(text: str) -> str:
    """Put every innermost list of scalars on one line (strings in this file hold no quotes or commas)."""
    import re
    pattern = re.compile(r"\[\s*((?:-?[0-9.eE+-]+|null|\"[^\"\n]*\")(?:,\s*(?:-?[0-9.eE+-]+|null|\"[^\"\n]*\"))*)\s*\]")
    return pattern.sub(lambda m: json.dumps(json.loads(m.group(0)), separators=(",", ":")), text)


if __name__ == "__main__":
    main()
