"""Reading hourly ERA5-Land files and the daily aggregation rules (:mod:`smci_dask.covariates.era5land`).

Every test builds a small hourly dataset by hand (3 latitudes x 4 longitudes,
3 days + the next 00 UTC), writes it to NetCDF (or GRIB) in the layouts the
Climate Data Store delivers, reads it back and checks each rule against
numbers worked out on paper:

* cell (i, j) = (latitude row from the north, longitude column), day d = 0, 1, 2
  for 2020-01-01..03, hour h = 0..23;
* t2m = 280 + i + 0.5 j + d + h K                    -> daily mean 291.5 + i + 0.5 j + d
* stl1 = t2m - 5 K                                   -> daily mean 286.5 + i + 0.5 j + d
* swvl1 = 0.1 + 0.05 d + 0.01 i + 0.001 h m3/m3      -> daily mean 0.1115 + 0.05 d + 0.01 i
* lai_hv = 1 + 0.1 j m2/m2 (constant)
* accumulations from 00 UTC: at k hours after 00 UTC of day d (k = 1..24, k = 24
  being 00 UTC of d + 1) the value is k x an hourly rate:
  tp 1e-4 (d + 1)(i + 1) m       -> daily total 2.4 (d + 1)(i + 1) mm
  e -2e-5 (j + 1) m              -> daily 0.48 (j + 1) mm, positive after the sign turn
  pev -5e-5 m                    -> daily 1.2 mm
  ssrd 1e5 (j + 1)(d + 1) J m-2  -> daily 2.4 (j + 1)(d + 1) MJ m-2
  (the value at 00 UTC of 2020-01-01 closes 2019-12-31, d = -1: 0)
* cell (2, 3) is sea: NaN in every variable.

Held-back days are the days the data touch but cannot complete. A file from
00 UTC of 01-01 to 00 UTC of 01-04 touches 2019-12-31 (its accumulations at
00 UTC of 01-01 close that day, whose t2m hours are elsewhere) and 2020-01-04
(one hour of t2m): both are held back (:data:`EDGES`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates import (
    DAILY_UNITS,
    complete_days,
    daily_from_hourly,
    land_mask_from_era5,
    open_era5land_daily,
    open_era5land_hourly,
    subset_to_grid,
    write_era5land_daily,
)
from smci_dask.covariates.era5land import units_match
from smci_dask.errors import InputError, StoreError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store

LAT = np.array([40.2, 40.1, 40.0])
LON = np.array([100.0, 100.1, 100.2, 100.3])
START = pd.Timestamp("2020-01-01")
#: 3 days + the next 00 UTC
TIMES = pd.date_range(START, periods=3 * 24 + 1, freq="h")
SEA = (2, 3)
VARS = ("t2m", "stl1", "swvl1", "lai_hv", "tp", "e", "pev", "ssrd")
DAYS = pd.date_range(START, periods=3, freq="D")
#: the days before and after the file, touched by its first and last hour
EDGES = [pd.Timestamp("2019-12-31"), pd.Timestamp("2020-01-04")]


# ------------------------------------------------------------------ hand-built hourly data
def make_hourly(times: pd.DatetimeIndex = TIMES, variables: tuple[str, ...] = VARS) -> xr.Dataset:
    """Canonical hourly dataset (valid_time, latitude, longitude), float32, raw ERA5-Land units."""
    i = np.arange(LAT.size)[None, :, None]
    j = np.arange(LON.size)[None, None, :]
    d = ((times.normalize() - START).days.to_numpy())[:, None, None]
    h = times.hour.to_numpy()[:, None, None]
    # accumulations: day of the accumulation (00 UTC closes the previous day) and hours since its 00 UTC
    ad = (((times - pd.Timedelta(hours=1)).normalize() - START).days.to_numpy())[:, None, None]
    k = np.where(h == 0, 24, h)
    t2m = 280.0 + i + 0.5 * j + d + h
    fields = {
        "t2m": t2m,
        "stl1": t2m - 5.0,
        "swvl1": 0.1 + 0.05 * d + 0.01 * i + 0.001 * h,
        "lai_hv": 1.0 + 0.1 * j,
        "tp": k * 1e-4 * (ad + 1) * (i + 1),
        "e": k * -2e-5 * (j + 1),
        "pev": k * -5e-5,
        "ssrd": k * 1e5 * (j + 1) * (ad + 1),
    }
    shape = (times.size, LAT.size, LON.size)
    ds = xr.Dataset(coords={cv.ERA5_TIME: times, cv.ERA5_LAT: LAT, cv.ERA5_LON: LON})
    for name in variables:  # every field broadcast to (time, lat, lon)
        v = np.broadcast_to(fields[name], shape).astype(np.float32).copy()
        v[:, SEA[0], SEA[1]] = np.nan
        ds[name] = ((cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON), v, {"units": cv.ERA5_RAW_UNITS[name], "long_name": cv.ERA5_LONG_NAMES[name]})
    return ds


def write_new(ds: xr.Dataset, path: Path, *, expver: list[str] | None = None) -> Path:
    """Current CDS layout: valid_time (int64 seconds), scalar number, expver strings along valid_time."""
    out = ds.copy()
    n = out.sizes[cv.ERA5_TIME]
    out = out.assign_coords(
        {
            cv.ERA5_NUMBER: ((), np.int64(0), {"standard_name": "realization"}),
            cv.ERA5_EXPVER: (cv.ERA5_TIME, np.array(expver or ["0001"] * n, dtype=object)),
        }
    )
    enc = {cv.ERA5_TIME: {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}}
    out.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=enc)
    return path


def write_old(ds: xr.Dataset, path: Path, *, pack: bool = False) -> Path:
    """Older CDS layout: dims time/latitude/longitude, float32 coordinates, hours since 1900, NETCDF3_64BIT."""
    out = ds.rename({cv.ERA5_TIME: "time"})
    out = out.assign_coords({dim: out[dim].values.astype(np.float32) for dim in (cv.ERA5_LAT, cv.ERA5_LON)})
    enc: dict[str, dict[str, object]] = {"time": {"units": "hours since 1900-01-01 00:00:00.0", "calendar": "gregorian", "dtype": "int32"}}
    for name in out.data_vars:
        if pack:
            v = out[name].values
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            scale = (hi - lo) / 65000.0 or 1.0
            enc[str(name)] = {"dtype": "int16", "scale_factor": scale, "add_offset": (hi + lo) / 2.0, "_FillValue": np.int16(-32767)}
        else:
            enc[str(name)] = {"dtype": "float32", "_FillValue": np.float32(np.nan)}
    out.to_netcdf(path, engine="netcdf4", format="NETCDF3_64BIT", encoding=enc)
    return path


def write_expver_dim(ds: xr.Dataset, path: Path, *, split: int = 48) -> Path:
    """Older layout of 2020-2023 with an expver dimension: hours before ``split`` in expver 1, the rest in 5."""
    old = ds.rename({cv.ERA5_TIME: "time"})
    first = old.where(xr.DataArray(np.arange(old.sizes["time"]) < split, dims="time"))
    second = old.where(xr.DataArray(np.arange(old.sizes["time"]) >= split, dims="time"))
    both = xr.concat([first, second], dim=xr.DataArray(np.array([1, 5], dtype=np.int32), dims=cv.ERA5_EXPVER, name=cv.ERA5_EXPVER))
    for name in ds.data_vars:
        both[name].attrs = ds[name].attrs
    both = both.transpose("time", cv.ERA5_EXPVER, cv.ERA5_LAT, cv.ERA5_LON)
    both.to_netcdf(path, engine="netcdf4", encoding={"time": {"units": "hours since 1900-01-01", "dtype": "int32"}})
    return path


def expected_daily(name: str, d: int, i: int, j: int) -> float:
    """The hand computation of the module docstring."""
    return {
        "t2m": 291.5 + i + 0.5 * j + d,
        "stl1": 286.5 + i + 0.5 * j + d,
        "swvl1": 0.1115 + 0.05 * d + 0.01 * i,
        "lai_hv": 1.0 + 0.1 * j,
        "tp": 2.4 * (d + 1) * (i + 1),
        "e": 0.48 * (j + 1),
        "pev": 1.2,
        "ssrd": 2.4 * (j + 1) * (d + 1),
    }[name]


@pytest.fixture
def new_file(tmp_path: Path) -> Path:
    return write_new(make_hourly(), tmp_path / "era5land_new.nc")


# ------------------------------------------------------------------ the rules, by hand
def test_each_rule_matches_the_hand_computation(new_file: Path) -> None:
    daily, held = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    assert held == EDGES
    assert daily.sizes == {cv.TIME: 3, cv.LAT: 3, cv.LON: 4}
    assert list(daily[cv.TIME].values) == list(DAYS.values)
    for name in VARS:
        assert daily[name].dtype == np.float32
        for d, i, j in [(0, 0, 0), (1, 2, 1), (2, 1, 3), (2, 0, 2)]:
            got = float(daily[name].isel(time=d, lat=i, lon=j))
            assert got == pytest.approx(expected_daily(name, d, i, j), rel=2e-6), (name, d, i, j)
        assert np.isnan(daily[name].values[:, SEA[0], SEA[1]]).all()
    # e.g. the precipitation of 2020-01-03 at the southern row is 24 h x 1e-4 m x 3 x 3 = 21.6 mm
    assert float(daily.tp.sel(time="2020-01-03", lat=40.0, lon=100.0)) == pytest.approx(21.6, rel=1e-6)


def test_accumulations_are_the_next_days_00utc_value(new_file: Path) -> None:
    hourly = open_era5land_hourly([str(new_file)])
    daily, _ = daily_from_hourly(hourly)
    for day in DAYS:
        at00 = hourly.sel(valid_time=day + pd.Timedelta(days=1))
        np.testing.assert_allclose(daily.tp.sel(time=day).values, at00.tp.values * 1000.0, rtol=1e-6)
        np.testing.assert_allclose(daily.e.sel(time=day).values, -at00.e.values * 1000.0, rtol=1e-6)
        np.testing.assert_allclose(daily.pev.sel(time=day).values, -at00.pev.values * 1000.0, rtol=1e-6)
        np.testing.assert_allclose(daily.ssrd.sel(time=day).values, at00.ssrd.values / 1e6, rtol=1e-6)
        hours = hourly.t2m.sel(valid_time=slice(day, day + pd.Timedelta(hours=23)))
        assert hours.sizes[cv.ERA5_TIME] == 24
        np.testing.assert_allclose(daily.t2m.sel(time=day).values, hours.mean(cv.ERA5_TIME).values, rtol=1e-6)
    land = daily.e.values[:, :2, :]
    assert (land > 0).all()  # evaporation is positive after the sign turn


def test_units_and_descriptions_are_recorded(new_file: Path) -> None:
    daily, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    assert {n: daily[n].attrs["units"] for n in VARS} == {
        "t2m": "K",
        "stl1": "K",
        "swvl1": "m3 m-3",
        "lai_hv": "m2 m-2",
        "tp": "mm day-1",
        "e": "mm day-1",
        "pev": "mm day-1",
        "ssrd": "MJ m-2 day-1",
    }
    assert DAILY_UNITS["swvl4"] == "m3 m-3" and DAILY_UNITS["stl4"] == "K"
    for name in VARS:
        attrs = daily[name].attrs
        assert attrs["long_name"] and attrs["description"]
        assert attrs["cell_methods"].startswith("time: mean" if name in cv.ERA5_STATE_VARS else "time: sum")
    assert "00 UTC of the next day" in daily.tp.attrs["description"]
    assert "sign turned" in daily.e.attrs["description"]
    assert daily[cv.LAT].attrs["units"] == "degrees_north"


def test_daily_is_lazy(new_file: Path) -> None:
    hourly = open_era5land_hourly([str(new_file)])
    assert hourly.t2m.chunks is not None

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("daily_from_hourly computed dask arrays")

    with dask.config.set(scheduler=refuse):
        daily, _ = daily_from_hourly(hourly)
    assert daily.tp.chunks is not None and daily.t2m.chunks is not None


# ------------------------------------------------------------------ incomplete days
def test_day_without_next_00utc_is_held_back(tmp_path: Path) -> None:
    ds = make_hourly(TIMES[:-1])  # ends 2020-01-03 23 UTC: the total of 01-03 is not there yet
    daily, held = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "a.nc"))]))
    assert list(daily[cv.TIME].values) == list(DAYS[:2].values)
    assert held == [EDGES[0], pd.Timestamp("2020-01-03")]


def test_accumulations_alone_need_only_the_next_00utc(tmp_path: Path) -> None:
    ds = make_hourly(TIMES, variables=("tp",))
    daily, held = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "tp.nc"))]))
    # 00 UTC of 01-01 closes 2019-12-31: with no state variable that day is complete (and 0 mm)
    assert list(daily[cv.TIME].values) == list(pd.date_range("2019-12-31", periods=4).values)
    assert float(daily.tp.isel(time=0, lat=0, lon=0)) == 0.0
    assert held == []


def test_first_00utc_alone_holds_the_previous_day_back_when_states_are_missing(new_file: Path) -> None:
    # tp at 00 UTC of 01-01 closes 2019-12-31, whose t2m hours are not in the file: held back ...
    ds_all, held_all = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    assert EDGES[0] in held_all and EDGES[0] not in list(pd.DatetimeIndex(ds_all[cv.TIME].values))
    # ... unless there is no state variable to wait for
    daily, held = daily_from_hourly(open_era5land_hourly([str(new_file)]).drop_vars(["t2m", "stl1", "swvl1", "lai_hv"]))
    assert EDGES[0] in list(pd.DatetimeIndex(daily[cv.TIME].values)) and held == []


def test_day_with_a_missing_hour_is_incomplete(tmp_path: Path) -> None:
    gap = pd.Timestamp("2020-01-02 07:00")
    ds = make_hourly(TIMES[TIMES != gap])
    daily, held = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "gap.nc"))]))
    assert held == [EDGES[0], pd.Timestamp("2020-01-02"), EDGES[1]]
    assert list(daily[cv.TIME].values) == [np.datetime64("2020-01-01"), np.datetime64("2020-01-03")]
    assert float(daily.t2m.sel(time="2020-01-03").isel(lat=0, lon=0)) == pytest.approx(expected_daily("t2m", 2, 0, 0))


def test_no_complete_day_gives_an_empty_cube(tmp_path: Path) -> None:
    ds = make_hourly(TIMES[:12])
    daily, held = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "half.nc"))]))
    assert daily.sizes[cv.TIME] == 0 and set(VARS) <= set(daily.data_vars)
    assert held == [pd.Timestamp("2019-12-31"), pd.Timestamp("2020-01-01")]


# ------------------------------------------------------------------ layouts
@pytest.mark.parametrize("layout", ["old", "expver_dim", "mixed_expver"])
def test_layouts_give_identical_results(tmp_path: Path, new_file: Path, layout: str) -> None:
    ds = make_hourly()
    if layout == "old":
        path = write_old(ds, tmp_path / "old.nc")
    elif layout == "expver_dim":
        path = write_expver_dim(ds, tmp_path / "expver.nc")
    else:
        path = write_new(ds, tmp_path / "mixed.nc", expver=["0001"] * 40 + ["0005"] * (TIMES.size - 40))
    hourly = open_era5land_hourly([str(path)])
    assert tuple(hourly.t2m.dims) == (cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON)
    assert cv.ERA5_NUMBER not in hourly.coords and cv.ERA5_EXPVER not in hourly.coords
    got, held = daily_from_hourly(hourly)
    want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    assert held == EDGES
    xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))
    if layout == "old":  # float32 coordinates (40.1 stored as 40.099998) come back as the float64 grid values
        np.testing.assert_array_equal(hourly[cv.ERA5_LAT].values, LAT)


def test_packed_int16_old_layout_is_decoded(tmp_path: Path, new_file: Path) -> None:
    got, _ = daily_from_hourly(open_era5land_hourly([str(write_old(make_hourly(), tmp_path / "packed.nc", pack=True))]))
    want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    for name in VARS:
        scale = float(np.nanmax(np.abs(want[name].values)))
        np.testing.assert_allclose(got[name].values, want[name].values, rtol=0, atol=1e-4 * scale + 1e-9)


def test_ascending_latitude_is_flipped(tmp_path: Path, new_file: Path) -> None:
    ds = make_hourly().isel({cv.ERA5_LAT: slice(None, None, -1)})
    assert ds[cv.ERA5_LAT].values[0] < ds[cv.ERA5_LAT].values[-1]
    hourly = open_era5land_hourly([str(write_new(ds, tmp_path / "ascending.nc"))])
    np.testing.assert_array_equal(hourly[cv.ERA5_LAT].values, LAT)
    got, _ = daily_from_hourly(hourly)
    want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))


def test_zip_of_instant_and_accum_files(tmp_path: Path, new_file: Path) -> None:
    ds = make_hourly()
    inst = write_new(ds[["t2m", "stl1", "swvl1", "lai_hv"]], tmp_path / "data_stream-oper_stepType-instant.nc")
    acc = write_new(ds[["tp", "e", "pev", "ssrd"]], tmp_path / "data_stream-oper_stepType-accum.nc")
    archive = tmp_path / "download.zip"  # the CDS names it .nc sometimes: the first bytes decide
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(inst, inst.name)
        zf.write(acc, acc.name)
    got, _ = daily_from_hourly(open_era5land_hourly([str(archive)]))
    want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))


# ------------------------------------------------------------------ several files
def test_files_are_concatenated_and_sorted(tmp_path: Path, new_file: Path) -> None:
    ds = make_hourly()
    later = write_new(ds.isel(valid_time=slice(30, None)), tmp_path / "b.nc")
    earlier = write_new(ds.isel(valid_time=slice(0, 30)), tmp_path / "a.nc")
    hourly = open_era5land_hourly([str(later), str(earlier)])
    assert pd.DatetimeIndex(hourly[cv.ERA5_TIME].values).equals(TIMES)
    assert str(later) in hourly.attrs["source_files"]
    got, _ = daily_from_hourly(hourly)
    want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))


def test_identical_duplicate_timestamps_are_dropped(tmp_path: Path, new_file: Path) -> None:
    ds = make_hourly()
    a = write_new(ds.isel(valid_time=slice(0, 40)), tmp_path / "a.nc")
    b = write_new(ds.isel(valid_time=slice(24, None)), tmp_path / "b.nc")  # 16 hours overlap
    hourly = open_era5land_hourly([str(a), str(b)])
    assert pd.DatetimeIndex(hourly[cv.ERA5_TIME].values).equals(TIMES)
    got, _ = daily_from_hourly(hourly)
    want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))


def test_different_duplicate_timestamps_raise(tmp_path: Path) -> None:
    ds = make_hourly()
    a = write_new(ds.isel(valid_time=slice(0, 40)), tmp_path / "jan_a.nc")
    changed = ds.isel(valid_time=slice(24, None)).copy(deep=True)
    changed["t2m"].loc[{cv.ERA5_TIME: "2020-01-02 05:00"}] = changed["t2m"].sel(valid_time="2020-01-02 05:00") + 1.0
    b = write_new(changed, tmp_path / "jan_b.nc")
    with pytest.raises(InputError) as err:
        open_era5land_hourly([str(a), str(b)])
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg and "2020-01-02 05:00" in msg and "'t2m'" in msg


def test_repeated_timestamp_inside_one_file(tmp_path: Path) -> None:
    ds = make_hourly()
    twice = xr.concat([ds, ds.isel(valid_time=[5])], dim=cv.ERA5_TIME)  # 05 UTC of 01-01 again, at the end
    path = write_new(twice, tmp_path / "twice.nc")
    assert pd.DatetimeIndex(open_era5land_hourly([str(path)])[cv.ERA5_TIME].values).equals(TIMES)
    changed = twice.copy(deep=True)
    changed["tp"][-1] = changed["tp"][-1] + 1e-3
    path = write_new(changed, tmp_path / "twice_changed.nc")
    with pytest.raises(InputError, match=r"twice.*'tp' at 2020-01-01 05:00 UTC"):
        open_era5land_hourly([str(path)])


def test_variables_in_separate_files_are_merged(tmp_path: Path, new_file: Path) -> None:
    ds = make_hourly()
    files = [str(write_new(ds[[name]], tmp_path / f"{name}.nc")) for name in VARS]
    got, _ = daily_from_hourly(open_era5land_hourly(files))
    want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
    xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))


def test_variables_covering_different_hours_raise(tmp_path: Path) -> None:
    ds = make_hourly()
    t2m = write_new(ds[["t2m"]], tmp_path / "t2m.nc")
    tp = write_new(ds[["tp"]].isel(valid_time=slice(0, 30)), tmp_path / "tp.nc")
    with pytest.raises(InputError, match="do not cover the same hours"):
        open_era5land_hourly([str(t2m), str(tp)])


def test_different_grids_raise(tmp_path: Path) -> None:
    ds = make_hourly()
    a = write_new(ds.isel(valid_time=slice(0, 30)), tmp_path / "a.nc")
    b = write_new(ds.isel(valid_time=slice(30, None), longitude=slice(0, 3)), tmp_path / "b.nc")
    with pytest.raises(InputError, match="grid"):
        open_era5land_hourly([str(a), str(b)])


# ------------------------------------------------------------------ variables and units
def test_missing_variable_is_simply_absent(tmp_path: Path) -> None:
    ds = make_hourly(variables=("t2m", "tp"))
    daily, held = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "two.nc"))]))
    assert set(daily.data_vars) == {"t2m", "tp"} and held == EDGES


def test_wrong_units_raise_naming_file_variable_and_units(tmp_path: Path) -> None:
    ds = make_hourly()
    ds["t2m"].attrs["units"] = "degC"
    path = write_new(ds, tmp_path / "celsius.nc")
    with pytest.raises(InputError) as err:
        open_era5land_hourly([str(path)])
    msg = str(err.value)
    assert str(path) in msg and "'t2m'" in msg and "'degC'" in msg and "'K'" in msg


def test_missing_units_raise(tmp_path: Path) -> None:
    ds = make_hourly()
    del ds["tp"].attrs["units"]
    with pytest.raises(InputError, match="'tp' has no units"):
        open_era5land_hourly([str(write_new(ds, tmp_path / "nounits.nc"))])


def test_unit_spellings_are_accepted(tmp_path: Path) -> None:
    ds = make_hourly()
    ds["tp"].attrs["units"] = "m of water equivalent"
    ds["e"].attrs["units"] = "m"
    ds["swvl1"].attrs["units"] = "m3 m-3"
    ds["ssrd"].attrs["units"] = "J/m2"
    daily, _ = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "spellings.nc"))]))
    assert float(daily.tp.isel(time=0, lat=0, lon=0)) == pytest.approx(2.4, rel=1e-6)


@pytest.mark.parametrize(
    ("found", "expected", "same"),
    [
        ("m of water equivalent", "m", True),
        ("m**3 m**-3", "m3/m3", True),
        ("m^3 m^-3", "m3 m-3", True),
        ("J m**-2", "J m-2", True),
        ("kelvin", "K", True),
        ("mm", "m", False),
        ("degC", "K", False),
        ("W m**-2", "J m**-2", False),
        ("m**2 m**-2", "m**3 m**-3", False),
    ],
)
def test_units_match(found: str, expected: str, same: bool) -> None:
    assert units_match(found, expected) is same


# ------------------------------------------------------------------ bad files
@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"this is an HTML error page", "neither NetCDF"), (None, "cannot read it as NetCDF")],
)
def test_bad_files_raise_input_error(tmp_path: Path, new_file: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.nc"
    path.write_bytes(new_file.read_bytes()[:300] if content is None else content)
    with pytest.raises(InputError, match=reason) as err:
        open_era5land_hourly([str(path)])
    assert str(path) in str(err.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_era5land_hourly([str(tmp_path / "nowhere.nc")])
    with pytest.raises(InputError, match="no ERA5-Land file"):
        open_era5land_hourly([])


# ------------------------------------------------------------------ remote files
def test_file_from_a_store_url(new_file: Path) -> None:
    store = Store.from_url(f"memory://era5land-test-{os.getpid()}/raw")
    store.put_file(new_file, "era5land_2020_01.nc")
    try:
        hourly = open_era5land_hourly([store.url_of("era5land_2020_01.nc")])
        got, _ = daily_from_hourly(hourly)
        want, _ = daily_from_hourly(open_era5land_hourly([str(new_file)]))
        xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))
        hourly.close()
    finally:
        store.rm("")


def test_file_from_s3(new_file: Path, s3_store: tuple[str, dict[str, object]]) -> None:
    url, opts = s3_store
    store = Store.from_url(url, opts)
    store.put_file(new_file, "raw/era5land_2020_01.nc")
    hourly = open_era5land_hourly([store.url_of("raw/era5land_2020_01.nc")], storage_options=opts)
    daily, held = daily_from_hourly(hourly)
    assert held == EDGES and float(daily.tp.isel(time=2, lat=2, lon=0)) == pytest.approx(21.6, rel=1e-6)
    hourly.close()


# ------------------------------------------------------------------ region and land mask
def test_subset_to_grid_selects_the_coarse_cells(new_file: Path) -> None:
    grid = GridSpec.from_bbox((100.0, 40.0, 100.3, 40.2))  # coarse centres 100.0..100.2 E, 40.2..40.1 N
    assert grid.coarse_shape == (2, 3)
    hourly = open_era5land_hourly([str(new_file)])
    sub = subset_to_grid(hourly, grid)
    np.testing.assert_array_equal(sub[cv.ERA5_LAT].values, grid.coarse_lat)
    np.testing.assert_array_equal(sub[cv.ERA5_LON].values, grid.coarse_lon)
    np.testing.assert_array_equal(sub.t2m.values, hourly.t2m.values[:, :2, :3])
    daily, _ = daily_from_hourly(hourly)
    dsub = subset_to_grid(daily, grid)  # also on the daily cube's lat/lon
    assert dsub.sizes == {cv.TIME: 3, cv.LAT: 2, cv.LON: 3}
    assert float(dsub.tp.isel(time=1, lat=1, lon=2)) == pytest.approx(expected_daily("tp", 1, 1, 2), rel=1e-6)


def test_subset_matches_float32_and_0_360_coordinates(tmp_path: Path) -> None:
    path = write_old(make_hourly(), tmp_path / "old.nc")  # float32 latitude: 40.1 is stored as 40.099998
    grid = GridSpec.from_bbox((100.0, 40.0, 100.3, 40.2))
    sub = subset_to_grid(open_era5land_hourly([str(path)]), grid)
    np.testing.assert_array_equal(sub[cv.ERA5_LAT].values, grid.coarse_lat)
    single = make_hourly().assign_coords({cv.ERA5_LAT: LAT.astype(np.float32)})  # 40.1 differs by 1.5e-6 in float32
    sub = subset_to_grid(single, grid)
    np.testing.assert_array_equal(sub[cv.ERA5_LAT].values, grid.coarse_lat)
    np.testing.assert_array_equal(sub.t2m.values, single.t2m.values[:, :2, :3])
    west = GridSpec.from_bbox((-100.0, 40.0, -99.8, 40.2))  # the same cells seen from 0..360 degrees east
    shifted = make_hourly().assign_coords({cv.ERA5_LON: LON + 160.0})  # 260.0..260.3 E = -100.0..-99.7
    sub = subset_to_grid(shifted, west)
    np.testing.assert_allclose(sub[cv.ERA5_LON].values, [-100.0, -99.9])
    np.testing.assert_array_equal(sub.t2m.values, shifted.t2m.values[:, :2, :2])


def test_region_outside_the_file_names_the_missing_bounds(new_file: Path) -> None:
    grid = GridSpec.from_bbox((99.9, 40.0, 100.3, 40.3))  # needs 99.9 E (west) and 40.3 N (north)
    with pytest.raises(InputError) as err:
        subset_to_grid(open_era5land_hourly([str(new_file)]), grid)
    msg = str(err.value)
    assert str(new_file) in msg and "north: lat 40.3" in msg and "west: lon 99.9" in msg
    assert "east:" not in msg and "south:" not in msg


def test_grid_offset_from_the_file_is_reported(new_file: Path) -> None:
    hourly = open_era5land_hourly([str(new_file)]).assign_coords({cv.ERA5_LON: LON + 0.05})
    with pytest.raises(InputError, match="not its cell centres"):
        subset_to_grid(hourly, GridSpec.from_bbox((100.1, 40.0, 100.3, 40.2)))


def test_land_mask_from_swvl1_nans(new_file: Path) -> None:
    hourly = open_era5land_hourly([str(new_file)])
    mask = land_mask_from_era5(hourly)
    assert mask.dtype == bool and mask.dims == (cv.LAT, cv.LON) and mask.shape == (3, 4)
    want = np.ones((3, 4), dtype=bool)
    want[SEA] = False
    np.testing.assert_array_equal(mask.values, want)
    daily, _ = daily_from_hourly(hourly)
    np.testing.assert_array_equal(land_mask_from_era5(daily).values, want)


def test_land_mask_from_lsm(tmp_path: Path) -> None:
    ds = make_hourly()
    lsm = np.array([[1.0, 0.7, 0.5, 0.2], [1.0, 0.49, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    ds["lsm"] = ((cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON), np.broadcast_to(lsm, (TIMES.size, 3, 4)).copy(), {"units": "(0 - 1)"})
    hourly = open_era5land_hourly([str(write_new(ds, tmp_path / "lsm.nc"))])
    assert hourly["lsm"].dims == (cv.ERA5_LAT, cv.ERA5_LON)
    np.testing.assert_array_equal(land_mask_from_era5(hourly).values, lsm >= 0.5)
    daily, _ = daily_from_hourly(hourly)
    assert "lsm" not in daily


def test_land_mask_needs_lsm_or_swvl1(tmp_path: Path) -> None:
    ds = make_hourly(variables=("t2m",))
    with pytest.raises(InputError, match="lsm"):
        land_mask_from_era5(ds)


# ------------------------------------------------------------------ GRIB
GRIB_PARAMS = {"t2m": 167, "swvl1": 39, "tp": 228, "e": 182, "ssrd": 169}


def write_grib(ds: xr.Dataset, path: Path, sample: str) -> Path:
    """GRIB as ERA5-Land's archive holds it: instantaneous at step 0, accumulations 0-h from 00 UTC (0-24 for 00 UTC)."""
    import eccodes
    import pyproj  # noqa: F401  load pyproj before ecCodes (see smci_dask/__init__.py)

    lat, lon = ds[cv.ERA5_LAT].values, ds[cv.ERA5_LON].values
    with open(path, "wb") as f:
        for vt in pd.DatetimeIndex(ds[cv.ERA5_TIME].values):
            for name, pid in GRIB_PARAMS.items():
                h = eccodes.codes_grib_new_from_samples(sample)
                try:
                    for key, value in (
                        ("centre", "ecmf"),
                        ("Ni", lon.size),
                        ("Nj", lat.size),
                        ("latitudeOfFirstGridPointInDegrees", float(lat[0])),
                        ("latitudeOfLastGridPointInDegrees", float(lat[-1])),
                        ("longitudeOfFirstGridPointInDegrees", float(lon[0])),
                        ("longitudeOfLastGridPointInDegrees", float(lon[-1])),
                        ("iDirectionIncrementInDegrees", 0.1),
                        ("jDirectionIncrementInDegrees", 0.1),
                        ("jScansPositively", 0),
                    ):
                        eccodes.codes_set(h, key, value)
                    if name in cv.ERA5_ACCUM_VARS:
                        ref = vt.normalize() - pd.Timedelta(days=1) if vt.hour == 0 else vt.normalize()
                        eccodes.codes_set(h, "dataDate", int(ref.strftime("%Y%m%d")))
                        eccodes.codes_set(h, "dataTime", 0)
                        eccodes.codes_set(h, "stepType", "accum")
                        eccodes.codes_set(h, "paramId", pid)
                        eccodes.codes_set(h, "startStep", 0)
                        eccodes.codes_set(h, "endStep", 24 if vt.hour == 0 else vt.hour)
                    else:
                        eccodes.codes_set(h, "dataDate", int(vt.strftime("%Y%m%d")))
                        eccodes.codes_set(h, "dataTime", vt.hour * 100)
                        eccodes.codes_set(h, "paramId", pid)
                    values = ds[name].sel(valid_time=vt).values.astype(np.float64)
                    eccodes.codes_set(h, "bitmapPresent", 1)
                    eccodes.codes_set(h, "missingValue", 9999.0)
                    eccodes.codes_set(h, "bitsPerValue", 24)
                    eccodes.codes_set_values(h, np.where(np.isnan(values), 9999.0, values).ravel())
                    eccodes.codes_write(h, f)
                finally:
                    eccodes.codes_release(h)
    return path


