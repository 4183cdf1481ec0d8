"""One inference task: (block of days x spatial tile) -> features a day at a time -> 10 depths -> region writes.

A task runs on a worker and needs nothing but small, picklable values
(:class:`TaskContext`, :class:`PredictTask`): it opens the covariate stores
itself, reads each one once (the tile's statics and LAI composites, and the
window of coarse ERA5-Land cells the tile reads, with the 27 look-back days
of the precipitation sums), and then, **one day at a time**, builds that
day's features with the one feature function
(:func:`smci_dask.features.build_features`, the function training uses),
predicts every depth and quantises (and, for a product with ``sm_spread``,
the spread of the trees, :meth:`~smci_dask.models.Ensemble.predict_spread`). Every ``write_days`` days the buffered
days are written as one chunk-aligned region of the product, so memory is
bounded by the tile, not by the time block. The models come from
:func:`smci_dask.models.store.load_model_cached`: each worker process reads
a depth's member files once per model checksum and keeps them; the task
graph carries only the run's name and checksums. Predictors run with one
thread (``n_jobs=1``): parallelism comes from tasks.

After its last region write a task writes its completion marker
(:func:`smci_dask.products.smci1km.write_marker`); a task without a marker
is redone whole by the next run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates.lai import lai_weights
from smci_dask.errors import InputError
from smci_dask.features.build import (
    CELL,
    FEATURE_NAMES,
    LOOKBACK_DAYS,
    STATIC_NEEDED,
    FeatureSources,
    build_features,
    coarse_window,
    open_feature_sources,
)
from smci_dask.grid.spec import GridSpec, Tile
from smci_dask.io import Store
from smci_dask.models.estimators import Ensemble
from smci_dask.models.store import load_card, load_model_cached, model_checksum
from smci_dask.products.smci1km import Marker, dequantise, quantise, write_marker, write_product_region


@dataclass(frozen=True)
class TaskContext:
    """What every task of a run shares (small and picklable: no data, no models).

    ``checksums``: depth (cm) -> the model checksum the run was planned with;
    ``origin``: the product's first day; ``write_days``: days per region write.
    """

    store: Store
    relpath: str
    grid: GridSpec
    run: str
    experiment: str
    checksums: Mapping[int, str]
    origin: pd.Timestamp
    interpolation: cv.Interpolation = "nearest"
    write_days: int = 8
    token: str = ""  # unique per run: workers open the covariate stores once per run (see open_sources_cached)
    uncertainty: bool = False  # also write sm_spread (the product holds it)


@dataclass(frozen=True)
class PredictTask:
    """One task: the days (a subset of time block ``block``) of ``tile`` to predict."""

    block: int
    tile: Tile
    days: pd.DatetimeIndex

    @property
    def key(self) -> str:
        return f"predict-b{self.block}-y{self.tile.index[0]}-x{self.tile.index[1]}-{self.days[0]:%Y%m%d}-{self.days[-1]:%Y%m%d}"


@dataclass
class TaskResult:
    """What a task did: land cells, days, cell-days, seconds per part, written chunks."""

    block: int
    tile: tuple[int, int]
    days: int
    land_cells: int
    seconds: dict[str, float] = field(default_factory=dict)
    regions: int = 0

    @property
    def cell_days(self) -> int:
        return self.days * self.land_cells


# ================================================================== inputs of a task
@dataclass(frozen=True)
class TileInputs:
    """The covariate blocks of one task, read once: ERA5-Land window, LAI and statics in point form (land cells)."""

    era5: xr.Dataset
    lai: xr.DataArray
    static: xr.Dataset
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    local: npt.NDArray[np.int64]  # flat index of each land cell inside the tile (row-major)
    coarse_valid: npt.NDArray[np.bool_]


def _point_form(da: Any, lr: npt.NDArray[np.int64], lc: npt.NDArray[np.int64], rows: Any, cols: Any) -> Any:
    sel = da.isel({cv.LAT: xr.DataArray(lr, dims=CELL), cv.LON: xr.DataArray(lc, dims=CELL)})
    sel = sel.drop_vars([v for v in (cv.LAT, cv.LON) if v in sel.coords])
    return sel.assign_coords(row=(CELL, rows), col=(CELL, cols))


def load_tile_inputs(
    sources: FeatureSources, grid: GridSpec, tile: Tile, days: pd.DatetimeIndex, interpolation: cv.Interpolation
) -> TileInputs:
    """Read the tile's covariates once for ``days``: what :func:`features_for_tile` reads, kept for per-day calls.

    The same windows as :func:`smci_dask.features.features_for_tile` (the
    tile's statics and LAI, the coarse cells its land cells read with the
    look-back days), in the point form :func:`build_features` accepts.
    """
    static = sources.static[[*STATIC_NEEDED, "land"]].isel({cv.LAT: tile.rows, cv.LON: tile.cols}).compute()
    land = np.asarray(static["land"].values, dtype=bool)
    lr, lc = np.nonzero(land)
    rows = (lr + tile.rows.start).astype(np.int64)
    cols = (lc + tile.cols.start).astype(np.int64)
    window = coarse_window(grid, rows, cols, sources.coarse_valid, interpolation)
    first = days.min() - pd.Timedelta(days=LOOKBACK_DAYS)
    era5 = sources.era5.sel({cv.TIME: slice(first, days.max())}).isel(window)
    starts = pd.DatetimeIndex(sources.lai[cv.TIME8].values)
    order = np.argsort(starts.values, kind="stable")
    i0, i1, _ = lai_weights(starts[order], days)
    lai = sources.lai.isel({cv.TIME8: np.sort(order[np.unique(np.concatenate([i0, i1]))])})
    lai = lai.isel({cv.LAT: tile.rows, cv.LON: tile.cols})
    era5, lai = dask.compute(era5, lai)
    lai_pts = _point_form(lai, lr, lc, rows, cols)
    static_pts = _point_form(static[list(STATIC_NEEDED)], lr, lc, rows, cols)
    local = (lr * tile.shape[1] + lc).astype(np.int64)
    return TileInputs(era5, lai_pts, static_pts, rows, cols, local, sources.coarse_valid)


def tile_features(inputs: TileInputs, grid: GridSpec, days: pd.DatetimeIndex, interpolation: cv.Interpolation) -> npt.NDArray[np.float32]:
    """Features ``(n_days, n_land_cells, n_features)`` of the tile's land cells from its loaded inputs."""
    return build_features(
        inputs.era5,
        inputs.lai,
        inputs.static,
        grid,
        days,
        inputs.rows,
        inputs.cols,
        coarse_valid=inputs.coarse_valid,
        interpolation=interpolation,
    )


