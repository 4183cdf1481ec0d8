"""`smci ingest era5land` (:mod:`smci_dask.pipeline.ingest`) on the tiny synthetic world's monthly ERA5-Land files.

The daily cube is checked against values worked out from the raw hourly files
with netCDF4 directly (not through the package's reader):

* accumulations: the total of day D is the file's value at 00 UTC of D + 1
  (for the last day of a month: the next month's file), tp x 1000 (mm),
  e and pev x -1000 (mm, evaporation positive), ssrd / 1e6 (MJ m-2);
* state variables: the mean of the 24 hourly values of D.

The store after ingesting January-March 2019 is built once per module
(``base_store``); tests that change it work on a copy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

import dask
import netCDF4
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from smci_dask import conventions as cv
from smci_dask.cli.main import cli
from smci_dask.config import load_config
from smci_dask.covariates import complete_days, open_era5land_daily
from smci_dask.errors import ConfigError, InputError
from smci_dask.grid import grid_for
from smci_dask.io import Store, open_zarr
from smci_dask.pipeline.ingest import ERA5LAND_RELPATH, find_era5land_files, ingest_era5land

DAY = pd.Timedelta(days=1)
#: Variables checked by hand, with how a daily value comes from the hourly file.
ACCUM = {"tp": 1000.0, "e": -1000.0, "pev": -1000.0, "ssrd": 1e-6}
STATE = ("t2m", "swvl1", "swvl4", "stl1", "lai_hv")


# ------------------------------------------------------------------ helpers
def month_file(world: Path, year: int, month: int) -> str:
    return str(world / f"era5land_{year}_{month:02d}.nc")


def config(root: Path | str, region: str = "tiny", **store_options):
    return load_config(None, overrides={"store": {"root": str(root), "storage_options": store_options}, "region": {"name": region}})


def snapshot(root: Path) -> dict[str, str]:
    """md5 of every file below ``root`` (relative path -> md5)."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@functools.cache
def raw_series(paths: tuple[str, ...], var: str, lat: float, lon: float) -> pd.Series:
    """Hourly values of one variable at one cell from raw NetCDF files, read with netCDF4 (float64, NaN for missing)."""
    parts = []
    for path in paths:
        with netCDF4.Dataset(path) as nc:
            i = int(np.flatnonzero(np.isclose(nc["latitude"][:], lat))[0])
            j = int(np.flatnonzero(np.isclose(nc["longitude"][:], lon))[0])
            t = nc["valid_time"]
            times = netCDF4.num2date(t[:], t.units, getattr(t, "calendar", "standard"), only_use_cftime_datetimes=False)
            values = np.ma.filled(nc[var][:, i, j].astype(np.float64), np.nan)
        parts.append(pd.Series(values, index=pd.DatetimeIndex([pd.Timestamp(str(x)) for x in times])))
    return pd.concat(parts).sort_index()


def expected(paths: list[str], var: str, day: pd.Timestamp, lat: float, lon: float) -> float:
    s = raw_series(tuple(paths), var, lat, lon)
    if var in ACCUM:
        return ACCUM[var] * s[day + DAY]
    hours = s[day : day + pd.Timedelta(hours=23)]
    assert len(hours) == 24
    return float(hours.mean())


def land_cells(world: Path, n: int = 2) -> list[tuple[float, float]]:
    """``n`` land cells of the tiny region (swvl1 not NaN), as (lat, lon)."""
    grid = grid_for("tiny")
    first = month_file(world, 2019, 1)
    cells = []
    for lat in grid.coarse_lat[1:]:
        for lon in grid.coarse_lon[1:]:
            if np.isfinite(raw_series((first,), "swvl1", lat, lon).iloc[0]):
                cells.append((float(lat), float(lon)))
    assert len(cells) >= n
    return [cells[0], cells[-1]][:n]


def check_days(root: Path, world: Path, files: list[str], days: list[str]) -> None:
    """The cube's values on ``days`` at two land cells against the hand computation from ``files``."""
    cube = open_era5land_daily(Store.from_url(root), ERA5LAND_RELPATH)
    for lat, lon in land_cells(world):
        for day in map(pd.Timestamp, days):
            for var in (*ACCUM, *STATE):
                got = float(cube[var].sel(time=day, lat=lat, lon=lon).values)
                want = expected(files, var, day, lat, lon)
                assert got == pytest.approx(want, rel=2e-6, abs=1e-9), (var, day, lat, lon)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    store, _ = tiny_world
    return Path(store.path) / "era5land"


