"""The one feature function: covariate blocks -> features of (days x 1 km cells).

Training (station cells) and inference (every land cell of a tile) both call
:func:`build_features`; :func:`features_at_cells` and :func:`features_for_tile`
only load the blocks it needs. Nothing at 1 km x daily is stored: ERA5-Land
is brought to the cells and LAI to the days inside the call.

Rules
-----
* **Order.** :data:`FEATURES` fixes names, order and units; a model card
  saves :data:`FEATURE_NAMES`.
* **ERA5-Land to 1 km** (``interpolation``):
  ``"nearest"``: a fine cell reads its own coarse cell; where that cell has
  no values (sea, lakes: ``coarse_valid`` False) the nearest valid coarse
  cell stands in (:func:`smci_dask.grid.nearest_valid_coarse`, the coast
  rule of :mod:`smci_dask.grid.landmask`). ``"bilinear"``: bilinear between
  the four coarse centres around the fine centre
  (:meth:`GridSpec.coarse_weights`; nearest centre beyond the outermost
  ones), each corner first replaced by its nearest valid coarse cell (the
  same coast rule), so a coastal cell is never NaN because a neighbour is
  sea. ``coarse_valid`` is a property of the whole coarse grid (not of a
  window), so both paths pick the same stand-ins.
* **Precipitation sums.** ``tp_sum7`` / ``tp_sum28`` on day ``d`` are the
  sums of daily ``tp`` (mm/day) over the 7 / 28 days ending on ``d``
  (``d - 6 .. d`` / ``d - 27 .. d``), summed at 0.1 degree in float64 in a
  fixed order (oldest first), then brought to the cells like ``tp``. They
  need :data:`LOOKBACK_DAYS` days before the first day: the caller passes
  them in ``era5_block``. **A window with any day missing is NaN** (no
  partial sums: a partial sum would be biased low); so the first 6 / 27 days
  of the record have NaN sums (LightGBM, XGBoost and scikit-learn >= 1.4
  forests accept NaN).
* **LAI** of the day: MODIS 8-day composites interpolated linearly to the
  day (:func:`smci_dask.covariates.lai_for_days`) at the cells.
* **Statics** read at the cells; ``landcover`` is its IGBP code as a number
  (255, no data, becomes NaN).
* **Exactness.** Every operation is elementwise per (day, cell) in a fixed
  order, so the same cell-day gives bit-identical features whether it is
  built alone or inside a tile (tested).

Block forms
-----------
``era5_block`` is either a *window* of the daily cube, dims ``(time, lat,
lon)`` with the cube's coarse coordinates, or a *point* form, dims ``(time,
coarse)`` with coords ``coarse_row`` / ``coarse_col`` (indices on the
region's coarse grid). ``lai_block`` (``time8`` first) and ``static_block``
likewise: a window ``(lat, lon)`` of the 1 km grid or a point form with a
``cell`` dim and ``row`` / ``col`` coords.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import dask
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates.era5land_store import open_era5land_daily
from smci_dask.covariates.lai import LAI_RELPATH, LAI_VAR, lai_for_days, lai_weights, open_lai
from smci_dask.covariates.static import STATIC_RELPATH, open_static
from smci_dask.errors import InputError
from smci_dask.grid.landmask import nearest_valid_coarse
from smci_dask.grid.spec import GridSpec, Tile
from smci_dask.io import Store

ERA5_RELPATH: Final = "covariates/era5land"
COARSE: Final = "coarse"  # point-form dim of coarse cells
CELL: Final = "cell"  # point-form dim of fine cells


@dataclass(frozen=True)
class Feature:
    """One model input: its name, units and where it comes from."""

    name: str
    units: str
    source: str  # "era5land", "era5land_sum", "lai", "static"
    long_name: str


def _era5(name: str, units: str) -> Feature:
    return Feature(name, units, "era5land", f"ERA5-Land {cv.ERA5_LONG_NAMES[name].lower()}, daily")


#: The features in model order (names, units). Saved with every model.
FEATURES: Final[tuple[Feature, ...]] = (
    _era5("tp", "mm day-1"),
    Feature("tp_sum7", "mm", "era5land_sum", "ERA5-Land precipitation summed over the 7 days ending on the day"),
    Feature("tp_sum28", "mm", "era5land_sum", "ERA5-Land precipitation summed over the 28 days ending on the day"),
    _era5("t2m", "K"),
    _era5("e", "mm day-1"),
    _era5("pev", "mm day-1"),
    _era5("swvl1", "m3 m-3"),
    _era5("swvl2", "m3 m-3"),
    _era5("swvl3", "m3 m-3"),
    _era5("swvl4", "m3 m-3"),
    _era5("stl1", "K"),
    _era5("stl2", "K"),
    _era5("stl3", "K"),
    _era5("stl4", "K"),
    _era5("lai_hv", "m2 m-2"),
    _era5("lai_lv", "m2 m-2"),
    _era5("ssrd", "MJ m-2 day-1"),
    Feature("lai", "m2 m-2", "lai", "MODIS LAI of the day (linear between 8-day composites)"),
    *(Feature(v, cv.STATIC_VARS[v], "static", v.replace("_", " ")) for v in ("elevation", "landcover", "sand", "silt", "clay")),
    *(Feature(v, cv.STATIC_VARS[v], "static", v.replace("_", " ")) for v in ("porosity", "bulk_density", "rock_fragment")),
)
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
FEATURE_UNITS: Final[dict[str, str]] = {f.name: f.units for f in FEATURES}
#: Windows of the precipitation sums, days (ending on the day).
TP_SUMS: Final[dict[str, int]] = {"tp_sum7": 7, "tp_sum28": 28}
#: Days of ERA5-Land needed before the first day of a block.
LOOKBACK_DAYS: Final = max(TP_SUMS.values()) - 1
ERA5_NEEDED: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.source == "era5land")
STATIC_NEEDED: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.source == "static")
LANDCOVER_NODATA: Final = 255
#: Days sampled at once from coarse to fine (bilinear holds ~6 float64 arrays of DAY_CHUNK x cells).
DAY_CHUNK: Final = 8


# ================================================================== cell -> coarse sources
@dataclass(frozen=True)
class CoarseSampling:
    """How each fine cell reads the coarse grid: ``value = sum_k weight[k] * coarse[key[k]]``.

    ``keys`` / ``weights`` have shape ``(k, n_cells)``: k = 1 (nearest) or 4
    (bilinear: corners 00, 01, 10, 11 = (north, west), (north, east), (south,
    west), (south, east)), keys are flat coarse indices ``row * ncols + col``.
    """

    keys: npt.NDArray[np.int64]
    wy: npt.NDArray[np.float64] | None = None  # bilinear weight towards the southern row
    wx: npt.NDArray[np.float64] | None = None  # bilinear weight towards the eastern column

    @property
    def needed(self) -> npt.NDArray[np.int64]:
        """Flat coarse indices read by any cell (sorted, unique)."""
        return np.unique(self.keys)


def coarse_sampling(
    grid: GridSpec, rows: npt.ArrayLike, cols: npt.ArrayLike, coarse_valid: npt.ArrayLike, interpolation: cv.Interpolation
) -> CoarseSampling:
    """The coarse cells (coast rule applied) and weights each fine cell ``(rows, cols)`` reads."""
    r = np.asarray(rows, dtype=np.int64).ravel()
    c = np.asarray(cols, dtype=np.int64).ravel()
    valid = np.asarray(coarse_valid, dtype=bool)
    if valid.shape != grid.coarse_shape:
        raise InputError(f"coarse_valid has shape {valid.shape}; the grid's coarse shape is {grid.coarse_shape}")
    if r.size and (r.min() < 0 or r.max() >= grid.nrows or c.min() < 0 or c.max() >= grid.ncols):
        raise InputError(f"fine cells off the grid: rows must be 0..{grid.nrows - 1}, cols 0..{grid.ncols - 1}")
    near_r, near_c = nearest_valid_coarse(valid)
    ncc = grid.coarse_shape[1]

    def key(cr: npt.NDArray[np.int64], cc: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return near_r[cr, cc] * ncc + near_c[cr, cc]

    if interpolation == "nearest":
        return CoarseSampling(key(grid.fine_to_coarse_rows()[r], grid.fine_to_coarse_cols()[c])[None, :])
    if interpolation != "bilinear":
        raise InputError(f"interpolation {interpolation!r} is unknown; use 'nearest' or 'bilinear'")
    r0, r1, wy = (a[r] for a in grid.coarse_weights("lat"))
    c0, c1, wx = (a[c] for a in grid.coarse_weights("lon"))
    keys = np.stack([key(r0, c0), key(r0, c1), key(r1, c0), key(r1, c1)])
    return CoarseSampling(keys, wy=wy.astype(np.float64), wx=wx.astype(np.float64))


def _sample(values: npt.NDArray[Any], sampling: CoarseSampling, pos: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """(n_days, n_coarse) coarse values -> (n_days, n_cells) float32 (``pos``: column of each key)."""
    if sampling.wy is None or sampling.wx is None:
        return values[:, pos[0]].astype(np.float32)
    v = [values[:, p].astype(np.float64) for p in pos]
    wy, wx = sampling.wy, sampling.wx
    north = (1.0 - wx) * v[0] + wx * v[1]
    south = (1.0 - wx) * v[2] + wx * v[3]
    return ((1.0 - wy) * north + wy * south).astype(np.float32)


# ================================================================== block lookups
def _coarse_columns(block: xr.Dataset, grid: GridSpec) -> tuple[npt.NDArray[np.int64], Any]:
    """Flat coarse key of every column of the block's (time, K) layout, and a reshaper to that layout."""
    ncc = grid.coarse_shape[1]
    if COARSE in block.dims:
        keys = np.asarray(block["coarse_row"].values, np.int64) * ncc + np.asarray(block["coarse_col"].values, np.int64)
        return keys, lambda a: a
    for dim in (cv.TIME, cv.LAT, cv.LON):
        if dim not in block.dims:
            raise InputError(f"ERA5-Land block has dims {tuple(block.dims)}; expected (time, lat, lon) or (time, {COARSE})")
    lat = np.asarray(block[cv.LAT].values, np.float64)
    lon = np.asarray(block[cv.LON].values, np.float64)
    gr = np.rint((grid.coarse_lat[0] - lat) * cv.COARSE_PER_DEGREE).astype(np.int64)
    gc = np.rint((lon - grid.coarse_lon[0]) * cv.COARSE_PER_DEGREE).astype(np.int64)
    ok = (gr >= 0).all() and (gr < grid.coarse_shape[0]).all() and (gc >= 0).all() and (gc < ncc).all()
    if not ok or not np.allclose(grid.coarse_lat[np.clip(gr, 0, grid.coarse_shape[0] - 1)], lat, atol=1e-6):
        raise InputError("ERA5-Land block is not on the region's coarse grid; open it with open_era5land_daily and select a window")
    keys = (gr[:, None] * ncc + gc[None, :]).ravel()
    return keys, lambda a: a.reshape(a.shape[0], -1)


