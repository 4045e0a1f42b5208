#!/usr/bin/env python3
"""Export the ONNX conformance corpus (issue 14, "A corpus that proves it").

Trains a fixed, seeded matrix of small models on synthetic Model-21-like data
(10 float32 features, binary "converts" label, continuous "lead value" target,
3 "tier" classes), exports each one to ONNX, adds hand-built graphs for the
ONNX-ML operators no converter emits, and records onnxruntime's outputs on 300
fixed rows.

Writes, relative to --out-root (default: the repository root):
  tests/fixtures/onnx-corpus/<name>.onnx    one graph per model, input `input` float32 [None, 10]
  tests/fixtures/onnx-corpus/reference.json rows + onnxruntime outputs for every model
  tests/fixtures/onnx-corpus/OPERATORS.md   model -> operators table, distinct ONNX-ML operators

Deterministic: fixed seeds, single-threaded training, graph names fixed, JSON
with sorted keys, no timestamps. Every exported graph is checked against the
original library's predictions (hand-built graphs: onnxruntime only, plus the
trained model they re-encode where there is one); a mismatch above TOL, a
non-finite score or a score that changes with the batch aborts before writing.
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
MAX_GRAPH_BYTES = 25_000
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
    """[(name, kind, estimator, library, needs_nan_training, target)] in a fixed order.

    target: "converts" (binary label), "value" (continuous lead value) or "tier" (3 classes)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier, GradientBoostingRegressor,
        HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        Binarizer, MaxAbsScaler, MinMaxScaler, Normalizer, OneHotEncoder, RobustScaler, StandardScaler,
    )
    from skl2onnx.sklapi import CastTransformer
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

    def add(name, kind, est, library, nan_training=False, target=None):
        out.append((name, kind, est, library, nan_training,
                    target or ("converts" if kind == "classifier" else "value")))

    for name, (kind, make) in base.items():
        add(name, kind, make(), "sklearn")
    for pname, pmake in pre.items():
        for name, (kind, make) in base.items():
            add(f"{pname}__{name}", kind, make_pipeline(pmake(), make()), "sklearn", pname == "simple_imputer")
    for name, (kind, make) in base.items():
        ct = ColumnTransformer(
            [("industry", OneHotEncoder(categories=[list(range(N_INDUSTRIES))], handle_unknown="ignore",
                                        sparse_output=False, dtype=np.float32), [INDUSTRY_COL])],
            remainder="passthrough",
        )
        add(f"onehot_industry__{name}", kind, make_pipeline(ct, make()), "sklearn")

    xgb = dict(n_estimators=N_TREES, max_depth=MAX_DEPTH, learning_rate=0.2, random_state=SEED,
               n_jobs=1, tree_method="hist")
    add("xgboost_classifier", "classifier", xgboost.XGBClassifier(**xgb), "xgboost")
    add("xgboost_regressor", "regressor", xgboost.XGBRegressor(**xgb), "xgboost")
    lgb = dict(n_estimators=N_TREES, max_depth=MAX_DEPTH, num_leaves=15, learning_rate=0.2,
               random_state=SEED, n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)
    add("lightgbm_classifier", "classifier", lightgbm.LGBMClassifier(**lgb), "lightgbm")
    add("lightgbm_regressor", "regressor", lightgbm.LGBMRegressor(**lgb), "lightgbm")
    add("lightgbm_classifier_categorical_industry", "classifier",
        lightgbm.LGBMClassifier(**lgb, min_data_per_group=20, cat_smooth=1.0), "lightgbm_cat")

    # Multiclass (3 tiers of lead value): probabilities [N, 3]. Boosters grow one tree per class and
    # round, so they get MC_TREES rounds of depth 3 to stay under 25 KB.
    mc_forest = dict(forest, n_estimators=MC_TREES)
    mc_boost = dict(boost, n_estimators=MC_TREES, learning_rate=0.3)
    mc_hgb = dict(hgb, max_iter=MC_TREES, max_depth=3, max_leaf_nodes=8, learning_rate=0.3)
    mc_xgb = dict(xgb, n_estimators=MC_TREES, max_depth=3, learning_rate=0.3)
    mc_lgb = dict(lgb, n_estimators=MC_TREES, max_depth=3, num_leaves=8, learning_rate=0.3)
    for name, est, library in (
        ("random_forest_classifier", RandomForestClassifier(**mc_forest), "sklearn"),
        ("gradient_boosting_classifier", GradientBoostingClassifier(**mc_boost), "sklearn"),
        ("hist_gradient_boosting_classifier", HistGradientBoostingClassifier(**mc_hgb), "sklearn"),
        ("logistic_regression", LogisticRegression(max_iter=5000), "sklearn"),
        ("lightgbm_classifier", lightgbm.LGBMClassifier(**mc_lgb), "lightgbm"),
        ("xgboost_classifier", xgboost.XGBClassifier(**mc_xgb), "xgboost"),
    ):
        add(f"multiclass__{name}", "classifier", est, library, target="tier")

    # More preprocessing that skl2onnx exports as ONNX-ML operators, in front of a logistic regression.
    # Normalizer -> ai.onnx.ml Normalizer (inputs here are >= 0, where sklearn's max(|x|) and
    # onnxruntime's signed max agree; see handmade__normalizer_signed), Binarizer -> ai.onnx.ml Binarizer
    # (threshold 1.0 is hit exactly by many integer features), Robust/MaxAbs scalers -> ai.onnx.ml Scaler.
    more_pre = {
        "normalizer_l1": lambda: Normalizer(norm="l1"),
        "normalizer_l2": lambda: Normalizer(norm="l2"),
        "normalizer_max": lambda: Normalizer(norm="max"),
        "binarizer": lambda: Binarizer(threshold=1.0),
        "robust_scaler": RobustScaler,
        "maxabs_scaler": MaxAbsScaler,
    }
    for pname, pmake in more_pre.items():
        add(f"{pname}__logistic_regression", "classifier",
            make_pipeline(pmake(), LogisticRegression(max_iter=5000)), "sklearn")
    # Cast to double inside a float graph (skl2onnx's CastTransformer): the scaler and the regression
    # then run in double with standard operators; the input stays float32 [None, 10].
    add("cast_double__standard_scaler__logistic_regression", "classifier",
        make_pipeline(CastTransformer(dtype=np.float64), StandardScaler(), LogisticRegression(max_iter=5000)),
        "sklearn")
    # skl2onnx's default ZipMap kept; score_output is ZipMap's input, added as an extra graph output.
    add("handmade__zipmap_classifier", "classifier", RandomForestClassifier(**forest), "sklearn_zipmap")
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
    if library.startswith("sklearn"):
        from skl2onnx import convert_sklearn, get_latest_tested_opset_version
        from skl2onnx.common.data_types import FloatTensorType
        options = None
        if kind == "classifier" and library != "sklearn_zipmap":
            options = {id(final_step(est)): {"zipmap": False}}
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
    zipmaps = [n for n in onx.graph.node if n.op_type == "ZipMap"]
    if zipmaps and library != "sklearn_zipmap":
        notes.append("converter kept ZipMap")
    if library == "sklearn_zipmap":
        # onnxruntime only returns graph outputs: expose ZipMap's input (the probabilities tensor).
        if len(zipmaps) != 1:
            sys.exit(f"{name}: expected one ZipMap, found {len(zipmaps)}")
        onx.graph.output.append(onnx.helper.make_tensor_value_info(
            zipmaps[0].input[0], onnx.TensorProto.FLOAT, [None, len(final_step(est).classes_)]))
    ml = [o.version for o in onx.opset_import if o.domain == "ai.onnx.ml"]
    if ml and ml[0] > ML_OPSET:
        notes.append(f"ai.onnx.ml opset {ml[0]} > {ML_OPSET}")
    onnx.checker.check_model(onx)
    return onx, notes


