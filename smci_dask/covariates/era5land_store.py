"""The daily ERA5-Land store ``covariates/era5land``: template first, whole-chunk writes, complete days.

Split from :mod:`smci_dask.covariates.era5land` (reading and daily
aggregation); see that module's docstring for the rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates.era5land import COORD_TOL
from smci_dask.errors import InputError
from smci_dask.io import Store, open_zarr, write_zarr, zarr_exists
from smci_dask.io.arrays import write_zarr_blocks

# ------------------------------------------------------------------ the daily store
#: Days per Zarr chunk along time in ``covariates/era5land``: one inference time block (inference.time_block).
#: Chosen by benchmarks/bench_era5_chunks.py (see benchmarks/README.md).
DAILY_TIME_CHUNK = 32
#: Coarse cells per Zarr chunk along lat and lon (64 x 64 x 32 days = 0.5 MB per variable): an inference tile's
#: 43 x 43-cell footprint reads at most 2 x 2 chunks instead of the whole region. Chosen by the same benchmark.
DAILY_SPACE_CHUNK = 64
#: Root attribute listing the complete days of the store as ``[[first, last], ...]`` ISO date ranges.
COMPLETE_DAYS_ATTR = "complete_days"


@dataclass(frozen=True)
class DailyWriteReport:
    """What :func:`write_era5land_daily` did.

    ``written``: days written by this call; ``skipped``: days of the input
    that the store already held (left as they were); ``chunks``: time chunks
    rewritten; ``created``: whether the store was created by this call.
    """

    written: list[pd.Timestamp]
    skipped: list[pd.Timestamp]
    chunks: int
    created: bool


def day_ranges(days: Sequence[Any] | pd.DatetimeIndex) -> list[list[str]]:
    """Days (any order, repeats allowed) -> sorted ``[[first, last], ...]`` runs of consecutive days (ISO dates).

    The compact form in which the stores list their complete days (an attribute).
    """
    days = pd.DatetimeIndex(sorted(set(pd.DatetimeIndex(days))))
    if not len(days):
        return []
    ordinal = (days - days[0]).days.to_numpy()
    breaks = np.flatnonzero(np.diff(ordinal) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks - 1, [len(days) - 1]])
    return [[days[a].strftime("%Y-%m-%d"), days[b].strftime("%Y-%m-%d")] for a, b in zip(starts, ends, strict=True)]


def ranges_to_days(ranges: Sequence[Sequence[str]]) -> pd.DatetimeIndex:
    """``[[first, last], ...]`` (:func:`day_ranges`) -> the days."""
    parts = [pd.date_range(first, last, freq="D") for first, last in ranges]
    return pd.DatetimeIndex(np.concatenate([p.values for p in parts])) if parts else pd.DatetimeIndex([], dtype="datetime64[ns]")


def complete_days(store: Store, relpath: str) -> pd.DatetimeIndex:
    """The days the daily store holds completely (00:00 of each day), sorted; empty if there is no store.

    Parameters
    ----------
    store : Store
    relpath : str
        The daily cube below ``store`` (e.g. ``"covariates/era5land"``).
    """
    if not zarr_exists(store, relpath):
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    return ranges_to_days(open_zarr(store, relpath).attrs.get(COMPLETE_DAYS_ATTR, []))


def open_era5land_daily(store: Store, relpath: str, *, complete_only: bool = True) -> xr.Dataset:
    """Open the daily cube lazily; by default only its complete days.

    Parameters
    ----------
    store : Store
    relpath : str
        The daily cube below ``store``.
    complete_only : bool
        Select the days listed as complete (the time axis also holds the
        not-yet-written days of its chunks, as NaN).

    Returns
    -------
    xarray.Dataset
        Dims ``(time, lat, lon)``, units as :data:`DAILY_UNITS` (mm day-1, K,
        m3 m-3, MJ m-2 day-1, m2 m-2).
    """
    ds = open_zarr(store, relpath)
    if complete_only:
        ds = ds.sel({cv.TIME: ranges_to_days(ds.attrs.get(COMPLETE_DAYS_ATTR, []))})
    return ds


def _empty_block(ds: xr.Dataset, names: Sequence[str], times: pd.DatetimeIndex, chunks: tuple[int, int, int]) -> xr.Dataset:
    """Lazy all-NaN float32 variables ``names`` over ``times`` x ds's lat/lon (a template; never computed)."""
    import dask.array as dsa

    shape = (len(times), ds.sizes[cv.LAT], ds.sizes[cv.LON])
    out = xr.Dataset(coords={cv.TIME: times.values.astype("datetime64[ns]"), cv.LAT: ds[cv.LAT], cv.LON: ds[cv.LON]})
    for name in names:
        data = dsa.full(shape, np.nan, dtype=np.float32, chunks=chunks)
        out[name] = ((cv.TIME, cv.LAT, cv.LON), data, dict(ds[name].attrs))
    out[cv.TIME].attrs = dict(ds[cv.TIME].attrs)
    return out