def _positions(have: npt.NDArray[np.int64], want: npt.NDArray[np.int64], what: str) -> npt.NDArray[np.int64]:
    """Index into ``have`` of every element of ``want``; InputError when one is missing."""
    order = np.argsort(have, kind="stable")
    idx = np.searchsorted(have, want, sorter=order)
    idx = np.clip(idx, 0, max(have.size - 1, 0))
    found = have.size > 0 and bool(np.all(have[order[idx]] == want))
    if not found:
        raise InputError(f"{what} block does not cover every cell asked for; load a window that holds them")
    return order[idx]


def _fine_keys(block: xr.Dataset | xr.DataArray, grid: GridSpec, what: str) -> tuple[npt.NDArray[np.int64], xr.Dataset | xr.DataArray]:
    """Flat fine keys ``row * ncols + col`` of a fine block and the block in point form (dim ``cell``)."""
    if CELL in block.dims:
        keys = np.asarray(block["row"].values, np.int64) * grid.ncols + np.asarray(block["col"].values, np.int64)
        return keys, block
    if cv.LAT not in block.dims or cv.LON not in block.dims:
        raise InputError(f"{what} block has dims {tuple(block.dims)}; expected (lat, lon) or ({CELL},)")
    lat = np.asarray(block[cv.LAT].values, np.float64)
    lon = np.asarray(block[cv.LON].values, np.float64)
    rows, _ = grid.rowcol(lat, np.full(lat.shape, grid.lon[0]))
    _, cols = grid.rowcol(np.full(lon.shape, grid.lat[0]), lon)
    stacked = block.stack({CELL: (cv.LAT, cv.LON)})
    keys = (rows[:, None] * grid.ncols + cols[None, :]).ravel()
    return keys, stacked