@pytest.mark.parametrize("sample", ["regular_ll_sfc_grib1", "regular_ll_sfc_grib2"])
def test_grib_gives_the_netcdf_result(tmp_path: Path, sample: str) -> None:
    ds = make_hourly(variables=tuple(GRIB_PARAMS))
    grib = write_grib(ds, tmp_path / "era5land.grib", sample)
    hourly = open_era5land_hourly([str(grib)])
    assert tuple(hourly.tp.dims) == (cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON)
    assert pd.DatetimeIndex(hourly[cv.ERA5_TIME].values).equals(TIMES)
    got, held = daily_from_hourly(hourly)
    want, _ = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "same.nc"))]))
    assert held == EDGES and set(got.data_vars) == set(GRIB_PARAMS)
    for name in GRIB_PARAMS:
        np.testing.assert_allclose(got[name].values, want[name].values, rtol=1e-5, atol=1e-6)
    assert float(got.tp.isel(time=2, lat=2, lon=0)) == pytest.approx(21.6, rel=1e-5)
    assert np.isnan(got.t2m.values[:, SEA[0], SEA[1]]).all()


def test_grib_with_missing_next_00utc_holds_the_day_back(tmp_path: Path) -> None:
    ds = make_hourly(TIMES[:-1], variables=tuple(GRIB_PARAMS))
    daily, held = daily_from_hourly(open_era5land_hourly([str(write_grib(ds, tmp_path / "short.grib", "regular_ll_sfc_grib1"))]))
    assert held == [EDGES[0], pd.Timestamp("2020-01-03")] and daily.sizes[cv.TIME] == 2


