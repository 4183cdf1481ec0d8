"""Synthetic static layers and MODIS-like LAI: the datasets and their GeoTIFFs read back with rasterio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer
from rasterio.transform import Affine

from smci_dask import conventions as cv
from smci_dask.grid import REGIONS
from smci_dask.io import Store
from smci_dask.synthetic.lai import make_lai, write_lai_files
from smci_dask.synthetic.statics import make_statics, write_static_geotiffs

GRID = REGIONS["tiny"].grid
SEED = 7
FLOAT_VARS = ("elevation", "sand", "silt", "clay", "porosity", "bulk_density", "rock_fragment")


@pytest.fixture(scope="module")
def statics() -> xr.Dataset:
    return make_statics(GRID, SEED)


@pytest.fixture(scope="module")
def lai(statics: xr.Dataset) -> xr.Dataset:
    return make_lai(GRID, statics, (2019, 2019), SEED)


def water_per_coarse(water: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share, count) of water fine cells per coarse cell, from the grid's own fine -> coarse maps."""
    rows, cols = GRID.fine_to_coarse_rows(), GRID.fine_to_coarse_cols()
    nr, nc = GRID.coarse_shape
    share, count = np.zeros((nr, nc)), np.zeros((nr, nc), dtype=int)
    for r in range(nr):
        for c in range(nc):
            block = water[np.ix_(rows == r, cols == c)]
            share[r, c], count[r, c] = block.mean(), block.sum()
    return share, count


def local_copy(store: Store, relpath: str, tmp_path: Path) -> Path:
    return store.get_file(relpath, tmp_path / "readback" / relpath.replace("/", "_"))


# ------------------------------------------------------------------ statics
def test_statics_layers(statics: xr.Dataset) -> None:
    assert set(cv.STATIC_VARS) | {"land"} == set(statics.data_vars)
    np.testing.assert_array_equal(statics[cv.LAT].values, GRID.lat)
    np.testing.assert_array_equal(statics[cv.LON].values, GRID.lon)
    for name in cv.STATIC_VARS:
        assert statics[name].dims == (cv.LAT, cv.LON)
        assert statics[name].attrs["units"] == cv.STATIC_VARS[name]
    for name in FLOAT_VARS:
        assert statics[name].dtype == np.float32
    assert statics["landcover"].dtype == np.uint8 and statics["climate_zone"].dtype == np.uint8
    land = statics["land"].values
    np.testing.assert_array_equal(land, statics["landcover"].values != cv.WATER_CLASS)
    for name in FLOAT_VARS:  # NaN exactly on water
        np.testing.assert_array_equal(np.isnan(statics[name].values), ~land)
    total = (statics["sand"] + statics["silt"] + statics["clay"]).values[land]
    np.testing.assert_allclose(total, 100.0, atol=1e-3)
    por = statics["porosity"].values[land]
    assert por.min() >= 0.35 and por.max() <= 0.55
    np.testing.assert_allclose(statics["bulk_density"].values[land], (1.0 - por) * 2.65, atol=1e-5)
    assert set(np.unique(statics["landcover"].values[land])) <= {5, 8, 10, 12, 13}
    assert set(np.unique(statics["climate_zone"].values[land])) <= set(cv.KOPPEN_CLASSES)
    # mountains in the west, plain in the east; rockier mountains
    elev = statics["elevation"].values
    third = GRID.ncols // 3
    assert np.nanmean(elev[:, :third]) > np.nanmean(elev[:, -third:]) + 300.0
    rock = statics["rock_fragment"].values
    assert np.nanmean(rock[:, :third]) > np.nanmean(rock[:, -third:]) + 10.0