# --------------------------------------------------------------------------- hand-built graphs
#
# ONNX-ML operators and variants no converter here emits. Fixed, round numbers (no fitting) except
# handmade__tree_ensemble_v5_classifier_like, which re-encodes a trained multiclass GradientBoosting
# model and is checked against its predict_proba.

# A plausible linear score over the 10 columns (Model 21's feature order), reused below.
W_SCORE = [0.0004, 0.035, 0.04, 0.05, 0.12, 1.3, 1.1, -0.3, 0.45, 0.5]
B_SCORE = -4.0


def _h():
    from onnx import helper, numpy_helper
    return helper, numpy_helper


def ml_node(op, inputs, outputs, name, **attrs):
    helper, _ = _h()
    return helper.make_node(op, inputs, outputs, name=name, domain="ai.onnx.ml", **attrs)


def std_node(op, inputs, outputs, name, **attrs):
    helper, _ = _h()
    return helper.make_node(op, inputs, outputs, name=name, **attrs)


def int64s(name, values):
    _, numpy_helper = _h()
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def hand_model(name, nodes, outputs, initializers=(), ml_opset=ML_OPSET) -> onnx.ModelProto:
    """Graph with input `input` float32 [None, 10]; outputs [(name, elem_type, width or None for [N])]."""
    helper, _ = _h()
    graph = helper.make_graph(
        nodes, f"onnx_corpus_{name}",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, 10])],
        [helper.make_tensor_value_info(o, t, [None] if k is None else [None, k]) for o, t, k in outputs],
        initializer=list(initializers),
    )
    model = helper.make_model(
        graph, ir_version=HANDMADE_IR, producer_name="tools/onnx-corpus/export.py",
        opset_imports=[helper.make_opsetid("", HANDMADE_OPSET), helper.make_opsetid("ai.onnx.ml", ml_opset)],
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def columns(name, cols, out):
    """ArrayFeatureExtractor of `cols` from the input: [N, len(cols)]."""
    return ml_node("ArrayFeatureExtractor", [INPUT_NAME, f"{name}_idx"], [out], name), int64s(f"{name}_idx", cols)


FLOAT = onnx.TensorProto.FLOAT
INT64 = onnx.TensorProto.INT64


def hand_label_encoder():
    # industry -> Cast INT64 -> LabelEncoder (codes 0..3 mapped, 4 falls to default_float) -> Concat with
    # the 9 other columns -> LinearRegressor.
    afe_ind, idx_ind = columns("industry", [INDUSTRY_COL], "industry_f")
    others = [c for c in range(10) if c != INDUSTRY_COL]
    afe_rest, idx_rest = columns("others", others, "others")
    nodes = [
        afe_ind,
        std_node("Cast", ["industry_f"], ["industry_i"], "cast_industry", to=INT64),
        ml_node("LabelEncoder", ["industry_i"], ["industry_value"], "label_encoder",
                keys_int64s=[0, 1, 2, 3], values_floats=[0.9, 0.7, 0.3, -0.2], default_float=-0.6),
        afe_rest,
        std_node("Concat", ["others", "industry_value"], ["features"], "concat", axis=1),
        ml_node("LinearRegressor", ["features"], ["scores"], "linear",
                coefficients=[W_SCORE[c] for c in others] + [4.0], intercepts=[B_SCORE], targets=1),
    ]
    return hand_model("handmade__label_encoder", nodes, [("scores", FLOAT, 1)], [idx_ind, idx_rest])


def hand_feature_vectorizer():
    # FeatureVectorizer over two column slices (engagement block, categorical block) -> 2-target regressor.
    afe_a, idx_a = columns("engagement", [1, 2, 3, 4], "engagement")
    afe_b, idx_b = columns("categorical", [9, 7, 8], "categorical")
    nodes = [
        afe_a, afe_b,
        ml_node("FeatureVectorizer", ["engagement", "categorical"], ["features"], "vectorizer",
                inputdimensions=[4, 3]),
        ml_node("LinearRegressor", ["features"], ["scores"], "linear", targets=2,
                coefficients=[0.035, 0.04, 0.05, 0.12, 0.5, -0.3, 0.45,
                              -0.01, 0.2, 0.0, 0.3, 1.5, 0.25, -0.75],
                intercepts=[-2.5, 1.0]),
    ]
    return hand_model("handmade__feature_vectorizer", nodes, [("scores", FLOAT, 2)], [idx_a, idx_b])


def hand_normalizer_signed():
    # Scaler centres the columns (negative values), then Normalizer MAX / L1 / L2 side by side, then a
    # 3-target LinearRegressor (one target per norm). onnxruntime's MAX divides by the signed row max.
    offset = [300.0, 50.0, 6.0, 5.0, 1.5, 0.25, 0.5, 2.0, 1.5, 1.5]
    scale = [0.002, 0.04, 0.2, 0.25, 0.5, 2.0, 2.0, 0.5, 0.5, 0.5]
    w = [0.5, 1.0, -0.75, 0.25, 0.6, 1.2, -0.4, 0.3, -0.9, 0.8]
    coef = []
    for k in range(3):
        row = [0.0] * 30
        row[10 * k:10 * k + 10] = w
        coef += row
    nodes = [ml_node("Scaler", [INPUT_NAME], ["centred"], "scaler", offset=offset, scale=scale)]
    for norm in ("MAX", "L1", "L2"):
        nodes.append(ml_node("Normalizer", ["centred"], [f"norm_{norm.lower()}"], f"normalizer_{norm.lower()}",
                             norm=norm))
    nodes += [
        std_node("Concat", ["norm_max", "norm_l1", "norm_l2"], ["features"], "concat", axis=1),
        ml_node("LinearRegressor", ["features"], ["scores"], "linear", targets=3, coefficients=coef,
                intercepts=[0.0, 0.5, -0.5]),
    ]
    return hand_model("handmade__normalizer_signed", nodes, [("scores", FLOAT, 3)])


def hand_imputer_replaced_value():
    # Imputer NaN -> per-column values, then Imputer with replaced_value_float left at its default (0.0)
    # and a single imputed value broadcast to every column, then LinearRegressor. NaN rows are scored.
    nodes = [
        ml_node("Imputer", [INPUT_NAME], ["no_nan"], "impute_nan", replaced_value_float=float("nan"),
                imputed_value_floats=[150.0, 50.0, 6.0, 5.0, 1.0, 0.0, 0.0, 2.0, 1.5, 1.5]),
        ml_node("Imputer", ["no_nan"], ["no_zero"], "impute_zero", imputed_value_floats=[-1.0]),
        ml_node("LinearRegressor", ["no_zero"], ["scores"], "linear", coefficients=W_SCORE,
                intercepts=[B_SCORE], targets=1),
    ]
    return hand_model("handmade__imputer_replaced_value", nodes, [("scores", FLOAT, 1)])


def hand_linear_classifier(post: str):
    # 3 classes. Class 2's row only weighs demo_requested / budget_confirmed with intercept 0, so its score
    # is exactly 0 on about a third of the rows (what SOFTMAX_ZERO treats specially). PROBIT needs scores
    # in (0, 1): small coefficients around 0.5.
    if post == "PROBIT":
        coef = [0.00002, 0.002, 0.003, 0.002, 0.01, 0.1, 0.05, -0.02, 0.02, 0.02,
                -0.00002, -0.002, -0.002, -0.003, -0.01, -0.05, -0.1, 0.03, -0.03, -0.02,
                0.0, 0.001, 0.0, 0.0, 0.0, 0.2, 0.2, 0.0, 0.0, 0.0]
        intercepts = [0.3, 0.7, 0.25]
    else:
        coef = [-0.0003, -0.03, -0.04, -0.05, -0.1, -0.8, -0.6, 0.2, -0.3, -0.3,
                0.0001, 0.01, 0.02, 0.01, 0.05, 0.0, 0.0, -0.1, 0.1, 0.1,
                0.0, 0.0, 0.0, 0.0, 0.0, 1.3, 0.9, 0.0, 0.0, 0.0]
        intercepts = [3.0, -0.5, 0.0]
    nodes = [ml_node("LinearClassifier", [INPUT_NAME], ["label", "probabilities"], "linear",
                     coefficients=coef, intercepts=intercepts, classlabels_ints=[0, 1, 2], multi_class=0,
                     post_transform=post)]
    name = f"handmade__linear_classifier_{post.lower()}"
    return hand_model(name, nodes, [("label", INT64, None), ("probabilities", FLOAT, 3)])


def hand_linear_classifier_binary(post: str):
    # One coefficient row, two class labels: onnxruntime adds the second class itself.
    coef = [c / 4.0 for c in W_SCORE]
    nodes = [ml_node("LinearClassifier", [INPUT_NAME], ["label", "probabilities"], "linear",
                     coefficients=coef, intercepts=[B_SCORE / 4.0 + 0.5], classlabels_ints=[0, 1],
                     post_transform=post)]
    name = f"handmade__linear_classifier_binary_{post.lower()}"
    return hand_model(name, nodes, [("label", INT64, None), ("probabilities", FLOAT, 2)])


def hand_tree_classifier_binary_signed():
    # TreeEnsembleClassifier, binary, one weight column (class id 0), weights of both signs, base value,
    # post_transform NONE: onnxruntime outputs [-s, s] (it gives [1 - s, s] only when all weights >= 0).
    # No missing_value_tracks_true: a NaN goes to the false branch (NaN rows are scored).
    #   tree 0: engagement <= 50 ? (demo <= 0.5 ? -0.6 : 0.2) : (visits <= 6.5 ? 0.1 : 0.7)
    #   tree 1: budget <= 0.5 ? -0.3 : (industry <= 1.5 ? 0.5 : 0.15)
    t = dict(
        nodes_treeids=[0] * 7 + [1] * 5,
        nodes_nodeids=[0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4],
        nodes_featureids=[1, 5, 0, 0, 2, 0, 0, 6, 0, 7, 0, 0],
        nodes_modes=["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF",
                     "BRANCH_LEQ", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_values=[50.0, 0.5, 0, 0, 6.5, 0, 0, 0.5, 0, 1.5, 0, 0],
        nodes_truenodeids=[1, 2, 0, 0, 5, 0, 0, 1, 0, 3, 0, 0],
        nodes_falsenodeids=[4, 3, 0, 0, 6, 0, 0, 2, 0, 4, 0, 0],
        class_treeids=[0, 0, 0, 0, 1, 1, 1],
        class_nodeids=[2, 3, 5, 6, 1, 3, 4],
        class_ids=[0] * 7,
        class_weights=[-0.6, 0.2, 0.1, 0.7, -0.3, 0.5, 0.15],
        classlabels_int64s=[0, 1],
        base_values=[0.05],
        post_transform="NONE",
    )
    nodes = [ml_node("TreeEnsembleClassifier", [INPUT_NAME], ["label", "probabilities"], "trees", **t)]
    return hand_model("handmade__tree_classifier_binary_signed", nodes,
                      [("label", INT64, None), ("probabilities", FLOAT, 2)])


MODE_CODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
              "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6}
AGGREGATE_CODES = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}
POST_CODES = {"NONE": 0, "SOFTMAX": 1, "LOGISTIC": 2, "SOFTMAX_ZERO": 3, "PROBIT": 4}


def tree_ensemble_v5(name, trees, n_targets, post="NONE", aggregate="SUM", after=()):
    """ai.onnx.ml opset-5 TreeEnsemble node from nested trees.

    A tree is ("leaf", target, weight) or (mode, feature, split_or_members, tracks_true, true, false);
    for BRANCH_MEMBER the third item is the member list. A bare leaf becomes one node whose both branches
    are that leaf (the spec's encoding of a single-leaf tree)."""
    _, numpy_helper = _h()
    nodes = dict(modes=[], features=[], splits=[], tracks=[], true_ids=[], true_leaf=[], false_ids=[],
                 false_leaf=[])
    members, leaf_targets, leaf_weights, roots = [], [], [], []

    def leaf(t):
        leaf_targets.append(t[1])
        leaf_weights.append(t[2])
        return len(leaf_weights) - 1

    def node(t):
        i = len(nodes["modes"])
        mode, feature, split, tracks = t[0], t[1], t[2], t[3]
        nodes["modes"].append(MODE_CODES[mode])
        nodes["features"].append(feature)
        if mode == "BRANCH_MEMBER":
            nodes["splits"].append(0.0)
            # One NaN after each set: onnx's reference implementation wants as many NaNs as member
            # nodes; onnxruntime reads the same sets with or without the last NaN.
            members.extend(split)
            members.append(float("nan"))
        else:
            nodes["splits"].append(split)
        nodes["tracks"].append(tracks)
        for key in ("true_ids", "true_leaf", "false_ids", "false_leaf"):
            nodes[key].append(0)  # filled below, once the children have their indices
        for key, child in (("true", t[4]), ("false", t[5])):
            if child[0] == "leaf":
                nodes[f"{key}_ids"][i], nodes[f"{key}_leaf"][i] = leaf(child), 1
            else:
                nodes[f"{key}_ids"][i], nodes[f"{key}_leaf"][i] = node(child), 0
        return i

    for t in trees:
        if t[0] == "leaf":
            i = len(nodes["modes"])
            li = leaf(t)
            for k, v in (("modes", 0), ("features", 0), ("splits", 0.0), ("tracks", 0), ("true_ids", li),
                         ("true_leaf", 1), ("false_ids", li), ("false_leaf", 1)):
                nodes[k].append(v)
            roots.append(i)
        else:
            roots.append(node(t))
    attrs = dict(
        tree_roots=roots,
        nodes_modes=numpy_helper.from_array(np.array(nodes["modes"], dtype=np.uint8)),
        nodes_featureids=nodes["features"],
        nodes_splits=numpy_helper.from_array(np.array(nodes["splits"], dtype=np.float32)),
        nodes_truenodeids=nodes["true_ids"], nodes_trueleafs=nodes["true_leaf"],
        nodes_falsenodeids=nodes["false_ids"], nodes_falseleafs=nodes["false_leaf"],
        leaf_targetids=leaf_targets,
        leaf_weights=numpy_helper.from_array(np.array(leaf_weights, dtype=np.float32)),
        n_targets=n_targets, aggregate_function=AGGREGATE_CODES[aggregate], post_transform=POST_CODES[post],
    )
    if any(nodes["tracks"]):
        attrs["nodes_missing_value_tracks_true"] = nodes["tracks"]
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.array(members, dtype=np.float32))
    node_ = ml_node("TreeEnsemble", [INPUT_NAME], ["scores"], "trees", **attrs)
    out = after[-1].output[0] if after else "scores"
    return hand_model(name, [node_, *after], [(out, FLOAT, n_targets)], ml_opset=5)