# ================================================================== the feature function
def build_features(
    era5_block: xr.Dataset,
    lai_block: xr.DataArray | xr.Dataset,
    static_block: xr.Dataset,
    grid: GridSpec,
    days: Sequence[Any] | pd.DatetimeIndex,
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    *,
    coarse_valid: npt.ArrayLike,
    interpolation: cv.Interpolation = "nearest",
) -> npt.NDArray[np.float32]:
    """Features of every (day, cell): the one function of training and inference.

    Parameters
    ----------
    era5_block : xarray.Dataset
        Daily ERA5-Land (units of the cube: mm day-1, K, m3 m-3, MJ m-2
        day-1, m2 m-2), a window ``(time, lat, lon)`` or point form ``(time,
        coarse)``, holding every coarse cell the cells read (see
        :func:`coarse_sampling`) and the days from ``days[0] -``
        :data:`LOOKBACK_DAYS` to ``days[-1]`` (days it lacks count as missing).
    lai_block : xarray.DataArray or Dataset
        8-day LAI (m2 m-2), ``time8`` plus a fine window or point form, with
        the composites bracketing the days.
    static_block : xarray.Dataset
        Static layers (fine window or point form) holding the cells.
    grid : GridSpec
        The region.
    days : sequence of dates
        The days (n_days).
    rows, cols : array_like of int
        Fine cells (n_cells) on ``grid``.
    coarse_valid : array_like of bool
        Coarse cells with ERA5-Land values, shape ``grid.coarse_shape``
        (:func:`open_feature_sources` gives it).
    interpolation : {'nearest', 'bilinear'}
        ERA5-Land to 1 km (module docstring).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n_days, n_cells, len(FEATURES))``, in :data:`FEATURES` order and units.
    """
    days = pd.DatetimeIndex(days).normalize()
    r = np.asarray(rows, dtype=np.int64).ravel()
    c = np.asarray(cols, dtype=np.int64).ravel()
    out = np.empty((len(days), r.size, len(FEATURES)), dtype=np.float32)
    if not len(days) or not r.size:
        return out
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}

    # ---- ERA5-Land: coarse values of the needed days, sums at 0.1 degree, then to the cells
    sampling = coarse_sampling(grid, r, c, coarse_valid, interpolation)
    keys, flat = _coarse_columns(era5_block, grid)
    pos = np.stack([_positions(keys, k, "ERA5-Land") for k in sampling.keys])
    full = pd.date_range(days.min() - pd.Timedelta(days=LOOKBACK_DAYS), days.max(), freq="D")
    block = era5_block.reindex({cv.TIME: full})  # days the block lacks: NaN
    at = full.get_indexer(days)
    missing = [v for v in (*ERA5_NEEDED,) if v not in block.data_vars]
    if missing:
        raise InputError(f"ERA5-Land block lacks {missing}; ingest every variable of {ERA5_NEEDED}")
    for name in ERA5_NEEDED:
        values = flat(np.asarray(block[name].values))
        coarse = {name: values[at]}
        if name == "tp":
            tp = values.astype(np.float64)
            for sum_name, window in TP_SUMS.items():
                total = np.zeros((len(days), tp.shape[1]))
                for k in range(window - 1, -1, -1):  # oldest first: a fixed order
                    total += tp[at - k]
                coarse[sum_name] = total
        for feature, daily_coarse in coarse.items():
            for d0 in range(0, len(days), DAY_CHUNK):  # a few days at a time: bilinear temporaries stay small
                d1 = min(d0 + DAY_CHUNK, len(days))
                out[d0:d1, :, col[feature]] = _sample(daily_coarse[d0:d1], sampling, pos)

    # ---- LAI of the day at the cells
    lai = lai_block[LAI_VAR] if isinstance(lai_block, xr.Dataset) else lai_block
    fine = r * grid.ncols + c
    lkeys, lpoints = _fine_keys(lai, grid, "LAI")
    lai_cells = lpoints.isel({CELL: _positions(lkeys, fine, "LAI")})
    daily = lai_for_days(lai_cells.drop_vars([v for v in (CELL, cv.LAT, cv.LON, "row", "col") if v in lai_cells.coords]), days)
    out[:, :, col["lai"]] = np.asarray(daily.transpose(cv.TIME, CELL).values, dtype=np.float32)

    # ---- statics at the cells (the same for every day)
    skeys, spoints = _fine_keys(static_block[list(STATIC_NEEDED)], grid, "static")
    sat = spoints.isel({CELL: _positions(skeys, fine, "static")})
    for name in STATIC_NEEDED:
        v = np.asarray(sat[name].values).astype(np.float32)
        if name == "landcover":
            v = np.where(np.asarray(sat[name].values) == LANDCOVER_NODATA, np.float32(np.nan), v)
        out[:, :, col[name]] = v[None, :]
    return out


