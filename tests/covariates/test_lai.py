"""MODIS 8-day LAI (:mod:`smci_dask.covariates.lai`): files onto the 1 km grid, the store, daily interpolation.

Expected values:

* geographic files (the tiny world's ``lai/``): the synthetic source
  (``make_lai`` with the session's seed) encoded as MOD15A2H does
  (``round(lai / 0.1)``, 254 water) and decoded ``x * 0.1``: equal exactly,
  NaN on water;
* sinusoidal files (written here for a few 2019 composites with
  ``write_lai_files(..., projection="sinusoidal")``): the writer already
  resampled the 1 km cells to 926.6 m sinusoidal pixels by nearest neighbour
  (at 37 N a pixel is 1.25 cells wide), so not every cell's value survives
  in the file. Checked three ways: against an independent nearest-pixel
  lookup with pyproj (>= 99 % of cells equal), against the source (>= 99 %
  of land cells equal a source value of their 3 x 3 neighbourhood; measured
  on the four composites: 99.2 % of land cells valid (coast cells may take a
  water pixel), 90-92 % within 0.1 m2 m-2 of their own cell's value and
  84-85 % equal, the pixel noise between neighbours being 0.12 m2 m-2), and
  by 12 x 12-cell means (within 0.05);
* daily LAI: worked out by hand from the composites' mid-points.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer

from smci_dask import conventions as cv
from smci_dask.covariates.lai import (
    COMPLETE_ATTR,
    complete_composites,
    composite_centres,
    composite_window_days,
    date_from_name,
    ingest_lai,
    lai_for_days,
    open_lai,
    read_lai_files,
)
from smci_dask.errors import InputError
from smci_dask.grid import REGIONS
from smci_dask.io import Store
from smci_dask.synthetic.lai import encode_lai, make_lai, write_lai_files
from smci_dask.synthetic.statics import make_statics

GRID = REGIONS["tiny"].grid
SEED = 20220101  # tests/conftest.py TEST_SEED
#: 2019 composites written in sinusoidal projection: winter, spring, summer peak, the year's last (5 days)
SINU_INDEX = [0, 14, 26, 45]


@contextmanager
def no_dask_compute() -> Iterator[None]:
    """Fail if anything is computed with dask inside the block (flox's raise_if_dask_computes)."""

    def scheduler(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("dask computed something while a lazy graph was expected")

    with dask.config.set(scheduler=scheduler):
        yield


def decode(q: np.ndarray) -> np.ndarray:
    """MOD15A2H Lai_500m decoding by hand: 249-255 -> NaN, else x * 0.1 (float64, then float32 as stored)."""
    return np.where(q >= 249, np.nan, q * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def statics() -> xr.Dataset:
    return make_statics(GRID, SEED)


@pytest.fixture(scope="module")
def source(statics: xr.Dataset) -> xr.Dataset:
    """The synthetic 2019 LAI the tiny world's files were written from (each year has its own generator)."""
    return make_lai(GRID, statics, (2019, 2019), SEED)


@pytest.fixture(scope="module")
def files(tiny_world: tuple[Store, dict[str, Any]]) -> list[str]:
    store, manifest = tiny_world
    return [store.join(rel) for rel in manifest["files"]["lai"]]


@pytest.fixture(scope="module")
def sinusoidal(tmp_path_factory: pytest.TempPathFactory, source: xr.Dataset) -> list[str]:
    store = Store.from_url(tmp_path_factory.mktemp("lai-sinu"))
    rels = write_lai_files(source.isel({cv.TIME8: SINU_INDEX}), store, "lai_sinusoidal", projection="sinusoidal")
    return [store.join(r) for r in rels]


@pytest.fixture(scope="module")
def geographic(files: list[str]) -> xr.Dataset:
    """The first 12 composites of 2019 read from the geographic files."""
    return read_lai_files(files[:12], GRID).compute()


def water(statics: xr.Dataset) -> np.ndarray:
    return ~np.asarray(statics["land"].values)


# ------------------------------------------------------------------ names and calendar
def test_dates_from_names_and_windows() -> None:
    assert date_from_name("MOD15A2H.A2019001.Lai_500m.tif") == pd.Timestamp("2019-01-01")
    assert date_from_name("s3://b/x/MCD15A2H.A2020361.h26v05.061.2021006123456.tif") == pd.Timestamp("2020-12-26")
    assert date_from_name("lai_2019.tif") is None
    starts = pd.DatetimeIndex(["2019-01-01", "2019-12-27", "2020-12-26"])
    np.testing.assert_array_equal(composite_window_days(starts), [8, 5, 6])  # 2020 is a leap year
    centres = composite_centres(starts)
    assert list(centres) == [pd.Timestamp("2019-01-04 12:00"), pd.Timestamp("2019-12-29"), pd.Timestamp("2020-12-28 12:00")]


# ------------------------------------------------------------------ geographic files
def test_geographic_equals_source_exactly(geographic: xr.Dataset, source: xr.Dataset, statics: xr.Dataset, files: list[str]) -> None:
    lai = geographic["lai"]
    assert lai.dims == (cv.TIME8, cv.LAT, cv.LON) and lai.dtype == np.float32
    np.testing.assert_array_equal(lai[cv.TIME8].values, source[cv.TIME8].values[:12])
    np.testing.assert_array_equal(lai[cv.LAT].values, GRID.lat)
    np.testing.assert_array_equal(lai[cv.LON].values, GRID.lon)
    for i in range(12):
        expected = decode(encode_lai(source["lai"].values[i], water(statics)))
        np.testing.assert_array_equal(lai.values[i], expected)
        with rasterio.open(files[i]) as src:
            np.testing.assert_array_equal(lai.values[i], decode(src.read(1)))
    # water (MODIS 254) is NaN, every land cell has a value
    assert np.isnan(lai.values[:, water(statics)]).all()
    assert np.isfinite(lai.values[:, ~water(statics)]).all()


def test_fill_and_special_values_are_nan(tmp_path: Path, files: list[str]) -> None:
    path = tmp_path / "MOD15A2H.A2019001.Lai_500m.tif"
    shutil.copy(files[0], path)
    with rasterio.open(path, "r+") as dst:
        q = dst.read(1)
        q[0, :7] = [249, 250, 251, 252, 253, 254, 255]
        q[1, :3] = [0, 100, 57]
        dst.write(q, 1)
    lai = read_lai_files(path, GRID)["lai"].values[0]
    assert np.isnan(lai[0, :7]).all()
    np.testing.assert_array_equal(lai[1, :3], np.array([0.0, 10.0, 5.7], dtype=np.float32))


def test_reading_is_lazy_one_task_per_composite(files: list[str]) -> None:
    with no_dask_compute():
        ds = read_lai_files(files[:5], GRID)
    assert ds["lai"].data.chunks[0] == (1, 1, 1, 1, 1)
    assert ds.attrs["n_files"] == 5


# ------------------------------------------------------------------ sinusoidal files
def test_sinusoidal_matches_nearest_pixel_and_source(sinusoidal: list[str], source: xr.Dataset, statics: xr.Dataset) -> None:
    ds = read_lai_files(sinusoidal, GRID).compute()
    lai = ds["lai"].values
    np.testing.assert_array_equal(ds[cv.TIME8].values, source[cv.TIME8].values[SINU_INDEX])
    land = ~water(statics)
    lon, lat = np.meshgrid(GRID.lon, GRID.lat)
    for k, path in enumerate(sinusoidal):
        # (a) an independent nearest-pixel lookup: the pixel that holds each cell's centre
        with rasterio.open(path) as src:
            raw = src.read(1)
            x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(lon, lat)
            col, row = ~src.transform @ (x, y)
            nearest = decode(raw[np.floor(row).astype(int), np.floor(col).astype(int)])
        same = (lai[k] == nearest) | (np.isnan(lai[k]) & np.isnan(nearest))
        assert same.mean() >= 0.99, f"composite {k}: {same.mean():.3f} of cells equal the nearest pixel"
        # (b) every land cell's value is a source value of its 3 x 3 neighbourhood (after MODIS encoding)
        truth = decode(encode_lai(source["lai"].values[SINU_INDEX[k]], ~land))
        pad = np.pad(truth, 1, constant_values=np.nan)
        neigh = np.stack([pad[1 + dr : 61 + dr, 1 + dc : 61 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
        ok = land & np.isfinite(lai[k])
        assert ok.sum() >= 0.98 * land.sum()  # coast cells may take a water pixel
        in_neigh = (neigh[:, ok] == lai[k][ok]).any(axis=0)
        assert in_neigh.mean() >= 0.99
        # (c) the quantified closeness to the cell's own source value (noise 0.12 m2 m-2 between neighbours)
        diff = np.abs(lai[k][ok] - truth[ok])
        assert (diff <= 0.1 + 1e-6).mean() >= 0.88
        assert (diff < 1e-6).mean() >= 0.8
        # (d) the region's mean LAI agrees closely
        assert abs(float(lai[k][ok].mean()) - float(truth[ok].mean())) < 0.02


def test_cli_sinusoidal_files_into_an_s3_store(sinusoidal: list[str], s3_store: tuple[str, dict[str, Any]], s3_server: Any) -> None:
    """`smci ingest lai` with sinusoidal files and the store on S3 gives the values the reader gives (checked above)."""
    from click.testing import CliRunner

    from smci_dask.cli.main import cli

    url, options = s3_store
    env = {"SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL": s3_server.endpoint_url}
    res = CliRunner().invoke(cli, ["ingest", "lai", *sinusoidal, "--store", url, "--region", "tiny"], env=env)
    assert res.exit_code == 0, res.output
    assert f"{len(sinusoidal)} composites written" in res.output
    stored = open_lai(Store.from_url(url, options))["lai"]
    want = read_lai_files(sinusoidal, GRID).compute()["lai"]
    np.testing.assert_array_equal(stored[cv.TIME8].values, want[cv.TIME8].values)
    np.testing.assert_allclose(stored.values, want.values, rtol=0, atol=1e-6, equal_nan=True)  # uint8 x 0.1 in the store


def test_sinusoidal_average_resampling(sinusoidal: list[str], source: xr.Dataset, statics: xr.Dataset) -> None:
    """Forced averaging: each cell's value lies within the range of the source values around it (5 x 5 cells)."""
    avg = read_lai_files(sinusoidal[2], GRID, resampling="average")["lai"].values[0]
    land = ~water(statics)
    assert np.isfinite(avg[land]).mean() > 0.98
    truth = decode(encode_lai(source["lai"].values[SINU_INDEX[2]], ~land))
    pad = np.pad(truth, 2, constant_values=np.nan)
    neigh = np.stack([pad[2 + dr : 62 + dr, 2 + dc : 62 + dc] for dr in range(-2, 3) for dc in range(-2, 3)])
    ok = land & np.isfinite(avg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(neigh, axis=0), np.nanmax(neigh, axis=0)
    inside = (avg[ok] >= lo[ok] - 0.05 - 1e-6) & (avg[ok] <= hi[ok] + 0.05 + 1e-6)
    assert inside.mean() >= 0.99
    q = np.round(avg[ok].astype(np.float64) / 0.1)
    np.testing.assert_array_equal((q * 0.1).astype(np.float32), avg[ok])  # in 0.1 steps, as the store keeps them


# ------------------------------------------------------------------ NetCDF
def test_netcdf_with_time_axis(tmp_path: Path, files: list[str], geographic: xr.Dataset) -> None:
    raws = []
    for f in files[:2]:
        with rasterio.open(f) as src:
            raws.append(src.read(1))
    raw = np.stack(raws)[:, ::-1, :]  # latitude ascending, as many NetCDF files are
    nc = xr.Dataset(
        {"Lai_500m": (("time", "lat", "lon"), raw)},
        coords={"time": geographic[cv.TIME8].values[:2], "lat": GRID.lat[::-1], "lon": GRID.lon},
    )
    nc["Lai_500m"].attrs = {"scale_factor": 0.1, "_FillValue": np.uint8(255), "valid_range": np.array([0, 100], np.uint8), "units": "m2/m2"}
    path = tmp_path / "lai_2019.nc"
    nc.to_netcdf(path, encoding={"Lai_500m": {"dtype": "uint8"}})
    got = read_lai_files(path, GRID)
    np.testing.assert_array_equal(got[cv.TIME8].values, geographic[cv.TIME8].values[:2])
    np.testing.assert_array_equal(got["lai"].values, geographic["lai"].values[:2])


def test_netcdf_in_sinusoidal_projection(tmp_path: Path, sinusoidal: list[str]) -> None:
    """x/y coordinates and a CF grid_mapping variable with the CRS as WKT (as GDAL writes it): same as the GeoTIFF."""
    with rasterio.open(sinusoidal[1]) as src:
        raw, t, wkt, tags = src.read(1), src.transform, src.crs.to_wkt(), src.tags()
    x = t.c + t.a * (np.arange(raw.shape[1]) + 0.5)
    y = t.f + t.e * (np.arange(raw.shape[0]) + 0.5)
    nc = xr.Dataset({"Lai_500m": (("y", "x"), raw), "spatial_ref": ((), 0, {"crs_wkt": wkt})}, coords={"y": y, "x": x})
    nc["Lai_500m"].attrs = {"scale_factor": 0.1, "_FillValue": np.uint8(255), "grid_mapping": "spatial_ref", "units": "m^2/m^2"}
    path = tmp_path / Path(sinusoidal[1]).name.replace(".tif", ".nc")
    nc.to_netcdf(path, encoding={"Lai_500m": {"dtype": "uint8"}})
    got = read_lai_files(path, GRID)
    assert pd.Timestamp(got[cv.TIME8].values[0]) == pd.Timestamp(tags["RANGEBEGINNINGDATE"])
    np.testing.assert_array_equal(got["lai"].values, read_lai_files(sinusoidal[1], GRID)["lai"].values)


# ------------------------------------------------------------------ store
def snapshot(store: Store, relpath: str) -> dict[str, Any]:
    """Every object below ``relpath``: its bytes (S3: size and ETag, the MD5 of its bytes, without downloading)."""
    found = store.fs.find(store.join(relpath), detail=True)
    if store.protocol == "s3":
        return {p: (info["size"], info["ETag"]) for p, info in found.items()}
    return {p: store.fs.cat_file(p) for p, info in found.items() if info["type"] == "file"}


def test_store_out_of_order_and_idempotent(any_store: Store, files: list[str], geographic: xr.Dataset) -> None:
    dates = pd.DatetimeIndex(geographic[cv.TIME8].values)
    first = ingest_lai(files[8:12], any_store, GRID)
    assert first.created and first.written == list(dates[8:12]) and first.files == 4
    assert "4 composites written" in first.summary()
    second = ingest_lai(files[0:6], any_store, GRID, space_chunk=999)  # ignored: the store exists
    assert not second.created and second.written == list(dates[0:6]) and not second.skipped
    third = ingest_lai(files[0:12], any_store, GRID)
    assert third.written == list(dates[6:8]) and third.skipped == list(dates[0:6]) + list(dates[8:12])
    assert list(complete_composites(any_store)) == list(dates[:12])

    ds = open_lai(any_store)
    assert ds["lai"].dtype == np.float32 and ds["lai"].encoding["dtype"] == np.uint8
    np.testing.assert_array_equal(ds[cv.TIME8].values, dates[:12].values)
    np.testing.assert_array_equal(ds["lai"].values, geographic["lai"].values)
    full = open_lai(any_store, complete_only=False)
    assert full.sizes[cv.TIME8] == 46 and np.isnan(full["lai"].isel({cv.TIME8: slice(12, 14)}).values).all()

    before = snapshot(any_store, "covariates/lai")
    again = ingest_lai(files[0:12], any_store, GRID)
    assert again.written == [] and len(again.skipped) == 12
    assert snapshot(any_store, "covariates/lai") == before


def test_store_extends_by_years_and_refuses_earlier(tmp_path: Path, files: list[str]) -> None:
    store = Store.from_url(tmp_path / "store")
    ingest_lai(files[46:48], store, GRID, space_chunk=32)  # 2020 first
    ds = open_lai(store, complete_only=False)
    assert ds.sizes[cv.TIME8] == 46 and pd.Timestamp(ds[cv.TIME8].values[0]) == pd.Timestamp("2020-01-01")
    assert ds["lai"].encoding["chunks"] == (1, 32, 32)
    with pytest.raises(InputError, match=r"calendar starts in 2020.*2019-01-01"):
        ingest_lai(files[0], store, GRID)
    sub, _ = GRID.subgrid((115.0, 37.0, 115.25, 37.25))
    with pytest.raises(InputError, match=r"lat \(30 cells.*differ from the store's"):
        ingest_lai(files[46:47], store, sub)
    other = Store.from_url(tmp_path / "other")
    ingest_lai(files[46:47], other, GRID, first_year=2019)
    ingest_lai(files[0:1], other, GRID)
    assert list(complete_composites(other)) == [pd.Timestamp("2019-01-01"), pd.Timestamp("2020-01-01")]
    assert open_lai(other, complete_only=False).sizes[cv.TIME8] == 92


def test_read_from_s3(s3_store: tuple[str, dict[str, Any]], files: list[str], geographic: xr.Dataset) -> None:
    url, opts = s3_store
    inputs = Store.from_url(url, opts)
    for f in files[:3]:
        inputs.put_file(f, f"lai/{Path(f).name}")
    ds = read_lai_files(inputs.url_of("lai") + "/MOD15A2H.*.tif", GRID, storage_options=opts)
    np.testing.assert_array_equal(ds["lai"].values, geographic["lai"].values[:3])
    folder = read_lai_files(inputs.url_of("lai"), GRID, storage_options=opts)
    assert folder.sizes[cv.TIME8] == 3


def test_failed_ingest_leaves_the_list(tmp_path: Path, files: list[str]) -> None:
    store = Store.from_url(tmp_path / "store")
    ingest_lai(files[:2], store, GRID)
    bad = tmp_path / "in" / Path(files[3]).name
    bad.parent.mkdir()
    raw = Path(files[3]).read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=Path(files[3]).name):
        ingest_lai([files[2], str(bad)], store, GRID)
    assert list(complete_composites(store)) == list(pd.DatetimeIndex(open_lai(store)[cv.TIME8].values))
    assert len(complete_composites(store)) == 2
    assert open_lai(store).attrs[COMPLETE_ATTR] == ["2019-01-01", "2019-01-09"]


def test_corrupt_byte_is_named_and_the_list_stays(tmp_path: Path, files: list[str]) -> None:
    store = Store.from_url(tmp_path / "store")
    ingest_lai(files[:2], store, GRID)
    bad = tmp_path / "in" / Path(files[3]).name
    bad.parent.mkdir()
    data = bytearray(Path(files[3]).read_bytes())
    middle = len(data) // 2  # inside the compressed tiles, the header intact
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=Path(files[3]).name):
        ingest_lai([files[2], str(bad)], store, GRID)
    assert [f"{d:%Y-%m-%d}" for d in complete_composites(store)] == ["2019-01-01", "2019-01-09"]


# ------------------------------------------------------------------ bad input
def _plain_copy(
    src_path: str, dst_path: Path, *, tags: dict[str, str] | None = None, scale: float | None = None, rows: int | None = None
) -> None:
    """A GeoTIFF with the same pixels and georeferencing but only the given tags (and band scale)."""
    with rasterio.open(src_path) as src:
        prof = src.profile
        data = src.read(1)
    if rows is not None:
        data = data[:rows]
        prof.update(height=rows)
    with rasterio.open(dst_path, "w", **prof) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
        if scale is not None:
            dst.scales = (scale,)


def test_missing_scale_factor_is_reported(tmp_path: Path, files: list[str]) -> None:
    path = tmp_path / "MOD15A2H.A2019201.Lai_500m.tif"
    _plain_copy(files[25], path)  # summer: raw values up to ~60
    with pytest.raises(InputError, match=r"A2019201.*scale factor is missing or wrong"):
        read_lai_files(path, GRID).compute()
    _plain_copy(files[25], path, tags={"scale_factor": "0.1", "RANGEBEGINNINGDATE": "2019-07-20"})
    assert np.nanmax(read_lai_files(path, GRID)["lai"].values) <= 10.0


def test_wrong_units_and_dates_are_reported(tmp_path: Path, files: list[str]) -> None:
    path = tmp_path / "MOD15A2H.A2019001.Lai_500m.tif"
    _plain_copy(files[0], path, tags={"units": "K"}, scale=0.1)
    with pytest.raises(InputError, match=r"units 'K', expected 'm2 m-2'"):
        read_lai_files(path, GRID).compute()
    # date from the tag when the name has none; a name and a tag that disagree
    tagged = tmp_path / "lai_first.tif"
    _plain_copy(files[1], tagged, tags={"RANGEBEGINNINGDATE": "2019-01-09"}, scale=0.1)
    assert pd.Timestamp(read_lai_files(tagged, GRID)[cv.TIME8].values[0]) == pd.Timestamp("2019-01-09")
    clash = tmp_path / "MOD15A2H.A2019017.Lai_500m.tif"
    _plain_copy(files[1], clash, tags={"RANGEBEGINNINGDATE": "2019-01-09"}, scale=0.1)
    with pytest.raises(InputError, match=r"name says composite 2019-01-17.*2019-01-09"):
        read_lai_files(clash, GRID)
    undated = tmp_path / "lai.tif"
    _plain_copy(files[1], undated, scale=0.1)
    with pytest.raises(InputError, match=r"lai.tif: no composite date"):
        read_lai_files(undated, GRID)
    off = tmp_path / "MOD15A2H.A2019002.Lai_500m.tif"
    _plain_copy(files[0], off, scale=0.1)
    with pytest.raises(InputError, match=r"day of year 2\) is not the start of a MODIS 8-day composite"):
        read_lai_files(off, GRID)
    hdf = tmp_path / "MOD15A2H.A2019001.h26v05.061.hdf"
    hdf.write_bytes(b"\x0e\x03\x13\x01")
    with pytest.raises(InputError, match=r"gdal_translate"):
        read_lai_files(hdf, GRID)


def test_region_not_covered_is_reported(tmp_path: Path, files: list[str]) -> None:
    path = tmp_path / "MOD15A2H.A2019009.Lai_500m.tif"
    _plain_copy(files[1], path, scale=0.1, rows=30)
    with pytest.raises(InputError, match=r"composite 2019-01-09.*cover only 1800 of 3600"):
        read_lai_files(path, GRID).compute()
    with pytest.raises(InputError, match=r"no file matches"):
        read_lai_files(str(tmp_path / "none" / "*.tif"), GRID)


# ------------------------------------------------------------------ daily LAI
def test_lai_for_days_hand_computation() -> None:
    starts = pd.DatetimeIndex(["2019-01-01", "2019-01-09", "2019-12-19", "2019-12-27", "2020-01-01"])
    values = np.array(
        [
            [1.0, 2.0, np.nan],
            [3.0, np.nan, np.nan],
            [2.0, 1.0, 1.0],
            [4.0, 1.5, 2.0],
            [0.5, 2.5, 3.0],
        ],
        dtype=np.float32,
    )
    lai = xr.DataArray(values, dims=(cv.TIME8, "cell"), coords={cv.TIME8: starts})
    days = pd.DatetimeIndex(["2018-12-20", "2019-01-04", "2019-01-08", "2019-01-13", "2019-12-25", "2019-12-31", "2020-02-01"])
    got = lai_for_days(lai, days)
    assert got.dims == (cv.TIME, "cell") and got.dtype == np.float32
    # centres (day labels): Jan 4.5, Jan 12.5, Dec 22.5, Dec 29 (5-day window), Jan 4.5 2020
    expected = np.array(
        [
            values[0],  # before the first centre: the first composite
            values[0],  # Jan 4 is before the first centre (Jan 4 12:00)
            values[0] * (1 - 3.5 / 8) + values[1] * (3.5 / 8),  # Jan 8: 3.5 days past Jan 4.5 of 8
            values[1],  # Jan 13 past the Jan 12.5 centre -> between Jan 12.5 and Dec 22.5
            values[2] * (1 - 2.5 / 6.5) + values[3] * (2.5 / 6.5),  # Dec 25 between Dec 22.5 and Dec 29
            values[3] * (1 - 2 / 6.5) + values[4] * (2 / 6.5),  # Dec 31 between Dec 29 and Jan 4.5
            values[4],  # after the last centre: the last composite
        ],
        dtype=np.float64,
    )
    # Jan 13: 0.5 days past Jan 12.5 on the way to Dec 22.5 (344 days)
    expected[3] = values[1] * (1 - 0.5 / 344) + values[2] * (0.5 / 344)
    # NaN in one composite: the other one's value; NaN in both: NaN
    expected[2, 1] = values[0, 1]
    expected[3, 1] = values[2, 1]
    expected[[0, 1, 2], 2] = np.nan
    expected[3, 2] = values[2, 2]
    np.testing.assert_allclose(got.values, expected, rtol=1e-6)
    np.testing.assert_array_equal(got[cv.TIME].values, days.values)


def test_lai_for_days_lazy_on_the_store(tmp_path: Path, files: list[str], geographic: xr.Dataset) -> None:
    store = Store.from_url(tmp_path / "store")
    ingest_lai(files[2:7], store, GRID, space_chunk=32)
    lai = open_lai(store)["lai"]
    tile = lai.isel({cv.LAT: slice(32, 60), cv.LON: slice(0, 32)})
    days = pd.date_range("2019-01-20", periods=32, freq="D")
    with no_dask_compute():
        daily = lai_for_days(tile, days)
    assert daily.chunks is not None and daily.sizes == {cv.TIME: 32, cv.LAT: 28, cv.LON: 32}
    values = daily.values
    comp = geographic["lai"].values[2:7, 32:60, 0:32].astype(np.float64)
    centres = (composite_centres(pd.DatetimeIndex(geographic[cv.TIME8].values[2:7])) - pd.Timestamp("2019-01-01")) / pd.Timedelta(days=1)
    for k, day in enumerate(days):
        t = (day - pd.Timestamp("2019-01-01")).days
        i = min(max(int(np.searchsorted(centres, t, side="right")) - 1, 0), 3)
        w = min(max((t - centres[i]) / (centres[i + 1] - centres[i]), 0.0), 1.0)
        expected = (1 - w) * comp[i] + w * comp[i + 1]
        expected = np.where(np.isnan(comp[i]), comp[i + 1], np.where(np.isnan(comp[i + 1]), comp[i], expected))
        np.testing.assert_allclose(values[k], expected, rtol=1e-6, err_msg=str(day.date()))
    # inside a task the block is NumPy: the same numbers
    np.testing.assert_array_equal(lai_for_days(tile.load(), days).values, values)