@pytest.fixture(scope="module")
def base_store(world, tmp_path_factory) -> tuple[Path, object]:
    """January-March 2019 ingested into a fresh local store: (root, report)."""
    root = tmp_path_factory.mktemp("era5-base") / "store"
    report = ingest_era5land(config(root), [str(world / "era5land_2019_0[123].nc")])
    return root, report


@pytest.fixture
def store_copy(base_store, tmp_path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(base_store[0], root)
    return root


# ------------------------------------------------------------------ ingest, hold back, complete later
def test_three_months_match_the_hand_computation(base_store, world):
    root, report = base_store
    jan_apr = [month_file(world, 2019, m) for m in (1, 2, 3, 4)]
    assert report.created and report.land_written and report.chunks_rewritten >= 1
    assert report.written == list(pd.date_range("2019-01-01", "2019-03-30"))
    assert report.skipped == []
    assert list(report.held_back) == [pd.Timestamp("2019-03-31")]
    assert "needs 00 UTC of 2019-04-01" in report.held_back[pd.Timestamp("2019-03-31")]
    assert list(report.ignored) == [pd.Timestamp("2018-12-31")]  # only the 00 UTC of 01-01 closes it; before the cube's first day
    assert [f.md5 for f in report.files] == [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in jan_apr[:3]]
    assert all(f.first.hour == 0 and f.last.hour == 23 for f in report.files)

    store = Store.from_url(root)
    assert list(complete_days(store, ERA5LAND_RELPATH)) == report.written
    # month ends need the next month's 00 UTC: Jan 31 from the February file, Feb 28 from the March file
    check_days(root, world, jan_apr[:3], ["2019-01-01", "2019-01-17", "2019-01-31", "2019-02-28", "2019-03-30"])

    cube = open_era5land_daily(store, ERA5LAND_RELPATH)
    assert cube["tp"].attrs["units"] == "mm day-1" and cube["ssrd"].attrs["units"] == "MJ m-2 day-1"
    land = open_zarr(store, f"{ERA5LAND_RELPATH}/land")["land"].values
    assert land.dtype == bool and land.shape == cube["tp"].shape[1:]
    np.testing.assert_array_equal(land, np.isfinite(cube["swvl1"].isel(time=0).values))
    assert 0 < land.sum() < land.size  # the tiny region has a lake
    assert not np.isfinite(cube["tp"].values[:, ~land]).any()


def test_next_month_writes_the_held_back_day(store_copy, world):
    files = [month_file(world, 2019, m) for m in (3, 4)]
    report = ingest_era5land(config(store_copy), [files[1]])
    assert report.written[0] == pd.Timestamp("2019-03-31")  # from the kept hours of the earlier run + 00 UTC of 04-01
    assert report.written == list(pd.date_range("2019-03-31", "2019-04-29"))
    assert list(report.held_back) == [pd.Timestamp("2019-04-30")]
    check_days(store_copy, world, files, ["2019-03-31", "2019-04-29"])
    days = complete_days(Store.from_url(store_copy), ERA5LAND_RELPATH)
    assert list(days) == list(pd.date_range("2019-01-01", "2019-04-29"))


def test_reingesting_the_same_files_changes_nothing(store_copy, world):
    before = snapshot(store_copy)
    days_before = complete_days(Store.from_url(store_copy), ERA5LAND_RELPATH)
    scheduler = dask.config.get("scheduler", None)
    report = ingest_era5land(config(store_copy), [str(world / "era5land_2019_0[123].nc")])
    assert dask.config.get("scheduler", None) == scheduler  # the run leaves the process's dask settings alone
    assert report.written == [] and not report.changed and report.chunks_rewritten == 0
    assert report.skipped == list(pd.date_range("2019-01-01", "2019-03-30"))
    assert list(report.held_back) == [pd.Timestamp("2019-03-31")]
    assert snapshot(store_copy) == before  # every array chunk, complete_days and the kept hours, byte for byte
    assert complete_days(Store.from_url(store_copy), ERA5LAND_RELPATH).equals(days_before)


def test_out_of_order_month_lands_in_place(store_copy, world):
    may = ingest_era5land(config(store_copy), [month_file(world, 2019, 5)])
    assert may.written == list(pd.date_range("2019-05-01", "2019-05-30"))
    assert set(may.held_back) == {pd.Timestamp(d) for d in ("2019-03-31", "2019-04-30", "2019-05-31")}
    assert may.held_back[pd.Timestamp("2019-04-30")].startswith("missing hours: none of its 24")

    april = ingest_era5land(config(store_copy), [month_file(world, 2019, 4)])
    assert april.written == list(pd.date_range("2019-03-31", "2019-04-30"))  # both ends completed by kept hours
    assert list(april.held_back) == [pd.Timestamp("2019-05-31")]
    days = complete_days(Store.from_url(store_copy), ERA5LAND_RELPATH)
    assert list(days) == list(pd.date_range("2019-01-01", "2019-05-30"))
    check_days(store_copy, world, [month_file(world, 2019, m) for m in (3, 4, 5)], ["2019-03-31", "2019-04-30", "2019-05-01"])


def test_a_month_in_per_variable_files_gives_the_same_days(base_store, world, tmp_path):
    import xarray as xr

    parts = []
    with xr.open_dataset(month_file(world, 2019, 1)) as jan:
        for kind, names in (("accum", ["tp", "e", "pev", "ssrd"]), ("instant", [v for v in jan.data_vars if v not in ACCUM])):
            path = tmp_path / f"era5land_2019_01-stepType-{kind}.nc"
            jan[names].load().drop_encoding().to_netcdf(path)
            parts.append(str(path))
    root = tmp_path / "store"
    report = ingest_era5land(config(root), [*parts, month_file(world, 2019, 2)])
    assert report.written == list(pd.date_range("2019-01-01", "2019-02-27"))
    got = open_era5land_daily(Store.from_url(root), ERA5LAND_RELPATH).sel(time=slice("2019-01-01", "2019-02-27"))
    want = open_era5land_daily(Store.from_url(base_store[0]), ERA5LAND_RELPATH).sel(time=got["time"])
    for var in got.data_vars:
        np.testing.assert_array_equal(got[var].values, want[var].values, err_msg=var)


# ------------------------------------------------------------------ bad input
def _truncated(src: str, dst: Path) -> None:
    data = Path(src).read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def _corrupt(src: str, dst: Path) -> None:
    data = bytearray(Path(src).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    dst.write_bytes(bytes(data))


def _wrong_units(src: str, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with netCDF4.Dataset(dst, "r+") as nc:
        nc["tp"].units = "mm"


def _hour_missing(src: str, dst: Path) -> None:
    import xarray as xr

    with xr.open_dataset(src) as ds:
        ds.drop_isel(valid_time=100).load().drop_encoding().to_netcdf(dst)


def _variable_missing(src: str, dst: Path) -> None:
    import xarray as xr

    with xr.open_dataset(src) as ds:
        ds.drop_vars("swvl2").load().drop_encoding().to_netcdf(dst)


def _region_not_covered(src: str, dst: Path) -> None:
    import xarray as xr

    with xr.open_dataset(src) as ds:  # the northern 4 of the file's 9 rows: the tiny region needs rows 2..6
        ds.isel(latitude=slice(0, 4)).load().drop_encoding().to_netcdf(dst)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_truncated, "cannot read it as NetCDF"),
        (_corrupt, "cannot read its values"),
        (_wrong_units, "has units 'mm', expected 'm'"),
        (_hour_missing, "1 hour(s) missing between"),
        (_variable_missing, "variables differ from the store's (lacks swvl2)"),
        (_region_not_covered, "does not cover the region"),
    ],
    ids=["truncated", "corrupt-byte", "wrong-units", "hour-missing", "variable-missing", "region-not-covered"],
)
def test_bad_file_is_named_and_the_store_is_left_as_it_was(store_copy, world, tmp_path, damage, words):
    bad = tmp_path / "era5land_2019_04.nc"
    damage(month_file(world, 2019, 4), bad)
    before = snapshot(store_copy)
    with pytest.raises(InputError) as err:  # a good file in the same run is not written either
        ingest_era5land(config(store_copy), [month_file(world, 2019, 5), str(bad)])
    assert str(bad) in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)
    assert snapshot(store_copy) == before