# ================================================================== loading blocks from the stores
class FeatureSources:
    """Lazy handles of the three covariate stores, and the coarse cells with ERA5-Land values.

    ``era5`` (daily cube, the :data:`ERA5_NEEDED` variables), ``lai`` (8-day
    composites) and ``static`` are lazy. ``coarse_valid`` (bool,
    ``grid.coarse_shape``) is where every ERA5-Land feature variable is
    finite on the cube's first day (sea and lakes are NaN); it is read once,
    when first needed. A plain class, not a dataclass: ``dask.delayed`` must
    pass it to a task as it is, not unpack and compute its lazy datasets.
    """

    def __init__(self, era5: xr.Dataset, lai: xr.DataArray, static: xr.Dataset) -> None:
        self.era5 = era5
        self.lai = lai
        self.static = static
        self._valid: npt.NDArray[np.bool_] | None = None

    def __repr__(self) -> str:
        return f"FeatureSources(era5 {dict(self.era5.sizes)}, lai {dict(self.lai.sizes)}, static {dict(self.static.sizes)})"

    @property
    def coarse_valid(self) -> npt.NDArray[np.bool_]:
        if self._valid is None:
            if self.era5.sizes[cv.TIME] == 0:
                raise InputError("the ERA5-Land cube holds no complete day; ingest ERA5-Land first")
            first = self.era5[list(ERA5_NEEDED)].isel({cv.TIME: 0}).compute()
            self._valid = np.logical_and.reduce([np.isfinite(np.asarray(first[v].values)) for v in ERA5_NEEDED])
        return self._valid