def hand_tree_ensemble_v5_member():
    # Every node mode, two BRANCH_MEMBER sets (NaN-delimited in membership_values, the first holds 0.0),
    # missing-value tracking on some numeric nodes (NaN rows are scored; without tracking a NaN takes the
    # false branch, except BRANCH_NEQ where NaN != split is true), and a single-leaf bias tree whose node
    # index (10) differs from its leaf index (14). One target, SUM. onnx 1.23's reference evaluator gets
    # both of the last two wrong (a 0.0 member ends its set; a single-leaf tree reads leaf[root node
    # index]); onnxruntime follows the spec.
    L = lambda w: ("leaf", 0, w)
    trees = [
        ("BRANCH_MEMBER", INDUSTRY_COL, [0.0, 1.0, 4.0], 0,
         ("BRANCH_LEQ", 1, 55.5, 1, L(-1.25), L(0.75)),
         ("BRANCH_LT", 2, 6.0, 0, L(-0.5), L(1.5))),
        ("BRANCH_GTE", 4, 2.0, 1,
         ("BRANCH_MEMBER", 9, [2.0, 3.0], 0, L(2.0), L(0.25)),
         L(-0.75)),
        ("BRANCH_GT", 0, 200.0, 0,
         ("BRANCH_EQ", 5, 1.0, 0,
          ("BRANCH_NEQ", 8, 0.0, 0, L(1.0), L(0.5)),
          L(-0.25)),
         L(-1.0)),
        ("BRANCH_LEQ", 3, 4.0, 1, ("BRANCH_GTE", 6, 1.0, 0, L(0.6), L(-0.1)), L(0.3)),
        L(3.0),
    ]
    return tree_ensemble_v5("handmade__tree_ensemble_v5_member", trees, 1)


