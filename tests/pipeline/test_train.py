"""`train_experiment` / `train_final` on the tiny world: models, cards, CV tables, figures; choices checked independently."""

from __future__ import annotations

import io
import json
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from smci_dask import conventions as cv
from smci_dask.config import load_config
from smci_dask.errors import InputError, StoreError
from smci_dask.features import FEATURE_NAMES
from smci_dask.io import Store
from smci_dask.models import fit_member, load_card, load_model, make_folds, model_dir
from smci_dask.pipeline.train import (
    choose_run,
    config_fingerprint,
    latest_run,
    load_run_info,
    new_run_id,
    resolve_run,
    train_experiment,
    train_final,
)

Trained = tuple[Store, dict[str, Any]]


def _layer(depth: int) -> str:
    """The ERA5-Land layer a depth's residual forests follow (``model.residual``, default ``matching.layers``)."""
    return f"swvl{load_config(environ={}).matching.layers[depth]}"


def _rows(table: pd.DataFrame, depth: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """A depth's rows with a matched target and the ERA5-Land layer the residual forests add back."""
    sub = table[(table["depth_cm"] == depth) & table["sm_matched"].notna() & table[_layer(depth)].notna()].reset_index(drop=True)
    return sub[list(FEATURE_NAMES)].to_numpy(np.float32), sub["sm_matched"].to_numpy(np.float64), sub


def _residual_fit(member: str, X: np.ndarray, y: np.ndarray, depth: int, **hyper: Any) -> Any:
    """Fit ``member`` by hand on the departure of the target from the depth's ERA5-Land layer; a predictor adding it back."""
    base = X[:, FEATURE_NAMES.index(_layer(depth))].astype(np.float64)
    raw = fit_member(member, X, y - base, **hyper)
    return lambda Z: raw.predict(Z) + Z[:, FEATURE_NAMES.index(_layer(depth))].astype(np.float64)


def _csv(store: Store, path: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(store.read_text(path)))


def test_every_depth_lands_in_the_store(tiny_trained: Trained) -> None:
    store, info = tiny_trained
    run, report = info["run"], info["report"]
    assert sorted(report.depths) == list(cv.DEPTHS_CM)
    for depth in cv.DEPTHS_CM:
        folder = model_dir(run, "final", depth)
        names = set(store.ls(folder))
        assert {"card.json", "lightgbm.txt", "xgboost.ubj", "cv_table.csv", "cv_folds.csv", "table2.png", "params.json"} <= names
        assert "cv_optimism.csv" not in names  # off in the tiny profile
        png = store.read_bytes(f"{folder}/table2.png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(io.BytesIO(png)).ndim == 3
        card = load_card(store, run, "final", depth)
        n_rows = int(((info["table"]["depth_cm"] == depth) & info["table"]["sm_matched"].notna()).sum())
        assert card["train_settings"]["n_rows"] == report.depths[depth].n_rows == n_rows
        assert card["cv_scores"]["folds"]["ensemble"]["n_folds"] == 2
        assert card["hyper_parameters"]["n_estimators"] == info["config"].model.n_estimators == 10
    run_info = load_run_info(store, run)
    assert run_info["config_fingerprint"] == config_fingerprint(info["config"]) and run_info["code_version"]
    assert run_info["experiments"]["final"]["finished"] and run_info["experiments"]["final"]["depths"] == list(cv.DEPTHS_CM)
    saved = json.loads(store.read_text(f"models/{run}/final/report.json"))
    assert saved["depths"]["10"]["params"] == report.depths[10].params
    assert latest_run(store) == run == resolve_run(store, "latest", "final")
    text = report.summary()
    assert all(f"{d:>3} cm: max_features" in text for d in cv.DEPTHS_CM) and "ensemble" in text


def test_chosen_cell_is_the_argmin_of_the_csv(tiny_trained: Trained) -> None:
    store, info = tiny_trained
    for depth in cv.DEPTHS_CM:
        folder = model_dir(info["run"], "final", depth)
        table = _csv(store, f"{folder}/cv_table.csv")
        folds = _csv(store, f"{folder}/cv_folds.csv")
        assert set(table["member"]) == {"lightgbm", "xgboost", "ensemble"} and len(table) == 3 * 4
        # the table's means are the means of the per-fold rows
        means = folds.groupby(["member", "max_features", "min_samples_leaf"])["rmse"].mean()
        np.testing.assert_allclose(
            table.set_index(["member", "max_features", "min_samples_leaf"])["rmse_mean"],
            means.loc[table.set_index(["member", "max_features", "min_samples_leaf"]).index],
        )
        ens = table[table["member"] == "ensemble"]
        best = ens.loc[ens["rmse_mean"].idxmin()]
        params = json.loads(store.read_text(f"{folder}/params.json"))
        assert (params["max_features"], params["min_samples_leaf"]) == (best["max_features"], best["min_samples_leaf"])
        assert table.loc[table["chosen"], ["max_features", "min_samples_leaf"]].drop_duplicates().values.tolist() == [
            [params["max_features"], params["min_samples_leaf"]]
        ]
        card = load_card(store, info["run"], "final", depth)
        assert card["hyper_parameters"]["max_features"] == params["max_features"]
        assert card["cv_scores"]["summary"]["ensemble"]["rmse_mean"] == pytest.approx(best["rmse_mean"])


def test_one_fold_score_recomputed_independently(tiny_trained: Trained) -> None:
    """Refit one (member, cell, fold) by hand on the grouped folds and score it with numpy: the CSV's number."""
    store, info = tiny_trained
    cfg, depth = info["config"], 30
    X, y, sub = _rows(info["table"], depth)
    folds = make_folds("grouped_station", len(y), 2, cfg.model.search.seed, groups=sub["cell_id"].to_numpy())
    for train, valid in folds:
        assert not set(sub["cell_id"].to_numpy()[train]) & set(sub["cell_id"].to_numpy()[valid])
    train, valid = folds[1]
    assert cfg.model.residual  # the default: the forests learn the departure from ERA5-Land
    predict = _residual_fit(
        "xgboost", X[train], y[train], depth, max_features=12, min_samples_leaf=60, n_estimators=10, subsample=0.632, max_depth=None, seed=0
    )
    rmse = float(np.sqrt(np.mean((predict(X[valid]) - y[valid]) ** 2)))
    rows = _csv(store, f"{model_dir(info['run'], 'final', depth)}/cv_folds.csv")
    got = rows.query("member == 'xgboost' and max_features == 12 and min_samples_leaf == 60 and fold == 1")["rmse"]
    assert got.to_numpy() == pytest.approx([rmse], rel=1e-6)


def test_loaded_models_reproduce_the_refit(tiny_trained: Trained) -> None:
    store, info = tiny_trained
    report = info["report"]
    for depth in (10, 60, 100):
        X, y, _ = _rows(info["table"], depth)
        loaded = load_model(store, info["run"], "final", depth)
        np.testing.assert_array_equal(loaded.predict(X), report.models[depth].predict(X))
    # the refit is the members fitted on every row of the depth with the chosen parameters
    X, y, _ = _rows(info["table"], 10)
    p = report.depths[10].params
    lgb = _residual_fit("lightgbm", X, y, 10, **p, n_estimators=10, subsample=0.632, max_depth=None, seed=0)
    xgb = _residual_fit("xgboost", X, y, 10, **p, n_estimators=10, subsample=0.632, max_depth=None, seed=0)
    np.testing.assert_allclose(load_model(store, info["run"], "final", 10).predict(X), (lgb(X) + xgb(X)) / 2, rtol=1e-6)


def _tiny_cfg(info: dict[str, Any], root: str, **search: Any) -> Any:
    """The session run's settings (its ``tiny`` profile) on another store, with ``search`` keys set explicitly."""
    profiles = info["config"].model.profiles
    return load_config(
        overrides={"store": {"root": root}, "model": {"profiles": profiles, "search": {"profile": "tiny", **search}}},
        environ={},
    )


def test_resume_params_and_cv_optimism(tiny_trained: Trained, tmp_path) -> None:  # noqa: ANN001
    _, info = tiny_trained
    store = Store.from_url(tmp_path / "s")
    table = info["table"]
    cfg = _tiny_cfg(info, str(tmp_path / "s"), cv_optimism=True)
    lines: list[str] = []
    first = train_experiment(cfg, store, run="r", experiment="final", table=table, depths=[40], echo=lines.append)
    assert any("40 cm search: 16/16 tasks" in ln for ln in lines)
    opt = _csv(store, f"{model_dir('r', 'final', 40)}/cv_optimism.csv").set_index("member")
    cvt = _csv(store, f"{model_dir('r', 'final', 40)}/cv_table.csv").query("chosen").set_index("member")
    # the configured strategy (grouped by station) is the search's own score; random k-fold is optimistic on station cells
    np.testing.assert_allclose(opt.loc[cvt.index, "rmse_grouped_station"], cvt["rmse_mean"])
    assert (opt["rmse_random"] < opt["rmse_grouped_station"]).all()
    np.testing.assert_allclose(opt["optimism_pct"], 100 * (1 - opt["rmse_random"] / opt["rmse_grouped_station"]))
    created = load_card(store, "r", "final", 40)["created"]

    # same table and settings: kept, nothing fitted
    again = train_experiment(cfg, store, run="r", experiment="final", table=table, depths=[40], echo=lines.append)
    assert again.depths[40].kept and again.depths[40].params == first.depths[40].params
    assert load_card(store, "r", "final", 40)["created"] == created and again.depths[40].cv == first.depths[40].cv

    # parameters given: no search, no CV table, the card carries them
    given = {"max_features": 3, "min_samples_leaf": 30}
    rep = train_experiment(cfg, store, run="r", experiment="station", table=table, depths=[40], params={40: given}, echo=lines.append)
    assert not rep.depths[40].searched and rep.depths[40].params == given
    folder = model_dir("r", "station", 40)
    assert not store.exists(f"{folder}/cv_table.csv")
    card = load_card(store, "r", "station", 40)
    assert {k: card["hyper_parameters"][k] for k in given} == given
    info_json = load_run_info(store, "r")
    assert set(info_json["experiments"]) == {"final", "station"}


def test_grouped_year_cv_and_dask_ml_engine(tiny_trained: Trained, tmp_path) -> None:  # noqa: ANN001
    _, info = tiny_trained
    store = Store.from_url(tmp_path / "s")
    cfg = _tiny_cfg(info, str(tmp_path / "s"), cv="grouped_year", engine="dask-ml", n_folds=5, min_samples_leaf=[40])
    rep = train_experiment(cfg, store, run="y", experiment="final", table=info["table"], depths=[20], echo=lambda _: None)
    folds = _csv(store, f"{model_dir('y', 'final', 20)}/cv_folds.csv")
    # two years in the tiny world: one fold per year, each validating on one whole year
    _, _, sub = _rows(info["table"], 20)
    assert sorted(folds["fold"].unique()) == [0, 1]
    assert sorted(folds.query("member == 'ensemble' and max_features == 4")["n"]) == sorted(sub.groupby("year").size())
    assert rep.depths[20].searched and load_card(store, "y", "final", 20)["cv_scores"]["engine"] == "dask-ml"


def test_on_s3(tiny_trained: Trained, s3_store: tuple[str, dict[str, Any]]) -> None:
    _, info = tiny_trained
    url, opts = s3_store
    store = Store.from_url(url, opts)
    from smci_dask.training import write_training_table

    write_training_table(info["table"][info["table"]["depth_cm"] == 50], store)
    cfg = _tiny_cfg(info, url)
    rep = train_final(cfg, store, run="s3run", depths=[50], echo=lambda _: None)
    loaded = load_model(store, "s3run", "final", 50)
    X, _, _ = _rows(info["table"], 50)
    np.testing.assert_array_equal(loaded.predict(X[:500]), rep.models[50].predict(X[:500]))
    assert store.exists(f"{model_dir('s3run', 'final', 50)}/table2.png") and latest_run(store) == "s3run"


def test_errors_name_the_fix(tiny_trained: Trained, tmp_path) -> None:  # noqa: ANN001
    _, info = tiny_trained
    store = Store.from_url(tmp_path / "empty")
    cfg = _tiny_cfg(info, str(tmp_path / "empty"))
    with pytest.raises(StoreError, match="run `smci table` first"):
        train_final(cfg, store, run="x", echo=lambda _: None)
    with pytest.raises(StoreError, match="run `smci train` first"):
        resolve_run(store, None)
    assert latest_run(store) is None
    with pytest.raises(InputError, match=r"lacks columns \['sm_matched'\]"):
        train_experiment(cfg, store, run="x", experiment="final", table=info["table"].drop(columns="sm_matched"), echo=lambda _: None)
    with pytest.raises(InputError, match=r"no rows for depths \[20\]"):
        table = info["table"][info["table"]["depth_cm"] == 10]
        train_experiment(cfg, store, run="x", experiment="final", table=table, depths=[20], echo=lambda _: None)
    with pytest.raises(InputError, match="without '/'"):
        train_experiment(cfg, store, run="a/b", experiment="final", table=info["table"], echo=lambda _: None)


def test_an_unfinished_run_with_the_same_settings_is_resumed(tiny_trained: Trained, tmp_path) -> None:  # noqa: ANN001
    _, info = tiny_trained
    store = Store.from_url(tmp_path / "s")
    cfg = _tiny_cfg(info, str(tmp_path / "s"))
    train_experiment(
        cfg,
        store,
        run="a",
        experiment="final",
        table=info["table"],
        depths=[10],
        params={10: {"max_features": 5, "min_samples_leaf": 40}},
        echo=lambda _: None,
    )
    assert choose_run(store, cfg) != "a"  # finished: a new run
    run_json = json.loads(store.read_text("models/a/run.json"))
    run_json["experiments"]["final"]["finished"] = None  # as a crash leaves it
    store.write_text("models/a/run.json", json.dumps(run_json))
    assert choose_run(store, cfg) == "a"
    assert choose_run(store, _tiny_cfg(info, str(tmp_path / "s"), n_folds=3)) != "a"  # other settings: a new run
    assert choose_run(store, load_config(overrides={"model": {"run": "named"}}, environ={})) == "named"


def test_run_ids_and_profiles() -> None:
    cfg = load_config(overrides={"model": {"run": "mine"}}, environ={})
    assert new_run_id(cfg) == "mine"
    assert new_run_id(load_config(environ={}), pd.Timestamp("2026-01-02T03:04:05Z").to_pydatetime()) == "20260102T030405Z"
    paper = load_config(environ={}).model
    assert paper.search.profile == "paper" and paper.n_estimators == 200 and paper.search.n_folds == 10
    assert paper.search.min_samples_leaf == [5, 10, 15, 20, 25] and paper.search.max_features[0] == 1
    demo = load_config(overrides={"model": {"search": {"profile": "demo"}}}, environ={}).model
    assert demo.n_estimators < 200 and demo.search.n_folds == 3 and len(demo.search.max_features) * len(demo.search.min_samples_leaf) < 30
    # an explicitly set key wins over the profile, from any layer
    env = {"SMCI__MODEL__N_ESTIMATORS": "33", "SMCI__MODEL__SEARCH__PROFILE": "demo"}
    mixed = load_config(overrides={"model": {"search": {"n_folds": 4}}}, environ=env).model
    assert (mixed.n_estimators, mixed.search.n_folds, mixed.search.max_features) == (33, 4, demo.search.max_features)
    from smci_dask.errors import ConfigError

    with pytest.raises(ConfigError, match="not a profile; known: demo, paper"):
        load_config(overrides={"model": {"search": {"profile": "fast"}}}, environ={})
    with pytest.raises(ConfigError, match="engine 'tasks'"):
        load_config(overrides={"model": {"ensemble": "weights", "search": {"engine": "dask-ml"}}}, environ={})


def test_successive_halving_strategy_writes_its_rounds(tiny_trained: Trained, tmp_path) -> None:  # noqa: ANN001
    _, info = tiny_trained
    store = Store.from_url(tmp_path / "s")
    search = {"strategy": "halving", "max_features": [2, 6, 12], "min_samples_leaf": [20, 60], "n_folds": 2, "cv_optimism": False}
    cfg = load_config(overrides={"store": {"root": str(tmp_path / "s")}, "model": {"n_estimators": 30, "search": search}}, environ={})
    rep = train_experiment(cfg, store, run="h", experiment="final", table=info["table"], depths=[30], echo=lambda _: None)
    folder = model_dir("h", "final", 30)
    rounds = _csv(store, f"{folder}/halving_rounds.csv")
    assert rounds["round"].nunique() >= 2
    first, last = rounds["round"].min(), rounds["round"].max()
    cells = lambda r: set(map(tuple, rounds[rounds["round"] == r][["max_features", "min_samples_leaf"]].to_numpy()))  # noqa: E731
    assert len(cells(first)) == 6 and cells(last) < cells(first)
    chosen = (rep.depths[30].params["max_features"], rep.depths[30].params["min_samples_leaf"])
    assert chosen in cells(last)
    # the last round ran at the full number of trees, and the chosen cell is its lowest ensemble RMSE
    final = rounds[(rounds["round"] == last) & (rounds["member"] == "ensemble")]
    assert (final["n_estimators"] == 30).all()
    best = final.sort_values("rmse_mean").iloc[0]
    assert (int(best["max_features"]), int(best["min_samples_leaf"])) == chosen


def test_depths_trained_two_at_a_time_on_a_cluster_equal_one_after_another(tiny_trained: Trained, tmp_path) -> None:  # noqa: ANN001
    from distributed import Client, LocalCluster

    _, info = tiny_trained
    table, depths = info["table"], [10, 20, 30]
    here = Store.from_url(tmp_path / "here")
    alone = train_experiment(_tiny_cfg(info, str(tmp_path / "here")), here, run="r", experiment="final", table=table, depths=depths)
    lines: list[str] = []
    there = Store.from_url(tmp_path / "there")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        both = train_experiment(
            _tiny_cfg(info, str(tmp_path / "there")),
            there,
            run="r",
            experiment="final",
            table=table,
            depths=depths,
            client=client,
            echo=lines.append,
        )
    # the second depth started before the first was done
    start_20 = next(i for i, ln in enumerate(lines) if ln.startswith("[train] 20 cm: ") and "searching" in ln)
    done_10 = next(i for i, ln in enumerate(lines) if ln.startswith("[train] 10 cm: chosen"))
    assert start_20 < done_10, lines
    assert list(both.depths) == depths  # the report in depth order
    for depth in depths:
        assert both.depths[depth].params == alone.depths[depth].params and both.depths[depth].cv == alone.depths[depth].cv
        folder = model_dir("r", "final", depth)
        assert _csv(there, f"{folder}/cv_folds.csv").equals(_csv(here, f"{folder}/cv_folds.csv"))
        X, _, _ = _rows(table, depth)
        np.testing.assert_array_equal(load_model(there, "r", "final", depth).predict(X), load_model(here, "r", "final", depth).predict(X))
