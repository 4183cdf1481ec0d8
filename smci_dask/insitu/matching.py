"""Mean/standard-deviation matching of the daily cell series to ERA5-Land soil moisture.

SMCI1.0 brings every station series to ERA5-Land's climatology before
training: the daily variations of the station are kept, its mean and
standard deviation replaced by those of ERA5-Land soil moisture in the same
cell::

    sm_matched = (sm_raw - mean_insitu) / std_insitu * std_era5 + mean_era5

Rules (each a parameter):

Layers
    Product depth (cm) -> ERA5-Land layer (``config.matching.layers``; the
    paper: 10-30 cm to layer 2, 7-28 cm; 40-100 cm to layer 3, 28-100 cm).
    The ERA5-Land series is ``swvl<layer>`` (m3/m3).
Cell
    The ERA5-Land (0.1 degree) cell holding the fine cell; where that coarse
    cell has no value (sea, lakes: NaN in ERA5-Land) the nearest coarse cell
    with values stands in (the coast rule of :mod:`smci_dask.grid.landmask`,
    the same cell :func:`~smci_dask.grid.fine_coarse_index` gives).
Days
    The statistics of both series are taken over the same days: days on
    which the cell has a value and ERA5-Land has one, restricted to the
    rows of ``train_mask`` when given (an experiment's training part, so no
    test-period information reaches the targets). Standard deviations are
    population ones (``ddof=0``); with the same ``ddof`` on both sides the
    matched series has exactly ERA5-Land's mean and standard deviation over
    those days.
No matched value
    A (cell, depth) gets no matched value (NaN) when it has fewer than
    ``min_days`` such days (default :data:`MIN_MATCH_DAYS` = 30), when
    either standard deviation is at most :data:`MIN_STD` (a constant station
    series cannot be scaled; a constant ERA5-Land series would flatten the
    station's variations away) or when its depth has no ERA5-Land layer.
    The ``reason`` column of the statistics says which. Matched values are
    not clipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import GridError, InputError
from smci_dask.grid.landmask import nearest_valid_coarse
from smci_dask.grid.spec import GridSpec

__all__ = [
    "CELL_KEYS",
    "MIN_MATCH_DAYS",
    "MIN_STD",
    "STATS_COLUMNS",
    "apply_matching",
    "era5_at_cells",
    "era5_table",
    "matching_stats",
]

#: Fewest common days (in-situ and ERA5-Land, training part) for matching statistics.
MIN_MATCH_DAYS: Final = 30
#: A standard deviation at or below this (m3/m3) counts as a constant series.
MIN_STD: Final = 1e-6
#: Keys of one matched series.
CELL_KEYS: Final = ("row", "col", "depth_cm")
#: Columns of :func:`matching_stats`, in order.
STATS_COLUMNS: Final = (
    "row",
    "col",
    "depth_cm",
    "layer",
    "n_days",
    "first_day",
    "last_day",
    "mean_insitu",
    "std_insitu",
    "mean_era5",
    "std_era5",
    "valid",
    "reason",
)
#: ERA5-Land soil-moisture variable of a layer.
SWVL: Final = "swvl{}"


# ------------------------------------------------------------------ ERA5-Land at the cells
def era5_at_cells(
    era5_daily: xr.Dataset,
    grid: GridSpec,
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    *,
    variables: Sequence[str] | None = None,
    coarse_valid: npt.ArrayLike | None = None,
) -> xr.Dataset:
    """ERA5-Land daily series at fine cells, through their coarse cells with the coast rule.

    One vectorised (pointwise) ``isel``: lazy when ``era5_daily`` is.

    Parameters
    ----------
    era5_daily : xarray.Dataset
        The daily cube on the region's coarse grid (:func:`~smci_dask.covariates.open_era5land_daily`):
        dims ``(time, lat, lon)``, lat/lon equal to ``grid.coarse_lat`` /
        ``grid.coarse_lon``; ``swvl1..4`` in m3/m3.
    grid : GridSpec
        The region.
    rows, cols : array_like of int
        Fine cells (same length).
    variables : sequence of str, optional
        Variables to extract; default every ``swvl*`` of the cube.
    coarse_valid : array_like of bool, optional
        Coarse cells with values, shape ``grid.coarse_shape``; default the
        cells where every extracted variable is finite on the first day.

    Returns
    -------
    xarray.Dataset
        Dims ``(time, cell)``; coords ``row``, ``col`` (the fine cells),
        ``coarse_row``, ``coarse_col``, ``era5_lat``, ``era5_lon`` (the
        coarse cell read), ``substituted`` (True where the coast rule
        replaced a coarse cell without values).

    Raises
    ------
    InputError
        The cube lacks a variable or the time/lat/lon dims, or is not on the
        region's coarse grid (subset it with ``subset_to_grid``).
    GridError
        A fine cell is off the grid, or no coarse cell has values.
    """
    for dim in (cv.TIME, cv.LAT, cv.LON):
        if dim not in era5_daily.dims:
            raise InputError(f"ERA5-Land daily data: no {dim!r} dimension (dims {sorted(map(str, era5_daily.dims))}); open the daily cube")
    names = list(variables) if variables is not None else sorted(v for v in map(str, era5_daily.data_vars) if v.startswith("swvl"))
    missing = [v for v in names if v not in era5_daily.data_vars]
    if missing or not names:
        raise InputError(
            f"ERA5-Land daily data: variable(s) {missing or 'swvl1..4'} not found (has {sorted(map(str, era5_daily.data_vars))}); "
            "ingest ERA5-Land soil moisture first"
        )
    lat = np.asarray(era5_daily[cv.LAT].values, dtype=np.float64)
    lon = np.asarray(era5_daily[cv.LON].values, dtype=np.float64)
    want_lat, want_lon = grid.coarse_lat, grid.coarse_lon
    if (
        lat.shape != want_lat.shape
        or lon.shape != want_lon.shape
        or not (np.allclose(lat, want_lat, atol=1e-6) and np.allclose(lon, want_lon, atol=1e-6))
    ):
        raise InputError(
            f"ERA5-Land daily data: its grid ({lat.size} x {lon.size} cells) is not the region's coarse grid "
            f"{grid.coarse_shape} ({want_lat.max():g}..{want_lat.min():g} N, {want_lon.min():g}..{want_lon.max():g} E); "
            "select the region with smci_dask.covariates.subset_to_grid"
        )
    r = np.asarray(rows, dtype=np.int64).ravel()
    c = np.asarray(cols, dtype=np.int64).ravel()
    if r.shape != c.shape:
        raise InputError(f"era5_at_cells: rows ({r.size}) and cols ({c.size}) differ in length")
    if r.size and (r.min() < 0 or r.max() >= grid.nrows or c.min() < 0 or c.max() >= grid.ncols):
        raise GridError(f"era5_at_cells: fine cell off the grid: rows must be 0..{grid.nrows - 1}, cols 0..{grid.ncols - 1}")
    ds = era5_daily[names]
    if coarse_valid is None:
        if ds.sizes[cv.TIME] == 0:
            raise InputError("ERA5-Land daily data: no days; ingest ERA5-Land first")
        first = ds.isel({cv.TIME: 0})
        valid = np.logical_and.reduce([np.isfinite(np.asarray(first[v].values)) for v in names])
    else:
        valid = np.asarray(coarse_valid, dtype=bool)
        if valid.shape != grid.coarse_shape:
            raise GridError(f"coarse_valid has shape {valid.shape}, the grid's coarse shape is {grid.coarse_shape}")
    near_r, near_c = nearest_valid_coarse(valid)
    own_r = grid.fine_to_coarse_rows()[r]
    own_c = grid.fine_to_coarse_cols()[c]
    cr, cc = near_r[own_r, own_c], near_c[own_r, own_c]
    out = ds.isel({cv.LAT: xr.DataArray(cr, dims="cell"), cv.LON: xr.DataArray(cc, dims="cell")})
    out = out.rename_vars({cv.LAT: "era5_lat", cv.LON: "era5_lon"})
    return out.assign_coords(
        row=("cell", r),
        col=("cell", c),
        coarse_row=("cell", cr),
        coarse_col=("cell", cc),
        substituted=("cell", (cr != own_r) | (cc != own_c)),
    )


def era5_table(at_cells: xr.Dataset) -> pd.DataFrame:
    """The long form of :func:`era5_at_cells`: one row per cell and day (computes a lazy input).

    Returns
    -------
    pandas.DataFrame
        ``row``, ``col`` (int32), ``time``, then one column per variable
        (m3/m3 for swvl), sorted by cell then day; a cell given twice appears once.
    """
    names = [str(v) for v in at_cells.data_vars]
    ds = at_cells.transpose("cell", cv.TIME).compute()
    nt = ds.sizes[cv.TIME]
    ncell = ds.sizes["cell"]
    frame = pd.DataFrame(
        {
            "row": np.repeat(np.asarray(ds["row"].values, dtype=np.int32), nt),
            "col": np.repeat(np.asarray(ds["col"].values, dtype=np.int32), nt),
            "time": np.tile(np.asarray(ds[cv.TIME].values, dtype="datetime64[ns]"), ncell),
        }
    )
    for v in names:
        frame[v] = np.asarray(ds[v].values, dtype=np.float64).ravel()
    return frame.drop_duplicates(["row", "col", "time"]).reset_index(drop=True)


# ------------------------------------------------------------------ statistics and matching
def _key_index(left: pd.DataFrame, right: pd.DataFrame, keys: Sequence[str]) -> npt.NDArray[np.int64]:
    """Position in ``right`` of each row of ``left`` on ``keys`` (-1 where absent); ``right`` keys unique."""
    lk = pd.MultiIndex.from_arrays([np.asarray(left[k]).astype(np.int64) if k != "time" else left[k].to_numpy() for k in keys])
    rk = pd.MultiIndex.from_arrays([np.asarray(right[k]).astype(np.int64) if k != "time" else right[k].to_numpy() for k in keys])
    if not rk.is_unique:
        raise InputError(f"matching: the table to join has repeated keys {list(keys)}")
    return rk.get_indexer(lk)


def _era5_values(cell_daily: pd.DataFrame, era5: pd.DataFrame | xr.Dataset, layer: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """ERA5-Land soil moisture of each cell-day row, from the layer of its depth (NaN where absent)."""
    table = era5_table(era5) if isinstance(era5, xr.Dataset) else era5
    needed = sorted({SWVL.format(k) for k in np.unique(layer[layer > 0])})
    lacking = [v for v in needed if v not in table.columns]
    if lacking:
        raise InputError(f"matching: ERA5-Land data lack {lacking} (have {list(table.columns)}); they are needed for the configured layers")
    pos = _key_index(cell_daily, table, ("row", "col", "time"))
    out = np.full(len(cell_daily), np.nan)
    hit = pos >= 0
    for k in np.unique(layer[layer > 0]):
        sel = hit & (layer == k)
        out[sel] = table[SWVL.format(k)].to_numpy(dtype=np.float64)[pos[sel]]
    return out


def _layers_of(depth_cm: npt.NDArray[np.int64], layers: Mapping[int, int]) -> npt.NDArray[np.int64]:
    """ERA5-Land layer of each depth; 0 where the mapping has none."""
    bad = sorted({int(v) for v in layers.values()} - set(cv.ERA5_LAYERS_CM))
    if bad:
        raise InputError(f"matching: ERA5-Land layers {bad} do not exist; use 1-4")
    lut = pd.Series({int(k): int(v) for k, v in layers.items()}, dtype=np.int64)
    return pd.Series(depth_cm).map(lut).fillna(0).to_numpy(dtype=np.int64)


def matching_stats(
    cell_daily: pd.DataFrame,
    era5_daily_at_cells: pd.DataFrame | xr.Dataset,
    *,
    layers: Mapping[int, int],
    train_mask: npt.ArrayLike | None = None,
    min_days: int = MIN_MATCH_DAYS,
) -> pd.DataFrame:
    """Mean and standard deviation of each (cell, depth) series and of its ERA5-Land layer over their common days.

    See the module docstring for the rules.

    Parameters
    ----------
    cell_daily : pandas.DataFrame
        Daily cell table (:func:`~smci_dask.insitu.daily.to_cells`): ``row``,
        ``col``, ``depth_cm``, ``time``, ``sm_raw`` (m3/m3).
    era5_daily_at_cells : pandas.DataFrame or xarray.Dataset
        ERA5-Land at the cells: :func:`era5_at_cells` or its
        :func:`era5_table` (``row``, ``col``, ``time``, ``swvl<k>`` m3/m3).
    layers : mapping of int to int
        Product depth (cm) -> ERA5-Land layer (1-4).
    train_mask : array_like of bool, optional
        One flag per row of ``cell_daily``: only these rows enter the
        statistics (an experiment's training part). Default: every row.
    min_days : int
        Fewest common days for a valid match.

    Returns
    -------
    pandas.DataFrame
        One row per (row, col, depth_cm) of ``cell_daily``, columns
        :data:`STATS_COLUMNS`: ``layer`` (0: none), ``n_days``, ``first_day``,
        ``last_day`` (common days used), ``mean_insitu``, ``std_insitu``,
        ``mean_era5``, ``std_era5`` (m3/m3, ``ddof=0``), ``valid`` and
        ``reason`` (empty when valid).
    """
    for c in (*CELL_KEYS, "time", "sm_raw"):
        if c not in cell_daily.columns:
            raise InputError(f"matching: the cell table has no {c!r} column (columns {list(cell_daily.columns)})")
    n = len(cell_daily)
    mask = np.ones(n, dtype=bool) if train_mask is None else np.asarray(train_mask, dtype=bool).ravel()
    if mask.shape != (n,):
        raise InputError(f"matching: train_mask has {mask.size} flags for {n} rows; give one per row of the cell table")
    depth = cell_daily["depth_cm"].to_numpy(dtype=np.int64)
    layer = _layers_of(depth, layers)
    era = _era5_values(cell_daily, era5_daily_at_cells, layer)
    sm = cell_daily["sm_raw"].to_numpy(dtype=np.float64)
    ok = mask & np.isfinite(sm) & np.isfinite(era)
    frame = pd.DataFrame(
        {
            "row": cell_daily["row"].to_numpy(dtype=np.int64),
            "col": cell_daily["col"].to_numpy(dtype=np.int64),
            "depth_cm": depth,
            "layer": layer,
            "x": np.where(ok, sm, np.nan),
            "e": np.where(ok, era, np.nan),
            "day": np.where(ok, cell_daily["time"].to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns")),
        }
    )
    g = frame.groupby(list(CELL_KEYS), sort=True)
    stats = pd.DataFrame(
        {
            "layer": g["layer"].first(),
            "n_days": g["x"].count(),
            "first_day": g["day"].min(),
            "last_day": g["day"].max(),
            "mean_insitu": g["x"].mean(),
            "std_insitu": g["x"].std(ddof=0),
            "mean_era5": g["e"].mean(),
            "std_era5": g["e"].std(ddof=0),
        }
    ).reset_index()
    reason = np.full(len(stats), "", dtype=object)
    with np.errstate(invalid="ignore"):
        reason[~(stats["std_era5"].to_numpy() > MIN_STD)] = "constant ERA5-Land series"
        reason[~(stats["std_insitu"].to_numpy() > MIN_STD)] = "constant in-situ series"
    reason[stats["n_days"].to_numpy() < int(min_days)] = f"fewer than {int(min_days)} common days"
    reason[stats["layer"].to_numpy() == 0] = "no ERA5-Land layer for this depth"
    stats["valid"] = reason == ""
    stats["reason"] = reason.astype(str)
    stats["n_days"] = stats["n_days"].astype(np.int64)
    stats["layer"] = stats["layer"].astype(np.int64)
    return stats[list(STATS_COLUMNS)]


def apply_matching(cell_daily: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """Add ``sm_matched`` (m3/m3) to every row of the cell table, from its (cell, depth) statistics.

    ``sm_matched = (sm_raw - mean_insitu) / std_insitu * std_era5 + mean_era5``
    for every row (training and test alike: the statistics decide what was
    learnt from); NaN where the statistics are missing or not ``valid``.

    Parameters
    ----------
    cell_daily : pandas.DataFrame
        ``row``, ``col``, ``depth_cm``, ``sm_raw`` (m3/m3) and anything else.
    stats : pandas.DataFrame
        From :func:`matching_stats`.

    Returns
    -------
    pandas.DataFrame
        A copy of ``cell_daily`` (same index and row order) with ``sm_matched``.
    """
    pos = _key_index(cell_daily, stats, CELL_KEYS)
    take = np.where(pos >= 0, pos, 0)
    valid = (pos >= 0) & stats["valid"].to_numpy(dtype=bool)[take] if len(stats) else np.zeros(len(cell_daily), dtype=bool)

    def col(name: str) -> npt.NDArray[np.float64]:
        return stats[name].to_numpy(dtype=np.float64)[take] if len(stats) else np.full(len(cell_daily), np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        z = (cell_daily["sm_raw"].to_numpy(dtype=np.float64) - col("mean_insitu")) / col("std_insitu")
        matched = z * col("std_era5") + col("mean_era5")
    out = cell_daily.copy()
    out["sm_matched"] = np.where(valid, matched, np.nan)
    return out