# ------------------------------------------------------------------ the daily store
REL = "covariates/era5land"


def make_daily(days: pd.DatetimeIndex, *, offset: float = 0.0, variables: tuple[str, ...] = ("tp", "t2m")) -> xr.Dataset:
    """A daily cube whose value tells its day: ordinal day since 2020-01-01 + 0.1 i + 0.01 j (+ offset)."""
    n = ((days - START).days.to_numpy())[:, None, None]
    values = (n + 0.1 * np.arange(LAT.size)[None, :, None] + 0.01 * np.arange(LON.size)[None, None, :] + offset).astype(np.float32)
    ds = xr.Dataset(coords={cv.TIME: days, cv.LAT: LAT, cv.LON: LON})
    for name in variables:
        ds[name] = ((cv.TIME, cv.LAT, cv.LON), values.copy(), {"units": DAILY_UNITS[name]})
    return ds


def days(first: str, last: str) -> pd.DatetimeIndex:
    return pd.date_range(first, last, freq="D")


def store_files(store: Store) -> dict[str, bytes]:
    root = Path(store.path)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_daily_cube_round_trip(new_file: Path, any_store: Store) -> None:
    hourly = open_era5land_hourly([str(new_file)])
    daily, held = daily_from_hourly(subset_to_grid(hourly, GridSpec.from_bbox((100.0, 40.0, 100.3, 40.2))))
    report = write_era5land_daily(daily, any_store, REL, time_chunk=2)
    assert report.created and report.written == list(DAYS) and report.skipped == [] and report.chunks == 2
    assert list(complete_days(any_store, REL)) == list(DAYS)
    back = open_era5land_daily(any_store, REL)
    xr.testing.assert_allclose(back.load(), daily.load(), rtol=0, atol=0)
    assert back.tp.attrs["units"] == "mm day-1" and "sign turned" in back.e.attrs["description"]
    assert back.attrs["complete_days"] == [["2020-01-01", "2020-01-03"]]
    whole = open_era5land_daily(any_store, REL, complete_only=False)  # the axis ends on a chunk boundary
    assert whole.sizes[cv.TIME] == 4 and np.isnan(whole.tp.isel(time=3).values).all()


