"""The one feature function: training and inference paths agree exactly; values against independent computations."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import rasterio

from smci_dask import conventions as cv
from smci_dask.covariates import open_era5land_daily
from smci_dask.errors import InputError
from smci_dask.features import (
    FEATURE_NAMES,
    FEATURE_UNITS,
    FEATURES,
    LOOKBACK_DAYS,
    build_features,
    delayed_features_for_tile,
    features_at_cells,
    features_for_tile,
    open_feature_sources,
)
from smci_dask.grid import GridSpec, Tile
from smci_dask.insitu.daily import load_cell_daily
from smci_dask.io import Store

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
ERA5_NAMES = [f.name for f in FEATURES if f.source == "era5land"]
# the start of the record (no full look-back), a LAI composite boundary, summer
DAYS = pd.DatetimeIndex(["2019-01-01", "2019-01-05", "2019-01-27", "2019-01-28", "2019-07-15", "2020-03-01", "2020-12-30"])


@pytest.fixture(scope="module")
def world(tiny_stores: tuple[Store, dict[str, Any]]) -> dict[str, Any]:
    store, info = tiny_stores
    grid: GridSpec = info["grid"]
    sources = open_feature_sources(store)
    static = sources.static.compute()
    land = np.asarray(static["land"].values, dtype=bool)
    valid = sources.coarse_valid
    own_r, own_c = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    rr, cc = np.nonzero(land & ~valid[own_r[:, None], own_c[None, :]])
    targets = load_cell_daily(store)
    stations = targets[["row", "col"]].drop_duplicates().to_numpy()
    cube = open_era5land_daily(store, "covariates/era5land").compute()
    return {
        "store": store,
        "grid": grid,
        "sources": sources,
        "static": static,
        "land": land,
        "coastal": np.stack([rr, cc], axis=1),
        "stations": stations,
        "cube": cube,
        "world": info["world"],
        "manifest": info["manifest"],
    }


def test_feature_list_is_fixed_and_has_units() -> None:
    assert len(FEATURES) == len(set(FEATURE_NAMES)) == 26
    assert FEATURE_NAMES[:3] == ("tp", "tp_sum7", "tp_sum28") and FEATURE_NAMES[-1] == "rock_fragment"
    assert all(FEATURE_UNITS[n] for n in FEATURE_NAMES)
    assert FEATURE_UNITS["tp_sum28"] == "mm" and FEATURE_UNITS["stl3"] == "K" and FEATURE_UNITS["porosity"] == "m3 m-3"
    assert LOOKBACK_DAYS == 27


# ------------------------------------------------------------------ the proof: two paths, one function
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_station_cells_equal_inference_tiles_exactly(world: dict[str, Any], interpolation: Any) -> None:
    grid: GridSpec = world["grid"]
    assert len(world["coastal"]) > 0, "the tiny world must have a land cell whose ERA5-Land cell is NaN"
    cells = np.concatenate([world["stations"], world["coastal"][:: max(len(world["coastal"]) // 5, 1)]])
    at = features_at_cells(world["sources"], grid, cells[:, 0], cells[:, 1], DAYS, interpolation=interpolation)
    assert at.values.shape == (len(DAYS), len(cells), len(FEATURES)) and at.values.dtype == np.float32

    found = np.zeros(len(cells), dtype=bool)
    for tile in grid.tiles(32):  # 4 tiles: cells meet the tile edges and every position inside them
        block = features_for_tile(world["sources"], grid, tile, DAYS, interpolation=interpolation)
        keys = block.rows * grid.ncols + block.cols
        want = cells[:, 0] * grid.ncols + cells[:, 1]
        inside = np.isin(want, keys)
        where = np.searchsorted(keys, want[inside])  # tile cells come row-major: keys are sorted
        assert np.array_equal(block.values[:, where], at.values[:, inside], equal_nan=True)
        found |= inside
    assert found.all()  # every station and coastal cell is land, so some tile holds it

    # the coastal cells get ERA5-Land values through the coast rule, not NaN
    coastal = at.values[:, len(world["stations"]) :]
    assert np.isfinite(coastal[:, :, [COL[n] for n in ERA5_NAMES]]).all()
    # insufficient history: the 28-day sum is NaN before 2019-01-28, the 7-day sum before 2019-01-07
    assert np.isnan(at.values[:3, :, COL["tp_sum28"]]).all() and np.isfinite(at.values[3:, :, COL["tp_sum28"]]).all()
    assert np.isnan(at.values[:2, :, COL["tp_sum7"]]).all() and np.isfinite(at.values[2:, :, COL["tp_sum7"]]).all()


def test_tile_holds_exactly_its_land_cells(world: dict[str, Any]) -> None:
    grid: GridSpec = world["grid"]
    tile = grid.tiles(32)[3]
    block = features_for_tile(world["sources"], grid, tile, DAYS[4:5])
    land = world["land"][tile.rows, tile.cols]
    assert block.values.shape == (1, int(land.sum()), len(FEATURES))
    rr, cc = np.nonzero(land)
    assert np.array_equal(block.rows, rr + tile.rows.start) and np.array_equal(block.cols, cc + tile.cols.start)
    everything = features_for_tile(world["sources"], grid, tile, DAYS[4:5], land_only=False)
    assert everything.values.shape[1] == land.size


# ------------------------------------------------------------------ values against independent computations
def _nearest_valid_by_hand(valid: np.ndarray, r: int, c: int) -> list[tuple[int, int]]:
    """The valid coarse cells nearest to (r, c) by Euclidean distance (several when tied)."""
    if valid[r, c]:
        return [(r, c)]
    vr, vc = np.nonzero(valid)
    d = (vr - r) ** 2 + (vc - c) ** 2
    return [(int(vr[i]), int(vc[i])) for i in np.flatnonzero(d == d.min())]


def test_nearest_reads_the_cube_at_the_coarse_cell(world: dict[str, Any]) -> None:
    grid: GridSpec = world["grid"]
    cube = world["cube"]
    valid = np.isfinite(cube["swvl1"].isel(time=0).values)
    coastal = world["coastal"]
    cells = np.concatenate([world["stations"][:4], coastal[[0, len(coastal) // 2, -1]]])
    at = features_at_cells(world["sources"], grid, cells[:, 0], cells[:, 1], DAYS)
    for k, (row, col) in enumerate(cells):
        lat, lon = grid.latlon(row, col)
        # the coarse cell whose centre is within 0.05 degree, found from coordinates (not the grid's index maths)
        r = int(np.argmin(np.abs(cube[cv.LAT].values - lat)))
        c = int(np.argmin(np.abs(cube[cv.LON].values - lon)))
        # (the region's last 6 fine rows/columns fall in ERA5-Land cells centred on its south/east edge: they read the last one)
        assert abs(cube[cv.LAT].values[r] - lat) <= 0.05 or lat < cube[cv.LAT].values[-1] - 0.05
        assert abs(cube[cv.LON].values[c] - lon) <= 0.05 or lon > cube[cv.LON].values[-1] + 0.05
        candidates = _nearest_valid_by_hand(valid, r, c)
        # a tie (two land cells equally near) may go either way, but all variables come from the same one
        picked = [(r, c) for r, c in candidates if np.array_equal(at.values[:, k, COL["t2m"]], cube["t2m"].sel(time=DAYS).values[:, r, c])]
        assert len(picked) == 1
        r, c = picked[0]
        for name in ERA5_NAMES:
            expect = cube[name].sel(time=DAYS).values[:, r, c]
            assert np.array_equal(at.values[:, k, COL[name]], expect.astype(np.float32)), name
        tp = cube["tp"].values[:, r, c].astype(np.float64)
        t = pd.DatetimeIndex(cube[cv.TIME].values)
        for name, window in (("tp_sum7", 7), ("tp_sum28", 28)):
            for i, day in enumerate(DAYS):
                j = t.get_loc(day)
                got = at.values[i, k, COL[name]]
                if j + 1 < window:
                    assert np.isnan(got)
                else:
                    assert got == pytest.approx(np.sum(tp[j - window + 1 : j + 1]), rel=1e-6, abs=1e-5)


def test_bilinear_equals_manual_bilinear_at_an_interior_cell(world: dict[str, Any]) -> None:
    grid: GridSpec = world["grid"]
    cube = world["cube"]
    row, col = 20, 15  # inside the coarse centres, all four neighbours on land in the tiny world
    lat, lon = grid.latlon(row, col)
    lats, lons = cube[cv.LAT].values, cube[cv.LON].values
    r0 = int(np.flatnonzero(lats >= lat)[-1])  # north neighbour (lat descends)
    c0 = int(np.flatnonzero(lons <= lon)[-1])
    wy = (lats[r0] - lat) / (lats[r0] - lats[r0 + 1])
    wx = (lon - lons[c0]) / (lons[c0 + 1] - lons[c0])
    assert 0 < wy < 1 and 0 < wx < 1
    at = features_at_cells(world["sources"], grid, [row], [col], DAYS, interpolation="bilinear")
    for name in ERA5_NAMES:
        v = cube[name].sel(time=DAYS).values.astype(np.float64)
        assert np.isfinite(v[:, r0 : r0 + 2, c0 : c0 + 2]).all()
        expect = (
            (1 - wy) * (1 - wx) * v[:, r0, c0]
            + (1 - wy) * wx * v[:, r0, c0 + 1]
            + wy * (1 - wx) * v[:, r0 + 1, c0]
            + wy * wx * v[:, r0 + 1, c0 + 1]
        )
        np.testing.assert_allclose(at.values[:, 0, COL[name]], expect, rtol=1e-6, atol=1e-6, err_msg=name)


def _lai_file(world: dict[str, Any], start: pd.Timestamp) -> str:
    name = f"A{start:%Y}{start.day_of_year:03d}"
    files = [p for p in world["manifest"]["files"]["lai"] if name in p]
    assert len(files) == 1
    return world["world"].join(files[0])


def _read_at(path: str, lat: float, lon: float) -> tuple[float, Any]:
    with rasterio.open(path) as src:
        i, j = src.index(lon, lat)
        raw = src.read(1)[i, j]
        return float(raw), src


def test_lai_by_hand_and_statics_from_the_geotiffs(world: dict[str, Any]) -> None:
    grid: GridSpec = world["grid"]
    cells = world["stations"][:5]
    days = pd.DatetimeIndex(["2019-07-15", "2019-07-16", "2020-05-04"])
    at = features_at_cells(world["sources"], grid, cells[:, 0], cells[:, 1], days)
    for k, (row, col) in enumerate(cells):
        lat, lon = grid.latlon(row, col)
        for i, day in enumerate(days):
            # composites start on day-of-year 1, 9, ...; each stands at its window's mid-point, start + 3.5 days
            doy0 = (day.day_of_year - 1 - 4) // 8 * 8 + 1  # the composite whose centre is at or before the day
            s0 = pd.Timestamp(year=day.year, month=1, day=1) + pd.Timedelta(days=doy0 - 1)
            s1 = s0 + pd.Timedelta(days=8)
            w = ((day - s0).days - 3.5) / 8.0
            assert 0 <= w <= 1
            a, _ = _read_at(_lai_file(world, s0), lat, lon)
            b, _ = _read_at(_lai_file(world, s1), lat, lon)
            assert a != 255 and b != 255
            expect = (1 - w) * a * 0.1 + w * b * 0.1
            assert at.values[i, k, COL["lai"]] == pytest.approx(expect, abs=1e-5)
        for name in ("elevation", "landcover", "sand", "silt", "clay", "porosity", "bulk_density", "rock_fragment"):
            value, _ = _read_at(world["world"].join(f"static/{name}.tif"), lat, lon)
            assert np.all(at.values[:, k, COL[name]] == np.float32(value)), name


def test_a_block_that_misses_cells_is_an_error(world: dict[str, Any]) -> None:
    grid: GridSpec = world["grid"]
    src = world["sources"]
    era5 = src.era5.isel({cv.LAT: slice(0, 1), cv.LON: slice(0, 1)}).sel(time=slice("2019-06-01", "2019-07-01")).compute()
    static = src.static.compute()
    with pytest.raises(InputError, match="ERA5-Land block does not cover"):
        build_features(era5, src.lai.compute(), static, grid, ["2019-07-01"], [59], [59], coarse_valid=src.coarse_valid)


# ------------------------------------------------------------------ laziness
def _raise_if_computed(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a dask graph was computed while only building it")


def test_building_a_tile_task_computes_nothing(world: dict[str, Any]) -> None:
    grid: GridSpec = world["grid"]
    tile = Tile((0, 0), slice(16, 48), slice(8, 40))
    days = pd.date_range("2019-05-01", periods=32)
    with dask.config.set(scheduler=_raise_if_computed):
        sources = open_feature_sources(world["store"])
        task = delayed_features_for_tile(sources, grid, tile, days, interpolation="bilinear")
    (block,) = dask.compute(task, scheduler="sync")
    eager = features_for_tile(world["sources"], grid, tile, days, interpolation="bilinear")
    assert np.array_equal(block.values, eager.values, equal_nan=True) and block.values.shape[0] == 32