def test_sea_in_the_south_east_and_a_lake(statics: xr.Dataset) -> None:
    frac, count = water_per_coarse(~statics["land"].values)
    nr, nc = GRID.coarse_shape
    assert (frac[nr - 2 :, nc - 2 :] == 1.0).all(), "the south-east 2 x 2 coarse cells are sea"
    mostly = (frac > 0.5) & (frac < 1.0)
    assert mostly.any(), "a ragged shore leaves coarse cells mostly water with land fine cells"
    assert count[: nr // 2, : nc // 2].sum() <= 8, "the north-west is dry (but for the lake, maybe)"
    # the lake: a few water fine cells in a coarse cell whose neighbours are all land
    lakes = [
        (r, c)
        for r in range(nr)
        for c in range(nc)
        if 0 < count[r, c] <= 8 and count[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].sum() == count[r, c]
    ]
    assert len(lakes) == 1


def test_statics_deterministic(statics: xr.Dataset) -> None:
    again = make_statics(GRID, SEED)
    xr.testing.assert_identical(again, statics)
    other = make_statics(GRID, SEED + 1)
    assert not np.array_equal(np.nan_to_num(other["elevation"].values), np.nan_to_num(statics["elevation"].values))


def test_static_geotiffs(statics: xr.Dataset, any_store: Store, tmp_path: Path) -> None:
    files = write_static_geotiffs(statics, any_store, "raw/static")
    assert files == [f"raw/static/{name}.tif" for name in cv.STATIC_VARS]
    for name, rel in zip(cv.STATIC_VARS, files, strict=True):
        with rasterio.open(local_copy(any_store, rel, tmp_path)) as src:
            assert src.crs.to_epsg() == 4326
            assert src.transform == Affine(*GRID.transform)
            assert (src.height, src.width) == GRID.shape
            assert src.dtypes[0] == statics[name].dtype.name
            assert src.profile["compress"] == "deflate" and src.profile["tiled"]
            assert src.tags()["units"] == cv.STATIC_VARS[name] == src.units[0]
            data = src.read(1)
            if name in FLOAT_VARS:
                assert np.isnan(src.nodata)
                np.testing.assert_array_equal(data, statics[name].values)
            else:
                assert src.nodata == (255 if name == "landcover" else 0)
                np.testing.assert_array_equal(data, statics[name].values)


# ------------------------------------------------------------------ LAI
def test_lai_dataset(lai: xr.Dataset, statics: xr.Dataset) -> None:
    dates = pd.DatetimeIndex(lai[cv.TIME8].values)
    assert len(dates) == 46
    np.testing.assert_array_equal(dates.day_of_year, np.arange(1, 366, 8))
    v = lai["lai"].values
    assert v.dtype == np.float32 and v.shape == (46, *GRID.shape)
    land = statics["land"].values
    assert np.isnan(v[:, ~land]).all() and not np.isnan(v[:, land]).any()
    assert np.nanmin(v) >= 0.0
    lc = statics["landcover"].values
    peak = {c: np.nanmax(v[:, lc == c].mean(axis=1)) for c in (5, 10, 12) if (lc == c).any()}
    winter = v[0][lc == 12].mean()
    assert 3.0 <= peak[12] <= 5.0 and winter < 1.0
    if 5 in peak:
        assert peak[5] > peak[12]
    if 10 in peak:
        assert peak[10] < peak[12]
    xr.testing.assert_identical(make_lai(GRID, statics, 2019, SEED), lai)


def test_lai_soil_wetness_modulates(statics: xr.Dataset) -> None:
    dry = make_lai(GRID, statics, 2019, SEED, soil_wetness=lambda date: 0.0)
    wet = make_lai(GRID, statics, 2019, SEED, soil_wetness=lambda date: np.ones(GRID.shape))
    summer = 27  # composite of DOY 217
    assert np.nanmean(wet["lai"].values[summer]) > np.nanmean(dry["lai"].values[summer]) + 0.5


def test_lai_geographic_files(lai: xr.Dataset, statics: xr.Dataset, tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "store")
    subset = lai.isel({cv.TIME8: [0, 27]})
    files = write_lai_files(subset, store, "raw/lai")
    assert files == ["raw/lai/MOD15A2H.A2019001.Lai_500m.tif", "raw/lai/MOD15A2H.A2019217.Lai_500m.tif"]
    land = statics["land"].values
    for i, rel in enumerate(files):
        with rasterio.open(store.join(rel)) as src:
            assert src.dtypes[0] == "uint8" and src.nodata == 255
            tags = src.tags()
            assert float(tags["scale_factor"]) == 0.1 and float(tags["add_offset"]) == 0.0 and tags["_FillValue"] == "255"
            assert tags["units"] == "m^2/m^2" and "long_name" in tags
            assert src.scales == (0.1,) and src.offsets == (0.0,)
            assert src.crs.to_epsg() == 4326 and src.transform == Affine(*GRID.transform)
            q = src.read(1)
        assert (q[~land] == 254).all()
        assert q[land].max() <= 100
        decoded = q[land] * float(tags["scale_factor"]) + float(tags["add_offset"])
        np.testing.assert_allclose(decoded, subset["lai"].values[i][land], atol=0.05 + 1e-6)


def test_lai_sinusoidal_files(lai: xr.Dataset, tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "store")
    subset = lai.isel({cv.TIME8: [27]})
    (rel,) = write_lai_files(subset, store, "raw/lai_sinu", projection="sinusoidal")
    assert rel.endswith("MOD15A2H.A2019217.Lai_500m.tif")
    with rasterio.open(store.join(rel)) as src:
        crs = src.crs
        assert "+proj=sinu" in crs.to_proj4() and "+R=6371007.181" in crs.to_proj4()
        assert src.res == pytest.approx((926.625433, 926.625433), abs=1e-5)
        assert src.dtypes[0] == "uint8" and src.nodata == 255 and src.tags()["scale_factor"] == "0.1"
        q = src.read(1)
        transform = src.transform
        bounds = src.bounds
    to_sinu = Transformer.from_crs("EPSG:4326", crs.to_wkt(), always_xy=True)
    w, s, e, n = GRID.bbox
    xs, ys = to_sinu.transform([w, e, w, e], [s, s, n, n])
    assert all(bounds.left <= x <= bounds.right for x in xs) and all(bounds.bottom <= y <= bounds.top for y in ys)
    # every valid sinusoidal pixel holds the value of the fine cell under its centre (nearest neighbour)
    rows, cols = np.nonzero(q != 255)
    px, py = (np.asarray(v) for v in rasterio.transform.xy(transform, rows, cols))
    lon, lat = to_sinu.transform(px, py, direction="INVERSE")
    r, c = GRID.rowcol(lat, lon, outside="mask")
    inside = r >= 0
    assert inside.mean() > 0.99
    geo = np.where(np.isnan(subset["lai"].values[0]), 254, np.round(np.nan_to_num(subset["lai"].values[0]) / 0.1)).astype(np.uint8)
    same = q[rows[inside], cols[inside]] == geo[r[inside], c[inside]]
    assert same.mean() > 0.99
    # a fine cell is 0.926 x 0.74 km at 37 N, a MODIS pixel 0.926 x 0.926 km: about 0.8 pixels per cell
    assert 0.75 < inside.sum() / (GRID.nrows * GRID.ncols) < 0.85