def open_feature_sources(
    store: Store, *, era5_relpath: str = ERA5_RELPATH, lai_relpath: str = LAI_RELPATH, static_relpath: str = STATIC_RELPATH
) -> FeatureSources:
    """Open the daily ERA5-Land cube, the 8-day LAI and the static layers lazily (nothing is computed)."""
    era5 = open_era5land_daily(store, era5_relpath)
    missing = [v for v in ERA5_NEEDED if v not in era5.data_vars]
    if missing:
        raise InputError(f"ERA5-Land cube {store.url_of(era5_relpath)} lacks {missing}; ingest every ERA5-Land variable")
    return FeatureSources(
        era5=era5[list(ERA5_NEEDED)], lai=open_lai(store, lai_relpath)[LAI_VAR], static=open_static(store, static_relpath)
    )


@dataclass(frozen=True)
class FeatureBlock:
    """Features of ``days`` x cells ``(rows, cols)``: ``values`` float32 ``(n_days, n_cells, n_features)``."""

    values: npt.NDArray[np.float32]
    days: pd.DatetimeIndex
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    names: tuple[str, ...] = FEATURE_NAMES


def coarse_window(
    grid: GridSpec, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], valid: Any, interpolation: cv.Interpolation
) -> dict[str, slice]:
    """The smallest (lat, lon) window of the coarse cube that the 1 km cells ``rows, cols`` read (coast rule included)."""
    needed = coarse_sampling(grid, rows, cols, valid, interpolation).needed
    if not needed.size:
        return {cv.LAT: slice(0, 0), cv.LON: slice(0, 0)}
    ncc = grid.coarse_shape[1]
    nr, nc = needed // ncc, needed % ncc
    return {cv.LAT: slice(int(nr.min()), int(nr.max()) + 1), cv.LON: slice(int(nc.min()), int(nc.max()) + 1)}


def _era5_days(sources: FeatureSources, days: pd.DatetimeIndex) -> xr.Dataset:
    """The cube's days from the first look-back day to the last day (what the store holds of them)."""
    first = days.min() - pd.Timedelta(days=LOOKBACK_DAYS)
    return sources.era5.sel({cv.TIME: slice(first, days.max())})


