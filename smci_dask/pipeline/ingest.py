"""Wiring of `smci ingest era5land`: hourly ERA5-Land files -> the daily cube ``covariates/era5land``.

The stage code lives in :mod:`smci_dask.covariates` (reading, daily rules,
the daily store); this module orders the work, runs it in parallel and keeps
the store consistent.

Steps of :func:`ingest_era5land`
--------------------------------
1. **Find** the files: every source is a file, a folder (its ERA5-Land files,
   recursively: ``*.nc``, ``*.grib``, ``*.zip`` ...) or a glob, local or any
   fsspec URL (:func:`find_era5land_files`).
2. **Scan** each file alone (one task per file): md5 of its bytes, its hours
   and variables, the reader's checks (format, units, duplicate hours) and
   whether it covers the configured region. Hours missing *inside* one file's
   span are an error (a broken download); hours missing *between* files are
   not (a month that has not arrived yet).
3. **Groups**: files whose days overlap form a group (normally one month
   file, or the per-variable files of a month). Each group is one task: it
   opens its files together with the *next* group's (whose first 00 UTC
   closes the group's last day), computes the days it owns that the store
   lacks, and stages them.
4. **Stage**: the computed days, and the raw hours of the days that cannot be
   completed yet, go to a staging area below the store
   (``<relpath>_ingest/staging/<run>``). Bad input, found while scanning or
   while reading the values (a corrupt byte), stops the run here with one
   :class:`~smci_dask.errors.InputError` naming the file: the run waits for
   its other tasks, removes the staging area and leaves the store as it was.
5. **Commit**: :func:`~smci_dask.covariates.write_era5land_daily` writes the
   staged days (whole time chunks, ``complete_days`` last); the land mask is
   written once beside the cube; the kept hours of held-back days are
   replaced; the staging area is removed.

Held-back days
--------------
A day the files touch but cannot complete is *held back*: its accumulations
need 00 UTC of the next day, which arrives with the next month's file, or
some of its 24 hours are not in the files. Its raw hours (region only, raw
units) are kept in ``<relpath>_ingest/pending-<run>`` (named by
``pending.json``), so a later run that brings only the next file completes
the day with exactly the values one run over both files would give. Days
before the cube's first day are *ignored* (the cube cannot hold them).

Store layout
------------
==================================  ==========================================
``<relpath>``                       the daily cube (time, lat, lon)
``<relpath>/land``                  land mask of the 0.1 degree cells (lat,
                                    lon), bool, written once
``<relpath>_ingest/pending.json``   the kept hours' group and their days
``<relpath>_ingest/pending-<run>``  hours of held-back days (valid_time,
                                    latitude, longitude), raw units
``<relpath>_ingest/runs/*.json``    the report of every run that changed
                                    something (files with md5, days)
``<relpath>_ingest/staging/``       a run's staging area (removed at its end)
==================================  ==========================================

One writer per store at a time. Re-running with the same files changes
nothing: every day is skipped and nothing is written.

Where it runs
-------------
Scans and groups are tasks on the active ``dask.distributed`` client when
there is one (each task computes synchronously inside its worker, so months
run in parallel across workers), else one after another in this process.
Remote inputs are copied to a local temporary folder by the
task that needs them (the NetCDF and GRIB libraries need real files), so a
remote file is fetched when it is scanned and by the one or two groups that
read it; local paths must be visible to the workers (one machine or a shared
filesystem). The commit runs in this process.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import dask
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.cluster import active_client
from smci_dask.config import Config
from smci_dask.covariates import (
    complete_days,
    daily_from_hourly,
    land_mask_from_era5,
    open_era5land_daily,
    open_era5land_hourly,
    subset_to_grid,
    write_era5land_daily,
)
from smci_dask.covariates.era5land import (
    GRIB_SUFFIXES,
    HOURS_PER_DAY,
    LSM,
    _complete_days,  # the reader's completeness rule, shared on purpose
)
from smci_dask.errors import ConfigError, InputError, SmciError
from smci_dask.grid import GridSpec, get_region, grid_for
from smci_dask.io import Store, open_zarr, store_from_config, write_zarr, zarr_exists

Progress = Callable[[str], None]
T = TypeVar("T")
R = TypeVar("R")

#: Where the daily cube goes below store.root.
ERA5LAND_RELPATH = "covariates/era5land"
#: The land mask's Zarr group below the cube.
LAND_GROUP = "land"
#: Sibling folder of the cube holding the ingest's own state (kept hours, run reports, staging).
STATE_SUFFIX = "_ingest"
#: File (below the state folder) naming the Zarr group with the hours of held-back days.
PENDING_POINTER = "pending.json"
#: File-name endings taken as ERA5-Land files when a folder or a glob is given.
ERA5_SUFFIXES = (".nc", ".nc4", ".netcdf", ".zip", *GRIB_SUFFIXES)
#: Days per chunk of the staged daily data (about 29 MB per variable for China).
STAGING_TIME_CHUNK = 32

_GLOB_CHARS = "*?["
_ONE_HOUR = pd.Timedelta(hours=1)
_ONE_DAY = pd.Timedelta(days=1)
_MD5_BLOCK = 8 * 1024 * 1024
_NO_DAYS = pd.DatetimeIndex([], dtype="datetime64[ns]")
#: Scheduler of the computations inside a task, given to each call: ``dask.config.set`` is process-wide and
#: tasks of an in-process cluster share the process.
_IN_TASK = "synchronous"


# ------------------------------------------------------------------ the report
@dataclass(frozen=True)
class InputFile:
    """One input file: URL, md5 of its bytes, size (bytes), first and last hour (UTC), variables."""

    url: str
    md5: str
    size: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    variables: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "md5": self.md5,
            "bytes": self.size,
            "first_hour": None if self.first is None else self.first.isoformat(),
            "last_hour": None if self.last is None else self.last.isoformat(),
            "variables": list(self.variables),
        }


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest_era5land` did.

    ``written``: days written by this run; ``skipped``: complete days of the
    input that the store already held; ``held_back``: day -> why it could not
    be completed (its hours are kept for a later run); ``ignored``: day -> why
    the cube cannot hold it; ``chunks_rewritten``: time chunks of the cube
    rewritten; ``files``: the inputs with md5; ``wall_s``: seconds for the
    whole run; ``pending_hours``: hours kept for the held-back days.
    """

    store: str
    region: str
    written: list[pd.Timestamp]
    skipped: list[pd.Timestamp]
    held_back: dict[pd.Timestamp, str]
    ignored: dict[pd.Timestamp, str]
    chunks_rewritten: int
    files: list[InputFile]
    wall_s: float
    created: bool = False
    land_written: bool = False
    pending_hours: int = 0
    pending_changed: bool = False

    @property
    def changed(self) -> bool:
        """True if the run changed the store (days, land mask or kept hours)."""
        return bool(self.written) or self.land_written or self.pending_changed

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (days as ISO dates)."""
        return {
            "store": self.store,
            "region": self.region,
            "days_written": _iso(self.written),
            "days_skipped": _iso(self.skipped),
            "days_held_back": {f"{d:%Y-%m-%d}": r for d, r in sorted(self.held_back.items())},
            "days_ignored": {f"{d:%Y-%m-%d}": r for d, r in sorted(self.ignored.items())},
            "chunks_rewritten": self.chunks_rewritten,
            "created": self.created,
            "land_written": self.land_written,
            "pending_hours": self.pending_hours,
            "files": [f.to_dict() for f in self.files],
            "wall_s": round(self.wall_s, 3),
        }

    def format(self) -> str:
        """The report as text (what `smci ingest era5land` prints)."""
        lines = [f"ERA5-Land daily cube {self.store} (region {self.region})", f"  input files      {len(self.files)}"]
        for f in self.files:
            span = "no hours (land-sea mask only)" if f.first is None else f"{_hour(f.first)} .. {_hour(f.last)} UTC"
            lines.append(f"    {f.url}  {span}  {f.size / 1e6:.1f} MB  md5 {f.md5}")
        written = f"  days written     {len(self.written)}{_span(self.written)}"
        if self.written:
            written += f", {self.chunks_rewritten} time chunk(s) rewritten{' (store created)' if self.created else ''}"
        lines.append(written)
        lines.append(f"  days skipped     {len(self.skipped)}{_span(self.skipped)} (already in the store)")
        lines.append(f"  days held back   {len(self.held_back)}")
        lines += [f"    {d:%Y-%m-%d}  {r}" for d, r in sorted(self.held_back.items())]
        if self.ignored:
            lines.append(f"  days ignored     {len(self.ignored)}")
            lines += [f"    {d:%Y-%m-%d}  {r}" for d, r in sorted(self.ignored.items())]
        if self.land_written:
            lines.append(f"  land mask        written to {self.store}/{LAND_GROUP}")
        lines.append(f"  hours kept       {self.pending_hours} (of held-back days){'' if self.pending_changed else ', unchanged'}")
        lines.append(f"  wall time        {self.wall_s:.1f} s")
        return "\n".join(lines)


def _iso(days: Sequence[pd.Timestamp]) -> list[str]:
    return [f"{d:%Y-%m-%d}" for d in sorted(days)]


def _hour(ts: pd.Timestamp | None) -> str:
    return "-" if ts is None else f"{ts:%Y-%m-%d %H:%M}"


def _span(days: Sequence[pd.Timestamp]) -> str:
    """`` (first..last)``, with the number of stretches when the days are not consecutive."""
    if not days:
        return ""
    idx = pd.DatetimeIndex(sorted(days))
    stretches = 1 + int(np.count_nonzero(np.diff(idx.values) != np.timedelta64(1, "D")))
    text = f"{idx[0]:%Y-%m-%d}..{idx[-1]:%Y-%m-%d}" if len(idx) > 1 else f"{idx[0]:%Y-%m-%d}"
    return f" ({text}{f' in {stretches} stretches' if stretches > 1 else ''})"


# ------------------------------------------------------------------ finding the files
def _split_url(url: str) -> tuple[str, str]:
    """(parent folder URL, name) of a file URL or path."""
    parent, _, name = url.rstrip("/").rpartition("/")
    return (parent or ".", name)


def _is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def find_era5land_files(sources: Sequence[str], *, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Expand files, folders and globs (local or fsspec URLs) into a sorted list of file URLs.

    Parameters
    ----------
    sources : sequence of str
        Files (``era5land_2020_01.nc``, ``s3://b/era5/x.grib``), folders
        (every file inside, recursively, ending in one of
        :data:`ERA5_SUFFIXES`) or globs (``s3://b/era5/era5land_2020_*.nc``;
        fsspec syntax, ``**`` for sub-folders).
    storage_options : dict, optional
        fsspec options for URLs (endpoint, credentials).

    Returns
    -------
    list of str
        Absolute local paths or URLs, sorted, without repeats.

    Raises
    ------
    InputError
        No source given, a file that does not exist, a folder or glob with no
        ERA5-Land file.
    """
    if not sources:
        raise InputError("no ERA5-Land file given; pass files, folders or globs (e.g. 'era5/era5land_2020_*.nc')")
    found: list[str] = []
    for source in (str(s).strip() for s in sources):
        options = storage_options if _is_remote(source) else None
        if any(c in source for c in _GLOB_CHARS):
            cut = min(source.index(c) for c in _GLOB_CHARS if c in source)
            base = source[:cut].rpartition("/")[0]
            store = Store.from_url(base or ".", options)
            names = store.glob(source[len(base) + 1 :] if base else source)
            hits = [store.url_of(n) for n in names if n.lower().endswith(ERA5_SUFFIXES)]
            if not hits:
                what = f"{len(names)} path(s), none ending in {', '.join(ERA5_SUFFIXES)}" if names else "nothing"
                raise InputError(f"ERA5-Land glob {source}: matches {what}; check the pattern (quote it so the shell does not expand it)")
            found += hits
            continue
        store = Store.from_url(source, options)
        if store.ls():  # a folder
            hits = [store.url_of(n) for n in store.glob("**") if n.lower().endswith(ERA5_SUFFIXES)]
            if not hits:
                raise InputError(f"ERA5-Land folder {source}: holds no file ending in {', '.join(ERA5_SUFFIXES)}; give the files or a glob")
            found += hits
            continue
        parent, name = _split_url(store.url)
        if not name or not Store.from_url(parent, options).exists(name):
            raise InputError(f"ERA5-Land file {source}: no such file or folder; check the path or the URL")
        found.append(store.url)
    return sorted(dict.fromkeys(found))