def f32_threshold(t: float) -> float:
    """Largest float32 <= t: `x <= t` then holds for the same float32 x as sklearn's float64 test."""
    t32 = np.float32(t)
    if float(t32) > t:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return float(t32)


def hand_tree_ensemble_v5_classifier_like(gb):
    # A trained 3-class GradientBoostingClassifier re-encoded as one TreeEnsemble: every (round, class)
    # tree with leaf weight learning_rate * value and target = class, one single-leaf tree per class for
    # the prior's raw score, SUM, then a standard Softmax (axis 1). Equals gb.predict_proba.
    # Not post_transform SOFTMAX: onnxruntime 1.31 reads TreeEnsemble's post_transform with its own
    # enum order (1 = LOGISTIC, 2 = SOFTMAX), the spec says 1 = SOFTMAX, 2 = LOGISTIC.
    trees = []
    lr = gb.learning_rate

    def convert(tree, i, target):
        if tree.children_left[i] == -1:
            return ("leaf", target, float(lr * tree.value[i].reshape(-1)[0]))
        return ("BRANCH_LEQ", int(tree.feature[i]), f32_threshold(float(tree.threshold[i])), 0,
                convert(tree, tree.children_left[i], target), convert(tree, tree.children_right[i], target))

    for k, prior in enumerate(gb._raw_predict_init(np.zeros((1, 10), dtype=np.float32))[0]):
        trees.append(("leaf", k, float(prior)))
    for stage in gb.estimators_:
        for k, reg in enumerate(stage):
            trees.append(convert(reg.tree_, 0, k))
    softmax = std_node("Softmax", ["scores"], ["probabilities"], "softmax", axis=1)
    return tree_ensemble_v5("handmade__tree_ensemble_v5_classifier_like", trees, N_TIERS, after=[softmax])


