"""The residual form of the target (``model.residual``): forests learn ``y - X[:, column]`` and predict it back.

Expected values come from fitting the library's estimator directly on the
residual (``make_estimator`` on ``y - base``) and adding the column by hand,
never from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from smci_dask.config import load_config
from smci_dask.errors import InputError
from smci_dask.features import FEATURE_NAMES
from smci_dask.io import Store
from smci_dask.models import OffsetModel, fit_member, load_card, load_model, make_ensemble, make_estimator, model_checksum, save_model
from smci_dask.models.cv import make_folds
from smci_dask.models.estimators import model_bytes, predict_member
from smci_dask.models.search import search_hyperparameters
from smci_dask.pipeline.train import offset_column

HYPER = {"n_estimators": 15, "subsample": 0.632, "max_depth": None, "seed": 2, "max_features": 3, "min_samples_leaf": 10}
BASE = 4  # the column the target follows


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """A target that is one feature plus a small nonlinear departure: the case the residual form is for."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1500, 6)).astype(np.float32)
    X[:, BASE] = rng.uniform(0.1, 0.4, size=1500)
    y = X[:, BASE].astype(np.float64) + 0.02 * np.sin(X[:, 0]) + 0.005 * rng.normal(size=1500)
    return {"X": X, "y": y}


@pytest.mark.parametrize("member", ["lightgbm", "xgboost", "sklearn"])
def test_offset_member_is_the_forest_of_the_residual_plus_the_column(member: str, data: dict[str, np.ndarray]) -> None:
    X, y = data["X"], data["y"]
    got = fit_member(member, X, y, offset_column=BASE, **HYPER)
    assert isinstance(got, OffsetModel) and got.column == BASE
    by_hand = make_estimator(member, n_features=X.shape[1], n_rows=len(X), **HYPER).fit(X, y - X[:, BASE].astype(np.float64))
    Xt = X[:200]
    expected = np.asarray(by_hand.predict(Xt), dtype=np.float64) + Xt[:, BASE].astype(np.float64)
    np.testing.assert_allclose(predict_member(got, Xt), expected, rtol=0, atol=1e-6)
    # the stored bytes are the library's own model of the residual
    assert model_bytes(got) == model_bytes(by_hand)


def test_a_forest_of_the_residual_reaches_past_the_training_range(data: dict[str, np.ndarray]) -> None:
    # the reason for the form: a forest's prediction stays inside the targets it saw; the residual one follows the column
    X, y = data["X"], data["y"]
    far = X[:50].copy()
    far[:, BASE] = 0.55  # wetter than any training row
    direct = predict_member(fit_member("lightgbm", X, y, **HYPER), far)
    residual = predict_member(fit_member("lightgbm", X, y, offset_column=BASE, **HYPER), far)
    assert direct.max() <= y.max() + 1e-9
    assert np.all(np.abs(residual - 0.55) < 0.05)


def test_offset_column_must_be_a_finite_feature(data: dict[str, np.ndarray]) -> None:
    X, y = data["X"].copy(), data["y"]
    with pytest.raises(InputError, match="offset column 9"):
        fit_member("lightgbm", X, y, offset_column=9, **HYPER)
    X[3, BASE] = np.nan
    with pytest.raises(InputError, match="1 missing values"):
        fit_member("lightgbm", X, y, offset_column=BASE, **HYPER)


def test_search_scores_are_in_target_units(data: dict[str, np.ndarray]) -> None:
    X, y = data["X"], data["y"]
    folds = make_folds("random", len(y), 3, 0)
    fixed = {k: HYPER[k] for k in ("n_estimators", "subsample", "max_depth", "seed")}
    res = search_hyperparameters(X, y, folds, members=["lightgbm"], max_features=[3], min_samples_leaf=[10], offset_column=BASE, **fixed)
    train, valid = folds[0]
    by_hand = make_estimator("lightgbm", n_features=6, n_rows=len(train), max_features=3, min_samples_leaf=10, **fixed)
    by_hand.fit(X[train], y[train] - X[train, BASE].astype(np.float64))
    pred = by_hand.predict(X[valid]) + X[valid, BASE].astype(np.float64)
    rmse = float(np.sqrt(np.mean((pred - y[valid]) ** 2)))
    row = res.folds[(res.folds["member"] == "lightgbm") & (res.folds["fold"] == 0)].iloc[0]
    assert row["rmse"] == pytest.approx(rmse, rel=1e-6)
    assert res.fixed["offset_column"] == BASE


def test_store_round_trip_keeps_the_offset(tmp_path, data: dict[str, np.ndarray]) -> None:  # noqa: ANN001
    X, y = data["X"], data["y"]
    names = list(FEATURE_NAMES[:6])
    members = {m: fit_member(m, X, y, offset_column=BASE, **HYPER) for m in ("lightgbm", "xgboost")}
    ens = make_ensemble(members, names, params=HYPER)
    store = Store.from_url(str(tmp_path))
    card = save_model(store, "r", "final", 40, ens, training_fingerprint="x")
    assert card["ensemble"]["offset_feature"] == names[BASE]
    loaded = load_model(store, "r", "final", 40, features=names)
    assert all(isinstance(m, OffsetModel) and m.column == BASE for m in loaded.members.values())
    np.testing.assert_array_equal(loaded.predict(X[:100]), ens.predict(X[:100]))
    # the same trees without the offset predict something else: the checksum (the workers' cache key) tells them apart
    plain = dict(load_card(store, "r", "final", 40))
    plain["ensemble"] = {**plain["ensemble"], "offset_feature": None}
    assert model_checksum(plain) != card["checksum"]


def test_offset_column_per_depth_follows_the_matching_layers() -> None:
    cfg = load_config(None, environ={})
    assert cfg.model.residual is True
    assert FEATURE_NAMES[offset_column(cfg, 10)] == "swvl2" and FEATURE_NAMES[offset_column(cfg, 30)] == "swvl2"
    assert FEATURE_NAMES[offset_column(cfg, 40)] == "swvl3" and FEATURE_NAMES[offset_column(cfg, 100)] == "swvl3"
    custom = load_config(None, overrides={"matching": {"layers": {10: 1}}}, environ={})
    assert FEATURE_NAMES[offset_column(custom, 10)] == "swvl1"
    off = load_config(None, overrides={"model": {"residual": False}}, environ={})
    assert offset_column(off, 50) is None
