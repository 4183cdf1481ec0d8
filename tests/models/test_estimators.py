"""RF-mode LightGBM/XGBoost against scikit-learn's forest: same hyper-parameters, same meaning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smci_dask.errors import ConfigError, InputError
from smci_dask.models import Ensemble, fit_member, fit_weights, make_ensemble, make_estimator
from smci_dask.models.estimators import model_bytes, predict_member, rows_per_tree, tree_leaves

N_FEATURES = 12
HYPER = {"n_estimators": 60, "subsample": 0.632, "max_depth": None, "seed": 3}


def make_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nonlinear regression on 12 features (4 informative) with noise; returns X, y, noiseless truth."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    truth = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2
    return X, truth + 0.3 * rng.normal(size=n), truth


@pytest.fixture(scope="module")
def problem() -> dict[str, np.ndarray]:
    X, y, _ = make_problem(5000, 0)
    Xt, _, truth = make_problem(2000, 1)
    return {"X": X, "y": y, "Xt": Xt, "truth": truth}


@pytest.fixture(scope="module")
def fitted(problem: dict[str, np.ndarray]) -> dict[str, object]:
    return {
        m: fit_member(m, problem["X"], problem["y"], max_features=4, min_samples_leaf=5, **HYPER)
        for m in ("lightgbm", "xgboost", "sklearn")
    }


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.mark.parametrize("member", ["lightgbm", "xgboost"])
def test_rf_mode_close_to_sklearn_forest(member: str, problem: dict[str, np.ndarray], fitted: dict[str, object]) -> None:
    ref = fitted["sklearn"].predict(problem["Xt"])
    pred = fitted[member].predict(problem["Xt"])
    ref_rmse, our_rmse = rmse(ref, problem["truth"]), rmse(pred, problem["truth"])
    assert our_rmse <= 1.15 * ref_rmse, (member, our_rmse, ref_rmse)
    assert np.corrcoef(pred, ref)[0, 1] > 0.9


def _lgb_leaves(node: dict) -> list[dict]:
    if "leaf_index" in node:
        return [node]
    return _lgb_leaves(node["left_child"]) + _lgb_leaves(node["right_child"])


def _lgb_root_features(model: object) -> list[int]:
    return [t["tree_structure"]["split_feature"] for t in model.booster_.dump_model()["tree_info"]]


def _xgb_trees(model: object) -> list[dict]:
    raw = json.loads(bytes(model.get_booster().save_raw(raw_format="json")))
    return raw["learner"]["gradient_booster"]["model"]["trees"]


def test_max_features_samples_per_node() -> None:
    """Only feature 0 carries signal: with all features every root splits on it; with one, roots are spread over features."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1500, N_FEATURES))
    y = 3 * X[:, 0] + 0.1 * rng.normal(size=1500)
    hyper = {**HYPER, "n_estimators": 40}
    all_lgb = fit_member("lightgbm", X, y, max_features=N_FEATURES, min_samples_leaf=20, **hyper)
    one_lgb = fit_member("lightgbm", X, y, max_features=1, min_samples_leaf=20, **hyper)
    assert set(_lgb_root_features(all_lgb)) == {0}
    roots = _lgb_root_features(one_lgb)
    assert len(set(roots)) >= 5 and roots.count(0) < len(roots) / 2
    all_xgb = fit_member("xgboost", X, y, max_features=N_FEATURES, min_samples_leaf=20, **hyper)
    one_xgb = fit_member("xgboost", X, y, max_features=1, min_samples_leaf=20, **hyper)
    assert {t["split_indices"][0] for t in _xgb_trees(all_xgb)} == {0}
    xroots = [t["split_indices"][0] for t in _xgb_trees(one_xgb)]
    assert len(set(xroots)) >= 5 and xroots.count(0) < len(xroots) / 2
    # per node, not per tree: with one feature per node a tree still uses several features
    assert max(len(set(np.asarray(t["split_indices"])[np.asarray(t["left_children"]) != -1])) for t in _xgb_trees(one_xgb)) > 3


@pytest.mark.parametrize("msl", [7, 40])
def test_min_samples_leaf_is_honoured(msl: int, problem: dict[str, np.ndarray]) -> None:
    X, y = problem["X"][:3000], problem["y"][:3000]
    hyper = {**HYPER, "n_estimators": 15}
    lgbm = fit_member("lightgbm", X, y, max_features=6, min_samples_leaf=msl, **hyper)
    counts = [leaf["leaf_count"] for t in lgbm.booster_.dump_model()["tree_info"] for leaf in _lgb_leaves(t["tree_structure"])]
    assert min(counts) >= msl
    # grown fully: some leaves are close to the minimum, not held back by a leaf cap
    assert min(counts) < 2 * msl
    xgbm = fit_member("xgboost", X, y, max_features=6, min_samples_leaf=msl, **hyper)
    covers = [c for t in _xgb_trees(xgbm) for c, left in zip(t["sum_hessian"], t["left_children"], strict=True) if left == -1]
    assert min(covers) >= msl and min(covers) < 2 * msl