def _check_daily(ds: xr.Dataset) -> pd.DatetimeIndex:
    for name in ds.data_vars:
        if ds[name].dims != (cv.TIME, cv.LAT, cv.LON):
            raise InputError(f"daily ERA5-Land variable {name!r} has dims {ds[name].dims}; expected {(cv.TIME, cv.LAT, cv.LON)}")
    days = pd.DatetimeIndex(ds[cv.TIME].values)
    if days.has_duplicates or (days != days.normalize()).any():
        raise InputError("daily ERA5-Land data: times must be distinct days at 00:00; build them with daily_from_hourly")
    return days


def write_era5land_daily(
    ds: xr.Dataset,
    store: Store,
    relpath: str,
    *,
    origin: str | pd.Timestamp | None = None,
    time_chunk: int = DAILY_TIME_CHUNK,
    space_chunk: int | None = DAILY_SPACE_CHUNK,
) -> DailyWriteReport:
    """Write daily ERA5-Land covariates into the Zarr cube at ``relpath``: template first, then whole chunks.

    The cube's time axis is a daily calendar from ``origin`` in chunks of
    ``time_chunk`` days, extended (as a template: coordinates, no data) as
    later days arrive, so every day has a fixed place and files may come in
    any order. Days the store already holds are skipped (their values stay;
    re-ingesting the same files changes nothing). Every time chunk that gets
    a new day is rewritten whole: its days already in the store are read
    back, the new days added, and all variables written over the chunk's full
    time slice, so no chunk object is ever left half written. The root
    attribute ``complete_days`` is updated only after all chunks are
    written: a run killed midway leaves days that are not listed (readers
    use :func:`open_era5land_daily`), and the next run writes them again.
    One writer per store at a time.

    Parameters
    ----------
    ds : xarray.Dataset
        Complete days from :func:`daily_from_hourly` (subset to the region):
        dims ``(time, lat, lon)``, float32, units as :data:`DAILY_UNITS`
        (mm day-1, K, m3 m-3, MJ m-2 day-1, m2 m-2).
    store : Store
        Any store URL (local, ``memory://``, ``s3://``).
    relpath : str
        The cube below ``store``, e.g. ``"covariates/era5land"``.
    origin : str or Timestamp, optional
        First day of the time axis when the store is created (default:
        1 January of the earliest day); ignored afterwards. Days before the
        store's origin are refused.
    time_chunk : int
        Days per chunk when the store is created.
    space_chunk : int, optional
        Cells per chunk along lat and lon when the store is created (default
        :data:`DAILY_SPACE_CHUNK`; ``None``: the whole region).

    Returns
    -------
    DailyWriteReport

    Raises
    ------
    InputError
        The data's variables or grid differ from the store's, a day lies
        before the store's origin, or the times are not distinct days. The
        store is left as it was.
    """
    days = _check_daily(ds)
    names = [str(v) for v in ds.data_vars]
    if not names:
        raise InputError("daily ERA5-Land data hold no variable; nothing to write")
    if time_chunk < 1:
        raise InputError(f"time_chunk {time_chunk} must be at least 1 day")
    created = not zarr_exists(store, relpath)
    if created:
        start = pd.Timestamp(origin) if origin is not None else pd.Timestamp(year=days.min().year, month=1, day=1)
        if start != start.normalize():
            raise InputError(f"origin {start} must be a day at 00:00")
        nlat, nlon = ds.sizes[cv.LAT], ds.sizes[cv.LON]
        chunks = (time_chunk, min(space_chunk or nlat, nlat), min(space_chunk or nlon, nlon))
        stored = pd.DatetimeIndex([], dtype="datetime64[ns]")
        length = 0
        attrs = {k: v for k, v in ds.attrs.items() if k != "source_files"}
    else:
        current = open_zarr(store, relpath)
        start = pd.Timestamp(current[cv.TIME].values[0])
        chunks = tuple(current[names[0]].encoding.get("chunks") or (time_chunk, current.sizes[cv.LAT], current.sizes[cv.LON]))
        _check_like_store(ds, current, store, relpath)
        stored = ranges_to_days(current.attrs.get(COMPLETE_DAYS_ATTR, []))
        length = current.sizes[cv.TIME]
        attrs = dict(current.attrs)
    if len(days) and days.min() < start:
        raise InputError(
            f"store {store.url_of(relpath)}: its days start at {start:%Y-%m-%d}, the data at {days.min():%Y-%m-%d}; "
            "ingest into a new store with an earlier origin"
        )
    new = days.difference(stored)
    skipped = days.intersection(stored)
    if not len(new):
        return DailyWriteReport([], list(skipped), 0, False)

    step = chunks[0]
    index = (new - start).days.to_numpy()
    needed = int((index.max() // step + 1) * step)  # the axis always ends on a chunk boundary
    if created or needed > length:
        times = start + pd.to_timedelta(np.arange(length, needed), unit="D")
        template = _empty_block(ds, names, pd.DatetimeIndex(times), chunks)
        if created:
            template.attrs = {**attrs, COMPLETE_DAYS_ATTR: []}
            encoding: dict[str, Any] = {name: {"chunks": chunks, "_FillValue": np.float32(np.nan), "dtype": "float32"} for name in names}
            encoding[cv.TIME] = {"units": f"days since {start:%Y-%m-%d}", "calendar": "proleptic_gregorian", "dtype": "int64"}
            write_zarr(template, store, relpath, mode="w-", encoding=encoding, compute=False)
        else:  # an append rewrites the root attributes: give it the current ones, complete_days unchanged
            template.attrs = dict(attrs)
            write_zarr(template.drop_vars([cv.LAT, cv.LON]), store, relpath, mode="a", append_dim=cv.TIME, compute=False)

    touched = np.unique(index // step)
    current = open_zarr(store, relpath) if len(stored) else None
    blocks = (blk for k in touched for blk in _time_chunk_blocks(ds, current, names, start, int(k) * step, step, new, stored))
    # the group is opened once (not once per variable and chunk); the complete days are listed after the last chunk
    write_zarr_blocks(store, relpath, blocks, attrs={COMPLETE_DAYS_ATTR: day_ranges(stored.union(new))})
    return DailyWriteReport(list(new), list(skipped), len(touched), created)


def _check_like_store(ds: xr.Dataset, current: xr.Dataset, store: Store, relpath: str) -> None:
    where = f"store {store.url_of(relpath)}"
    have, want = set(map(str, ds.data_vars)), set(map(str, current.data_vars))
    if have != want:
        missing, extra = sorted(want - have), sorted(have - want)
        detail = "; ".join(
            part
            for part in (f"missing {', '.join(missing)}" if missing else "", f"not in the store {', '.join(extra)}" if extra else "")
            if part
        )
        raise InputError(f"{where}: the daily data's variables differ from the store's ({detail}); ingest files with every variable")
    for dim in (cv.LAT, cv.LON):
        a, b = np.asarray(ds[dim].values, dtype=np.float64), np.asarray(current[dim].values, dtype=np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=COORD_TOL):
            raise InputError(
                f"{where}: the daily data's {dim} ({a.size} cells, {a.min():g}..{a.max():g}) differ from the store's "
                f"({b.size} cells, {b.min():g}..{b.max():g}); subset to the store's region with subset_to_grid first"
            )


def _time_chunk_blocks(
    ds: xr.Dataset,
    current: xr.Dataset | None,
    names: Sequence[str],
    start: pd.Timestamp,
    i0: int,
    step: int,
    new: pd.DatetimeIndex,
    stored: pd.DatetimeIndex,
) -> Iterator[tuple[str, tuple[slice, ...], np.ndarray]]:
    """The time chunk ``[i0, i0 + step)`` whole, one variable at a time: stored days kept, new days added, the rest NaN.

    Yields ``(name, region, block)`` for :func:`~smci_dask.io.arrays.write_zarr_blocks`; a generator, so
    only one variable's chunk is in memory at a time.
    """
    times = pd.DatetimeIndex(start + pd.to_timedelta(np.arange(i0, i0 + step), unit="D"))
    keep = times.intersection(stored)
    add = times.intersection(new)
    shape = (step, ds.sizes[cv.LAT], ds.sizes[cv.LON])
    region = (slice(i0, i0 + step), slice(None), slice(None))
    for name in names:
        block = np.full(shape, np.nan, dtype=np.float32)
        if current is not None and len(keep):
            block[times.get_indexer(keep)] = np.asarray(current[name].sel({cv.TIME: keep}).values, dtype=np.float32)
        block[times.get_indexer(add)] = np.asarray(ds[name].sel({cv.TIME: add}).values, dtype=np.float32)
        yield name, region, block