# ------------------------------------------------------------------ local copies and checksums
def _md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(_MD5_BLOCK):
            h.update(block)
    return h.hexdigest()


class _LocalInputs:
    """Local files for the inputs: local ones as they are, remote ones copied to a temporary folder until closed."""

    def __init__(self, storage_options: dict[str, Any] | None) -> None:
        self._options = storage_options
        self._tmp: Path | None = None
        self._copies: dict[str, Path] = {}

    def __enter__(self) -> _LocalInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def path(self, url: str, *, md5: str | None = None) -> Path:
        """A local file with the bytes of ``url``; with ``md5``, a fresh copy must have that checksum."""
        if not _is_remote(url):
            return Path(url.removeprefix("file://"))
        if url not in self._copies:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="smci-ingest-"))
            parent, name = _split_url(url)
            target = self._tmp / f"{len(self._copies)}" / name
            Store.from_url(parent, self._options).get_file(name, target)
            if md5 is not None and _md5_file(target) != md5:
                raise InputError(f"ERA5-Land file {url}: its content changed while it was being ingested (md5 differs); ingest it again")
            self._copies[url] = target
        return self._copies[url]

    @contextmanager
    def naming(self) -> Iterator[None]:
        """Re-raise an InputError naming the URLs of remote files instead of their local copies."""
        try:
            yield
        except InputError as exc:
            message = str(exc)
            for url, local in self._copies.items():
                message = message.replace(str(local), url)
            if message == str(exc):
                raise
            raise InputError(message) from None


