"""The training table: one row per (cell, depth, day) with a target, every feature beside it.

:func:`build_training_table` reads the daily cell targets
(``insitu/daily``: ``sm_raw`` and, once matched, ``sm_matched``) and
extracts the features at the station cells through the one feature
function (:func:`smci_dask.features.features_at_cells`), so a model sees in
training exactly what inference builds for the same cell and day.

Extraction is vectorised: the target days are cut into blocks of
``block_days`` consecutive calendar days; per block, every station cell with
a target in it is read at once (point reads of the coarse cells, LAI and
statics it needs) and the features of all its (day, cell) pairs are gathered
by index, with no Python loop over stations or days. Blocks are independent
``dask.delayed`` tasks run on the active scheduler (threads, or the
cluster's client when one is active).

Columns (:data:`ID_COLUMNS`, :data:`TARGET_COLUMNS`, then
:data:`~smci_dask.features.FEATURE_NAMES`): ``row``, ``col`` (fine cell,
int32), ``cell_id`` (``row * ncols + col``, int64: the group of grouped
cross-validation), ``lat``, ``lon`` (cell centre, degrees), ``depth_cm``
(int16), ``time`` (day), ``year`` (int16), ``station_ids`` (comma-joined ids
of the stations averaged into the cell, categorical), ``n_stations``,
``climate_zone`` (Koppen code at the cell, 0 = none, uint8); ``sm_raw``,
``sm_matched`` (m3/m3; ``sm_matched`` NaN where the cell-depth has no match,
absent before :func:`smci_dask.pipeline.stations.match_targets` ran: NaN);
features float32 in their units (:data:`~smci_dask.features.FEATURES`).

:func:`write_training_table` writes it as Parquet partitioned by
``depth_cm`` at ``training/table``; :func:`load_training_table` reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import dask
import numpy as np
import numpy.typing as npt
import pandas as pd

from smci_dask import conventions as cv
from smci_dask.features.build import FEATURE_NAMES, FeatureSources, features_at_cells, open_feature_sources
from smci_dask.grid.spec import GridSpec
from smci_dask.insitu.daily import load_cell_daily
from smci_dask.io import Store, read_parquet, write_parquet

#: Where the table lives below the store root.
TABLE_RELPATH: Final = "training/table"
#: Calendar days per extraction block.
BLOCK_DAYS: Final = 32
ID_COLUMNS: Final = ("row", "col", "cell_id", "lat", "lon", "depth_cm", "time", "year", "station_ids", "n_stations", "climate_zone")
TARGET_COLUMNS: Final = ("sm_raw", "sm_matched")
TABLE_COLUMNS: Final = ID_COLUMNS + TARGET_COLUMNS + FEATURE_NAMES

_DAY: Final = np.timedelta64(1, "D")


def _block_features(
    sources: FeatureSources,
    grid: GridSpec,
    keys: npt.NDArray[np.int64],
    times: npt.NDArray[np.datetime64],
    interpolation: cv.Interpolation,
) -> npt.NDArray[np.float32]:
    """Features of the (cell key, day) pairs of one block: every cell x every day of the block at once, then gathered."""
    cells = np.unique(keys)
    days = np.unique(times)
    with dask.config.set(scheduler="synchronous"):  # inside a task: never nest a second scheduler
        block = features_at_cells(sources, grid, cells // grid.ncols, cells % grid.ncols, days, interpolation=interpolation)
    return block.values[np.searchsorted(days, times), np.searchsorted(cells, keys)]


def build_training_table(
    store: Store,
    grid: GridSpec,
    *,
    days: Sequence[Any] | pd.DatetimeIndex | None = None,
    depths: Sequence[int] | None = None,
    interpolation: cv.Interpolation = "nearest",
    block_days: int = BLOCK_DAYS,
    sources: FeatureSources | None = None,
) -> pd.DataFrame:
    """One row per (cell, depth, day) with a target, with every feature (see the module docstring).

    Parameters
    ----------
    store : Store
        Store root with ``insitu/daily`` and the covariate stores.
    grid : GridSpec
        The region.
    days : sequence of dates, optional
        Only these days; default every day with a target.
    depths : sequence of int, optional
        Only these product depths (cm); default all.
    interpolation : {'nearest', 'bilinear'}
        ERA5-Land to 1 km (the setting ``inference.interpolation``: training must use the inference's).
    block_days : int
        Calendar days per extraction block (memory: block cells x days x features x 4 bytes).
    sources : FeatureSources, optional
        Opened covariate stores (default: opened from ``store``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`, rows in the order of ``insitu/daily``
        (cell, depth, day).
    """
    targets = load_cell_daily(store, depths=depths)
    if days is not None:
        targets = targets[targets[cv.TIME].isin(pd.DatetimeIndex(days).normalize())]
    targets = targets.reset_index(drop=True)
    n = len(targets)
    rows = targets["row"].to_numpy(dtype=np.int64)
    cols = targets["col"].to_numpy(dtype=np.int64)
    keys = rows * grid.ncols + cols
    times = targets[cv.TIME].to_numpy(dtype="datetime64[ns]")
    features = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    sources = sources if sources is not None else open_feature_sources(store)
    _ = sources.coarse_valid  # read once here, so every block task carries it

    cells = np.unique(keys)
    zone = np.zeros(cells.size, dtype=np.uint8)
    if n:
        first = times.min().astype("datetime64[D]")
        block = ((times.astype("datetime64[D]") - first) // _DAY // max(int(block_days), 1)).astype(np.int64)
        order = np.argsort(block, kind="stable")
        bounds = np.flatnonzero(np.diff(block[order])) + 1
        parts = np.split(order, bounds)
        tasks = [dask.delayed(_block_features)(sources, grid, keys[p], times[p], interpolation) for p in parts]
        for p, values in zip(parts, dask.compute(*tasks), strict=True):
            features[p] = values
        cz = sources.static["climate_zone"].isel({cv.LAT: _indexer(cells // grid.ncols), cv.LON: _indexer(cells % grid.ncols)}).compute()
        zone = np.asarray(cz.values, dtype=np.uint8)

    out = pd.DataFrame(
        {
            "row": rows.astype(np.int32),
            "col": cols.astype(np.int32),
            "cell_id": keys,
            "lat": targets["lat"].to_numpy(dtype=np.float64),
            "lon": targets["lon"].to_numpy(dtype=np.float64),
            "depth_cm": targets["depth_cm"].to_numpy(dtype=np.int16),
            cv.TIME: times,
            "year": pd.DatetimeIndex(times).year.to_numpy(dtype=np.int16),
            "station_ids": targets["station_ids"].astype("category"),
            "n_stations": targets["n_stations"].to_numpy(),
            "climate_zone": zone[np.searchsorted(cells, keys)] if n else np.zeros(0, np.uint8),
            "sm_raw": targets["sm_raw"].to_numpy(dtype=np.float64),
            "sm_matched": targets["sm_matched"].to_numpy(dtype=np.float64) if "sm_matched" in targets else np.full(n, np.nan),
        }
    )
    feats = pd.DataFrame(features, columns=list(FEATURE_NAMES))
    return pd.concat([out, feats], axis=1)


def _indexer(values: npt.NDArray[np.int64]) -> Any:
    import xarray as xr

    return xr.DataArray(values, dims="cell")


def write_training_table(df: pd.DataFrame, store: Store, relpath: str = TABLE_RELPATH) -> None:
    """Write the table as Parquet partitioned by ``depth_cm`` (replacing what ``relpath`` held)."""
    store.rm(relpath)
    write_parquet(df, store, relpath, partition_cols=["depth_cm"])


def load_training_table(store: Store, relpath: str = TABLE_RELPATH, *, depths: Sequence[int] | None = None) -> pd.DataFrame:
    """Read the table back (only ``depths`` when given), in :data:`TABLE_COLUMNS` order, sorted as written per depth."""
    filters = [("depth_cm", "in", [int(d) for d in depths])] if depths is not None else None
    df = read_parquet(store, relpath, filters=filters)
    df["depth_cm"] = df["depth_cm"].astype(np.int16)
    df = df[[c for c in TABLE_COLUMNS if c in df.columns] + [c for c in df.columns if c not in TABLE_COLUMNS]]
    return df.sort_values(["row", "col", "depth_cm", cv.TIME], kind="stable").reset_index(drop=True)