def handmade_models(fitted: dict):
    """[(name, kind, model, nan_scored, score_output, native_fn or None)]"""
    out = [
        ("handmade__label_encoder", "regressor", hand_label_encoder(), False, "scores", None),
        ("handmade__feature_vectorizer", "regressor", hand_feature_vectorizer(), False, "scores", None),
        ("handmade__normalizer_signed", "regressor", hand_normalizer_signed(), False, "scores", None),
        ("handmade__imputer_replaced_value", "regressor", hand_imputer_replaced_value(), True, "scores", None),
    ]
    for post in ("NONE", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"):
        model = hand_linear_classifier(post)
        out.append((model.graph.name.removeprefix("onnx_corpus_"), "classifier", model, False, "probabilities",
                    None))
    for post in ("NONE", "LOGISTIC"):
        model = hand_linear_classifier_binary(post)
        out.append((model.graph.name.removeprefix("onnx_corpus_"), "classifier", model, False, "probabilities",
                    None))
    out.append(("handmade__tree_classifier_binary_signed", "classifier", hand_tree_classifier_binary_signed(),
                True, "probabilities", None))
    out.append(("handmade__tree_ensemble_v5_member", "regressor", hand_tree_ensemble_v5_member(), True, "scores",
                None))
    gb = fitted["multiclass__gradient_boosting_classifier"]
    out.append(("handmade__tree_ensemble_v5_classifier_like", "classifier",
                hand_tree_ensemble_v5_classifier_like(gb), False, "probabilities",
                lambda X: np.asarray(gb.predict_proba(X), dtype=np.float64)))
    return out


def operators(onx: onnx.ModelProto) -> list[str]:
    ops = set()
    for n in onx.graph.node:
        ops.add(f"{n.domain or 'ai.onnx'}:{n.op_type}")
    return sorted(ops)


def op_details(onx: onnx.ModelProto) -> list[str]:
    """Attribute facts a runtime must honour: post_transform, node modes, missing-value tracking, ..."""
    mode_names = {v: k for k, v in MODE_CODES.items()}
    post_names = {v: k for k, v in POST_CODES.items()}
    agg_names = {v: k for k, v in AGGREGATE_CODES.items()}
    out = []
    for n in onx.graph.node:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        facts = []
        if "post_transform" in a:
            p = a["post_transform"]
            facts.append(f"post_transform={post_names[p] if isinstance(p, int) else p.decode()}")
        if "nodes_modes" in a:
            m = a["nodes_modes"]
            if isinstance(m, onnx.TensorProto):  # ai.onnx.ml 5 TreeEnsemble: uint8 codes
                modes = sorted({mode_names[int(c)] for c in onnx.numpy_helper.to_array(m)})
            else:
                modes = sorted({x.decode() for x in m} - {"LEAF"})
            facts.append("modes=" + "/".join(modes))
        if any(a.get("nodes_missing_value_tracks_true", [])):
            facts.append("missing_value_tracks_true")
        if "base_values" in a:
            facts.append("base_values")
        if "aggregate_function" in a:
            g = a["aggregate_function"]
            facts.append(f"aggregate={agg_names[g] if isinstance(g, int) else g.decode()}")
        if "classlabels_int64s" in a:
            facts.append(f"classes={len(a['classlabels_int64s'])}")
        if n.op_type == "TreeEnsembleClassifier" and len(a["classlabels_int64s"]) == 2:
            ids = sorted(set(a["class_ids"]))
            sign = "all>=0" if min(a["class_weights"]) >= 0 else "signed"
            facts.append(f"class_ids={'/'.join(str(i) for i in ids)} weights={sign}")
        if n.op_type == "TreeEnsemble":
            leaf_w = onnx.numpy_helper.to_array(a["leaf_weights"])
            single = sum(1 for t, f, tl, fl in zip(a["nodes_truenodeids"], a["nodes_falsenodeids"],
                                                   a["nodes_trueleafs"], a["nodes_falseleafs"])
                         if tl and fl and t == f)
            facts.append(f"n_targets={a.get('n_targets', 1)} trees={len(a['tree_roots'])} leaves={len(leaf_w)}"
                         + (f" single_leaf_trees={single}" if single else ""))
            if "membership_values" in a:
                mv = onnx.numpy_helper.to_array(a["membership_values"])
                facts.append(f"member_sets={int(np.isnan(mv).sum()) + 1}")
        if n.op_type == "LinearClassifier":
            facts.append(f"classes={len(a['classlabels_ints'])} coefficient_rows={len(a['intercepts'])}"
                         + (f" multi_class={a['multi_class']}" if a.get("multi_class") else ""))
        if n.op_type == "LinearRegressor" and a.get("targets", 1) > 1:
            facts.append(f"targets={a['targets']}")
        if n.op_type == "Imputer":
            rv = a.get("replaced_value_float")
            facts.append(f"replaced_value={rv if rv is not None else '0.0 (default)'}"
                         + (" imputed=one value" if len(a.get("imputed_value_floats", [])) == 1 else ""))
        if n.op_type == "OneHotEncoder":
            facts.append(f"cats_int64s={'/'.join(str(c) for c in a.get('cats_int64s', []))} zeros={a.get('zeros', 1)}")
        if n.op_type == "Cast":
            facts.append(f"to={onnx.TensorProto.DataType.Name(a['to'])}")
        if n.op_type == "Normalizer":
            facts.append(f"norm={a['norm'].decode()}")
        if n.op_type == "Binarizer":
            facts.append(f"threshold={a.get('threshold', 0.0):g}")
        if n.op_type == "LabelEncoder":
            keys = "/".join(str(k) for k in a.get("keys_int64s", []))
            facts.append(f"keys_int64s={keys} values_floats default_float={a.get('default_float', -0.0):g}")
        if n.op_type == "FeatureVectorizer":
            facts.append(f"inputdimensions={'/'.join(str(d) for d in a['inputdimensions'])}")
        if n.op_type == "ZipMap":
            facts.append("classlabels_int64s (output not scored)")
        if facts:
            out.append(f"{n.op_type}: {' '.join(facts)}")
    return sorted(set(out))


def opsets(onx: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): o.version for o in onx.opset_import}


