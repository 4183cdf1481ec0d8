"""Grouped CV splits and the grid search as Dask tasks."""

from __future__ import annotations

import numpy as np
import pytest
from distributed import Client, LocalCluster

from smci_dask.config import ModelConfig
from smci_dask.errors import ConfigError, InputError
from smci_dask.models import (
    candidate_grid,
    cell_groups,
    fit_member,
    grouped_kfold,
    make_folds,
    random_kfold,
    refit_best,
    search_from_config,
    search_hyperparameters,
)
from smci_dask.models.search import ForestEnsembleRegressor, sample_candidates

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


def test_grouped_year_folds_keep_years_apart() -> None:
    years = np.repeat([2018, 2019, 2020, 2021, 2022], [30, 40, 50, 20, 10])
    one_per_year = make_folds("grouped_year", len(years), 10, seed=0, years=years)
    assert len(one_per_year) == 5 and sorted(len(v) for _, v in one_per_year) == [10, 20, 30, 40, 50]
    two = make_folds("grouped_year", len(years), 2, seed=3, years=years)
    assert len(two) == 2
    for train, valid in two:
        assert not set(years[train]) & set(years[valid]) and len(train) + len(valid) == len(years)
    with pytest.raises(InputError, match="at least 2"):
        make_folds("grouped_year", 5, 3, seed=0, years=np.full(5, 2020))
    groups = np.repeat(np.arange(6), 10)
    alias = make_folds("grouped", 60, 3, seed=0, groups=groups)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(alias, make_folds("grouped_station", 60, 3, 0, groups=groups), strict=True))
    with pytest.raises(InputError, match="grouped_station, random, grouped_year"):
        make_folds("by_station", 60, 3, seed=0, groups=groups)  # type: ignore[arg-type]


def test_dask_ml_engine_gives_the_tasks_table(data: dict[str, np.ndarray], sequential) -> None:  # noqa: ANN001
    """Same folds and seeds: dask-ml's GridSearchCV over the ensemble estimator scores every cell as the tasks engine does."""
    folds = grouped_kfold(data["groups"], 3, seed=0)
    kw = {"members": ["lightgbm", "xgboost"], "max_features": [2, 8], "min_samples_leaf": [5, 600], **FIXED}
    res = search_hyperparameters(data["X"], data["y"], folds, engine="dask-ml", **kw)
    keys = ["member", "max_features", "min_samples_leaf"]
    cols = ["rmse_mean", "rmse_std", "ubrmse_mean", "r_mean", "bias_mean"]
    a, b = res.table.set_index(keys)[cols], sequential.table.set_index(keys)[cols]
    np.testing.assert_allclose(a.loc[b.index].to_numpy(), b.to_numpy(), rtol=1e-12, atol=1e-15)
    assert res.best == sequential.best and res.engine == "dask-ml" and res.oof is None
    # the ensemble row is the members' mean, recomputed here for one fold from the members' own fits
    train, valid = folds[2]
    p = [
        fit_member(m, data["X"][train], data["y"][train], max_features=8, min_samples_leaf=5, **FIXED).predict(data["X"][valid])
        for m in kw["members"]
    ]
    rmse = np.sqrt(np.mean((np.mean(p, axis=0) - data["y"][valid]) ** 2))
    got = res.folds.query("member == 'ensemble' and max_features == 8 and min_samples_leaf == 5 and fold == 2")["rmse"]
    assert got.to_numpy() == pytest.approx([rmse], rel=1e-9)
    with pytest.raises(ConfigError, match="out-of-fold predictions"):
        refit_best(data["X"], data["y"], res, feature_names=[f"f{i}" for i in range(8)], ensemble="weights")


def test_random_search_draws_the_same_cells_in_both_engines(data: dict[str, np.ndarray], sequential) -> None:  # noqa: ANN001
    grid = candidate_grid([1, 2, 4, 8], [5, 50, 600], 8)
    drawn = sample_candidates(grid, 4, seed=11)
    assert len(drawn) == 4 == len(set(drawn)) and set(drawn) <= set(grid)
    assert sample_candidates(grid, 4, seed=11) == drawn and sample_candidates(grid, 4, seed=12) != drawn
    assert sample_candidates(grid, 99, seed=0) == grid and sample_candidates(grid, None, seed=0) == grid
    folds = grouped_kfold(data["groups"], 2, seed=0)
    kw = {"members": ["xgboost"], "max_features": [2, 8], "min_samples_leaf": [5, 600], "n_iter": 3, **FIXED}
    tasks = search_hyperparameters(data["X"], data["y"], folds, **kw)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        dml = search_hyperparameters(data["X"], data["y"], folds, engine="dask-ml", client=client, **kw)
    cells = sorted(zip(tasks.table["max_features"], tasks.table["min_samples_leaf"], strict=True))
    assert len(cells) == 3 and cells == sorted(zip(dml.table["max_features"], dml.table["min_samples_leaf"], strict=True))
    np.testing.assert_allclose(tasks.table["rmse_mean"], dml.table["rmse_mean"], rtol=1e-12)


def test_ensemble_estimator_is_a_scikit_learn_regressor(data: dict[str, np.ndarray]) -> None:
    from sklearn.base import clone, is_regressor

    est = ForestEnsembleRegressor(members=("lightgbm", "xgboost"), max_features=3, min_samples_leaf=20, **FIXED)
    assert is_regressor(est) and clone(est).get_params() == est.get_params()
    X, y = data["X"][:800], data["y"][:800]
    fitted = clone(est).set_params(max_features=99).fit(X, y)  # max_features above the columns is clipped
    members = fitted.predict_members(X[:50])
    np.testing.assert_allclose(fitted.predict(X[:50]), (members["lightgbm"] + members["xgboost"]) / 2)
    assert fitted.score(X, y) > 0.5  # R^2 of RegressorMixin on its own training rows
