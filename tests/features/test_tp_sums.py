"""tp_sum7 / tp_sum28 from the daily cube against a plain pandas rolling sum, at random cells and days.

The features are built block by block as inference and training build them
(:func:`features_for_tile` over 32-day time blocks aligned with the cube's
time chunks, :func:`features_at_cells` for scattered days), so the first days
of a block need the days before it (look-back across the block's edge). The
reference is ``Series.rolling(window).sum()`` of the cube's daily ``tp`` at
the cell's coarse cell, found from coordinates (the nearest coarse centre
within 0.05 degree), on a calendar-daily index: NaN while the window reaches
before the record, as the features are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from smci_dask import conventions as cv
from smci_dask.covariates import open_era5land_daily
from smci_dask.features import FEATURE_NAMES, features_at_cells, features_for_tile, open_feature_sources
from smci_dask.grid import GridSpec, Tile
from smci_dask.io import Store

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
WINDOWS = {"tp_sum7": 7, "tp_sum28": 28}
#: Days per block: the cube's time chunk and the inference time block.
BLOCK = 32


@pytest.fixture(scope="module")
def setup(tiny_stores: tuple[Store, dict[str, Any]]) -> dict[str, Any]:
    store, info = tiny_stores
    grid: GridSpec = info["grid"]
    sources = open_feature_sources(store)
    tp = open_era5land_daily(store, "covariates/era5land")["tp"].compute()
    land = np.asarray(sources.static["land"].values, dtype=bool)
    rng = np.random.default_rng(7)
    clat, clon = tp[cv.LAT].values, tp[cv.LON].values
    cells: list[tuple[int, int, int, int]] = []  # fine row, fine col, coarse row, coarse col
    for _ in range(500):
        row, col = int(rng.integers(grid.nrows)), int(rng.integers(grid.ncols))
        lat, lon = grid.latlon(row, col)
        r, c = int(np.argmin(np.abs(clat - lat))), int(np.argmin(np.abs(clon - lon)))
        inside = abs(clat[r] - lat) < 0.05 - 1e-9 and abs(clon[c] - lon) < 0.05 - 1e-9
        if inside and land[row, col] and np.isfinite(tp.values[:, r, c]).all() and (r, c) not in [x[2:] for x in cells]:
            cells.append((row, col, r, c))
        if len(cells) == 6:
            break
    assert len(cells) == 6
    days = pd.DatetimeIndex(tp[cv.TIME].values)
    calendar = pd.date_range(days[0], days[-1], freq="D")
    rolling = {}
    for _, _, r, c in cells:
        series = pd.Series(tp.values[:, r, c].astype(np.float64), index=days).reindex(calendar)  # a missing day is NaN
        rolling[(r, c)] = {name: series.rolling(window).sum() for name, window in WINDOWS.items()}
    return {"grid": grid, "sources": sources, "cells": np.array(cells), "rolling": rolling, "days": calendar, "rng": rng}


def _check(values: np.ndarray, days: pd.DatetimeIndex, cells: np.ndarray, rolling: dict[Any, Any]) -> None:
    """``values`` (days, cells, features) against the pandas rolling sums of each cell's coarse cell."""
    for k, (_, _, r, c) in enumerate(cells):
        for name in WINDOWS:
            want = rolling[(r, c)][name].reindex(days).to_numpy()
            got = values[:, k, COL[name]].astype(np.float64)
            assert np.array_equal(np.isnan(got), np.isnan(want)), (name, r, c)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4, err_msg=f"{name} at coarse ({r}, {c})")


def test_tile_blocks_match_pandas_rolling_sums(setup: dict[str, Any]) -> None:
    grid: GridSpec = setup["grid"]
    cells, days = setup["cells"], setup["days"]
    rng: np.random.Generator = setup["rng"]
    n_blocks = len(days) // BLOCK
    # the record's first block (NaN until 7 / 28 days exist), the second (its first days look back into the first),
    # and three more at random
    picks = [0, 1, *rng.choice(np.arange(2, n_blocks), size=3, replace=False).tolist()]
    tile = Tile((0, 0), slice(0, grid.nrows), slice(0, grid.ncols))
    for b in picks:
        block = days[b * BLOCK : (b + 1) * BLOCK]
        out = features_for_tile(setup["sources"], grid, tile, block)
        where = pd.Index(out.rows * grid.ncols + out.cols).get_indexer(cells[:, 0] * grid.ncols + cells[:, 1])
        assert (where >= 0).all()
        _check(out.values[:, where, :], block, cells, setup["rolling"])
        if b == 0:  # the start of the record: sums only once their window is inside it
            assert np.isnan(out.values[:6, where, COL["tp_sum7"]]).all() and np.isfinite(out.values[6:, where, COL["tp_sum7"]]).all()
            assert np.isnan(out.values[:27, where, COL["tp_sum28"]]).all() and np.isfinite(out.values[27:, where, COL["tp_sum28"]]).all()
        else:  # a block's first day has its full windows from the block before
            assert np.isfinite(out.values[0, where, COL["tp_sum28"]]).all()


def test_scattered_days_at_station_like_cells_match_pandas(setup: dict[str, Any]) -> None:
    cells, days = setup["cells"], setup["days"]
    rng: np.random.Generator = setup["rng"]
    # random days anywhere in the record, plus the first days of a few time chunks (block edges)
    edges = days[np.arange(BLOCK, len(days), BLOCK)[:4]]
    picked = pd.DatetimeIndex(np.sort(np.concatenate([rng.choice(days.values, size=12, replace=False), edges.values, days[:3].values])))
    out = features_at_cells(setup["sources"], setup["grid"], cells[:, 0], cells[:, 1], picked.unique())
    _check(out.values, picked.unique(), cells, setup["rolling"])
