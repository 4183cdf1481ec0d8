"""Successive halving finds the full grid's best cell (within CV noise) for a fraction of the fits' cost."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from smci_dask.errors import ConfigError
from smci_dask.models import halving, make_folds, refit_best, search_hyperparameters
from smci_dask.models import search as search_mod
from smci_dask.models.halving import halving_schedule, search_halving

GRID = {"max_features": [1, 2, 4, 8], "min_samples_leaf": [2, 5, 20, 60]}
FIXED = {"n_estimators": 30, "subsample": 0.632, "max_depth": None, "seed": 0}


@pytest.fixture(scope="module")
def problem() -> dict[str, Any]:
    """8 features, 3 informative (one strongly): many features per split and small leaves should win."""
    rng = np.random.default_rng(11)
    n = 2000
    X = rng.normal(size=(n, 8))
    y = 2 * np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.3 * rng.normal(size=n)
    return {"X": X, "y": y, "folds": make_folds("random", n, 5, seed=0)}


class _CostMeter:
    """Wraps ``fit_member`` as the search calls it and adds up fitted trees x training rows."""

    def __init__(self, real: Any) -> None:
        self.real, self.cost, self.fits = real, 0.0, 0

    def __call__(self, member: str, X: np.ndarray, y: np.ndarray, **hyper: Any) -> Any:
        self.cost += hyper["n_estimators"] * len(X)
        self.fits += 1
        return self.real(member, X, y, **hyper)


@pytest.fixture(scope="module")
def runs(problem: dict[str, Any]) -> dict[str, Any]:
    """The full grid and successive halving on the same folds, each with its fits' cost counted at every fit."""
    with pytest.MonkeyPatch.context() as mp:
        meter = _CostMeter(search_mod.fit_member)
        mp.setattr(search_mod, "fit_member", meter)
        full = search_hyperparameters(problem["X"], problem["y"], problem["folds"], members=["xgboost"], **GRID, **FIXED)
        full_cost, full_fits = meter.cost, meter.fits
        meter.cost, meter.fits = 0.0, 0
        res = search_halving(problem["X"], problem["y"], problem["folds"], members=["xgboost"], **GRID, **FIXED, min_trees=8)
    return {"full": full, "full_cost": full_cost, "full_fits": full_fits, "halving": res, "halving_cost": meter.cost}


def test_halving_finds_the_grid_best_at_lower_cost(problem: dict[str, Any], runs: dict[str, Any]) -> None:
    full, res = runs["full"], runs["halving"]
    # cost: counted independently at every fit, and what the result reports
    assert res.cost == pytest.approx(runs["halving_cost"])
    assert res.exhaustive_cost == pytest.approx(runs["full_cost"]) and runs["full_fits"] == 16 * 5
    # 16 candidates, eta 3: rounds of 16, 6, 2 at 1/9, 1/3, 1 of a full fit's trees x rows -> ~2.7x cheaper
    assert runs["halving_cost"] < runs["full_cost"] / 2.5, (runs["halving_cost"], runs["full_cost"])

    # the chosen cell, scored by the full grid, is the grid's best or within its CV noise (1 standard error of the fold mean)
    table = full.table.set_index(["max_features", "min_samples_leaf"])
    best_full = table.loc[(full.best["max_features"], full.best["min_samples_leaf"])]
    chosen = table.loc[(res.best["max_features"], res.best["min_samples_leaf"])]
    noise = best_full["rmse_std"] / np.sqrt(len(problem["folds"]))
    assert chosen["rmse_mean"] <= best_full["rmse_mean"] + noise, (res.best, full.best)
    # and its last round ran with the full settings on all training rows, so its score is the grid's for that cell
    assert res.final.fixed["n_estimators"] == FIXED["n_estimators"]
    assert res.table["rmse_mean"].min() == pytest.approx(chosen["rmse_mean"])


def test_rounds_table_and_refit(problem: dict[str, Any], runs: dict[str, Any]) -> None:
    res = runs["halving"]
    rounds = res.rounds
    counts = rounds.groupby("round")["max_features"].size().tolist()
    assert counts == [s.n_candidates for s in res.schedule] == [16, 6, 2]
    # survivors of a round are exactly the candidates of the next, and the best of their round
    for r in range(len(counts) - 1):
        cur, nxt = rounds[rounds["round"] == r], rounds[rounds["round"] == r + 1]
        kept = set(map(tuple, cur[cur["kept"]][["max_features", "min_samples_leaf"]].to_numpy()))
        assert kept == set(map(tuple, nxt[["max_features", "min_samples_leaf"]].to_numpy()))
        assert cur[cur["kept"]]["rmse_mean"].max() <= cur[~cur["kept"]]["rmse_mean"].min()
    # trees and rows grow round by round, ending at the full setting
    assert rounds.groupby("round")["n_estimators"].first().is_monotonic_increasing
    assert rounds.groupby("round")["rows_fraction"].first().tolist()[-1] == 1.0
    ens = refit_best(problem["X"], problem["y"], res, feature_names=[f"f{i}" for i in range(8)])
    assert ens.params["max_features"] == res.best["max_features"] and ens.params["n_estimators"] == FIXED["n_estimators"]


def test_schedule_shape_and_errors() -> None:
    s = halving_schedule(125, n_estimators=200, eta=3, min_trees=10, min_rows_fraction=0.1, final_candidates=2)
    assert [r.n_candidates for r in s] == [125, 42, 14, 5, 2]
    assert s[-1].n_estimators == 200 and s[-1].rows_fraction == 1.0
    assert all(a.n_estimators <= b.n_estimators and a.rows_fraction <= b.rows_fraction for a, b in zip(s, s[1:], strict=False))
    assert s[0].rows_fraction == pytest.approx(1 / 9) and s[0].n_estimators == 23  # sqrt(3**-4) of rows and of 200 trees
    floored = halving_schedule(125, n_estimators=200, min_trees=30, min_rows_fraction=0.25)
    assert floored[0].rows_fraction == 0.25 and floored[0].n_estimators == 30
    assert halving_schedule(2, n_estimators=50, final_candidates=2) == [halving.Round(0, 2, 50, 1.0)]
    with pytest.raises(ConfigError, match="eta"):
        halving_schedule(10, n_estimators=50, eta=1)


def test_the_configured_eta_shapes_the_rounds_of_smci_train(problem: dict[str, Any]) -> None:
    """``model.search.eta`` reaches the halving of search_from_config: 16 cells -> 4 -> 1 with eta 4, 16 -> 6 -> 2 with eta 3."""
    from smci_dask.config import ModelConfig
    from smci_dask.models.search import search_from_config

    for eta, counts in ((4, [16, 4, 1]), (3, [16, 6, 2])):
        cfg = ModelConfig(
            members=["xgboost"], n_estimators=12, search={"strategy": "halving", "eta": eta, "max_features": GRID["max_features"],
                                                          "min_samples_leaf": GRID["min_samples_leaf"]}
        )  # fmt: skip
        res = search_from_config(problem["X"], problem["y"], problem["folds"], cfg)
        assert res.rounds.groupby("round")["max_features"].size().tolist() == counts
    with pytest.raises(ValueError, match="eta"):
        ModelConfig(search={"eta": 1})