def test_estimator_settings_mean_what_the_paper_means() -> None:
    lgbm = make_estimator("lightgbm", n_features=25, max_features=5, min_samples_leaf=20, n_rows=10_000, **HYPER)
    p = lgbm.get_params()
    assert p["boosting_type"] == "rf" and p["subsample_freq"] == 1 and p["subsample"] == 0.632
    assert p["feature_fraction_bynode"] == pytest.approx(0.2) and p["min_child_samples"] == 20 and p["n_jobs"] == 1
    assert p["num_leaves"] == int(np.ceil(10_000 * 0.632)) // 20 and p["max_depth"] == -1
    xgbm = make_estimator("xgboost", n_features=25, max_features=5, min_samples_leaf=20, **HYPER)
    xp = xgbm.get_params()
    assert int(xp["colsample_bynode"] * 25) == 5 and xp["learning_rate"] == 1.0 and xp["reg_lambda"] == 0.0
    assert xp["max_depth"] == 0 and xp["min_child_weight"] == 20 and xp["n_estimators"] == 60
    sk = make_estimator("sklearn", n_features=25, max_features=5, min_samples_leaf=20, **HYPER)
    assert sk.max_features == 5 and sk.max_samples == 0.632 and sk.bootstrap


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="row bagging"):
        make_estimator("lightgbm", n_features=5, max_features=2, min_samples_leaf=5, **{**HYPER, "subsample": 1.0})
    with pytest.raises(ConfigError, match="max_features=9"):
        make_estimator("xgboost", n_features=5, max_features=9, min_samples_leaf=5, **HYPER)
    with pytest.raises(ConfigError, match="unknown"):
        make_estimator("catboost", n_features=5, max_features=2, min_samples_leaf=5, **HYPER)  # type: ignore[arg-type]


def test_ensemble_mean_and_weights(problem: dict[str, np.ndarray], fitted: dict[str, object]) -> None:
    members = {m: fitted[m] for m in ("lightgbm", "xgboost")}
    names = [f"f{i}" for i in range(N_FEATURES)]
    ens = make_ensemble(members, names)
    per = ens.predict_members(problem["Xt"])
    np.testing.assert_allclose(ens.predict(problem["Xt"]), (per["lightgbm"] + per["xgboost"]) / 2)
    # a DataFrame is reordered to the model's features
    import pandas as pd

    df = pd.DataFrame(problem["Xt"], columns=names)[names[::-1]]
    np.testing.assert_allclose(ens.predict(df), ens.predict(problem["Xt"]))
    with pytest.raises(InputError, match="lacks"):
        ens.predict(df.drop(columns="f3"))
    # weights: a useless member gets ~0 weight
    y = problem["truth"]
    w = fit_weights({"good": y + 0.01, "noise": np.random.default_rng(0).normal(size=len(y))}, y)
    assert w["good"] > 0.95 and w["noise"] < 0.05 and sum(w.values()) == pytest.approx(1)
    wens = make_ensemble(members, names, method="weights", oof_predictions=per, y_oof=problem["truth"])
    assert sum(wens.weights.values()) == pytest.approx(1) and all(v >= 0 for v in wens.weights.values())
    with pytest.raises(InputError):
        Ensemble({}, names)


def test_max_leaves_caps_model_size(problem: dict[str, np.ndarray]) -> None:
    X, y = problem["X"][:2000], problem["y"][:2000]
    hyper = {**HYPER, "n_estimators": 10}
    lgbm = fit_member("lightgbm", X, y, max_features=6, min_samples_leaf=5, max_leaves=8, **hyper)
    assert max(t["num_leaves"] for t in lgbm.booster_.dump_model()["tree_info"]) <= 8
    xgbm = fit_member("xgboost", X, y, max_features=6, min_samples_leaf=5, max_leaves=8, **hyper)
    assert max(int(np.sum(np.asarray(t["left_children"]) == -1)) for t in _xgb_trees(xgbm)) <= 8