def test_writing_the_same_days_again_changes_nothing(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "store")
    write_era5land_daily(make_daily(days("2020-01-01", "2020-01-10")), store, REL, time_chunk=4)
    before = store_files(store)
    report = write_era5land_daily(make_daily(days("2020-01-01", "2020-01-10"), offset=100.0), store, REL, time_chunk=4)
    assert report.written == [] and len(report.skipped) == 10 and report.chunks == 0
    assert store_files(store) == before


def test_overlapping_batch_writes_only_the_new_days(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "store")
    write_era5land_daily(make_daily(days("2020-01-01", "2020-01-05")), store, REL, time_chunk=4)
    report = write_era5land_daily(make_daily(days("2020-01-03", "2020-01-08"), offset=100.0), store, REL)
    assert report.written == list(days("2020-01-06", "2020-01-08")) and report.skipped == list(days("2020-01-03", "2020-01-05"))
    back = open_era5land_daily(store, REL)
    assert list(back[cv.TIME].values) == list(days("2020-01-01", "2020-01-08").values)
    first = back.tp.isel(lat=0, lon=0).values
    np.testing.assert_allclose(first, [0, 1, 2, 3, 4, 105, 106, 107])  # days already there kept their values


def test_out_of_order_batches_land_in_place(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "store")
    write_era5land_daily(make_daily(days("2020-01-20", "2020-01-25")), store, REL, time_chunk=4, origin="2020-01-01")
    write_era5land_daily(make_daily(days("2020-01-02", "2020-01-03")), store, REL)
    write_era5land_daily(make_daily(days("2020-02-01", "2020-02-02")), store, REL)  # extends the time axis
    want = days("2020-01-02", "2020-01-03").append(days("2020-01-20", "2020-01-25")).append(days("2020-02-01", "2020-02-02"))
    assert list(complete_days(store, REL)) == list(want)
    back = open_era5land_daily(store, REL)
    np.testing.assert_allclose(back.t2m.isel(lat=1, lon=2).values, (want - START).days.to_numpy() + 0.12, rtol=1e-6)
    assert back.attrs["complete_days"] == [["2020-01-02", "2020-01-03"], ["2020-01-20", "2020-01-25"], ["2020-02-01", "2020-02-02"]]


