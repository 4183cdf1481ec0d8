"""The metrics against independent computations (scipy, scikit-learn, numpy by hand)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from smci_dask.evaluation import metrics as m


def _pairs(seed: int, n: int = 200, nan_frac: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(0.05, 0.45, n)
    est = 0.8 * obs + 0.05 + rng.normal(0, 0.03, n)
    est[rng.random(n) < nan_frac] = np.nan
    obs[rng.random(n) < nan_frac] = np.nan
    return est, obs


def _reference(est: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    ok = ~(np.isnan(est) | np.isnan(obs))
    e, o = est[ok], obs[ok]
    rmse = float(np.sqrt(mean_squared_error(o, e)))
    bias = float(np.mean(e) - np.mean(o))
    return {
        "rmse": rmse,
        "mae": float(mean_absolute_error(o, e)),
        "bias": bias,
        "ubrmse": float(np.sqrt(rmse**2 - bias**2)),
        "r": float(stats.pearsonr(e, o).statistic),
        "r2": float(r2_score(o, e)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scipy_and_sklearn_skipping_nan_pairs(seed: int) -> None:
    est, obs = _pairs(seed)
    ref = _reference(est, obs)
    for name, func in m.METRICS.items():
        assert func(est, obs) == pytest.approx(ref[name], rel=1e-10, abs=1e-13), name


def test_hand_case() -> None:
    est = np.array([0.1, 0.2, 0.4, np.nan])
    obs = np.array([0.2, 0.2, 0.2, 0.3])
    # d = (-0.1, 0, 0.2): mean 1/30; mean d^2 = 0.05/3; |d| mean 0.1
    assert m.bias(est, obs) == pytest.approx(0.1 / 3)
    assert m.rmse(est, obs) == pytest.approx(np.sqrt(0.05 / 3))
    assert m.mae(est, obs) == pytest.approx(0.1)
    assert m.ubrmse(est, obs) == pytest.approx(np.sqrt(0.05 / 3 - (0.1 / 3) ** 2))
    assert np.isnan(m.r2(est, obs))  # constant observation: SST = 0
    assert np.isnan(m.pearson_r(est, obs))


def test_constant_length_one_and_empty() -> None:
    const = np.full(10, 0.3)  # 0.3 is not exact in binary: a naive one-pass variance is not 0
    varying = np.linspace(0.1, 0.4, 10)
    assert np.isnan(m.pearson_r(const, varying))
    assert np.isnan(m.pearson_r(varying, const))
    assert np.isnan(m.r2(varying, const))
    assert m.r2(const, varying) == pytest.approx(r2_score(varying, const))
    assert m.ubrmse(const + 0.05, const) == pytest.approx(0.0, abs=1e-15)
    one_e, one_o = np.array([0.3]), np.array([0.2])
    assert m.bias(one_e, one_o) == pytest.approx(0.1)
    assert m.rmse(one_e, one_o) == pytest.approx(0.1)
    assert m.ubrmse(one_e, one_o) == pytest.approx(0.0)
    assert np.isnan(m.pearson_r(one_e, one_o)) and np.isnan(m.r2(one_e, one_o))
    for func in m.METRICS.values():
        assert np.isnan(func(np.array([np.nan, 0.2]), np.array([0.1, np.nan])))
        assert np.isnan(func(np.array([]), np.array([])))


def test_perfect_and_anticorrelated() -> None:
    x = np.linspace(0.1, 0.4, 20)
    assert m.r2(x, x) == 1.0 and m.rmse(x, x) == 0.0
    assert m.pearson_r(x, x) == pytest.approx(1.0)
    assert m.pearson_r(-x, x) == pytest.approx(-1.0)
    assert m.pearson_r(2 * x + 0.1, x) == pytest.approx(1.0)


def test_along_an_axis_equals_per_row_reference() -> None:
    rows = [_pairs(s, n=60) for s in range(5)]
    est = np.stack([r[0] for r in rows])
    obs = np.stack([r[1] for r in rows])
    for name, func in m.METRICS.items():
        got = func(est, obs, axis=1)
        want = [_reference(e, o)[name] for e, o in rows]
        np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=name)


def test_dask_and_xarray_give_the_same_numbers() -> None:
    rows = [_pairs(s, n=80) for s in range(4)]
    est = np.stack([r[0] for r in rows])
    obs = np.stack([r[1] for r in rows])
    dest = da.from_array(est, chunks=(2, 30))
    xest = xr.DataArray(est, dims=("station", "time"))
    xobs = xr.DataArray(obs, dims=("station", "time"))
    lazy = xr.DataArray(dest, dims=("station", "time"))
    for name, func in m.METRICS.items():
        base = func(est, obs, axis=1)
        out = func(dest, obs, axis=1)
        assert isinstance(out, da.Array), name  # stays lazy
        np.testing.assert_allclose(out.compute(), base, rtol=1e-12, err_msg=name)
        xa = func(xest, xobs, dim="time")
        assert xa.dims == ("station",)
        np.testing.assert_allclose(xa.values, base, rtol=1e-12, err_msg=name)
        xl = func(lazy, xobs, dim="time")
        assert xl.chunks is not None, name
        np.testing.assert_allclose(xl.values, base, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(float(func(xest, obs)), func(est.ravel(), obs.ravel()), rtol=1e-12, err_msg=name)


def test_scores_and_misuse() -> None:
    est, obs = _pairs(5)
    out = m.scores(est, obs)
    assert out["n"] == np.count_nonzero(~(np.isnan(est) | np.isnan(obs)))
    assert out["r2"] == pytest.approx(_reference(est, obs)["r2"])
    with pytest.raises(ValueError, match="unknown metric"):
        m.scores(est, obs, names=["nse"])
    with pytest.raises(TypeError, match="dim"):
        m.rmse(est, obs, dim="time")
