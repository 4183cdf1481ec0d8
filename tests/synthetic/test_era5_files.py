"""Synthetic ERA5-Land: daily fields, the degraded soil moisture, and the hourly CDS-layout month files."""

from __future__ import annotations

from types import SimpleNamespace

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

from smci_dask import conventions as cv
from smci_dask.errors import ConfigError, InputError
from smci_dask.grid import REGIONS, GridSpec
from smci_dask.io import Store
from smci_dask.synthetic.era5 import (
    MARGIN,
    PARAM_IDS,
    era5_file_coords,
    era5_layer_weights,
    make_era5_daily,
    make_era5_hourly,
    truth_era5_layers,
    write_era5_grib,
    write_era5_month_files,
)
from smci_dask.synthetic.truth import run_truth
from smci_dask.synthetic.weather import make_precip_downscaler, make_weather

REGION = REGIONS["tiny"]
GRID = REGION.grid
YEARS = REGION.years
SEED = 5
MONTHS = [(2019, 1), (2019, 2)]


def make_standin_statics(grid: GridSpec, seed: int = 0) -> xr.Dataset:
    """A stand-in for ``make_statics`` (names and shapes only): a sea in the south-east corner."""
    rng = np.random.default_rng(seed)
    ny, nx = grid.shape
    y, x = np.mgrid[0:ny, 0:nx] / max(ny, nx)
    smooth = ndimage.gaussian_filter(rng.standard_normal((ny, nx)), 5)
    smooth /= smooth.std()
    water = x + y > 1.45
    sand = np.clip(40.0 + 15.0 * smooth, 5.0, 85.0)
    clay = np.clip(20.0 - 6.0 * smooth, 3.0, 50.0)
    porosity = np.clip(0.45 + 0.002 * (clay - 20.0) - 0.001 * (sand - 40.0), 0.35, 0.55)
    landcover = np.where(x < 0.3, 5, 12).astype(np.uint8)
    landcover[water] = cv.WATER_CLASS
    fields = {
        "elevation": 60.0 + 800.0 * np.clip(0.5 - x, 0.0, None),
        "landcover": landcover,
        "sand": sand,
        "silt": 100.0 - sand - clay,
        "clay": clay,
        "porosity": porosity,
        "bulk_density": (1.0 - porosity) * 2.65,
        "rock_fragment": np.full((ny, nx), 5.0),
        "climate_zone": np.full((ny, nx), 22, dtype=np.uint8),
    }
    ds = xr.Dataset({k: ((cv.LAT, cv.LON), v) for k, v in fields.items()}, coords={cv.LAT: grid.lat, cv.LON: grid.lon})
    ds["land"] = ((cv.LAT, cv.LON), ~water)
    return ds


def _open_nc(path: str) -> xr.Dataset:
    return xr.open_dataset(path, engine="netcdf4")