def test_held_back_day_is_written_with_the_next_batch(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "store")
    ds = make_hourly()
    first = write_new(ds.isel(valid_time=slice(0, 48)), tmp_path / "a.nc")  # 01-01 00 .. 01-02 23
    rest = write_new(ds.isel(valid_time=slice(48, None)), tmp_path / "b.nc")  # 01-03 00 .. 01-04 00
    daily, held = daily_from_hourly(open_era5land_hourly([str(first)]))
    assert pd.Timestamp("2020-01-02") in held  # its totals need 00 UTC of 01-03
    write_era5land_daily(daily, store, REL)
    assert list(complete_days(store, REL)) == [pd.Timestamp("2020-01-01")]
    daily, held = daily_from_hourly(open_era5land_hourly([str(first), str(rest)]))
    report = write_era5land_daily(daily, store, REL)
    assert report.skipped == [pd.Timestamp("2020-01-01")] and report.written == list(DAYS[1:])
    whole, _ = daily_from_hourly(open_era5land_hourly([str(write_new(ds, tmp_path / "whole.nc"))]))
    xr.testing.assert_identical(open_era5land_daily(store, REL).load().drop_attrs(), whole.load().drop_attrs())


def test_bad_batches_leave_the_store_as_it_was(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "store")
    write_era5land_daily(make_daily(days("2020-01-05", "2020-01-08")), store, REL, time_chunk=4, origin="2020-01-01")
    before = store_files(store)
    with pytest.raises(InputError, match="missing t2m"):
        write_era5land_daily(make_daily(days("2020-01-09", "2020-01-10"), variables=("tp",)), store, REL)
    with pytest.raises(InputError, match="start at 2020-01-01"):
        write_era5land_daily(make_daily(days("2019-12-30", "2020-01-02")), store, REL)
    with pytest.raises(InputError, match="subset_to_grid"):
        write_era5land_daily(make_daily(days("2020-01-09", "2020-01-10")).isel(lon=slice(0, 3)), store, REL)
    assert store_files(store) == before