# ================================================================== models on the worker
def load_run_models(store: Store, run: str, experiment: str, checksums: Mapping[int, str]) -> dict[int, Ensemble]:
    """Every depth's ensemble through the worker's cache, checked against the checksums the run was planned with."""
    models: dict[int, Ensemble] = {}
    for depth, want in checksums.items():
        card = load_card(store, run, experiment, depth)
        if model_checksum(card) != want:
            raise InputError(
                f"model {store.url_of('models', run, experiment, f'{depth}cm')} changed while `smci predict` ran; "
                "run `smci predict` again (finished chunks are kept)"
            )
        models[int(depth)] = load_model_cached(store, run, experiment, depth, features=FEATURE_NAMES, n_jobs=1)
    return models


# ================================================================== covariate stores on the worker
#: Covariate stores opened in this process (a worker), by (store URL, run token): opened once per run, not per task.
_SOURCES: dict[tuple[str, str], FeatureSources] = {}
_SOURCES_MAX = 4


def open_sources_cached(ctx: TaskContext) -> FeatureSources:
    """:func:`open_feature_sources` once per worker and run (lazy handles plus the coarse validity mask)."""
    key = (ctx.store.url, ctx.token)
    hit = _SOURCES.get(key) if ctx.token else None
    if hit is not None:
        return hit
    sources = open_feature_sources(ctx.store)
    _ = sources.coarse_valid
    if ctx.token:
        if len(_SOURCES) >= _SOURCES_MAX:
            _SOURCES.pop(next(iter(_SOURCES)))
        _SOURCES[key] = sources
    return sources


