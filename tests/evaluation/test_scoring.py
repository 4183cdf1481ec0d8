"""Scores: per-station values and pooled metrics against a plain pandas computation; bootstrap intervals; importance."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from smci_dask.evaluation.importance import model_importance, permutation_importance
from smci_dask.evaluation.scoring import ALL_DEPTHS, MIN_STATION_DAYS, bootstrap_intervals, padded, per_station, score_predictions


def _predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for cell in range(8):
        for depth in (10, 50):
            n = int(rng.integers(20, 120))
            obs = 0.25 + 0.05 * rng.standard_normal(n)
            frames.append(
                pd.DataFrame(
                    {
                        "experiment": "year",
                        "cell_id": cell,
                        "row": cell,
                        "col": cell,
                        "lat": 37.0 + cell / 10,
                        "lon": 115.0,
                        "depth_cm": depth,
                        "time": pd.date_range("2020-01-01", periods=n),
                        "year": 2020,
                        "climate_zone": 5 + cell % 2,
                        "obs_matched": obs,
                        "obs_raw": obs * 1.2 + 0.03,
                        "smci": obs + rng.normal(0.01, 0.02, n),
                        "era5land": obs + rng.normal(0.0, 0.04, n),
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True)
    out.loc[out.sample(frac=0.05, random_state=seed).index, "obs_matched"] = np.nan
    return out


def test_padded_rows_per_group() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    codes = np.array([1, 0, 1, 1, 0])
    m = padded(values, codes, 3)
    np.testing.assert_array_equal(m[0, :2], [2.0, 5.0])
    np.testing.assert_array_equal(m[1], [1.0, 3.0, 4.0])
    assert np.isnan(m[0, 2]) and np.isnan(m[2]).all()


def test_pooled_and_station_scores_equal_a_plain_computation() -> None:
    pred = _predictions()
    scores = score_predictions(pred, ["smci", "era5land"], bootstrap=0)
    for depth in (10, 50, ALL_DEPTHS):
        block = pred if depth == ALL_DEPTHS else pred[pred["depth_cm"] == depth]
        ok = block.dropna(subset=["obs_matched", "smci"])
        row = scores[
            (scores["estimate"] == "smci") & (scores["reference"] == "matched") & (scores["depth"] == depth) & (scores["group_by"] == "all")
        ].iloc[0]
        d = ok["smci"] - ok["obs_matched"]
        assert row["n"] == len(ok)
        assert row["bias"] == pytest.approx(d.mean())
        assert row["ubrmse"] == pytest.approx(d.std(ddof=0))
        assert row["r"] == pytest.approx(stats.pearsonr(ok["smci"], ok["obs_matched"]).statistic)
        per = [
            stats.pearsonr(g["smci"], g["obs_matched"]).statistic
            for _, g in ok.groupby(["cell_id", "depth_cm"])
            if len(g) >= MIN_STATION_DAYS
        ]
        assert row["median_r"] == pytest.approx(np.median(per))
    raw = scores[(scores["reference"] == "raw")]
    assert set(raw.columns[raw.notna().any()]) >= {"ubrmse", "r"} and raw["rmse"].isna().all()
    sel = (scores["depth"] == ALL_DEPTHS) & (scores["estimate"] == "era5land") & (scores["reference"] == "matched")
    zones = scores[sel & (scores["group_by"] == "climate_zone")]
    overall = scores[sel & (scores["group_by"] == "all")].iloc[0]
    assert set(zones["group"]) == {"5", "6"} and zones["n"].sum() == overall["n"]
    assert np.isnan(overall["ubrmse_lo"]) and np.isnan(overall["ubrmse_hi"])  # bootstrap=0: no interval


def test_station_values_below_the_minimum_days_are_nan() -> None:
    est = np.arange(40, dtype=float)
    obs = est + np.r_[np.zeros(10), np.ones(30)]
    station = np.r_[np.zeros(10, int), np.ones(30, int)]
    out = per_station(est, obs, station, ["bias"])
    assert list(out["n"]) == [10, 30]
    assert np.isnan(out.loc[0, "bias"]) and out.loc[1, "bias"] == -1.0


def test_bootstrap_interval_brackets_the_pooled_value_and_widens_with_spread() -> None:
    rng = np.random.default_rng(1)
    cells = np.repeat(np.arange(30), 50)
    obs = rng.normal(0.25, 0.05, cells.size)
    offset = rng.normal(0, 0.02, 30)[cells]
    est = obs + offset
    lo, hi = bootstrap_intervals(est, obs, cells, ["bias"], draws=200, seed=0)["bias"]
    assert lo < offset.mean() < hi
    lo2, hi2 = bootstrap_intervals(obs + 3 * offset, obs, cells, ["bias"], draws=200, seed=0)["bias"]
    assert hi2 - lo2 > 2 * (hi - lo)
    assert np.isnan(bootstrap_intervals(est, obs, cells, ["bias"], draws=0, seed=0)["bias"][0])


def test_permutation_importance_finds_the_only_informative_feature() -> None:
    rng = np.random.default_rng(0)
    names = ["tp", "tp_sum7", "t2m", "sand"]
    X = rng.normal(size=(500, 4))
    y = 0.3 * X[:, 0]
    out = permutation_importance(
        lambda a: 0.3 * a[:, 0], X, y, feature_names=names, families={"precipitation": ("tp", "tp_sum7"), "soil": ("sand",)}, repeats=3
    )
    feat = out[out["kind"] == "feature"].set_index("name")["importance"]
    assert feat["tp"] > 0.2 and (feat[["tp_sum7", "t2m", "sand"]] == 0).all()
    fam = out[out["kind"] == "family"].set_index("name")["importance"]
    assert fam["precipitation"] == pytest.approx(feat["tp"], rel=0.3) and fam["soil"] == 0
    assert (out["baseline_rmse"] == 0).all()


def test_model_importance_of_a_lightgbm_member() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X[:, 1] + 0.01 * rng.normal(size=400)
    booster = lgb.train({"verbosity": -1, "num_leaves": 8}, lgb.Dataset(X, y), num_boost_round=20)
    out = model_importance({"lightgbm": booster}, {"lightgbm": 1.0}, ["a", "b", "c"]).set_index("name")
    assert out["gain"].sum() == pytest.approx(1.0) and out["split"].sum() == pytest.approx(1.0)
    assert out["gain"].idxmax() == "b" and out.loc["b", "gain"] > 0.9


def test_bootstrap_from_cell_sums_equals_resampling_the_rows_by_hand() -> None:
    """The intervals equal a by-definition bootstrap: the drawn cells' rows stacked (repeats included), each metric on them."""
    from smci_dask.evaluation.metrics import METRICS

    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 80, 25)
    cells = np.repeat(rng.permutation(1000)[:25] * 3, sizes)  # cell ids neither dense nor sorted
    rng.shuffle(cells)
    obs = rng.normal(0.28, 0.06, cells.size)
    est = 0.7 * obs + 0.1 + rng.normal(0, 0.03, cells.size) + (cells % 7) * 0.004
    obs[rng.random(cells.size) < 0.05] = np.nan
    est[rng.random(cells.size) < 0.05] = np.nan
    metrics = ["ubrmse", "rmse", "bias", "r", "r2", "mae"]
    got = bootstrap_intervals(est, obs, cells, metrics, draws=48, seed=3)

    ids = np.unique(cells)
    draw_rng = np.random.default_rng(3)  # the same draws: batches of 16 rows of cell positions
    samples: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(3):
        for pick in draw_rng.integers(0, ids.size, size=(16, ids.size)):
            rows = np.concatenate([np.flatnonzero(cells == ids[j]) for j in pick])
            for m in metrics:
                samples[m].append(float(METRICS[m](est[rows], obs[rows])))
    for m in metrics:
        want = np.percentile(np.array(samples[m]), [2.5, 97.5])
        np.testing.assert_allclose(got[m], want, rtol=1e-9, atol=1e-12, err_msg=m)
