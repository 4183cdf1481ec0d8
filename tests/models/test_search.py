"""Grouped CV splits and the grid search as Dask tasks."""

from __future__ import annotations

import numpy as np
import pytest
from distributed import Client, LocalCluster

from smci_dask.config import ModelConfig
from smci_dask.errors import InputError
from smci_dask.models import cell_groups, grouped_kfold, random_kfold, refit_best, search_from_config, search_hyperparameters

FIXED = {"n_estimators": 15, "subsample": 0.632, "max_depth": None, "seed": 7}


def make_cells(n_cells: int = 40, days: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows are cell-days: a cell effect shared by its days plus a nonlinear signal of 8 features."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 500, n_cells).repeat(days)
    cols = rng.integers(0, 500, n_cells).repeat(days)
    X = rng.normal(size=(n_cells * days, 8))
    X[:, 7] = np.repeat(rng.normal(size=n_cells), days)  # a static per-cell covariate
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 7] + 0.2 * rng.normal(size=len(X))
    return {"X": X, "y": y, "groups": cell_groups(rows, cols)}


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return make_cells()


def test_grouped_kfold_never_splits_a_cell(data: dict[str, np.ndarray]) -> None:
    groups = data["groups"]
    folds = grouped_kfold(groups, 5, seed=1)
    seen = np.concatenate([v for _, v in folds])
    assert sorted(seen) == list(range(len(groups)))  # each row validated exactly once
    for train, valid in folds:
        assert not set(groups[train]) & set(groups[valid])
        assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == len(groups)
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 50  # balanced to within one cell
    again = grouped_kfold(groups, 5, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = grouped_kfold(groups, 5, seed=2)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))
    with pytest.raises(InputError, match="n_folds"):
        grouped_kfold(groups[:100], 5, seed=1)  # 2 cells


def test_cell_groups_are_row_col_pairs() -> None:
    g = cell_groups(np.array([1, 1, 2, 1]), np.array([5, 6, 5, 5]))
    assert g[0] == g[3] and len({g[0], g[1], g[2]}) == 3


def test_random_kfold_covers_rows() -> None:
    folds = random_kfold(103, 4, seed=0)
    assert sorted(np.concatenate([v for _, v in folds])) == list(range(103))


def _search(data: dict[str, np.ndarray], client: object = None, progress: object = None):  # noqa: ANN202
    folds = grouped_kfold(data["groups"], 3, seed=0)
    return search_hyperparameters(
        data["X"],
        data["y"],
        folds,
        members=["lightgbm", "xgboost"],
        max_features=[2, 8],
        min_samples_leaf=[5, 600],
        client=client,
        progress=progress,
        **FIXED,
    )


@pytest.fixture(scope="module")
def sequential(data: dict[str, np.ndarray]):  # noqa: ANN201
    return _search(data)


def test_search_on_cluster_matches_sequential(data: dict[str, np.ndarray], sequential) -> None:  # noqa: ANN001
    calls: list[tuple[int, int]] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        on_cluster = _search(data, client, lambda done, total: calls.append((done, total)))
        assert not client.who_has()  # scattered data and results released
        # refit right after, on the same client and the same arrays (scatter keys must not collide)
        ens = refit_best(data["X"], data["y"], on_cluster, feature_names=[f"f{i}" for i in range(8)], client=client)
        local = refit_best(data["X"], data["y"], sequential, feature_names=[f"f{i}" for i in range(8)])
        np.testing.assert_array_equal(ens.predict(data["X"][:200]), local.predict(data["X"][:200]))
    cols = ["member", "max_features", "min_samples_leaf", "rmse_mean", "rmse_std", "ubrmse_mean", "r_mean"]
    assert on_cluster.table[cols].equals(sequential.table[cols])
    assert on_cluster.best == sequential.best
    assert calls[-1] == (24, 24) and len(calls) == 24  # 4 candidates x 3 folds x 2 members


def test_search_table_and_ranking(sequential) -> None:  # noqa: ANN001
    t = sequential.table
    assert set(t["member"]) == {"lightgbm", "xgboost", "ensemble"}
    assert len(t) == 12 and (t["rmse_mean"] > 0).all() and (t["ubrmse_mean"] <= t["rmse_mean"] + 1e-12).all()
    grid = sequential.table_2()
    assert list(grid.index) == [5, 600] and list(grid.columns) == [2, 8]
    # min_samples_leaf 600 (a third of a fold's rows) is obviously worse for every member and max_features
    for member in ("lightgbm", "xgboost", "ensemble"):
        g = sequential.table_2(member)
        assert (g.loc[600] > g.loc[5]).all()
    assert sequential.best["min_samples_leaf"] == 5
    cv = sequential.cv_scores()
    assert cv["n_folds"] == 3 and len(cv["rmse"]) == 3


def test_refit_best_weights_and_config(data: dict[str, np.ndarray], sequential) -> None:  # noqa: ANN001
    names = [f"f{i}" for i in range(8)]
    ens = refit_best(data["X"], data["y"], sequential, feature_names=names, ensemble="weights")
    assert set(ens.members) == {"lightgbm", "xgboost"} and sum(ens.weights.values()) == pytest.approx(1)
    assert ens.params["min_samples_leaf"] == sequential.best["min_samples_leaf"] and ens.params["n_estimators"] == 15
    pred = ens.predict(data["X"])
    assert np.corrcoef(pred, data["y"])[0, 1] > 0.8
    cfg = ModelConfig(members=["xgboost"], n_estimators=10, search={"max_features": [3], "min_samples_leaf": [10, 20], "n_folds": 3})
    res = search_from_config(data["X"], data["y"], grouped_kfold(data["groups"], 3, 0), cfg)
    assert set(res.table["member"]) == {"xgboost"} and res.selected_by == "xgboost"


def test_rf_modes_reach_sklearn_cv_rmse(data: dict[str, np.ndarray]) -> None:
    """Issue 5's check on this problem: grouped 5-fold CV, 100 trees, max_features 1, min_samples_leaf 20."""
    res = search_hyperparameters(
        data["X"],
        data["y"],
        grouped_kfold(data["groups"], 5, seed=0),
        members=["lightgbm", "xgboost", "sklearn"],
        max_features=[1],
        min_samples_leaf=[20],
        n_estimators=100,
        subsample=0.632,
        max_depth=None,
        seed=0,
    )
    rmse = res.table.set_index("member")["rmse_mean"]
    for member in ("lightgbm", "xgboost"):
        assert rmse[member] <= 1.05 * rmse["sklearn"], rmse.to_dict()