def test_a_run_killed_midway_claims_no_day_and_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from smci_dask.covariates import era5land_store as era5land

    store = Store.from_url(tmp_path / "store")
    write_era5land_daily(make_daily(days("2020-01-01", "2020-01-02")), store, REL, time_chunk=4)
    real = era5land.write_zarr_blocks
    written: list[str] = []

    def failing(store: Store, relpath: str, blocks: Any, **kwargs: Any) -> int:
        def cut() -> Any:
            for k, block in enumerate(blocks):
                if k == 2:  # the second time chunk's first variable: the connection drops after two blocks
                    raise OSError("connection lost")
                written.append(block[0])
                yield block

        return real(store, relpath, cut(), **kwargs)

    monkeypatch.setattr(era5land, "write_zarr_blocks", failing)
    with pytest.raises(OSError, match="connection lost"):
        write_era5land_daily(make_daily(days("2020-01-03", "2020-01-07")), store, REL)
    assert written == ["tp", "t2m"]  # the first time chunk was written whole, then the run died
    assert list(complete_days(store, REL)) == list(days("2020-01-01", "2020-01-02"))
    monkeypatch.setattr(era5land, "write_zarr_blocks", real)
    report = write_era5land_daily(make_daily(days("2020-01-03", "2020-01-07")), store, REL)
    assert report.written == list(days("2020-01-03", "2020-01-07"))
    back = open_era5land_daily(store, REL)
    np.testing.assert_allclose(back.tp.isel(lat=0, lon=0).values, np.arange(7))