def score_output(onx: onnx.ModelProto, kind: str) -> str:
    names = [o.name for o in onx.graph.output]
    zipmaps = [n.input[0] for n in onx.graph.node if n.op_type == "ZipMap"]
    if zipmaps:
        return zipmaps[0]
    if kind == "classifier":
        for cand in ("probabilities",):
            if cand in names:
                return cand
        return names[1]
    return names[0]


def run_ort(data: bytes, output: str, *Xs: np.ndarray) -> np.ndarray | list[np.ndarray]:
    """onnxruntime's `output` for each batch in Xs (one session), as float32 [N, k]."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    outs = []
    for X in Xs:
        out = sess.run([output], {INPUT_NAME: X.astype(np.float32)})[0]
        out = np.asarray(out, dtype=np.float32)
        outs.append(out.reshape(out.shape[0], -1))
    return outs[0] if len(outs) == 1 else outs


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

    edges = np.quantile(yr_train, [k / N_TIERS for k in range(1, N_TIERS)])
    yt_train = np.digitize(yr_train, edges).astype(np.int64)
    targets = {"converts": yc_train, "value": yr_train, "tier": yt_train}
    print(f"tiers: lead value edges {', '.join(f'{e:.3f}' for e in edges)}; "
          f"counts {np.bincount(yt_train).tolist()}")

    models, blobs, max_diff, notes_all = {}, {}, {}, {}
    opset_summary: dict[str, set] = {}

    def record(name, kind, onx, library, nan_scored, out_name, native, notes=(), extra=None):
        data = onx.SerializeToString()
        # NaN rows go to onnxruntime only for graphs scored on them (Binarizer rejects a NaN input).
        X_in = X_fix_nan if nan_scored else X_fix
        rows = np.arange(N_FIXTURE_ROWS) if nan_scored else clean_rows
        got, *singles, backwards = run_ort(data, out_name, X_in, *(X_in[[r]] for r in rows[:20]),
                                           X_in[rows[::-1]])
        if not np.all(np.isfinite(got[rows])):
            sys.exit(f"{name}: onnxruntime output is not finite on a scored row")
        # Same numbers (to float32 summation order) one row at a time and in reverse order: catches
        # uninitialised output memory (what PROBIT on a binary LinearClassifier gives).
        again = np.concatenate(singles + [backwards[::-1]])
        if not np.allclose(again, np.concatenate([got[rows[:20]], got[rows]]), rtol=1e-5, atol=1e-5):
            sys.exit(f"{name}: onnxruntime output depends on the batch")
        d = float("nan")
        if native is not None:
            want = native(X_in)
            if got.shape != want.shape:
                sys.exit(f"{name}: onnxruntime shape {got.shape} != native {want.shape}")
            d = float(np.max(np.abs(got[rows].astype(np.float64) - want[rows])))
            scale = max(1.0, float(np.max(np.abs(want[rows]))))
            if not d <= TOL * scale:
                sys.exit(f"{name}: onnxruntime vs native max abs diff {d:.3g} > {TOL * scale:.3g}")
        max_diff[name] = d
        outputs = []
        for i in range(N_FIXTURE_ROWS):
            if not nan_scored and i in nan_rows:
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
            "nan_rows_scored": nan_scored,
            "outputs": outputs,
            **(extra or {}),
        }
        for dom, v in models[name]["opsets"].items():
            opset_summary.setdefault(dom, set()).add(v)
        if notes:
            notes_all[name] = notes
        if len(data) >= MAX_GRAPH_BYTES:
            sys.exit(f"{name}: graph is {len(data)} B (limit {MAX_GRAPH_BYTES})")
        blobs[name] = data

    fitted = {}
    for name, kind, est, library, nan_training, target in build_matrix():
        fit(est, library, X_train_nan if nan_training else X_train, targets[target])
        fitted[name] = est
        onx, notes = export(name, kind, est, library)
        extra = {"graph_has_zipmap": True} if library == "sklearn_zipmap" else None
        record(name, kind, onx, library, nan_training, score_output(onx, kind),
               lambda X, est=est, kind=kind: native_scores(est, kind, X), notes, extra)
    for name, kind, onx, nan_scored, out_name, native in handmade_models(fitted):
        if onx.graph.name != f"onnx_corpus_{name}":
            sys.exit(f"{name}: graph named {onx.graph.name}")
        record(name, kind, onx, "handmade", nan_scored, out_name, native)

    reference = {
        "description": "onnxruntime outputs for every graph in this folder; generated by tools/onnx-corpus/export.py. "
                       "outputs[i] is score_output for rows[i] (probabilities [k] or value [1]); it is null "
                       "for rows in nan_rows unless nan_rows_scored (imputer pipelines, some hand-built graphs).",
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
        diff = "  (none)" if math.isnan(max_diff[name]) else f"{max_diff[name]:.1e}"
        print(f"  {name:58s} {len(blobs[name]):7d} B  diff {diff}  {' '.join(models[name]['operators'])}")
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