def test_region_not_covered_and_store_of_another_region(store_copy, world, tmp_path):
    with pytest.raises(InputError, match=r"era5land_2019_01\.nc: does not cover the region"):
        ingest_era5land(config(tmp_path / "new", region="small"), [month_file(world, 2019, 1)])
    assert not (tmp_path / "new").exists()
    with pytest.raises(ConfigError, match="configured region 'small'"):
        ingest_era5land(config(store_copy, region="small"), [month_file(world, 2019, 4)])


def test_find_files_folders_and_globs(world, tmp_path):
    everything = find_era5land_files([str(world)])
    assert len(everything) == 24 and everything == sorted(everything)
    assert find_era5land_files([str(world / "era5land_2020_1*.nc"), month_file(world, 2020, 10)]) == [
        month_file(world, 2020, m) for m in (10, 11, 12)
    ]
    with pytest.raises(InputError, match="no such file"):
        find_era5land_files([str(tmp_path / "nope.nc")])
    with pytest.raises(InputError, match="matches nothing"):
        find_era5land_files([str(tmp_path / "*.nc")])


# ------------------------------------------------------------------ the command
def test_cli_local_report_and_rerun(world, tmp_path):
    args = ["ingest", "era5land", month_file(world, 2019, 1), "--store", str(tmp_path / "s"), "--region", "tiny", "--no-cluster"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "days written     30 (2019-01-01..2019-01-30), 1 time chunk(s) rewritten (store created)" in res.stdout
    assert "2019-01-31  needs 00 UTC of 2019-02-01" in res.stdout
    assert "scanned " in res.stderr and "2019-01-01..2019-01-31 (1 file(s)): 30 day(s) computed" in res.stderr

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "days written     0\n" in again.stdout and "days skipped     30 (2019-01-01..2019-01-30)" in again.stdout

    bad = CliRunner().invoke(cli, ["ingest", "era5land", str(tmp_path / "none_*.nc"), "--store", str(tmp_path / "s"), "--no-cluster"])
    assert bad.exit_code == 5
    assert bad.output.count("\n") == 1 and bad.output.startswith("error: ERA5-Land glob")


def test_cli_on_s3_with_a_cluster(world, s3_store, s3_server, base_store, tmp_path):
    import xarray as xr

    url, options = s3_store
    root = Store.from_url(url, options)
    names = ["tp", "ssrd", "t2m", "swvl1"]  # a request for four variables keeps the S3 round trips few
    for m in (1, 2):  # a glob on S3 that matches January only
        with xr.open_dataset(month_file(world, 2019, m)) as ds:
            ds[names].load().to_netcdf(tmp_path / f"{m}.nc")
        root.put_file(tmp_path / f"{m}.nc", f"inputs/era5land_2019_{m:02d}.nc")
    env = {
        "SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL": s3_server.endpoint_url,
        "SMCI__CLUSTER__LOCAL__PROCESSES": "false",
        "SMCI__CLUSTER__LOCAL__N_WORKERS": "1",
    }
    args = ["ingest", "era5land", f"{url}/inputs/era5land_2019_*1.nc", "--store", url, "--region", "tiny", "--format", "json"]
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["days_written"] == [f"{d:%Y-%m-%d}" for d in pd.date_range("2019-01-01", "2019-01-30")]
    assert list(report["days_held_back"]) == ["2019-01-31"]
    assert [f["url"] for f in report["files"]] == [f"{url}/inputs/era5land_2019_01.nc"]
    assert report["files"][0]["md5"] == hashlib.md5((tmp_path / "1.nc").read_bytes()).hexdigest()
    assert report["files"][0]["variables"] == names

    # the same numbers as the local ingest of the same files
    on_s3 = open_era5land_daily(root, ERA5LAND_RELPATH)
    local = open_era5land_daily(Store.from_url(base_store[0]), ERA5LAND_RELPATH).sel(time=on_s3["time"])
    assert sorted(on_s3.data_vars) == sorted(names)
    for var in names:
        np.testing.assert_array_equal(on_s3[var].values, local[var].values)
    assert root.exists("covariates/era5land/land/zarr.json") and root.exists("covariates/era5land_ingest/pending.json")


# ------------------------------------------------------------------ GRIB through the command
@pytest.fixture(scope="module")
def grib_files(world, tmp_path_factory) -> list[Path]:
    """The world's January hours 01-01 00 UTC .. 01-04 23 UTC as two GRIB files of two days each.

    Written by the synthetic world's GRIB writer (``make_world(grib=True)`` writes whole months with it); two
    days per file keep cfgrib's indexing (about 2 ms per message, 17 messages per hour) short.
    """
    import xarray as xr

    from smci_dask.synthetic.era5 import write_era5_grib

    out = tmp_path_factory.mktemp("era5-grib")
    with xr.open_dataset(month_file(world, 2019, 1)) as jan:
        hours = jan.load()
    paths = []
    for first, last in (("2019-01-01T00", "2019-01-02T23"), ("2019-01-03T00", "2019-01-04T23")):
        path = out / f"era5land_{first[:10].replace('-', '_')}.grib"
        write_era5_grib(hours.sel(valid_time=slice(first, last)), path)
        paths.append(path)
    return paths


def _check_grib_cube(root: Store, base: Path, report: dict, last: str) -> None:
    """The cube from the GRIB files equals the NetCDF cube (float32 tolerance; GRIB packs 24 bits per value)."""
    held = pd.Timestamp(last) + DAY
    assert report["days_written"] == [f"{d:%Y-%m-%d}" for d in pd.date_range("2019-01-01", last)]
    assert list(report["days_held_back"]) == [f"{held:%Y-%m-%d}"]
    assert f"needs 00 UTC of {held + DAY:%Y-%m-%d}" in report["days_held_back"][f"{held:%Y-%m-%d}"]
    got = open_era5land_daily(root, ERA5LAND_RELPATH)
    want = open_era5land_daily(Store.from_url(base), ERA5LAND_RELPATH).sel(time=got["time"])
    assert sorted(got.data_vars) == sorted(want.data_vars) == sorted(cv.ERA5_VARS)
    for var in want.data_vars:
        a, b = got[var].values, want[var].values
        assert a.dtype == np.float32 and got[var].attrs["units"] == want[var].attrs["units"]
        scale = float(np.nanmax(np.abs(b)))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * scale, equal_nan=True, err_msg=var)
    land = open_zarr(root, f"{ERA5LAND_RELPATH}/land")["land"].values
    np.testing.assert_array_equal(land, open_zarr(Store.from_url(base), f"{ERA5LAND_RELPATH}/land")["land"].values)


