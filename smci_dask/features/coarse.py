"""Features at ERA5-Land's 0.1 degree cells: the inputs of the predicted 9 km product (as SMCI1.0 makes its 9 km product).

The covariates are brought to 0.1 degree as the paper does: the static
layers averaged over the land fine cells of each coarse cell (classes: the
majority) - these are the store's ``covariates/static_coarse`` aggregates
(:func:`smci_dask.covariates.static_coarse`) -, the 8-day LAI composites
averaged the same way (:func:`coarse_mean`, here), and ERA5-Land used as is.
The features are then made by the one feature function
(:func:`smci_dask.features.build_features`, same names and order as
training): each coarse cell is stood for by one fine cell inside its
footprint (:func:`representative_cells`), whose ERA5-Land value with
``nearest`` sampling is exactly the coarse cell's own, and whose LAI and
static values are handed in as the coarse aggregates. The feature functions
of training are not changed.

Footprints: a coarse cell is its centre +- 0.05 degree (the same rule as
``covariates/static_coarse``): the fine rows/columns at the region's south /
east edge that belong to a coarse cell outside the grid enter no aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates.lai import lai_weights
from smci_dask.covariates.static import _footprint_index, open_static_coarse
from smci_dask.errors import InputError
from smci_dask.features.build import CELL, LOOKBACK_DAYS, STATIC_NEEDED, FeatureSources, build_features
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store


def coarse_mean(values: npt.ArrayLike, land: npt.ArrayLike, grid: GridSpec) -> npt.NDArray[np.float32]:
    """Mean of ``values`` (``(..., nrows, ncols)`` on the 1 km grid) over the land fine cells of each coarse footprint.

    NaN values are skipped; a coarse cell with none left is NaN. Sums in
    float64; returns float32 ``(..., n_coarse_rows, n_coarse_cols)``.
    """
    arr = np.asarray(values, dtype=np.float64)
    mask = np.asarray(land, dtype=bool)
    if mask.shape != grid.shape or arr.shape[-2:] != grid.shape:
        raise InputError(f"values {arr.shape} / land mask {mask.shape} do not match the grid {grid.shape}; pass blocks of the whole region")
    idx = _footprint_index(grid)
    n = grid.coarse_shape[0] * grid.coarse_shape[1]
    flat = arr.reshape(-1, *grid.shape)
    out = np.full((flat.shape[0], n), np.nan, dtype=np.float64)
    for i in range(flat.shape[0]):
        ok = mask & (idx >= 0) & np.isfinite(flat[i])
        counts = np.bincount(idx[ok], minlength=n)
        sums = np.bincount(idx[ok], weights=flat[i][ok], minlength=n)
        out[i] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out.reshape(*arr.shape[:-2], *grid.coarse_shape).astype(np.float32)


def representative_cells(grid: GridSpec) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """One fine row per coarse row and one fine column per coarse column, inside the coarse cell's footprint."""
    half = 0.5 / cv.COARSE_PER_DEGREE + 1e-9
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    in_r = np.abs(grid.lat - grid.coarse_lat[rows]) < half
    in_c = np.abs(grid.lon - grid.coarse_lon[cols]) < half
    rep_r = np.array([np.flatnonzero((rows == i) & in_r)[0] for i in range(grid.coarse_shape[0])], dtype=np.int64)
    rep_c = np.array([np.flatnonzero((cols == j) & in_c)[0] for j in range(grid.coarse_shape[1])], dtype=np.int64)
    return rep_r, rep_c


@dataclass(frozen=True)
class CoarseInputs:
    """What the 9 km features of some days read: coarse cells predicted, and the blocks in the form build_features takes."""

    crow: npt.NDArray[np.int64]  # coarse row / column of each predicted cell
    ccol: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]  # the fine cell standing for it
    cols: npt.NDArray[np.int64]
    era5: xr.Dataset
    lai: xr.DataArray  # coarse means of the composites, point form on the representative cells
    static: xr.Dataset  # static_coarse, point form on the representative cells
    coarse_valid: npt.NDArray[np.bool_]


def load_coarse_inputs(store: Store, sources: FeatureSources, grid: GridSpec, days: pd.DatetimeIndex) -> CoarseInputs:
    """Read what the 9 km features of ``days`` need: ERA5-Land (with look-back), LAI composites (averaged), static aggregates.

    The cells predicted are the coarse cells that are land in
    ``covariates/static_coarse`` (ERA5-Land's ``lsm >= 0.5`` rule) and hold
    ERA5-Land values. Memory: the whole fine grid of one LAI composite at a time.
    """
    static_c = open_static_coarse(store).compute()
    valid = np.asarray(sources.coarse_valid, dtype=bool)
    land_c = np.asarray(static_c["land"].values, dtype=bool) & valid
    crow, ccol = np.nonzero(land_c)
    rep_r, rep_c = representative_cells(grid)
    rows, cols = rep_r[crow], rep_c[ccol]
    pts = {CELL: np.arange(crow.size)}
    coords = {"row": (CELL, rows), "col": (CELL, cols)}
    sel = {cv.LAT: xr.DataArray(crow, dims=CELL), cv.LON: xr.DataArray(ccol, dims=CELL)}
    static_pts = static_c[list(STATIC_NEEDED)].isel(sel).drop_vars([cv.LAT, cv.LON], errors="ignore").assign_coords(coords)

    starts = pd.DatetimeIndex(sources.lai[cv.TIME8].values)
    order = np.argsort(starts.values, kind="stable")
    i0, i1, _ = lai_weights(starts[order], days)
    used = np.sort(order[np.unique(np.concatenate([i0, i1]))])
    fine_land = np.asarray(sources.static["land"].values, dtype=bool)
    with dask.config.set(scheduler="synchronous"):
        means = [coarse_mean(np.asarray(sources.lai.isel({cv.TIME8: int(k)}).values), fine_land, grid)[crow, ccol] for k in used]
        era5 = sources.era5.sel({cv.TIME: slice(days.min() - pd.Timedelta(days=LOOKBACK_DAYS), days.max())}).compute()
    lai_pts = xr.DataArray(
        np.stack(means).reshape(len(used), crow.size) if len(used) else np.empty((0, crow.size), np.float32),
        dims=(cv.TIME8, CELL),
        coords={cv.TIME8: sources.lai[cv.TIME8].values[used], CELL: pts[CELL], **coords},
    )
    return CoarseInputs(crow.astype(np.int64), ccol.astype(np.int64), rows, cols, era5, lai_pts, static_pts, valid)


def coarse_features(inputs: CoarseInputs, grid: GridSpec, days: pd.DatetimeIndex) -> npt.NDArray[np.float32]:
    """Features ``(n_days, n_coarse_cells, n_features)`` of the predicted coarse cells (the one feature function, nearest)."""
    return build_features(
        inputs.era5,
        inputs.lai,
        inputs.static,
        grid,
        days,
        inputs.rows,
        inputs.cols,
        coarse_valid=inputs.coarse_valid,
        interpolation="nearest",
    )