# ------------------------------------------------------------------ task 1: scan one file
@dataclass(frozen=True)
class _Scan:
    file: InputFile
    land: xr.DataArray | None  # from the file's land-sea mask, when it has one


def _scan_file(url: str, options: dict[str, Any], grid: GridSpec) -> _Scan | Exception:
    """Check one file alone (a task; errors are returned, so that the run waits for all its tasks)."""
    try:
        with _LocalInputs(options) as inputs:
            local = inputs.path(url)
            md5, size = _md5_file(local), local.stat().st_size
            with inputs.naming():
                ds = open_era5land_hourly([str(local)])
                try:
                    sub = subset_to_grid(ds, grid)
                    variables = tuple(str(v) for v in ds.data_vars if v != LSM)
                    land = land_mask_from_era5(sub[[LSM]].load(scheduler=_IN_TASK)) if LSM in sub.data_vars else None
                    times = pd.DatetimeIndex(ds[cv.ERA5_TIME].values) if variables else _NO_DAYS
                finally:
                    ds.close()
        _check_hourly(url, times)
        first, last = (times[0], times[-1]) if len(times) else (None, None)
        return _Scan(InputFile(url, md5, size, first, last, variables), land)
    except Exception as exc:  # noqa: BLE001 - returned to the driver, which raises it after every task ended
        return exc


def _check_hourly(url: str, times: pd.DatetimeIndex) -> None:
    if len(times) < 2:
        return
    missing = pd.date_range(times[0], times[-1], freq="h").difference(times)
    if len(missing):
        raise InputError(
            f"ERA5-Land file {url}: {len(missing)} hour(s) missing between its first ({_hour(times[0])} UTC) and last "
            f"({_hour(times[-1])} UTC) hour, the first at {_hour(missing[0])} UTC; the download is incomplete or the file "
            "is not hourly: download it again"
        )