def test_cli_grib_gives_the_netcdf_cube_locally(grib_files, base_store, tmp_path):
    out = tmp_path / "s"
    args = ["ingest", "era5land", *map(str, grib_files), "--store", str(out), "--region", "tiny", "--no-cluster", "--format", "json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [f["md5"] for f in report["files"]] == [hashlib.md5(p.read_bytes()).hexdigest() for p in grib_files]
    _check_grib_cube(Store.from_url(out), base_store[0], report, "2019-01-03")  # 01-03 closed by the second file's 00 UTC


def test_cli_grib_on_s3_gives_the_netcdf_cube(grib_files, base_store, s3_store, s3_server):
    url, options = s3_store
    root = Store.from_url(url, options)
    for path in grib_files[:1]:  # one file: every GRIB read fetches it from S3 (the two-file case runs locally)
        root.put_file(path, f"inputs/{path.name}")
    env = {"SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL": s3_server.endpoint_url}
    args = ["ingest", "era5land", f"{url}/inputs/*.grib", "--store", url, "--region", "tiny", "--no-cluster", "--format", "json"]
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [f["url"] for f in report["files"]] == [f"{url}/inputs/{grib_files[0].name}"]
    _check_grib_cube(root, base_store[0], report, "2019-01-01")


def test_help_states_units_and_defaults():
    out = CliRunner().invoke(cli, ["ingest", "era5land", "--help"]).output
    words = ("mm/day", "MJ m-2 day-1", "K:", "m3/m3", "STORE/covariates/era5land", "FILES_OR_GLOB", "[default: cluster]", "store.root")
    for word in words:
        assert word in out, word
    assert "ingest" in CliRunner().invoke(cli, ["--help"]).output