@pytest.fixture(scope="module")
def era5(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    statics = make_standin_statics(GRID)
    weather = make_weather(GRID, YEARS, SEED, np.full(GRID.coarse_shape, 100.0))
    summary = run_truth(GRID, statics, make_precip_downscaler(GRID, statics["elevation"].values, SEED), weather)
    daily = make_era5_daily(GRID, weather, summary, SEED, statics=statics)
    root = tmp_path_factory.mktemp("era5")
    store = Store.from_url(root)
    files = write_era5_month_files(store, "raw/era5land", daily, SEED, months=MONTHS)
    hourly = {m: _open_nc(store.join(f)).load() for m, f in zip(MONTHS, files, strict=True)}
    return SimpleNamespace(statics=statics, weather=weather, summary=summary, daily=daily, store=store, files=files, hourly=hourly)


# ------------------------------------------------------------------ file layout
def test_month_files_named_and_written(era5: SimpleNamespace) -> None:
    assert era5.files == ["raw/era5land/era5land_2019_01.nc", "raw/era5land/era5land_2019_02.nc"]
    assert era5.store.ls("raw/era5land") == ["era5land_2019_01.nc", "era5land_2019_02.nc"]
    with netCDF4.Dataset(era5.store.join(era5.files[0])) as nc:
        assert nc.data_model == "NETCDF4"
        assert nc["tp"].filters()["zlib"] is True
        assert nc["valid_time"].units == "seconds since 1970-01-01"
        assert nc["valid_time"].dtype == np.int64
        assert nc["expver"].dtype is str


def test_cds_layout(era5: SimpleNamespace) -> None:
    ds = era5.hourly[(2019, 1)]
    assert dict(ds.sizes) == {
        "valid_time": 744,
        "latitude": GRID.coarse_shape[0] + 2 * MARGIN,
        "longitude": GRID.coarse_shape[1] + 2 * MARGIN,
    }
    lat, lon = ds["latitude"].values, ds["longitude"].values
    assert (np.diff(lat) < 0).all() and (np.diff(lon) > 0).all()
    np.testing.assert_allclose(lat[MARGIN:-MARGIN], GRID.coarse_lat, atol=1e-9)
    np.testing.assert_allclose(lon[MARGIN:-MARGIN], GRID.coarse_lon, atol=1e-9)
    np.testing.assert_allclose(lat[0], GRID.coarse_lat[0] + 0.2, atol=1e-9)
    np.testing.assert_allclose(lon[0], GRID.coarse_lon[0] - 0.2, atol=1e-9)
    np.testing.assert_array_equal(era5_file_coords(GRID)[0], lat)
    assert ds["latitude"].attrs["units"] == "degrees_north" and ds["latitude"].attrs["stored_direction"] == "decreasing"
    vt = pd.DatetimeIndex(ds["valid_time"].values)
    assert vt[0] == pd.Timestamp("2019-01-01 00:00") and vt[-1] == pd.Timestamp("2019-01-31 23:00")
    assert (np.diff(vt.asi8) == 3600 * 10**9).all()
    assert ds["number"].ndim == 0 and int(ds["number"]) == 0
    assert ds["expver"].dims == ("valid_time",) and set(ds["expver"].values.tolist()) == {"0001"}
    assert set(ds.data_vars) == set(cv.ERA5_VARS)
    for name in cv.ERA5_VARS:
        v = ds[name]
        assert v.dims == ("valid_time", "latitude", "longitude") and v.dtype == np.float32
        assert v.attrs["units"] == cv.ERA5_RAW_UNITS[name] == v.attrs["GRIB_units"]
        assert v.attrs["GRIB_paramId"] == PARAM_IDS[name]
        assert v.attrs["GRIB_gridType"] == "regular_ll" and v.attrs["GRIB_NV"] == 0
        assert v.attrs["GRIB_stepType"] == ("accum" if name in cv.ERA5_ACCUM_VARS else "instant")
        assert v.attrs["long_name"] == v.attrs["GRIB_name"]
        assert v.attrs["GRIB_Nx"] == ds.sizes["longitude"] and v.attrs["GRIB_Ny"] == ds.sizes["latitude"]
    assert ds["t2m"].attrs["GRIB_shortName"] == "2t" and ds["tp"].attrs["GRIB_shortName"] == "tp"
    assert ds.attrs["GRIB_centre"] == "ecmf" and ds.attrs["Conventions"] == "CF-1.7"
    assert "European Centre" in ds.attrs["institution"]


# ------------------------------------------------------------------ accumulations
def _inner(a: np.ndarray) -> np.ndarray:
    return a[..., MARGIN:-MARGIN, MARGIN:-MARGIN]


def test_accumulations_from_00utc(era5: SimpleNamespace) -> None:
    jan, feb = era5.hourly[(2019, 1)], era5.hourly[(2019, 2)]
    w = era5.weather
    land = era5.daily["water_fraction"].values <= 0.5
    for month in (jan, feb):
        for name in ("tp", "e", "pev", "ssrd"):
            v = month[name].values.reshape(-1, 24, *month[name].shape[1:])
            within = np.diff(v[:, 1:], axis=1)  # hours 01..23 of each day
            finite = np.isfinite(within)
            if name in ("tp", "ssrd"):
                assert (within[finite] >= 0).all() and (v[np.isfinite(v)] >= 0).all()
            else:  # evaporation is an upward flux: negative, growing in magnitude through the day
                assert (within[finite] <= 0).all() and (v[np.isfinite(v)] <= 0).all()
    # the daily total the ECMWF way: the value at 00 UTC of the next day
    tp_days = np.concatenate([jan["tp"].values[24::24], feb["tp"].values[:1]])  # totals of 1..31 January
    expected = w["tp"].sel(time=slice("2019-01-01", "2019-01-31")).values / 1000.0
    np.testing.assert_allclose(_inner(tp_days)[:, land], expected[:, land].astype(np.float32), rtol=2e-7, atol=1e-12)
    # the first step of January is the total of 31 December of the previous year (the lead day)
    np.testing.assert_allclose(_inner(jan["tp"].values[0])[land], w["tp"].sel(time="2018-12-31").values[land] / 1000.0, rtol=2e-7)
    # and the last hour of a day is no more than that day's total
    assert (_inner(jan["tp"].values[23])[land] <= _inner(jan["tp"].values[24])[land] + 1e-12).all()
    # evaporation is the truth's actual evapotranspiration, negative, in m
    e_days = _inner(jan["e"].values[24::24])
    aet = era5.summary.coarse["aet"].sel(time=slice("2019-01-01", "2019-01-30")).values
    np.testing.assert_allclose(e_days[:, land], -aet[:, land] / 1000.0, rtol=2e-6)
    ssrd_day = _inner(feb["ssrd"].values[24])  # total of 1 February, J m-2
    np.testing.assert_allclose(ssrd_day[land], w["ssrd"].sel(time="2019-02-01").values[land] * 1e6, rtol=2e-6)


def test_states_average_to_daily_values(era5: SimpleNamespace) -> None:
    feb = era5.hourly[(2019, 2)]
    daily = era5.daily.sel(time=slice("2019-02-01", "2019-02-28"))
    land = era5.daily["water_fraction"].values <= 0.5
    for name in cv.ERA5_STATE_VARS:
        h = _inner(feb[name].values.astype(np.float64)).reshape(28, 24, *GRID.coarse_shape)
        np.testing.assert_allclose(h.mean(axis=1)[:, land], daily[name].values[:, land], rtol=1e-6, err_msg=name)
    t = _inner(feb["t2m"].values).reshape(28, 24, *GRID.coarse_shape)
    assert float((t.max(axis=1) - t.min(axis=1))[:, land].mean()) > 3.0  # a diurnal cycle
    assert float(daily["t2m"].min()) < 273.15  # frozen winter days


def test_sea_mask_and_margin(era5: SimpleNamespace) -> None:
    ds = era5.hourly[(2019, 1)]
    water = era5.daily["water_fraction"].values
    sea = water > 0.5
    assert sea.any() and (~sea).any()
    for name in cv.ERA5_VARS:
        v = _inner(ds[name].values)
        assert np.isnan(v[:, sea]).all() and np.isfinite(v[:, ~sea]).all(), name
    # the margin repeats the nearest cell of the region
    sw = ds["swvl2"].values
    np.testing.assert_array_equal(sw[:, 0, MARGIN:-MARGIN], sw[:, MARGIN, MARGIN:-MARGIN])
    np.testing.assert_array_equal(sw[:, MARGIN:-MARGIN, 0], sw[:, MARGIN:-MARGIN, MARGIN])


# ------------------------------------------------------------------ degraded soil moisture
def test_era5_soil_moisture_degraded_from_coarse_truth(era5: SimpleNamespace) -> None:
    lead = era5.weather.attrs["lead_days"]
    layers = truth_era5_layers(era5.summary.coarse["sm"].values, lead_days=lead)
    land = era5.daily["water_fraction"].values <= 0.5
    for k in (1, 2, 3, 4):
        era = era5.daily[f"swvl{k}"].values[lead:][:, land]
        tru = layers[k][lead:][:, land]
        r = np.array([np.corrcoef(era[:, i], tru[:, i])[0, 1] for i in range(tru.shape[1])])
        assert 0.7 < r.mean() < 0.9, (k, r)
        np.testing.assert_allclose(era.mean(axis=0), tru.mean(axis=0), rtol=0.03)
        np.testing.assert_allclose(era.std(axis=0), tru.std(axis=0), rtol=0.05)
        porosity = era5.summary.coarse["porosity"].values[land]
        assert (era >= 0.01).all() and (era <= porosity + 1e-12).all()
    # the error is smooth in time: day-to-day changes of the error are small against its spread
    err = era5.daily["swvl2"].values[lead:][:, land] - layers[2][lead:][:, land]
    assert np.diff(err, axis=0).std() < 0.5 * err.std()
    # layer weights cover the layers' depth ranges
    w = era5_layer_weights()
    assert w[1][0] == 1.0 and np.count_nonzero(w[2]) == 3 and np.count_nonzero(w[3]) == 8
    # soil temperature: damped with depth
    assert float(era5.daily["stl4"].std("time").mean()) < float(era5.daily["stl1"].std("time").mean())


def test_era5_daily_deterministic(era5: SimpleNamespace) -> None:
    again = make_era5_daily(GRID, era5.weather, era5.summary, SEED, statics=era5.statics)
    xr.testing.assert_identical(again, era5.daily)
    other = make_era5_daily(GRID, era5.weather, era5.summary, SEED + 1, statics=era5.statics)
    assert not np.array_equal(other["swvl2"].values, era5.daily["swvl2"].values, equal_nan=True)
    a = make_era5_hourly(era5.daily, 2019, 3, SEED)
    b = make_era5_hourly(era5.daily, 2019, 3, SEED)
    xr.testing.assert_identical(a, b)


def test_month_needs_previous_day(era5: SimpleNamespace) -> None:
    cut = era5.daily.isel(time=slice(1, None))  # drop the lead day
    with pytest.raises(InputError, match="day before"):
        make_era5_hourly(cut, 2019, 1, SEED)


def test_unknown_format_is_refused(era5: SimpleNamespace) -> None:
    with pytest.raises(ConfigError, match="netcdf"):
        write_era5_month_files(era5.store, "x", era5.daily, SEED, fmt="zarr", months=[(2019, 2)])  # type: ignore[arg-type]


# ------------------------------------------------------------------ other stores, GRIB
def test_files_through_memory_store(era5: SimpleNamespace) -> None:
    store = Store.from_url("memory://smci-era5-test")
    files = write_era5_month_files(store, "era5", era5.daily, SEED, months=[(2019, 2)])
    assert files == ["era5/era5land_2019_02.nc"]
    with netCDF4.Dataset("inmemory.nc", memory=store.read_bytes(files[0])) as nc:
        got = np.asarray(nc["swvl1"][:].filled(np.nan))
    np.testing.assert_array_equal(got, era5.hourly[(2019, 2)]["swvl1"].values)
    store.rm("")


def test_grib_month_file(era5: SimpleNamespace, tmp_path) -> None:
    store = Store.from_url(tmp_path)
    files = write_era5_month_files(store, "grib", era5.daily, SEED, fmt="grib", months=[(2019, 2)])
    assert files == ["grib/era5land_2019_02.grib"]
    import eccodes

    with open(store.join(files[0]), "rb") as f:
        assert eccodes.codes_count_in_file(f) == 28 * 24 * len(cv.ERA5_VARS)


def test_grib_reads_back_with_cfgrib(era5: SimpleNamespace, tmp_path) -> None:
    import cfgrib  # noqa: F401

    ref = era5.hourly[(2019, 2)].isel(valid_time=slice(0, 48))  # two days keep cfgrib's indexing quick
    path = tmp_path / "two_days.grib"
    write_era5_grib(ref, path)
    ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"time_dims": ["valid_time"], "indexpath": ""})
    np.testing.assert_array_equal(ds["valid_time"].values, ref["valid_time"].values)
    np.testing.assert_allclose(ds["latitude"].values, ref["latitude"].values)
    for name in cv.ERA5_VARS:
        assert ds[name].attrs["GRIB_shortName"] == ref[name].attrs["GRIB_shortName"]
        assert ds[name].attrs["GRIB_paramId"] == PARAM_IDS[name]
        assert ds[name].attrs["GRIB_stepType"] == ref[name].attrs["GRIB_stepType"]
        a, b = ds[name].values, ref[name].values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        scale = float(np.nanmax(np.abs(b))) or 1.0
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * scale, equal_nan=True, err_msg=name)
    # accumulations from 00 UTC: the 00 UTC value of 1 February is step 0-24 of 31 January
    accum = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"filter_by_keys": {"stepType": "accum"}, "indexpath": ""})
    assert pd.Timestamp(accum["time"].values[0]) == pd.Timestamp("2019-01-31")
    assert accum["step"].values.max() == np.timedelta64(24, "h")