def test_max_samples_means_rows_per_tree_in_every_library(problem: dict[str, np.ndarray]) -> None:
    """max_samples caps the rows each tree sees: LightGBM's leaf counts, XGBoost's root cover and sklearn's draws sum to it."""
    X, y = problem["X"][:4000], problem["y"][:4000]
    hyper = {**HYPER, "n_estimators": 8}
    assert rows_per_tree(4000, 0.632, 1000) == 1000 and rows_per_tree(4000, 0.632) == 2528 and rows_per_tree(4000, 0.632, 9999) == 2528
    lgbm = fit_member("lightgbm", X, y, max_features=6, min_samples_leaf=10, max_samples=1000, **hyper)
    bags = [sum(leaf["leaf_count"] for leaf in _lgb_leaves(t["tree_structure"])) for t in lgbm.booster_.dump_model()["tree_info"]]
    assert all(900 <= b <= 1100 for b in bags), bags  # Bernoulli bagging: ~1000 rows
    xgbm = fit_member("xgboost", X, y, max_features=6, min_samples_leaf=10, max_samples=1000, **hyper)
    roots = [t["sum_hessian"][0] for t in _xgb_trees(xgbm)]
    assert all(900 <= r <= 1100 for r in roots), roots
    sk = fit_member("sklearn", X, y, max_features=6, min_samples_leaf=10, max_samples=1000, **hyper)
    assert all(e.tree_.weighted_n_node_samples[0] == 1000 for e in sk.estimators_)  # 1000 draws with replacement
    # fewer rows per tree -> fewer leaves: never more than rows // min_samples_leaf
    for model in (lgbm, xgbm, sk):
        assert tree_leaves(model).max() <= 1100 // 10
    with pytest.raises(InputError, match="n_rows"):
        make_estimator("xgboost", n_features=5, max_features=2, min_samples_leaf=5, max_samples=100, **HYPER)
    with pytest.raises(ConfigError, match="max_samples"):
        fit_member("xgboost", X, y, max_features=2, min_samples_leaf=5, max_samples=0, **hyper)


@pytest.mark.parametrize("member", ["lightgbm", "xgboost", "sklearn"])
def test_depth_and_leaf_caps_mean_the_same(member: str, problem: dict[str, np.ndarray]) -> None:
    X, y = problem["X"][:3000], problem["y"][:3000]
    hyper = {**HYPER, "n_estimators": 6}
    shallow = fit_member(member, X, y, max_features=6, min_samples_leaf=5, **{**hyper, "max_depth": 3})
    leaves = tree_leaves(shallow)
    assert leaves.max() == 8 and leaves.min() >= 4  # depth 3 = at most 2**3 leaves, and the cap is reached
    capped = fit_member(member, X, y, max_features=6, min_samples_leaf=5, max_leaves=20, **hyper)
    assert set(tree_leaves(capped)) == {20}  # best-first growth stops at exactly the cap


def test_model_bytes_are_the_native_model(problem: dict[str, np.ndarray], fitted: dict[str, object]) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    Xt = problem["Xt"][:200]
    lgb_bytes = model_bytes(fitted["lightgbm"])
    assert lgb_bytes.startswith(b"tree\n")
    np.testing.assert_allclose(lgb.Booster(model_str=lgb_bytes.decode()).predict(Xt), fitted["lightgbm"].predict(Xt))
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes(fitted["xgboost"])))
    np.testing.assert_allclose(booster.inplace_predict(Xt), fitted["xgboost"].predict(Xt), rtol=1e-6)
    # leaves per tree, counted independently from each library's own dump
    lgb_leaves = [len(_lgb_leaves(t["tree_structure"])) for t in fitted["lightgbm"].booster_.dump_model()["tree_info"]]
    assert tree_leaves(fitted["lightgbm"]).tolist() == lgb_leaves
    xgb_leaves = [int(np.sum(np.asarray(t["left_children"]) == -1)) for t in _xgb_trees(fitted["xgboost"])]
    assert tree_leaves(fitted["xgboost"]).tolist() == xgb_leaves
    sk_leaves = [int(np.sum(e.tree_.children_left == -1)) for e in fitted["sklearn"].estimators_]
    assert tree_leaves(fitted["sklearn"]).tolist() == sk_leaves
    assert len(model_bytes(fitted["sklearn"])) > 0
    with pytest.raises(InputError, match="not a fitted"):
        model_bytes(object())


@pytest.mark.parametrize("member", ["lightgbm", "xgboost", "sklearn"])
def test_float32_input_predicts_exactly_as_its_float64_copy(member: str, problem: dict[str, np.ndarray], fitted: dict[str, object]) -> None:
    """Float32 features are predicted without widening; the widened copy gives bit-identical predictions."""
    X32 = problem["Xt"][:500].astype(np.float32)
    model = fitted[member]
    np.testing.assert_array_equal(predict_member(model, X32), predict_member(model, X32.astype(np.float64)))
    if member != "sklearn":
        booster = model.booster_ if member == "lightgbm" else model.get_booster()
        np.testing.assert_array_equal(predict_member(booster, X32), predict_member(model, X32))