def _lai_days(sources: FeatureSources, days: pd.DatetimeIndex) -> xr.DataArray:
    """Exactly the composites that bracket the days (so every path interpolates between the same two)."""
    starts = pd.DatetimeIndex(sources.lai[cv.TIME8].values)
    order = np.argsort(starts.values, kind="stable")
    i0, i1, _ = lai_weights(starts[order], days)
    return sources.lai.isel({cv.TIME8: np.sort(order[np.unique(np.concatenate([i0, i1]))])})


def _points(
    da: xr.Dataset | xr.DataArray, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], dim: str, names: tuple[str, str]
) -> Any:
    sel = da.isel({cv.LAT: xr.DataArray(rows, dims=dim), cv.LON: xr.DataArray(cols, dims=dim)})
    sel = sel.drop_vars([v for v in (cv.LAT, cv.LON) if v in sel.coords])
    return sel.assign_coords({names[0]: (dim, rows), names[1]: (dim, cols)})


def features_at_cells(
    sources: FeatureSources,
    grid: GridSpec,
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    days: Sequence[Any] | pd.DatetimeIndex,
    *,
    interpolation: cv.Interpolation = "nearest",
) -> FeatureBlock:
    """Features at scattered fine cells (e.g. station cells): point reads of exactly the coarse cells, LAI and statics needed."""
    days = pd.DatetimeIndex(days).normalize()
    r = np.asarray(rows, dtype=np.int64).ravel()
    c = np.asarray(cols, dtype=np.int64).ravel()
    valid = sources.coarse_valid
    needed = coarse_sampling(grid, r, c, valid, interpolation).needed
    ncc = grid.coarse_shape[1]
    era5 = _points(_era5_days(sources, days), needed // ncc, needed % ncc, COARSE, ("coarse_row", "coarse_col"))
    ucells = np.unique(r * grid.ncols + c)
    ur, uc = ucells // grid.ncols, ucells % grid.ncols
    lai = _points(_lai_days(sources, days), ur, uc, CELL, ("row", "col"))
    static = _points(sources.static[list(STATIC_NEEDED)], ur, uc, CELL, ("row", "col"))
    era5, lai, static = dask.compute(era5, lai, static)
    values = build_features(era5, lai, static, grid, days, r, c, coarse_valid=sources.coarse_valid, interpolation=interpolation)
    return FeatureBlock(values, days, r, c)


def features_for_tile(
    sources: FeatureSources,
    grid: GridSpec,
    tile: Tile,
    days: Sequence[Any] | pd.DatetimeIndex,
    *,
    interpolation: cv.Interpolation = "nearest",
    land_only: bool = True,
) -> FeatureBlock:
    """Features of every (land) cell of a tile: one window of each store, row-major cells.

    Loads the tile's statics and LAI composites, and the window of coarse
    cells the tile reads (its own coarse cells, the bilinear neighbours and
    the coast-rule stand-ins) with the look-back days.
    """
    days = pd.DatetimeIndex(days).normalize()
    static = sources.static.isel({cv.LAT: tile.rows, cv.LON: tile.cols}).compute()
    rr, cc = np.meshgrid(np.arange(tile.rows.start, tile.rows.stop), np.arange(tile.cols.start, tile.cols.stop), indexing="ij")
    if land_only:
        land = np.asarray(static["land"].values, dtype=bool)
        rr, cc = rr[land], cc[land]
    r, c = rr.ravel().astype(np.int64), cc.ravel().astype(np.int64)
    era5 = _era5_days(sources, days).isel(coarse_window(grid, r, c, sources.coarse_valid, interpolation))
    lai = _lai_days(sources, days).isel({cv.LAT: tile.rows, cv.LON: tile.cols})
    era5, lai = dask.compute(era5, lai)
    values = build_features(era5, lai, static, grid, days, r, c, coarse_valid=sources.coarse_valid, interpolation=interpolation)
    return FeatureBlock(values, days, r, c)


def delayed_features_for_tile(
    sources: FeatureSources,
    grid: GridSpec,
    tile: Tile,
    days: Sequence[Any] | pd.DatetimeIndex,
    *,
    interpolation: cv.Interpolation = "nearest",
    land_only: bool = True,
) -> Any:
    """A ``dask.delayed`` :func:`features_for_tile`: the inference task of one (tile, time block); builds without computing."""
    return dask.delayed(features_for_tile)(sources, grid, tile, pd.DatetimeIndex(days), interpolation=interpolation, land_only=land_only)