# ================================================================== the task
def _runs(days: pd.DatetimeIndex, size: int) -> list[pd.DatetimeIndex]:
    """Consecutive days cut into runs of at most ``size`` days (a gap starts a new run)."""
    out: list[pd.DatetimeIndex] = []
    ordinal = (days - days[0]).days.to_numpy()
    for part in np.split(np.arange(len(days)), np.flatnonzero(np.diff(ordinal) != 1) + 1):
        for k in range(0, len(part), size):
            out.append(days[part[k : k + size]])
    return out


def run_task(ctx: TaskContext, task: PredictTask, *, sources: FeatureSources | None = None) -> TaskResult:
    """Predict ``task``'s days of its tile at every depth, write them, then its marker (on a worker).

    Parameters
    ----------
    ctx : TaskContext
        Shared settings of the run.
    task : PredictTask
        The tile and days.
    sources : FeatureSources, optional
        Already opened covariate stores (default: opened here, lazily).

    Returns
    -------
    TaskResult
    """
    seconds = {"read": 0.0, "features": 0.0, "predict": 0.0, "write": 0.0}
    if ctx.uncertainty:
        seconds["spread"] = 0.0
    t = time.perf_counter()
    with dask.config.set(scheduler="synchronous"):  # inside a task: never nest a second scheduler
        sources = sources if sources is not None else open_sources_cached(ctx)
        inputs = load_tile_inputs(sources, ctx.grid, task.tile, task.days, ctx.interpolation)
    models = load_run_models(ctx.store, ctx.run, ctx.experiment, ctx.checksums) if inputs.rows.size else {}
    seconds["read"] += time.perf_counter() - t

    depths = [int(d) for d in cv.DEPTHS_CM]
    ny, nx = task.tile.shape
    regions = 0
    for run_days in _runs(task.days, max(1, ctx.write_days)) if inputs.rows.size else []:
        buffer = np.full((len(run_days), len(depths), ny * nx), np.nan, dtype=np.float32)
        spread = np.full_like(buffer, np.nan) if ctx.uncertainty else None
        for k, day in enumerate(run_days):
            t = time.perf_counter()
            feats = tile_features(inputs, ctx.grid, pd.DatetimeIndex([day]), ctx.interpolation)[0]
            seconds["features"] += time.perf_counter() - t
            t = time.perf_counter()
            for j, depth in enumerate(depths):
                buffer[k, j, inputs.local] = dequantise(quantise(models[depth].predict(feats)))
            seconds["predict"] += time.perf_counter() - t
            if spread is not None:
                t = time.perf_counter()
                for j, depth in enumerate(depths):
                    spread[k, j, inputs.local] = dequantise(quantise(models[depth].predict_spread(feats)))
                seconds["spread"] += time.perf_counter() - t
        t = time.perf_counter()
        t0 = int((run_days[0] - ctx.origin).days)
        shape = (len(run_days), len(depths), ny, nx)
        write_product_region(
            ctx.store,
            ctx.relpath,
            buffer.reshape(shape),
            t0=t0,
            tile=task.tile,
            spread=None if spread is None else spread.reshape(shape),
        )
        regions += 1
        seconds["write"] += time.perf_counter() - t
    t = time.perf_counter()
    result = TaskResult(task.block, task.tile.index, len(task.days), int(inputs.rows.size), seconds, regions)
    for run_days in _runs(task.days, len(task.days)):
        marker = Marker(task.block, task.tile.index, run_days[0], run_days[-1])
        write_marker(ctx.store, ctx.relpath, marker, {"land_cells": result.land_cells, "run": ctx.run})
    seconds["write"] += time.perf_counter() - t
    return result