def test_block_writes_name_the_store_and_leave_the_days_listed(tmp_path: Path) -> None:
    from smci_dask.io.arrays import write_zarr_blocks

    store = Store.from_url(tmp_path / "store")
    whole = (slice(0, 4), slice(None), slice(None))
    with pytest.raises(StoreError, match=r"store .*store.*create it first"):
        write_zarr_blocks(store, REL, iter([]))
    write_era5land_daily(make_daily(days("2020-01-01", "2020-01-02")), store, REL, time_chunk=4)
    before = store_files(store)
    block = np.zeros((4, LAT.size, LON.size), np.float32)
    with pytest.raises(StoreError, match="no array 'swvl1'"):
        write_zarr_blocks(store, REL, [("swvl1", whole, block)], attrs={"complete_days": []})
    with pytest.raises(StoreError, match=r"block for 'tp' .* does not fit"):
        write_zarr_blocks(store, REL, [("tp", whole, block[:2])], attrs={"complete_days": []})
    assert store_files(store) == before  # nothing written, the complete days not touched
    assert write_zarr_blocks(store, REL, [("tp", whole, block + 5)], attrs={"note": "x"}) == 1
    back = open_era5land_daily(store, REL, complete_only=False)
    assert (back.tp.values[:4] == 5).all() and back.attrs["note"] == "x"
    assert list(complete_days(store, REL)) == list(days("2020-01-01", "2020-01-02"))
