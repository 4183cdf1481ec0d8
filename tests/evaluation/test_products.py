"""The synthetic extra product and its sampling at station cells, checked against xarray's own nearest selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.evaluation.products import open_product, sample_product
from smci_dask.grid import grid_for
from smci_dask.io import Store, open_zarr
from smci_dask.synthetic.products import SOMO_DEPTH_MAP, SOMO_VAR, make_somo_like, product_axes


@pytest.fixture(scope="module")
def product(tiny_world: tuple[Store, dict[str, Any]]) -> tuple[str, xr.Dataset]:
    store, manifest = tiny_world
    url = store.url_of(manifest["files"]["products"]["somo_like"])
    with xr.open_dataset(url) as ds:
        return url, ds.load()


def _points(ds: xr.Dataset, n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.DatetimeIndex(ds[cv.TIME].values)
    return pd.DataFrame(
        {
            "lat": rng.uniform(37.0, 37.5, n),
            "lon": rng.uniform(115.0, 115.5, n),
            "time": days[rng.integers(0, len(days), n)] + pd.Timedelta(hours=0),
            "depth_cm": rng.choice([10, 20, 30, 40, 50, 60, 100], n),
        }
    )


def test_sampling_equals_xarray_nearest_selection(product: tuple[str, xr.Dataset]) -> None:
    url, ds = product
    pts = _points(ds)
    got = sample_product(ds, SOMO_VAR, pts["lat"], pts["lon"], pts["time"], pts["depth_cm"], depth_map=SOMO_DEPTH_MAP, depth_dim="layer")
    want = np.full(len(pts), np.nan)
    for i, p in pts.iterrows():
        if p["depth_cm"] in SOMO_DEPTH_MAP:
            cell = ds[SOMO_VAR].sel(lat=p["lat"], lon=p["lon"], method="nearest")
            want[i] = float(cell.sel(layer=SOMO_DEPTH_MAP[int(p["depth_cm"])], time=p["time"]))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[~pts["depth_cm"].isin(list(SOMO_DEPTH_MAP))]).all()
    assert np.isfinite(got).sum() > 150  # NaN only where the product has none (its south-east cell is all water) or the depth is unmapped
    # the same through open_product, from NetCDF and from a Zarr copy; depth by position; scale
    opened = open_product(url)
    again = sample_product(opened, SOMO_VAR, pts["lat"], pts["lon"], pts["time"], pts["depth_cm"], depth_map=SOMO_DEPTH_MAP)
    np.testing.assert_array_equal(again, got)
    by_pos = {d: k - 1 for d, k in SOMO_DEPTH_MAP.items()}
    pos = sample_product(
        opened, SOMO_VAR, pts["lat"], pts["lon"], pts["time"], pts["depth_cm"], depth_map=by_pos, depth_index=True, scale=100
    )
    np.testing.assert_allclose(pos, got * 100)


def test_zarr_product_days_and_coverage(product: tuple[str, xr.Dataset], tmp_path: Path) -> None:
    _, ds = product
    shifted = ds.assign_coords(time=ds[cv.TIME] + pd.Timedelta(hours=12))  # a product stamped at noon counts for its day
    shifted.to_zarr(tmp_path / "p.zarr", mode="w", consolidated=False)
    z = open_product(str(tmp_path / "p.zarr"))
    day = pd.Timestamp(ds[cv.TIME].values[5])
    lat = np.array([37.4, 37.4, 37.4, 36.5, 37.4])  # the north-west cell (land), ...
    lon = np.array([115.2, 115.2, 115.2, 115.2, 117.0])
    time = np.array([day, day + pd.Timedelta(days=5000), day, day, day], dtype="datetime64[ns]")
    out = sample_product(z, SOMO_VAR, lat, lon, time, [10, 10, 60, 10, 10], depth_map=SOMO_DEPTH_MAP)
    want = float(ds[SOMO_VAR].sel(lat=37.4, lon=115.2, method="nearest").sel(layer=1, time=day))
    assert np.isfinite(want) and out[0] == want
    assert np.isnan(out[1:]).all()  # a day the product lacks; an unmapped depth; south of it; east of it


def test_bad_product_settings_name_the_fix(product: tuple[str, xr.Dataset]) -> None:
    _, ds = product
    args = (np.array([37.2]), np.array([115.2]), np.array([ds[cv.TIME].values[0]]), np.array([10]))
    with pytest.raises(InputError, match="no variable 'sm'"):
        sample_product(ds, "sm", *args, depth_map=SOMO_DEPTH_MAP)
    with pytest.raises(InputError, match="not a layer value"):
        sample_product(ds, SOMO_VAR, *args, depth_map={10: 7})
    with pytest.raises(InputError, match="no dimension 'depth'"):
        sample_product(ds, SOMO_VAR, *args, depth_map=SOMO_DEPTH_MAP, depth_dim="depth")


def test_synthetic_product_is_close_to_the_truth_and_seeded(
    tiny_world: tuple[Store, dict[str, Any]], product: tuple[str, xr.Dataset]
) -> None:
    store, manifest = tiny_world
    _, ds = product
    grid = grid_for("tiny")
    lat, lon = product_axes(grid)
    assert np.allclose(ds[cv.LAT].values, lat) and np.allclose(ds[cv.LON].values, lon) and (np.diff(lat) < 0).all()
    truth = open_zarr(store, manifest["files"]["truth"])[cv.SM_TRUTH].sel({cv.DEPTH: 10})
    # an independent block mean: the north-west 0.25 degree cell is the first 30 x 30 fine cells
    block = truth.isel({cv.LAT: slice(0, 30), cv.LON: slice(0, 30)}).mean([cv.LAT, cv.LON]).values
    prod = ds[SOMO_VAR].isel(lat=0, lon=0).sel(layer=1).values
    assert np.corrcoef(block, prod)[0, 1] > 0.8
    assert np.abs(prod - block).mean() < 0.06
    small = open_zarr(store, manifest["files"]["truth"])[cv.SM_TRUTH].isel({cv.TIME: slice(0, 40)})
    a, b = make_somo_like(small, grid, 1), make_somo_like(small, grid, 1)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a[SOMO_VAR].values, make_somo_like(small, grid, 2)[SOMO_VAR].values)
