"""The trees one by one: each tree's own prediction, and the ensemble's spread of the trees (inference.uncertainty).

Every per-tree prediction is checked against a path that does not use
``pred_leaf``: LightGBM predicting one iteration at a time, a hand-written
walk of XGBoost's JSON trees, scikit-learn's estimators one by one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from smci_dask.io import Store
from smci_dask.models import fit_member, make_ensemble
from smci_dask.models.estimators import OffsetModel, _booster, predict_member, tree_predictions
from smci_dask.models.store import load_model, save_model

N_FEATURES = 6
HYPER = {"max_features": 3, "min_samples_leaf": 5, "n_estimators": 15, "subsample": 0.632, "max_depth": None, "seed": 7}
NAMES = [f"f{i}" for i in range(N_FEATURES)]


def _problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Soil-moisture-like rows: column 5 plays ERA5-Land's layer (the residual form's offset)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[:, 5] = 0.25 + 0.05 * X[:, 5]
    y = X[:, 5] + 0.03 * np.tanh(X[:, 0]) + 0.01 * X[:, 1] * X[:, 2] + 0.01 * rng.normal(size=n)
    return X, y.astype(np.float64)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    X, y = _problem(2500, 0)
    Xt, _ = _problem(400, 1)
    return {"X": X, "y": y, "Xt": Xt}


@pytest.fixture(scope="module")
def members(data: dict[str, np.ndarray]) -> dict[str, object]:
    return {m: fit_member(m, data["X"], data["y"], offset_column=5, **HYPER) for m in ("lightgbm", "xgboost", "sklearn")}


# ---------------------------------------------------------------- independent per-tree paths
def _lightgbm_by_iteration(model: object, X: np.ndarray) -> np.ndarray:
    booster = _booster(model)[1]
    return np.stack([booster.predict(X, start_iteration=t, num_iteration=1) for t in range(booster.num_trees())], axis=1)


def _xgboost_by_walking(model: object, X: np.ndarray) -> np.ndarray:
    """Walk every JSON tree by hand: left when x < threshold (missing: default direction); a forest of one tree."""
    learner = json.loads(bytes(_booster(model)[1].save_raw(raw_format="json")))["learner"]
    base = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))
    trees = learner["gradient_booster"]["model"]["trees"]
    out = np.empty((len(X), len(trees)))
    for t, tree in enumerate(trees):
        left, right = tree["left_children"], tree["right_children"]
        feature, threshold, default_left = tree["split_indices"], tree["split_conditions"], tree["default_left"]
        for i, x in enumerate(X):
            node = 0
            while left[node] != -1:
                value = np.float32(x[feature[node]])
                go_left = bool(default_left[node]) if np.isnan(value) else value < np.float32(threshold[node])
                node = left[node] if go_left else right[node]
            out[i, t] = base + len(trees) * threshold[node]
    return out


def _sklearn_by_estimator(model: object, X: np.ndarray) -> np.ndarray:
    return np.stack([est.predict(X) for est in _booster(model)[1].estimators_], axis=1)


INDEPENDENT = {"lightgbm": _lightgbm_by_iteration, "xgboost": _xgboost_by_walking, "sklearn": _sklearn_by_estimator}


@pytest.mark.parametrize("member", ["lightgbm", "xgboost", "sklearn"])
def test_each_trees_prediction_equals_an_independent_path_and_their_mean_the_forest(members, data, member) -> None:
    model = members[member]
    assert isinstance(model, OffsetModel)
    X = data["Xt"][:120]
    trees = tree_predictions(model, X)
    assert trees.shape == (len(X), HYPER["n_estimators"])
    offset = X[:, 5].astype(np.float64)[:, None]
    np.testing.assert_allclose(trees, INDEPENDENT[member](model.model, X) + offset, rtol=0, atol=2e-7)
    np.testing.assert_allclose(trees.mean(axis=1), predict_member(model, X), rtol=0, atol=1e-7)
    assert np.all(trees.std(axis=1) > 0)  # the trees differ (bagging and feature sampling)


def test_spread_is_the_weighted_std_of_the_pooled_trees(members, data) -> None:
    """Unequal member weights: every tree weighs its member's weight / its member's trees; the weighted mean is predict()."""
    X = data["Xt"]
    ens = make_ensemble(members, NAMES)
    ens.weights = {"lightgbm": 0.5, "xgboost": 0.3, "sklearn": 0.2}
    trees = np.concatenate([INDEPENDENT[m](members[m].model, X) + X[:, 5:6].astype(np.float64) for m in ens.members], axis=1)
    w = np.concatenate([np.full(HYPER["n_estimators"], ens.weights[m] / HYPER["n_estimators"]) for m in ens.members])
    mean = trees @ w
    want = np.sqrt(((trees - mean[:, None]) ** 2) @ w)
    np.testing.assert_allclose(mean, ens.predict(X), rtol=0, atol=2e-7)
    np.testing.assert_allclose(ens.predict_spread(X), want, rtol=0, atol=1e-7)
    # taken a few rows at a time: the same numbers
    np.testing.assert_allclose(ens.predict_spread(X, chunk_rows=37), want, rtol=0, atol=1e-7)


def test_spread_grows_where_the_training_targets_scatter(data) -> None:
    """Rows like those with noisy targets spread more than rows like those with exact ones (a forest's trees disagree there)."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(4000, N_FEATURES)).astype(np.float32)
    noisy = X[:, 0] > 0
    y = 0.2 + 0.02 * X[:, 1] + np.where(noisy, 0.05, 0.0) * rng.normal(size=len(X))
    ens = make_ensemble({m: fit_member(m, X, y, **HYPER) for m in ("lightgbm", "xgboost")}, NAMES)
    Xt = rng.uniform(-1, 1, size=(500, N_FEATURES)).astype(np.float32)
    spread = ens.predict_spread(Xt)
    assert np.median(spread[Xt[:, 0] > 0.2]) > 2 * np.median(spread[Xt[:, 0] < -0.2])


def test_models_read_back_from_the_store_spread_the_same(members, data, tmp_path) -> None:
    store = Store.from_url(str(tmp_path))
    ens = make_ensemble({m: members[m] for m in ("lightgbm", "xgboost")}, NAMES)
    save_model(store, "r1", "final", 10, ens, training_fingerprint="x")
    loaded = load_model(store, "r1", "final", 10, features=NAMES)
    X = data["Xt"]
    assert type(_booster(loaded.members["lightgbm"])[1]).__name__ == "Booster"  # native boosters, not the fitted estimators
    np.testing.assert_allclose(loaded.predict_spread(X), ens.predict_spread(X), rtol=0, atol=1e-9)
