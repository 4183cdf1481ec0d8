"""Synthetic weather (daily, hourly helpers, 1 km precipitation) and the water-balance truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

from smci_dask import conventions as cv
from smci_dask.grid import REGIONS, GridSpec
from smci_dask.io import Store, open_zarr
from smci_dask.synthetic import truth as truth_mod
from smci_dask.synthetic.truth import run_truth, saxton_rawls, write_truth
from smci_dask.synthetic.weather import (
    disaggregate_mean,
    disaggregate_sum,
    downscale_precip,
    make_precip_downscaler,
    make_weather,
    orographic_multiplier,
    precip_hourly_weights,
    radiation_hourly_weights,
    temperature_hourly_anomaly,
    toa_radiation,
)

REGION = REGIONS["tiny"]
GRID = REGION.grid
YEARS = REGION.years
SEED = 11


def make_standin_statics(grid: GridSpec, seed: int = 0) -> xr.Dataset:
    """A stand-in for ``make_statics``: the names and shapes only, a sea in the south-east corner."""
    rng = np.random.default_rng(seed)
    ny, nx = grid.shape
    y, x = np.mgrid[0:ny, 0:nx] / np.array(grid.shape).max()

    def smooth(sigma: float) -> np.ndarray:
        f = ndimage.gaussian_filter(rng.standard_normal((ny, nx)), sigma)
        return f / f.std()

    water = x + y > 1.45
    elevation = 60.0 + 900.0 * np.clip(0.5 - x, 0.0, None) + 40.0 * smooth(4)
    landcover = np.where(rng.random((ny, nx)) < 0.7, 12, np.where(x < 0.3, 5, 10)).astype(np.uint8)
    landcover[water] = cv.WATER_CLASS
    sand = np.clip(40.0 + 15.0 * smooth(5), 5.0, 85.0)
    clay = np.clip(20.0 + 8.0 * smooth(5), 3.0, 50.0)
    porosity = np.clip(0.45 + 0.002 * (clay - 20.0) - 0.001 * (sand - 40.0), 0.35, 0.55)
    fields = {
        "elevation": elevation,
        "landcover": landcover,
        "sand": sand,
        "silt": 100.0 - sand - clay,
        "clay": clay,
        "porosity": porosity,
        "bulk_density": (1.0 - porosity) * 2.65,
        "rock_fragment": np.clip(5.0 + 3.0 * smooth(3), 0.0, 30.0),
        "climate_zone": np.full((ny, nx), 22, dtype=np.uint8),
    }
    ds = xr.Dataset({k: ((cv.LAT, cv.LON), v) for k, v in fields.items()}, coords={cv.LAT: grid.lat, cv.LON: grid.lon})
    for k in fields:
        if ds[k].dtype.kind == "f":
            ds[k] = ds[k].where(~water)
    ds["land"] = ((cv.LAT, cv.LON), ~water)
    return ds


def coarse_elevation(grid: GridSpec, statics: xr.Dataset) -> np.ndarray:
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    z = np.nan_to_num(statics["elevation"].values, nan=0.0)
    idx = (rows[:, None] * grid.coarse_shape[1] + cols[None, :]).ravel()
    n = grid.coarse_shape[0] * grid.coarse_shape[1]
    return (np.bincount(idx, weights=z.ravel(), minlength=n) / np.bincount(idx, minlength=n)).reshape(grid.coarse_shape)


@pytest.fixture(scope="module")
def world() -> SimpleNamespace:
    statics = make_standin_statics(GRID)
    weather = make_weather(GRID, YEARS, SEED, coarse_elevation(GRID, statics))
    downscale = make_precip_downscaler(GRID, statics["elevation"].values, SEED)
    blocks: list[xr.Dataset] = []
    summary = run_truth(GRID, statics, downscale, weather, write_block=blocks.append, time_block=32)
    truth = xr.concat(blocks, cv.TIME)[cv.SM_TRUTH]
    return SimpleNamespace(statics=statics, weather=weather, downscale=downscale, blocks=blocks, summary=summary, truth=truth)


# ------------------------------------------------------------------ daily weather
def test_weather_layout(world: SimpleNamespace) -> None:
    w = world.weather
    assert w["tp"].dims == (cv.TIME, cv.LAT, cv.LON)
    np.testing.assert_array_equal(w[cv.LAT].values, GRID.coarse_lat)
    np.testing.assert_array_equal(w[cv.LON].values, GRID.coarse_lon)
    times = pd.DatetimeIndex(w[cv.TIME].values)
    assert w.attrs["lead_days"] == 1
    assert times[0] == pd.Timestamp(f"{YEARS[0] - 1}-12-31") and times[-1] == pd.Timestamp(f"{YEARS[1]}-12-31")
    assert (pd.Series(times).diff().dropna() == pd.Timedelta(days=1)).all()
    assert {w[v].attrs["units"] for v in ("tp", "pev")} == {"mm day-1"}
    assert w["t2m"].attrs["units"] == "K" and w["ssrd"].attrs["units"] == "MJ m-2 day-1"
    for v in ("tp", "t2m", "ssrd", "pev"):
        assert np.isfinite(w[v].values).all()


def test_weather_climate_is_plausible(world: SimpleNamespace) -> None:
    w = world.weather.isel({cv.TIME: slice(1, None)})
    annual = w.groupby("time.year").sum()
    assert 350.0 < float(annual["tp"].mean()) < 1000.0  # mm/yr, monsoon climate
    assert 700.0 < float(annual["pev"].mean()) < 1300.0  # mm/yr
    monthly = w.groupby("time.month").mean().mean([cv.LAT, cv.LON])
    assert float(monthly["t2m"].sel(month=1)) < 273.15 < float(monthly["t2m"].sel(month=7)) - 20.0
    wet = (w["tp"] > 0).groupby("time.month").mean().mean([cv.LAT, cv.LON])
    assert float(wet.sel(month=7)) > 3 * float(wet.sel(month=1))
    summer = w["tp"].sel(time=w["time.month"].isin([6, 7, 8, 9])).sum()
    assert float(summer / w["tp"].sum()) > 0.55
    assert float(w["tp"].min()) >= 0.0 and float(w["pev"].min()) >= 0.0
    ra = toa_radiation(pd.DatetimeIndex(w[cv.TIME].values).day_of_year.values[:, None, None], GRID.coarse_lat[None, :, None])
    assert (w["ssrd"].values > 0).all() and (w["ssrd"].values < ra).all()
    # rain is spatially coherent: neighbouring cells share most wet days
    wet_days = w["tp"].values > 0
    assert (wet_days[:, 0, 0] == wet_days[:, 0, 1]).mean() > 0.85


def test_weather_lapse_rate() -> None:
    elev = np.zeros(GRID.coarse_shape)
    elev[:, 0] = 1000.0
    w = make_weather(GRID, (2019, 2019), SEED, elev)
    diff = float((w["t2m"][:, :, 1] - w["t2m"][:, :, 0]).mean())
    assert 5.0 < diff < 8.0  # 6.5 K/km plus the spatial noise of neighbouring cells


def test_weather_deterministic() -> None:
    elev = np.full(GRID.coarse_shape, 100.0)
    a = make_weather(GRID, (2019, 2019), 3, elev)
    b = make_weather(GRID, (2019, 2019), 3, elev)
    c = make_weather(GRID, (2019, 2019), 4, elev)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a["tp"].values, c["tp"].values)
    assert not np.array_equal(a["t2m"].values, c["t2m"].values)


# ------------------------------------------------------------------ hourly helpers
def test_hourly_profiles_sum_and_average_back() -> None:
    rng = np.random.default_rng(0)
    n, shape = 40, (3, 4)
    lat, lon = np.array([37.5, 37.4, 37.3]), np.array([115.0, 115.1, 115.2, 115.3])
    daily = rng.gamma(0.7, 8.0, size=(n, *shape))
    w_tp = precip_hourly_weights(rng, n, shape)
    assert w_tp.shape == (n, 24, *shape)
    np.testing.assert_allclose(w_tp.sum(axis=1), 1.0, rtol=1e-12)
    rainy_hours = (w_tp > 0).sum(axis=1)
    assert rainy_hours.min() >= 2 and rainy_hours.max() <= 8  # rain concentrated in a few hours
    np.testing.assert_allclose(disaggregate_sum(daily, w_tp).sum(axis=1), daily, rtol=1e-12)

    doy = np.arange(1, n + 1) * 9
    w_rad = radiation_hourly_weights(doy, lat, lon)
    np.testing.assert_allclose(w_rad.sum(axis=1), 1.0, rtol=1e-12)
    # 115 E: local solar time = UTC + 7.7 h; 16 UTC is local midnight, 4 UTC local noon
    assert (w_rad[:, 16] == 0).all()
    assert (w_rad.argmax(axis=1) == 4).all()

    dtr = rng.uniform(4.0, 14.0, size=(n, *shape))
    anom = temperature_hourly_anomaly(dtr, lon)
    np.testing.assert_allclose(anom.mean(axis=1), 0.0, atol=1e-12)
    local_min = (anom[0, :, 0, 0].argmin() + 115.0 / 15.0) % 24
    local_max = (anom[0, :, 0, 0].argmax() + 115.0 / 15.0) % 24
    assert 5.0 <= local_min <= 7.5 and 14.0 <= local_max <= 16.5  # minimum at dawn, maximum mid-afternoon
    t = 270.0 + daily
    np.testing.assert_allclose(disaggregate_mean(t, anom).mean(axis=1), t, rtol=1e-12)
    np.testing.assert_allclose(disaggregate_mean(t).mean(axis=1), t, rtol=1e-12)


# ------------------------------------------------------------------ 1 km precipitation
def test_downscale_precip_keeps_coarse_mean_and_follows_elevation(world: SimpleNamespace) -> None:
    elev = world.statics["elevation"].values
    tp = world.weather["tp"].values[150:160]
    fine = downscale_precip(GRID, tp, elev, SEED)
    assert fine.shape == (10, *GRID.shape)
    rows, cols = GRID.fine_to_coarse_rows(), GRID.fine_to_coarse_cols()
    for r in range(GRID.coarse_shape[0]):
        for c in range(GRID.coarse_shape[1]):
            block = fine[:, rows == r][:, :, cols == c]
            np.testing.assert_allclose(block.mean(axis=(1, 2)), tp[:, r, c], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(world.downscale(tp[0]), fine[0])
    # a ramp of 50 m per fine cell: within each coarse cell, the higher cells get more rain
    ramp = np.broadcast_to(50.0 * np.arange(GRID.ncols, dtype=np.float64), GRID.shape)
    mult = orographic_multiplier(GRID, ramp, SEED)
    inner = (cols > 0) & (cols < GRID.coarse_shape[1] - 1)
    rising = np.diff(mult[:, inner].mean(axis=0))
    same_cell = np.diff(cols[inner]) == 0
    assert (rising[same_cell] > 0).mean() > 0.9


# ------------------------------------------------------------------ truth
def test_truth_blocks_layout(world: SimpleNamespace) -> None:
    blocks = world.blocks
    assert all(b.sizes[cv.TIME] == 32 for b in blocks[:-1]) and 0 < blocks[-1].sizes[cv.TIME] <= 32
    t = world.truth
    assert t.dims == (cv.TIME, cv.DEPTH, cv.LAT, cv.LON)
    assert t.dtype == np.float32
    assert t.attrs["units"] == "m3 m-3" and "water balance" in t.attrs["description"]
    np.testing.assert_array_equal(t[cv.DEPTH].values, cv.DEPTHS_CM)
    np.testing.assert_array_equal(t[cv.LAT].values, GRID.lat)
    times = pd.DatetimeIndex(t[cv.TIME].values)
    assert times[0] == pd.Timestamp(f"{YEARS[0]}-01-01") and times[-1] == pd.Timestamp(f"{YEARS[1]}-12-31")
    np.testing.assert_array_equal(times, world.summary.times)


def test_truth_bounds_and_water(world: SimpleNamespace) -> None:
    v = world.truth.values
    land = world.statics["land"].values
    assert np.isnan(v[:, :, ~land]).all()
    lv = v[:, :, land]
    assert np.isfinite(lv).all()
    porosity = world.statics["porosity"].values[land]
    assert lv.min() > 0.0
    assert (lv <= porosity[None, None, :] + 1e-6).all()
    assert 0.1 < float(lv.mean()) < 0.4


def test_truth_deeper_layers_slower_and_smoother(world: SimpleNamespace) -> None:
    land = world.statics["land"].values
    v = world.truth.values[:, :, land].astype(np.float64)  # (time, depth, cell)
    d = np.diff(v, axis=0)
    step_std = d.std(axis=0).mean(axis=1)  # std of day-to-day changes, per depth
    assert (np.diff(step_std) < 0).all(), step_std
    assert step_std[-1] < 0.25 * step_std[0]
    dc = d - d.mean(axis=0)
    lag1 = ((dc[1:] * dc[:-1]).sum(axis=0) / (dc**2).sum(axis=0)).mean(axis=1)  # autocorrelation of changes
    assert lag1[-1] > lag1[0] + 0.5
    level_std = v.std(axis=0).mean(axis=1)
    assert level_std[-1] < level_std[0]


def test_truth_mass_balance_closes(world: SimpleNamespace) -> None:
    b = world.summary.budget
    land = world.statics["land"].values
    residual = (b["storage_change"] + b["snow_change"]) - (b["precip"] - b["runoff"] - b["aet"] - b["drainage"])
    assert float(np.abs(residual.values[land]).max()) < 1e-6  # mm over two years
    for v in ("precip", "runoff", "aet", "drainage"):
        assert (b[v].values[land] >= 0).all()
    assert float(b["aet"].values[land].mean()) > 0.5 * float(b["precip"].values[land].mean())
    # independent check on a few cells: storage change from the written truth, precipitation from the weather
    rng = np.random.default_rng(1)
    rows, cols = np.nonzero(land)
    pick = rng.choice(rows.size, 5, replace=False)
    tp = world.weather["tp"].values[1:]
    fine_p = np.stack([world.downscale(tp[t]) for t in range(tp.shape[0])])
    for i in pick:
        r, c = rows[i], cols[i]
        last = world.truth.values[-1, :, r, c].astype(np.float64)
        first = b["sm_initial"].values[:, r, c]
        ds_mm = float(((last - first) * truth_mod.LAYER_MM).sum())
        assert ds_mm == pytest.approx(float(b["storage_change"].values[r, c]), abs=1e-3)
        assert float(fine_p[:, r, c].sum()) == pytest.approx(float(b["precip"].values[r, c]), rel=1e-9)


def test_truth_coarse_aggregates(world: SimpleNamespace) -> None:
    coarse = world.summary.coarse
    lead = world.weather.attrs["lead_days"]
    assert coarse.sizes[cv.TIME] == world.weather.sizes[cv.TIME]
    land = world.statics["land"].values
    rows, cols = GRID.fine_to_coarse_rows(), GRID.fine_to_coarse_cols()
    day = 200
    v = world.truth.values[day]
    for r in range(GRID.coarse_shape[0]):
        for c in range(GRID.coarse_shape[1]):
            sel = land & (rows[:, None] == r) & (cols[None, :] == c)
            got = coarse["sm"].values[day + lead, :, r, c]
            if sel.any():
                np.testing.assert_allclose(got, v[:, sel].astype(np.float64).mean(axis=1), rtol=1e-6)
            else:
                assert np.isnan(got).all()
    frac = coarse["land_fraction"].values
    assert frac.min() < 0.5 < frac.max()  # the sea leaves some coarse cells mostly water
    assert (coarse["aet"].values[:, frac > 0] >= 0).all()


def test_truth_reflects_static_fields(world: SimpleNamespace) -> None:
    land = world.statics["land"].values
    fc, _ = saxton_rawls(world.statics["sand"].values[land], world.statics["clay"].values[land])
    mean_20cm = world.truth.values[:, 1, land].mean(axis=0)
    assert np.corrcoef(mean_20cm, fc)[0, 1] > 0.5  # a learnable signal from soil texture


def test_truth_deterministic_and_seed_dependent(world: SimpleNamespace) -> None:
    statics = world.statics
    elev = coarse_elevation(GRID, statics)
    years = (2019, 2019)
    runs = []
    for seed in (SEED, SEED, SEED + 1):
        w = make_weather(GRID, years, seed, elev)
        out: list[xr.Dataset] = []
        run_truth(GRID, statics, make_precip_downscaler(GRID, statics["elevation"].values, seed), w, write_block=out.append, spinup_days=60)
        runs.append(xr.concat(out, cv.TIME)[cv.SM_TRUTH].values)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2], equal_nan=True)


# ------------------------------------------------------------------ Zarr
def test_write_truth_template_first_then_regions(world: SimpleNamespace, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []
    real = truth_mod.write_zarr

    def recording(ds, store, relpath, **kwargs):
        calls.append({"sizes": dict(ds.sizes), **kwargs})
        return real(ds, store, relpath, **kwargs)

    monkeypatch.setattr(truth_mod, "write_zarr", recording)
    store = Store.from_url(tmp_path)
    summary = write_truth(store, "truth/sm_truth.zarr", GRID, world.statics, world.downscale, world.weather, time_block=32)
    assert calls[0]["mode"] == "w" and calls[0]["compute"] is False
    assert calls[0]["sizes"][cv.TIME] == len(world.summary.times)
    regions = [c["region"][cv.TIME] for c in calls[1:]]
    assert all(c["mode"] == "r+" for c in calls[1:])
    assert regions[0].start == 0 and all(a.stop == b.start for a, b in zip(regions, regions[1:], strict=False))
    assert regions[-1].stop == len(world.summary.times)
    assert all(r.start % 32 == 0 for r in regions)  # whole chunks along time

    ds = open_zarr(store, "truth/sm_truth.zarr")
    assert ds[cv.SM_TRUTH].encoding["chunks"] == (32, 10, 60, 60)
    assert ds[cv.SM_TRUTH].attrs["units"] == "m3 m-3"
    xr.testing.assert_identical(ds[cv.SM_TRUTH].load(), world.truth)
    xr.testing.assert_identical(summary.coarse, world.summary.coarse)