# ------------------------------------------------------------------ grouping
def _day_span(files: Sequence[InputFile]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of files with hours (a last hour at 00 UTC only closes the day before)."""
    first = min(f.first for f in files if f.first is not None)
    last = max(f.last for f in files if f.last is not None)
    start = first.normalize()
    return start, max(start, (last - _ONE_HOUR).normalize())


def _groups(files: Sequence[InputFile]) -> list[list[InputFile]]:
    """Files with hours in groups that share no day, in time order."""
    groups: list[list[InputFile]] = []
    end: pd.Timestamp | None = None
    for f in sorted((f for f in files if f.first is not None), key=lambda f: (*_day_span([f]), f.url)):
        start, stop = _day_span([f])
        if groups and end is not None and start <= end:
            groups[-1].append(f)
            end = max(end, stop)
        else:
            groups.append([f])
            end = stop
    return groups


# ------------------------------------------------------------------ planning the groups
@dataclass(frozen=True)
class _GroupJob:
    """One group of files: the days it writes, the days it reports, what its task stages.

    ``todo``: complete days to compute and write; ``skipped``: complete days
    the store holds; ``candidates``: days it cannot complete (held back);
    ``stage``: the candidates whose hours the task must keep (those not kept
    already). The task opens ``files`` with ``following`` (the next group,
    whose first 00 UTC closes the group's last day) and the kept hours of
    ``hours_from``..``hours_to``.
    """

    index: int
    files: tuple[InputFile, ...]
    following: tuple[InputFile, ...]
    todo: pd.DatetimeIndex
    skipped: pd.DatetimeIndex
    candidates: pd.DatetimeIndex
    stage: pd.DatetimeIndex
    hours_from: pd.Timestamp
    hours_to: pd.Timestamp
    grid: GridSpec
    options: dict[str, Any]
    state: Store
    pending_path: str | None
    staging: Store

    @property
    def has_work(self) -> bool:
        return bool(len(self.todo) or len(self.stage))


def _day_status(files: Sequence[InputFile], pending: _Pending, variables: frozenset[str]) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """(complete, incomplete) days that the files' hours and the kept hours touch, by the reader's rule."""
    hours = _file_hours(files).union(pending.times)
    if not len(hours):
        return _NO_DAYS, _NO_DAYS
    return _complete_days(hours, bool(variables & set(cv.ERA5_STATE_VARS)), bool(variables & set(cv.ERA5_ACCUM_VARS)))


def _plan_groups(
    groups: Sequence[Sequence[InputFile]],
    *,
    complete: pd.DatetimeIndex,
    incomplete: pd.DatetimeIndex,
    origin: pd.Timestamp | None,
    stored: pd.DatetimeIndex,
    pending: _Pending,
    grid: GridSpec,
    options: dict[str, Any],
    state: Store,
    staging: Store,
) -> list[_GroupJob]:
    """Decide from the hours alone (files and kept ones) what each group writes, skips and holds back.

    Completeness follows the reader's rule (:func:`daily_from_hourly`). A
    group writes its complete days and the day before it (completed with
    hours kept by an earlier run) unless the previous group holds that day,
    so no two groups write the same day; it reports the incomplete days among
    its days, the day before and the day after (whose 00 UTC it may hold),
    and keeps their hours unless they lie before ``origin`` or are kept already.
    """
    jobs = []
    previous_last: pd.Timestamp | None = None
    for k, group in enumerate(groups):
        first, last = _day_span(group)
        write_from = first - _ONE_DAY if previous_last is None or previous_last < first - _ONE_DAY else first
        owned = complete[(complete >= write_from) & (complete <= last)]
        candidates = incomplete[(incomplete >= first - _ONE_DAY) & (incomplete <= last + _ONE_DAY)].difference(stored)
        following = tuple(groups[k + 1]) if k + 1 < len(groups) else ()
        own_hours = _file_hours([*group, *following])
        keepable = candidates[candidates >= origin] if origin is not None else candidates
        stage = pd.DatetimeIndex(
            [d for d in keepable if not own_hours[_hours_of(own_hours, pd.DatetimeIndex([d]))].isin(pending.times).all()]
        )
        jobs.append(
            _GroupJob(
                index=k,
                files=tuple(group),
                following=following,
                todo=owned.difference(stored),
                skipped=owned.intersection(stored),
                candidates=candidates,
                stage=stage,
                hours_from=first - _ONE_DAY,
                hours_to=last + 2 * _ONE_DAY,
                grid=grid,
                options=options,
                state=state,
                pending_path=pending.path,
                staging=staging,
            )
        )
        previous_last = last
    return jobs


# ------------------------------------------------------------------ task 2: stage one group
@dataclass(frozen=True)
class _Batch:
    """What a group's task staged: the days (and where), the kept hours (where)."""

    written: pd.DatetimeIndex
    days_path: str | None
    hours_path: str | None


def _ingest_group(job: _GroupJob) -> _Batch | Exception:
    """Compute and stage one group's days and hours (a task; errors are returned, see :func:`_scan_file`)."""
    try:
        with _LocalInputs(job.options) as inputs:
            return _stage_group(job, inputs)
    except Exception as exc:  # noqa: BLE001 - returned to the driver, which raises it after every task ended
        return exc


def _stage_group(job: _GroupJob, inputs: _LocalInputs) -> _Batch:
    files = job.files + job.following
    with inputs.naming():
        hourly = open_era5land_hourly([str(inputs.path(f.url, md5=f.md5)) for f in files])
    try:
        with inputs.naming():
            hours = _with_kept_hours(subset_to_grid(hourly, job.grid).drop_vars([LSM], errors="ignore"), job)
            daily, _ = daily_from_hourly(hours)
        todo = job.todo.intersection(pd.DatetimeIndex(daily[cv.TIME].values))
        days_path = hours_path = None
        try:
            if len(todo):
                days_path = f"days-{job.index:05d}"
                block = daily.sel({cv.TIME: todo})
                block.attrs = {key: value for key, value in daily.attrs.items() if key != "source_files"}
                block = block.chunk({cv.TIME: STAGING_TIME_CHUNK, cv.LAT: -1, cv.LON: -1})
                write_zarr(block, job.staging, days_path, mode="w-", compute=False).compute(scheduler=_IN_TASK)
            keep = _hours_of(pd.DatetimeIndex(hours[cv.ERA5_TIME].values), job.stage)
            if keep.any():
                hours_path = f"hours-{job.index:05d}"
                part = hours.isel({cv.ERA5_TIME: np.flatnonzero(keep)}).drop_encoding()
                part = part.chunk({cv.ERA5_TIME: HOURS_PER_DAY, cv.ERA5_LAT: -1, cv.ERA5_LON: -1})
                write_zarr(part, job.staging, hours_path, mode="w-", compute=False).compute(scheduler=_IN_TASK)
        except Exception:
            _raise_if_unreadable(files, inputs)
            raise
    finally:
        hourly.close()
    return _Batch(todo, days_path, hours_path)


def _with_kept_hours(hours: xr.Dataset, job: _GroupJob) -> xr.Dataset:
    """``hours`` plus the hours kept by earlier runs that the group's days may need (and ``hours`` lacks)."""
    if job.pending_path is None:
        return hours
    kept = open_zarr(job.state, job.pending_path)
    times = pd.DatetimeIndex(kept[cv.ERA5_TIME].values)
    window = (times >= job.hours_from) & (times <= job.hours_to) & ~times.isin(pd.DatetimeIndex(hours[cv.ERA5_TIME].values))
    if not window.any() or set(map(str, kept.data_vars)) != set(map(str, hours.data_vars)):
        return hours  # other variables: the variable check has refused such files already
    extra = kept.isel({cv.ERA5_TIME: np.flatnonzero(window)})[list(hours.data_vars)]
    extra = extra.assign_coords({cv.ERA5_LAT: hours[cv.ERA5_LAT], cv.ERA5_LON: hours[cv.ERA5_LON]})
    both = xr.concat([hours, extra], dim=cv.ERA5_TIME, coords="minimal", compat="override", join="exact")
    return both.sortby(cv.ERA5_TIME)


def _hours_of(times: pd.DatetimeIndex, days: pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
    """Mask of the hours that belong to ``days``: their 24 hours and the 00 UTC of the next day."""
    return np.asarray(times.normalize().isin(days) | (times - _ONE_HOUR).normalize().isin(days), dtype=bool)


def _raise_if_unreadable(files: Sequence[InputFile], inputs: _LocalInputs) -> None:
    """After a failure while staging, raise InputError naming an input whose values cannot be read, if there is one.

    Reading happens inside the staging write, so a corrupt input surfaces as
    a failed write; each file is then read alone to tell which one it is.
    """
    for f in files:
        try:
            ds = open_era5land_hourly([str(inputs.path(f.url))])
        except SmciError:
            continue
        try:
            dask.compute(*[ds[v].data.sum() for v in ds.data_vars], scheduler=_IN_TASK)
        except Exception as bad:  # noqa: BLE001 - any reader failure names the file
            raise InputError(
                f"ERA5-Land file {f.url}: cannot read its values ({type(bad).__name__}: {bad}); "
                "the file is corrupt or truncated: download it again"
            ) from None
        finally:
            ds.close()


# ------------------------------------------------------------------ running tasks
def _run_tasks(fn: Callable[[T], R], jobs: Sequence[T], on_result: Callable[[int, R], None]) -> list[R]:
    """``fn(job)`` for every job as one task: on the active dask.distributed client, else one after another here.

    Without a cluster the jobs run in one background thread, in order: within
    one process the NetCDF/HDF5 libraries serialise reading anyway, and
    memory stays at one group's. ``on_result(i, result)`` is called in this
    thread as each task ends; the results come back in the order of ``jobs``.
    """
    results: list[Any] = [None] * len(jobs)
    if not jobs:
        return results
    client = active_client()
    if client is not None:
        from distributed import as_completed as completed

        futures = client.map(fn, list(jobs), pure=False)
        where = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in completed(futures):
                i = where[future.key]
                results[i] = future.result()
                on_result(i, results[i])
        finally:
            client.cancel(futures)
        return results
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="smci-ingest") as pool:
        index = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        for future in as_completed(index):
            i = index[future]
            results[i] = future.result()
            on_result(i, results[i])
    return results


def _raise_first_error(results: Sequence[Any]) -> None:
    for r in results:
        if isinstance(r, Exception):
            raise r


# ------------------------------------------------------------------ the store before the run
@dataclass(frozen=True)
class _Cube:
    exists: bool
    start: pd.Timestamp | None
    variables: frozenset[str]
    stored: pd.DatetimeIndex
    has_land: bool


def _load_cube(root: Store, relpath: str, grid: GridSpec, region: str) -> _Cube:
    if not zarr_exists(root, relpath):
        return _Cube(False, None, frozenset(), _NO_DAYS, False)
    ds = open_zarr(root, relpath)
    lat = np.asarray(ds[cv.LAT].values, dtype=np.float64)
    lon = np.asarray(ds[cv.LON].values, dtype=np.float64)
    want_lat, want_lon = grid.coarse_lat, grid.coarse_lon
    if lat.shape != want_lat.shape or lon.shape != want_lon.shape or not (np.allclose(lat, want_lat) and np.allclose(lon, want_lon)):
        raise ConfigError(
            f"store {root.url_of(relpath)} holds {lat.size} x {lon.size} cells (lat {lat.min():g}..{lat.max():g} N, "
            f"lon {lon.min():g}..{lon.max():g} E), the configured region {region!r} has {want_lat.size} x {want_lon.size}; "
            "set region.name (--region) to the store's region or use another store"
        )
    return _Cube(
        True,
        pd.Timestamp(ds[cv.TIME].values[0]),
        frozenset(map(str, ds.data_vars)),
        complete_days(root, relpath),
        zarr_exists(root, f"{relpath}/{LAND_GROUP}"),
    )


@dataclass(frozen=True)
class _Pending:
    """Hours of held-back days kept by earlier runs."""

    path: str | None
    days: pd.DatetimeIndex
    hours: xr.Dataset | None

    @property
    def times(self) -> pd.DatetimeIndex:
        return _NO_DAYS if self.hours is None else pd.DatetimeIndex(self.hours[cv.ERA5_TIME].values)


def _load_pending(state: Store) -> _Pending:
    if not state.exists(PENDING_POINTER):
        return _Pending(None, _NO_DAYS, None)
    pointer = json.loads(state.read_text(PENDING_POINTER))
    path = pointer.get("path")
    hours = open_zarr(state, path) if path and zarr_exists(state, path) else None
    return _Pending(path if hours is not None else None, pd.DatetimeIndex(pd.to_datetime(pointer.get("days", []))), hours)


def _check_variables(groups: Sequence[Sequence[InputFile]], cube: _Cube) -> frozenset[str]:
    """Every group must bring the same variables, and the store's when it exists."""
    want = cube.variables if cube.exists else None
    for group in groups:
        have = frozenset(v for f in group for v in f.variables)
        if want is None:
            want = have
        elif have != want:
            parts = (
                f"lacks {', '.join(sorted(want - have))}" if want - have else "",
                f"adds {', '.join(sorted(have - want))}" if have - want else "",
            )
            source = "the store's" if cube.exists else "the other files'"
            raise InputError(
                f"ERA5-Land file(s) {', '.join(f.url for f in group)}: variables differ from {source} "
                f"({'; '.join(p for p in parts if p)}); give every variable's file for the same period"
            )
    return want or frozenset()


def _check_start(files: Sequence[InputFile], cube: _Cube) -> None:
    for f in files:
        if cube.start is not None and f.first is not None and f.first < cube.start:
            raise InputError(
                f"ERA5-Land file {f.url}: holds hours from {_hour(f.first)} UTC, before the store's first day {cube.start:%Y-%m-%d}; "
                "the daily cube cannot hold them: leave the file out or ingest into a new store"
            )


def _origin(cfg: Config, cube: _Cube, first_day: pd.Timestamp | None) -> pd.Timestamp | None:
    """The cube's first day: the store's, else 1 January of the configured first year or of the earliest day."""
    if cube.start is not None:
        return cube.start
    years = cfg.years or (get_region(cfg.region.name).years if cfg.region.name != "custom" else None)
    candidates = [pd.Timestamp(year=int(years[0]), month=1, day=1)] if years else []
    if first_day is not None:
        candidates.append(pd.Timestamp(year=first_day.year, month=1, day=1))
    return min(candidates) if candidates else None


def _reason(day: pd.Timestamp, hours: pd.DatetimeIndex, has_state: bool, has_accum: bool) -> str:
    """Why ``day`` cannot be completed from the available ``hours``."""
    closing = day + _ONE_DAY
    missing = pd.date_range(day, periods=HOURS_PER_DAY, freq="h").difference(hours) if has_state else _NO_DAYS
    needs_closing = has_accum and closing not in hours
    if not len(missing):
        return (
            f"needs 00 UTC of {closing:%Y-%m-%d} (it closes the day's accumulated tp, e, pev, ssrd), which has not arrived: "
            "its hours are kept; ingest the file with that hour"
        )
    if len(missing) == HOURS_PER_DAY:
        text = "missing hours: none of its 24 hourly values are in the files"
        if has_accum and not needs_closing:
            text += f" (only the 00 UTC of {closing:%Y-%m-%d}, which closes its accumulations)"
    else:
        text = f"missing hours: {len(missing)} of its 24 hourly values are not in the files (the first at {missing[0]:%H:%M} UTC)"
    if needs_closing:
        text += f", nor the 00 UTC of {closing:%Y-%m-%d}"
    return text + "; its hours are kept; ingest the file with the missing hours"


def _file_hours(files: Sequence[InputFile]) -> pd.DatetimeIndex:
    """Every hour the files hold (their spans have no gap: checked when scanning)."""
    parts = [pd.date_range(f.first, f.last, freq="h").values for f in files if f.first is not None and f.last is not None]
    return pd.DatetimeIndex(np.unique(np.concatenate(parts))) if parts else _NO_DAYS


# ------------------------------------------------------------------ the run
def ingest_era5land(
    cfg: Config,
    sources: Sequence[str],
    *,
    store: Store | None = None,
    relpath: str = ERA5LAND_RELPATH,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest hourly ERA5-Land files into the daily 0.1 degree cube (see the module docstring).

    Parameters
    ----------
    cfg : Config
        ``region`` (name, bbox) picks the cells; ``store.root`` and
        ``store.storage_options`` the store and the options for URL inputs;
        ``years`` (or the region's) the cube's first day when it is created.
    sources : sequence of str
        Files, folders or globs, local or URLs (:func:`find_era5land_files`).
    store : Store, optional
        Root store (default ``cfg.store.root``).
    relpath : str
        The cube below the root store.
    progress : callable, optional
        Called with one line per file scanned, per group of files (month)
        staged and per commit step.

    Returns
    -------
    IngestReport
        Days written, skipped, held back (with the reason), chunks rewritten,
        the input files with md5, wall time. The cube's units: tp, e, pev in
        mm day-1 (evaporation positive); ssrd in MJ m-2 day-1; t2m, stl1-4 in
        K; swvl1-4 in m3 m-3; lai_hv, lai_lv in m2 m-2.

    Raises
    ------
    InputError
        A file is missing, truncated, corrupt, has wrong units or variables,
        misses hours inside its span, does not cover the region, or holds
        hours before the cube's first day. The store is left as it was.
    ConfigError
        The store's cube holds another region than the configured one.
    StoreError
        The store cannot be reached or written.
    """
    t0 = time.perf_counter()
    say = progress or (lambda _message: None)
    root = store if store is not None else store_from_config(cfg)
    grid = grid_for(cfg.region.name, cfg.region.bbox)
    options = dict(cfg.store.storage_options)
    urls = find_era5land_files(sources, storage_options=options)
    cube = _load_cube(root, relpath, grid, cfg.region.name)
    state = root.child(relpath + STATE_SUFFIX)
    pending = _load_pending(state)
    run_id = f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    say(f"{len(urls)} ERA5-Land file(s); {root.url_of(relpath)} holds {len(cube.stored)} complete day(s)")

    def scanned(i: int, result: _Scan | Exception) -> None:
        if isinstance(result, _Scan):
            f = result.file
            say(f"scanned {f.url}: {_hour(f.first)} .. {_hour(f.last)} UTC, {len(f.variables)} variables, md5 {f.md5}")

    scans = _run_tasks(partial(_scan_file, options=options, grid=grid), urls, scanned)
    _raise_first_error(scans)
    files = [s.file for s in scans]
    land = next((s.land for s in scans if s.land is not None), None)
    groups = _groups(files)
    variables = _check_variables(groups, cube)
    _check_start(files, cube)

    staging = state.child("staging", run_id)
    complete, incomplete = _day_status(files, pending, variables)
    new = complete.difference(cube.stored)
    origin = _origin(cfg, cube, new[0] if len(new) else None)
    jobs = _plan_groups(
        groups,
        complete=complete,
        incomplete=incomplete,
        origin=origin,
        stored=cube.stored,
        pending=pending,
        grid=grid,
        options=options,
        state=state,
        staging=staging,
    )
    work = [job for job in jobs if job.has_work]

    def tell(job: _GroupJob, done: str) -> None:
        first, last = _day_span(job.files)
        say(
            f"{first:%Y-%m-%d}..{last:%Y-%m-%d} ({len(job.files)} file(s)): {done}, {len(job.skipped)} already in the store, "
            f"{len(job.candidates)} not complete"
        )

    for job in jobs:
        if not job.has_work:
            tell(job, "nothing to compute")
    state.rm("staging")  # a killed run's leftovers (one writer per store at a time)
    try:
        batches = _run_tasks(
            _ingest_group, work, lambda i, r: tell(work[i], f"{len(r.written)} day(s) computed") if isinstance(r, _Batch) else None
        )
        _raise_first_error(batches)
        with dask.config.set(scheduler="threads"):  # the commit reads the staged data in this process
            report = _commit(
                cfg,
                root,
                relpath,
                state,
                staging,
                run_id,
                cube=cube,
                origin=origin,
                jobs=jobs,
                batches=batches,
                pending=pending,
                land=land,
                files=files,
                variables=variables,
                say=say,
                t0=t0,
            )
    finally:
        state.rm("staging")
        if not state.ls():
            state.rm()  # a first run that failed leaves no empty folder behind
    if report.changed:
        state.write_text(f"runs/{run_id}.json", json.dumps(report.to_dict(), indent=1))
    return report


def _commit(
    cfg: Config,
    root: Store,
    relpath: str,
    state: Store,
    staging: Store,
    run_id: str,
    *,
    cube: _Cube,
    origin: pd.Timestamp | None,
    jobs: Sequence[_GroupJob],
    batches: Sequence[_Batch],
    pending: _Pending,
    land: xr.DataArray | None,
    files: Sequence[InputFile],
    variables: frozenset[str],
    say: Progress,
    t0: float,
) -> IngestReport:
    """Write the staged days into the cube, the land mask once, and the kept hours of held-back days."""
    written = pd.DatetimeIndex(sorted({d for b in batches for d in b.written}))
    skipped = pd.DatetimeIndex(sorted({d for j in jobs for d in j.skipped}))

    created, chunks = False, 0
    if len(written):
        parts = [open_zarr(staging, b.days_path) for b in batches if b.days_path]
        days = xr.concat(parts, dim=cv.TIME, coords="minimal", compat="override", join="exact") if len(parts) > 1 else parts[0]
        say(f"writing {len(written)} day(s) into {root.url_of(relpath)}")
        result = write_era5land_daily(days.sortby(cv.TIME), root, relpath, origin=origin)
        created, chunks = result.created, result.chunks

    land_written = False
    if zarr_exists(root, relpath) and not cube.has_land:
        if land is None and "swvl1" in variables:
            land = land_mask_from_era5(open_era5land_daily(root, relpath)[["swvl1"]])
        if land is not None:
            mask = xr.Dataset({"land": land}, attrs={"title": "Land mask of the ERA5-Land 0.1 degree cells"})
            write_zarr(mask, root, f"{relpath}/{LAND_GROUP}", mode="w")
            land_written = True
            say(f"land mask written: {int(land.sum())} land cell(s) of {land.size} ({land.attrs.get('description', '')})")

    # held back: the days this run could not complete and those of earlier runs, less the days now in the store
    missed = pd.DatetimeIndex(sorted({d for j in jobs for d in j.todo})).difference(written)  # hours split across groups
    held_days = pd.DatetimeIndex(sorted({d for j in jobs for d in j.candidates} | set(pending.days) | set(missed)))
    held_days = held_days.difference(cube.stored.union(written))
    early = held_days[held_days < origin] if origin is not None else _NO_DAYS
    ignored = {d: f"before the store's first day {origin:%Y-%m-%d}; the cube cannot hold it" for d in early}
    held_days = held_days.difference(early)
    hours = _file_hours(files).union(pending.times)
    has_state, has_accum = bool(variables & set(cv.ERA5_STATE_VARS)), bool(variables & set(cv.ERA5_ACCUM_VARS))
    held_back = {d: _reason(d, hours, has_state, has_accum) for d in held_days}
    for d in missed.intersection(held_days):
        held_back[d] = "its hours are in files that were not read together (a gap between them); ingest those files again in one run"

    kept, pending_changed = _keep_hours(state, staging, run_id, batches=batches, pending=pending, held_days=held_days)
    return IngestReport(
        store=root.url_of(relpath),
        region=cfg.region.name,
        written=list(written),
        skipped=list(skipped),
        held_back=held_back,
        ignored=ignored,
        chunks_rewritten=chunks,
        files=list(files),
        wall_s=time.perf_counter() - t0,
        created=created,
        land_written=land_written,
        pending_hours=kept,
        pending_changed=pending_changed,
    )


def _keep_hours(
    state: Store, staging: Store, run_id: str, *, batches: Sequence[_Batch], pending: _Pending, held_days: pd.DatetimeIndex
) -> tuple[int, bool]:
    """Replace the kept hours by those of ``held_days``; (hours kept, whether anything changed)."""
    parts = [open_zarr(staging, b.hours_path) for b in batches if b.hours_path]
    if pending.hours is not None:
        parts.append(pending.hours)  # last: an hour from a file wins over its kept copy
    pieces: list[xr.Dataset] = []
    seen = _NO_DAYS
    for part in parts:
        times = pd.DatetimeIndex(part[cv.ERA5_TIME].values)
        keep = _hours_of(times, held_days) & ~times.isin(seen)
        if keep.any():
            pieces.append(part.isel({cv.ERA5_TIME: np.flatnonzero(keep)}).drop_encoding())
            seen = seen.union(times[keep])
    new = None
    if pieces:
        names = sorted(set.intersection(*[set(map(str, p.data_vars)) for p in pieces]))
        ref = pieces[0]
        pieces = [p[names].assign_coords({cv.ERA5_LAT: ref[cv.ERA5_LAT], cv.ERA5_LON: ref[cv.ERA5_LON]}) for p in pieces]
        new = xr.concat(pieces, dim=cv.ERA5_TIME, coords="minimal", compat="override", join="exact").sortby(cv.ERA5_TIME)
    count = 0 if new is None else new.sizes[cv.ERA5_TIME]
    if _same_hours(new, pending.hours) and set(held_days) == set(pending.days):
        return count, False
    if new is None:
        state.rm(PENDING_POINTER)
    else:
        path = f"pending-{run_id}"
        write_zarr(new.chunk({cv.ERA5_TIME: HOURS_PER_DAY, cv.ERA5_LAT: -1, cv.ERA5_LON: -1}), state, path, mode="w-")
        state.write_text(PENDING_POINTER, json.dumps({"path": path, "days": _iso(list(held_days))}))
    if pending.path:
        with suppress(SmciError):
            state.rm(pending.path)
    return count, True


def _same_hours(a: xr.Dataset | None, b: xr.Dataset | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if set(a.data_vars) != set(b.data_vars) or not a.indexes[cv.ERA5_TIME].equals(b.indexes[cv.ERA5_TIME]):
        return False
    for name in a.data_vars:
        x, y = dask.compute(a[name].data, b[name].data)
        if not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True):
            return False
    return True
