"""`smci refresh`: bring the stores and the product up to date with the inputs that arrived since the last run.

Steps of :func:`refresh`, all under the store lease ``refresh/.lease``
(:mod:`smci_dask.io.lease`: a second refresh waits ``refresh.wait_seconds``
or stops with :class:`~smci_dask.io.lease.LeaseBusy` naming the holder; a
killed holder's lease expires after ``refresh.lease_ttl_seconds``):

1. **Ingest** the ERA5-Land and LAI sources (given, else the config's
   ``inputs.era5land`` / ``inputs.lai``). Both ingests are idempotent by day
   (composite): days the stores hold are skipped, so only new days are
   written (:func:`~smci_dask.pipeline.ingest.ingest_era5land`,
   :func:`~smci_dask.covariates.ingest_lai`).
2. **Revised inputs**: an ERA5-Land file whose md5 differs from the one the
   ingest reports (``covariates/era5land_ingest/runs/*.json``) recorded for
   the same URL is *revised*; the days it covers that the cube holds are
   reported, and with ``refresh.recompute_revised`` (or
   ``recompute_revised=True``) recomputed: they are removed from the cube's
   and the products' complete days (and their task markers dropped), the
   files are ingested again and the days predicted again. An LAI file is
   revised when its md5 differs from the one recorded for its URL in
   ``refresh/lai_sources.json`` (written by every refresh given LAI files;
   a file seen for the first time is recorded as it is) and it holds
   composites the store holds; the product days whose daily LAI reads such
   a composite (:func:`plan_lai`) are reported, and recomputed on request
   the same way (the composites are taken out of the store's complete list
   and ingested again).
3. **Late LAI**: product days past the last composite's centre were
   predicted with that composite as the nearest; the days whose
   interpolation new composites change are always predicted again, as a
   run from scratch would predict them (``report.lai_updated``).
4. **Days to predict**: the days the ERA5-Land cube holds completely, from
   the product's first complete day on (the product's first day when it
   has none, or with ``refresh.backfill`` / ``backfill=True``: history the
   cube holds inside the axis), less the days the product lists as
   complete, plus the days steps 2-3 took out. Days before the axis are
   reported (``report.outside_axis``), never predicted: Zarr cannot prepend.
5. **Time axis**: when those days pass the end of the product's time axis,
   the axis is extended to the end of that year
   (:func:`~smci_dask.products.smci1km.extend_time_axis`: no existing chunk
   is rewritten, readers see the old axis until it is whole) and the
   product is predicted with ``years`` widened accordingly.
6. **Predict** only those days (all depths; the latest complete ``final``
   run, or ``run``), one contiguous stretch at a time
   (:func:`~smci_dask.inference.predict_product`: resumable by its task
   markers; ``complete_days`` moves only after all chunks of the days are
   written, so readers of :func:`smci_dask.open_product` only ever see
   complete days).
7. **9 km and exports**: the 9 km aggregate (when the store has one) is
   updated for those days and any complete 1 km day it lacks (a refresh
   stopped before aggregating); the NetCDF exports (when the store has
   some) for those days.
8. **Log**: ``refresh/log/<timestamp>.json`` records the time, the inputs
   with md5, the days added and recomputed, the model run and the code
   version; written with ``"status": "running"`` before predicting and
   rewritten ``"done"`` at the end. A refresh that finds nothing new writes
   nothing.

Killed at any point, the stores stay readable and the next refresh finishes
the job with the same result as an uninterrupted one: every step is
idempotent and every completion record is written after the data it lists.
For tests, ``checkpoint(name)`` is called at named points, and the
environment variable ``SMCI_REFRESH_CRASH_AT=<name>[:<n>]`` stops the
process hard (``os._exit(99)``) at that point (its n-th pass).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd

from smci_dask import __version__
from smci_dask.config import Config
from smci_dask.covariates import ingest_lai
from smci_dask.covariates.era5land_store import complete_days as era5_complete_days
from smci_dask.covariates.lai import complete_composites, find_lai_pieces, lai_weights, set_complete_composites
from smci_dask.grid import grid_for
from smci_dask.inference.mapping import predict_product, product_period, resolve_run
from smci_dask.io import Store, store_failures, zarr_exists
from smci_dask.io.lease import hold_lease
from smci_dask.pipeline.ingest import ERA5LAND_RELPATH, STATE_SUFFIX, ingest_era5land
from smci_dask.products.export import EXPORT_RELPATH, export_files, export_netcdf
from smci_dask.products.smci1km import (
    PRODUCT_1KM_RELPATH,
    complete_days,
    day_ranges,
    extend_time_axis,
    load_markers,
    markers_relpath,
    product_times,
    set_complete_days,
)
from smci_dask.products.smci9km import PRODUCT_9KM_RELPATH, aggregate_9km

Echo = Callable[[str], None]
Checkpoint = Callable[..., None]

#: The lease that keeps two refreshes of one store apart.
LEASE_RELPATH: Final = "refresh/.lease"
#: Folder of the refresh log records.
LOG_RELPATH: Final = "refresh/log"
#: The md5 and composites of every LAI file a refresh ingested or saw ingested (URL -> entry), for revision detection.
LAI_SOURCES_RELPATH: Final = "refresh/lai_sources.json"
#: Environment variable naming a checkpoint at which the process stops hard (fault tests).
CRASH_ENV: Final = "SMCI_REFRESH_CRASH_AT"
#: The named checkpoints, in the order a refresh passes them (``predict-task`` once per task).
CHECKPOINTS: Final = (
    "locked",
    "era5land-ingested",
    "lai-reset",
    "lai-ingested",
    "revised-reset",
    "revised-reingested",
    "axis-extended",
    "predict-task",
    "predicted",
    "aggregated-9km",
    "exported",
    "logged",
)
_NO_DAYS = pd.DatetimeIndex([], dtype="datetime64[ns]")


@dataclass
class RefreshReport:
    """What :func:`refresh` did."""

    store: str
    era5_days: list[pd.Timestamp] = field(default_factory=list)
    lai_composites: list[pd.Timestamp] = field(default_factory=list)
    days_added: pd.DatetimeIndex = field(default_factory=lambda: _NO_DAYS)
    revised: dict[str, list[str]] = field(default_factory=dict)
    recomputed: pd.DatetimeIndex = field(default_factory=lambda: _NO_DAYS)
    lai_updated: pd.DatetimeIndex = field(default_factory=lambda: _NO_DAYS)
    aggregated_9km: pd.DatetimeIndex = field(default_factory=lambda: _NO_DAYS)
    outside_axis: pd.DatetimeIndex = field(default_factory=lambda: _NO_DAYS)
    run: str | None = None
    extended_to: pd.Timestamp | None = None
    log: str | None = None
    seconds: float = 0.0

    @property
    def nothing_new(self) -> bool:
        """True when the refresh changed nothing (no day ingested or predicted, no day recomputed)."""
        return not (self.era5_days or self.lai_composites or len(self.days_added) or len(self.recomputed) or len(self.aggregated_9km))

    def summary(self) -> str:
        if self.nothing_new:
            text = f"refresh: nothing new for {self.store} (inputs and product up to date)"
        else:
            added = "; ".join(f"{a}..{b}" for a, b in day_ranges(self.days_added)) or "none"
            text = (
                f"refresh: {len(self.era5_days)} ERA5-Land day(s) and {len(self.lai_composites)} LAI composite(s) ingested; "
                f"{len(self.days_added)} product day(s) added ({added}) with run {self.run!r}"
            )
            if len(self.recomputed):
                text += f"; {len(self.recomputed)} revised day(s) recomputed"
            if len(self.aggregated_9km.difference(self.days_added)):
                text += f"; {len(self.aggregated_9km.difference(self.days_added))} day(s) the 9 km product lacked aggregated"
            if len(self.lai_updated):
                text += f"; {len(self.lai_updated)} day(s) predicted again with the new LAI composites"
            if self.extended_to is not None:
                text += f"; time axis extended to {self.extended_to:%Y-%m-%d}"
            text += f" in {self.seconds:.1f} s; log {self.log}"
        if self.revised and not len(self.recomputed):
            files = ", ".join(f"{url} ({len(days)} day(s))" for url, days in self.revised.items())
            text += f"\nrefresh: revised input file(s) not recomputed: {files}; run with --recompute-revised (refresh.recompute_revised)"
        if len(self.outside_axis):
            text += (
                f"\nrefresh: {len(self.outside_axis)} covariate day(s) before the product's time axis "
                f"({self.outside_axis[0]:%Y-%m-%d}..{self.outside_axis[-1]:%Y-%m-%d}) are not predicted: a Zarr axis cannot grow "
                "backwards; predict them into a product whose `years` start early enough (another store)"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "nothing_new": self.nothing_new,
            "era5land_days": [f"{d:%Y-%m-%d}" for d in self.era5_days],
            "lai_composites": [f"{d:%Y-%m-%d}" for d in self.lai_composites],
            "days_added": day_ranges(self.days_added),
            "revised": self.revised,
            "recomputed": day_ranges(self.recomputed),
            "lai_updated": day_ranges(self.lai_updated),
            "aggregated_9km": day_ranges(self.aggregated_9km),
            "run": self.run,
            "extended_to": None if self.extended_to is None else f"{self.extended_to:%Y-%m-%d}",
            "log": self.log,
            "seconds": round(self.seconds, 3),
        }


_passes: dict[str, int] = {}


def _point(name: str, checkpoint: Checkpoint | None, *args: Any) -> None:
    """A named checkpoint: the test hook, and a hard stop when ``SMCI_REFRESH_CRASH_AT`` is ``name`` or ``name:n`` (n-th pass)."""
    if checkpoint is not None:
        checkpoint(name, *args)
    where, _, nth = os.environ.get(CRASH_ENV, "").partition(":")
    if where == name:
        _passes[name] = _passes.get(name, 0) + 1
        if _passes[name] >= int(nth or 1):
            os._exit(99)


# ------------------------------------------------------------------ revised inputs
def known_md5s(store: Store, relpath: str = ERA5LAND_RELPATH) -> dict[str, dict[str, Any]]:
    """URL -> the latest ingest report's entry (``md5``, ``first_hour``, ``last_hour``) of every ERA5-Land file ingested before."""
    state = store.child(relpath + STATE_SUFFIX)
    known: dict[str, dict[str, Any]] = {}
    for name in sorted(n for n in state.ls("runs") if n.endswith(".json")):  # run ids start with a UTC timestamp
        try:
            report = json.loads(state.read_text(f"runs/{name}"))
        except (OSError, ValueError):
            continue
        for f in report.get("files", []):
            known[f["url"]] = f
    return known


def revised_days(files: Sequence[Any], known: dict[str, dict[str, Any]], held: pd.DatetimeIndex) -> dict[str, pd.DatetimeIndex]:
    """Files (the ingest's :class:`InputFile`) whose md5 changed since recorded -> the days they cover that ``held`` holds."""
    out: dict[str, pd.DatetimeIndex] = {}
    for f in files:
        before = known.get(f.url)
        if before is None or before.get("md5") == f.md5 or f.first is None or f.last is None:
            continue
        # the days the file holds hours of; the day before its first hour also reads that hour (the accumulations
        # at 00 UTC close the previous day) but is recomputed only with its own file, so it is not listed here
        days = pd.date_range(f.first.normalize(), f.last.normalize(), freq="D").intersection(held)
        if len(days):
            out[f.url] = days
    return out


def _drop_product_days(store: Store, relpath: str, days: pd.DatetimeIndex) -> None:
    """Take ``days`` out of a product's complete days first, then out of the task markers that list any of them.

    A marker whose days are only partly dropped is replaced by markers of
    the days it keeps (written before the old one is removed), so the kept
    days stay complete for the next predict.
    """
    if not zarr_exists(store, relpath) or not len(days):
        return
    set_complete_days(store, relpath, complete_days(store, relpath).difference(days))
    folder = markers_relpath(relpath)
    for name in store.ls(folder):
        parts = name.rsplit("_", 2)
        if len(parts) == 3 and parts[1][:4].isdigit():
            span = pd.date_range(parts[1], parts[2], freq="D")
            if len(span.intersection(days)):
                info = store.read_text(f"{folder}/{name}")
                for first, last in day_ranges(span.difference(days)):
                    store.write_text(f"{folder}/{parts[0]}_{first}_{last}", info)
                store.rm(f"{folder}/{name}", recursive=False)
    load_markers(store, relpath)  # fails loudly now, not in the predict, if the folder is unreadable


# ------------------------------------------------------------------ revised and new LAI composites
@dataclass
class LaiPlan:
    """What the LAI sources change: their md5s, the composites they add, the revised ones and the product days affected."""

    md5s: dict[str, dict[str, Any]]
    new: pd.DatetimeIndex
    revised: dict[str, pd.DatetimeIndex]  # URL -> revised composites the store holds
    revised_days: dict[str, pd.DatetimeIndex]  # URL -> product days whose daily LAI reads a revised composite
    updated_days: pd.DatetimeIndex  # product days whose interpolation changes with the new composites


def known_lai_md5s(store: Store) -> dict[str, dict[str, Any]]:
    """URL -> ``{"md5", "composites"}`` of the LAI files recorded by earlier refreshes (empty before the first)."""
    if not store.exists(LAI_SOURCES_RELPATH):
        return {}
    try:
        return dict(json.loads(store.read_text(LAI_SOURCES_RELPATH)))
    except ValueError:
        return {}  # a torn local write of an older version: every file counts as seen for the first time


def lai_recipe(starts: pd.DatetimeIndex, days: pd.DatetimeIndex) -> list[tuple[Any, Any, float]]:
    """Per day, how its daily LAI is made: (first composite, second composite, weight of the second), from ``starts``."""
    if not len(starts) or not len(days):
        return [(None, None, 0.0)] * len(days)
    i0, i1, w = lai_weights(starts, days)
    return [(starts[a], starts[b] if x > 0 else starts[a], round(float(x), 9)) for a, b, x in zip(i0, i1, w, strict=True)]


def plan_lai(cfg: Config, store: Store, sources: Sequence[str], product_days: pd.DatetimeIndex) -> LaiPlan:
    """Compare the LAI sources with the store and the record (md5s read here); nothing is written.

    * A composite is *new* when a source holds it and the store does not;
      the product days whose interpolation (the two composites and the
      weight, :func:`lai_recipe`) differs with the new composites are
      ``updated_days``: days past the last composite's centre (extrapolated
      as the nearest composite) or in a gap. A run from scratch would now
      predict them differently, so a refresh predicts them again.
    * A source is *revised* when its md5 differs from the one recorded for
      its URL (``refresh/lai_sources.json``) and it holds composites the
      store holds; ``revised_days`` are the product days whose daily LAI
      reads one of them (either of the two composites it interpolates).
    """
    options = dict(cfg.inputs.storage_options) or None
    pieces = find_lai_pieces(list(sources), storage_options=options)
    dates_of: dict[str, set[pd.Timestamp]] = {}
    for piece in pieces:
        dates_of.setdefault(piece.path, set()).add(piece.date)
    md5s = {
        url: {"md5": _md5_url(dict(cfg.inputs.storage_options), url), "composites": sorted(f"{d:%Y-%m-%d}" for d in dates)}
        for url, dates in sorted(dates_of.items())
    }
    held = complete_composites(store)
    given = pd.DatetimeIndex(sorted({p.date for p in pieces}))
    new = given.difference(held)
    known = known_lai_md5s(store)
    revised: dict[str, pd.DatetimeIndex] = {}
    for url, entry in md5s.items():
        before = known.get(url)
        if before is None or entry["md5"] is None or before.get("md5") == entry["md5"]:
            continue
        dates = pd.DatetimeIndex(sorted(dates_of[url])).intersection(held)
        if len(dates):
            revised[url] = dates
    revised_days: dict[str, pd.DatetimeIndex] = {}
    updated = _NO_DAYS
    if len(product_days) and len(held):
        recipe = lai_recipe(held, product_days)
        for url, dates in revised.items():
            uses = [bool({r[0], r[1]} & set(dates)) for r in recipe]
            if any(uses):
                revised_days[url] = product_days[uses]
        if len(new):
            after = lai_recipe(held.union(new), product_days)
            updated = product_days[[a != b for a, b in zip(recipe, after, strict=True)]]
    return LaiPlan(md5s, new, revised, revised_days, pd.DatetimeIndex(updated))


def _record_lai_md5s(store: Store, plan: LaiPlan, *, keep_revised: bool) -> None:
    """Write the LAI record: the sources' md5s (a revised file not recomputed keeps its old entry, so it is reported again)."""
    record = known_lai_md5s(store)
    for url, entry in plan.md5s.items():
        if entry["md5"] is None or (keep_revised and url in plan.revised and url in record):
            continue
        record[url] = entry
    store.write_text(LAI_SOURCES_RELPATH, json.dumps(record, indent=1, sort_keys=True))


# ------------------------------------------------------------------ the days to predict
def days_to_predict(cfg: Config, store: Store, relpath: str = PRODUCT_1KM_RELPATH, *, backfill: bool = False) -> pd.DatetimeIndex:
    """Covariate days the product lacks: from its first complete day on (else its first day), or every day of its axis on.

    The ERA5-Land cube's complete days, less the product's complete days,
    from the product's first complete day on; with ``backfill`` (or when the
    product has no complete day) from the first day of its time axis on, so
    history the cube holds inside the axis is predicted too. Days before the
    axis are never returned (:func:`days_before_axis`).
    """
    have = complete_days(store, relpath)
    start = _product_times(cfg, store, relpath)[0]
    since = have[0] if len(have) and not backfill else start
    cube = era5_complete_days(store, ERA5LAND_RELPATH) if zarr_exists(store, ERA5LAND_RELPATH) else _NO_DAYS
    return cube[cube >= since].difference(have)


def days_before_axis(cfg: Config, store: Store, relpath: str = PRODUCT_1KM_RELPATH) -> pd.DatetimeIndex:
    """Complete covariate days before the product's time axis: no refresh predicts them (Zarr cannot prepend)."""
    cube = era5_complete_days(store, ERA5LAND_RELPATH) if zarr_exists(store, ERA5LAND_RELPATH) else _NO_DAYS
    return cube[cube < _product_times(cfg, store, relpath)[0]]


def _product_times(cfg: Config, store: Store, relpath: str) -> pd.DatetimeIndex:
    if zarr_exists(store, relpath):
        return product_times(store, relpath)
    return product_period(cfg)


def _widened(cfg: Config, store: Store, relpath: str, last: pd.Timestamp) -> tuple[Config, pd.Timestamp | None]:
    """A config whose ``years`` span the product's axis and ``last``; the new axis end when it must grow."""
    times = _product_times(cfg, store, relpath)
    end_year = max(times[-1].year, last.year)
    wide = cfg.model_copy(update={"years": (times[0].year, end_year)})
    if not zarr_exists(store, relpath) or last <= times[-1]:
        return wide, None
    return wide, product_period(wide)[-1]


# ------------------------------------------------------------------ the run
def refresh(
    cfg: Config,
    store: Store,
    *,
    era5land: Sequence[str] | None = None,
    lai: Sequence[str] | None = None,
    recompute_revised: bool | None = None,
    run: str | None = None,
    wait: float | None = None,
    client: Any = None,
    echo: Echo = print,
    checkpoint: Checkpoint | None = None,
    backfill: bool | None = None,
) -> RefreshReport:
    """Ingest what is new, predict the days the product lacks, update the 9 km product and exports, log it.

    Parameters
    ----------
    cfg : Config
        Region, ``inputs`` (the default sources), ``inference`` and ``refresh`` settings.
    store : Store
        Store root holding covariates, models and the product.
    era5land, lai : sequence of str, optional
        Files, folders or globs (default: ``inputs.era5land`` / ``inputs.lai``).
    recompute_revised : bool, optional
        Recompute the days of revised ERA5-Land and LAI files (default ``refresh.recompute_revised``).
    run : str, optional
        Model run (default: the latest with all 10 depths of experiment ``final``).
    wait : float, optional
        Seconds to wait for another refresh's lease (default ``refresh.wait_seconds``).
    client : distributed.Client, optional
        Where ingest scans and prediction tasks run.
    echo : callable
        Progress lines.
    checkpoint : callable, optional
        ``checkpoint(name, *details)`` at each named point (:data:`CHECKPOINTS`); a test hook.
    backfill : bool, optional
        Also predict the cube's days missing from the product before its first
        complete day (inside its time axis) (default ``refresh.backfill``).

    Raises
    ------
    LeaseBusy
        Another refresh holds the store (exit code 7); names its holder.
    InputError, StoreError
        From the stages (bad input file, no models, unreachable store).
    """
    with store_failures(store):  # a store that stops answering mid-way: one StoreError naming it, not a driver traceback
        return _refresh(
            cfg,
            store,
            era5land=era5land,
            lai=lai,
            recompute_revised=recompute_revised,
            run=run,
            wait=wait,
            client=client,
            echo=echo,
            checkpoint=checkpoint,
            backfill=backfill,
        )


def _refresh(
    cfg: Config,
    store: Store,
    *,
    era5land: Sequence[str] | None = None,
    lai: Sequence[str] | None = None,
    recompute_revised: bool | None = None,
    run: str | None = None,
    wait: float | None = None,
    client: Any = None,
    echo: Echo = print,
    checkpoint: Checkpoint | None = None,
    backfill: bool | None = None,
) -> RefreshReport:
    """:func:`refresh` without the translation of store failures."""
    t0 = time.perf_counter()
    settings = cfg.refresh
    recompute = settings.recompute_revised if recompute_revised is None else recompute_revised
    fill_history = settings.backfill if backfill is None else backfill
    era5_sources = list(era5land) if era5land is not None else list(cfg.inputs.era5land)
    lai_sources = list(lai) if lai is not None else list(cfg.inputs.lai)
    holder = f"smci refresh on {socket.gethostname()} pid {os.getpid()}"
    report = RefreshReport(store.url)
    with hold_lease(
        store, LEASE_RELPATH, holder=holder, ttl=settings.lease_ttl_seconds, wait=settings.wait_seconds if wait is None else wait
    ) as lease:
        _point("locked", checkpoint)
        inputs: dict[str, Any] = {"era5land": [], "lai": []}
        revised: dict[str, pd.DatetimeIndex] = {}
        redo = _NO_DAYS  # product days taken out of the complete set by this refresh: predicted again below
        if era5_sources:
            known = known_md5s(store)
            held = era5_complete_days(store, ERA5LAND_RELPATH) if zarr_exists(store, ERA5LAND_RELPATH) else _NO_DAYS
            ingest = ingest_era5land(cfg, era5_sources, store=store, progress=lambda m: echo(f"[era5land] {m}"))
            report.era5_days = list(ingest.written)
            inputs["era5land"] = [{"url": f.url, "md5": f.md5, "bytes": f.size} for f in ingest.files]
            revised = revised_days(ingest.files, known, held)
            report.revised = {url: [f"{d:%Y-%m-%d}" for d in days] for url, days in revised.items()}
            for url, days in revised.items():
                echo(f"[refresh] revised input {url}: md5 changed; covers {len(days)} day(s) already processed")
        _point("era5land-ingested", checkpoint)
        if lai_sources:
            redo = redo.union(
                _refresh_lai(cfg, store, lai_sources, report, inputs, recompute=recompute, echo=echo, checkpoint=checkpoint, lease=lease)
            )
        _point("lai-ingested", checkpoint)

        if revised and recompute:
            days = pd.DatetimeIndex(sorted(set().union(*[set(d) for d in revised.values()])))
            lease.check()
            _drop_product_days(store, PRODUCT_9KM_RELPATH, days)
            _drop_product_days(store, PRODUCT_1KM_RELPATH, days)
            set_complete_days(store, ERA5LAND_RELPATH, era5_complete_days(store, ERA5LAND_RELPATH).difference(days))
            _point("revised-reset", checkpoint)
            again = ingest_era5land(cfg, era5_sources, store=store, progress=lambda m: echo(f"[era5land] {m}"))
            report.recomputed = report.recomputed.union(pd.DatetimeIndex(sorted(set(again.written) & set(days))))
            report.era5_days = sorted(set(report.era5_days) | set(again.written))
            redo = redo.union(days)
            _point("revised-reingested", checkpoint)

        todo = days_to_predict(cfg, store, backfill=fill_history)
        if len(redo):  # days dropped above before the product's (new) first complete day are not lost
            cube = era5_complete_days(store, ERA5LAND_RELPATH) if zarr_exists(store, ERA5LAND_RELPATH) else _NO_DAYS
            todo = todo.union(redo.intersection(cube).difference(complete_days(store)))
        report.outside_axis = days_before_axis(cfg, store)
        log_name = None
        behind_9km = missing_9km(store)
        if len(todo) or len(behind_9km):
            # a record of the days this refresh is adding, before it writes them: a refresh killed later leaves it
            # ("status": "running"); it is rewritten with "status": "done" at the end
            report.days_added = todo
            report.aggregated_9km = behind_9km.union(todo) if zarr_exists(store, PRODUCT_9KM_RELPATH) else _NO_DAYS
            log_name = _write_log(store, report, inputs, status="running")
            if len(todo):
                report.run = _predict(cfg, store, todo, report, run=run, client=client, echo=echo, checkpoint=checkpoint, lease=lease)
            _publish(cfg, store, todo, report, echo, checkpoint)
        if report.nothing_new:
            report.seconds = time.perf_counter() - t0
            return report
        lease.check()
        report.seconds = time.perf_counter() - t0
        report.log = store.url_of(_write_log(store, report, inputs, status="done", name=log_name))
        _point("logged", checkpoint)
    return report


def _refresh_lai(
    cfg: Config,
    store: Store,
    sources: Sequence[str],
    report: RefreshReport,
    inputs: dict[str, Any],
    *,
    recompute: bool,
    echo: Echo,
    checkpoint: Checkpoint | None,
    lease: Any,
) -> pd.DatetimeIndex:
    """Plan (:func:`plan_lai`), drop the product days to predict again, reset revised composites, ingest, record; those days."""
    plan = plan_lai(cfg, store, sources, complete_days(store))
    inputs["lai"] = [{"url": url, **entry} for url, entry in plan.md5s.items()]
    for url, dates in plan.revised.items():
        days = plan.revised_days.get(url, _NO_DAYS)
        report.revised[url] = [f"{d:%Y-%m-%d}" for d in days]
        echo(
            f"[refresh] revised LAI input {url}: md5 changed; composite(s) {', '.join(f'{d:%Y-%m-%d}' for d in dates)}, "
            f"read by {len(days)} product day(s)"
        )
    redo = plan.updated_days
    reset = recompute and bool(plan.revised)
    revised_days = pd.DatetimeIndex(sorted(set().union(*[set(d) for d in plan.revised_days.values()]))) if plan.revised_days else _NO_DAYS
    if reset:
        redo = redo.union(revised_days)
    if len(redo) or reset:
        # the product's days first (readers stop being shown them), then the composites: a crash in between is
        # finished by the next refresh (the days are missing, the revised files still differ from the record)
        lease.check()
        _drop_product_days(store, PRODUCT_9KM_RELPATH, redo)
        _drop_product_days(store, PRODUCT_1KM_RELPATH, redo)
        if reset:
            dates = pd.DatetimeIndex(sorted(set().union(*[set(d) for d in plan.revised.values()])))
            set_complete_composites(store, complete_composites(store).difference(dates))
    _point("lai-reset", checkpoint)
    grid = grid_for(cfg.region.name, cfg.region.bbox)
    lai_report = ingest_lai(sources, store, grid, storage_options=dict(cfg.inputs.storage_options) or None)
    _record_lai_md5s(store, plan, keep_revised=not reset)
    report.lai_composites = list(lai_report.written)
    report.lai_updated = plan.updated_days
    if reset:
        report.recomputed = report.recomputed.union(revised_days)
    echo(f"[lai] {len(lai_report.written)} composite(s) written, {len(lai_report.skipped)} already held")
    if len(plan.updated_days):
        echo(f"[refresh] {len(plan.updated_days)} product day(s) read LAI that the new composites change: predicted again")
    return redo


def _predict(
    cfg: Config,
    store: Store,
    todo: pd.DatetimeIndex,
    report: RefreshReport,
    *,
    run: str | None,
    client: Any,
    echo: Echo,
    checkpoint: Checkpoint | None,
    lease: Any,
) -> str:
    """Extend the axis when needed, then predict ``todo`` stretch by stretch; the model run used."""
    run = resolve_run(store, run, cfg.inference.experiment)
    wide, new_end = _widened(cfg, store, PRODUCT_1KM_RELPATH, todo[-1])
    if new_end is not None:
        lease.check()
        extend_time_axis(store, PRODUCT_1KM_RELPATH, product_period(wide))
        report.extended_to = new_end
        echo(f"[refresh] product time axis extended to {new_end:%Y-%m-%d}")
    _point("axis-extended", checkpoint)

    def each_task(result: Any) -> None:
        _point("predict-task", checkpoint, result)

    stretches = day_ranges(todo)
    for first, last in stretches:
        lease.check()  # the product's complete days move at the end of each stretch: only while the lease is ours
        predict_product(wide, store, start=first, end=last, run=run, client=client, echo=echo, checkpoint=each_task, follow_product=True)
    _point("predicted", checkpoint)
    return run


def missing_9km(store: Store) -> pd.DatetimeIndex:
    """Complete 1 km days the 9 km product lacks, from its first complete day on (a refresh stopped before aggregating)."""
    if not zarr_exists(store, PRODUCT_9KM_RELPATH):
        return _NO_DAYS
    fine, coarse = complete_days(store, PRODUCT_1KM_RELPATH), complete_days(store, PRODUCT_9KM_RELPATH)
    since = coarse[0] if len(coarse) else (fine[0] if len(fine) else None)
    return _NO_DAYS if since is None else fine[fine >= since].difference(coarse)


def _publish(cfg: Config, store: Store, todo: pd.DatetimeIndex, report: RefreshReport, echo: Echo, checkpoint: Checkpoint | None) -> None:
    """The 9 km product for ``report.aggregated_9km``, then the exports of ``todo``."""
    if len(report.aggregated_9km):
        grid = grid_for(cfg.region.name, cfg.region.bbox)
        for first, last in day_ranges(report.aggregated_9km):
            aggregate_9km(store, grid, start=first, end=last, echo=echo)
    _point("aggregated-9km", checkpoint)
    if len(todo):
        _export(store, todo, echo)
    _point("exported", checkpoint)


def _export(store: Store, days: pd.DatetimeIndex, echo: Echo) -> None:
    """Rewrite the export files the new days touch, in the layout the store already has (per day or per year)."""
    names = export_files(store, EXPORT_RELPATH)
    if not names:
        return
    yearly = all(len(n.rsplit("_", 1)[-1].removesuffix(".nc")) == 4 for n in names)
    if not yearly:
        for first, last in day_ranges(days):
            export_netcdf(store, start=first, end=last, period="day", echo=echo)
        return
    complete = complete_days(store)
    for year in sorted({d.year for d in days}):
        held = complete[complete.year == year]
        stretches = day_ranges(held)
        if len(stretches) == 1:
            export_netcdf(store, start=stretches[0][0], end=stretches[0][1], period="year", echo=echo)
        else:
            echo(f"[export] {year}: the product's complete days of the year are not one stretch; export the year with `smci export`")


def _md5_url(store_options: dict[str, Any], url: str) -> str | None:
    import fsspec

    h = hashlib.md5(usedforsecurity=False)
    try:
        with fsspec.open(url, "rb", **(store_options if "://" in url and not url.startswith("file://") else {})) as f:
            while block := f.read(8 * 2**20):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _write_log(store: Store, report: RefreshReport, inputs: dict[str, Any], *, status: str, name: str | None = None) -> str:
    """``refresh/log/<UTC timestamp>.json``: time, status, inputs with md5, days added and recomputed, model run, code version.

    Returns the record's path below the store (``name`` rewrites that record).
    """
    now = datetime.now(UTC)
    record = {
        "time": now.isoformat(timespec="seconds"),
        "status": status,
        "code_version": __version__,
        "model_run": report.run,
        "inputs": inputs,
        **{k: v for k, v in report.to_dict().items() if k not in ("log", "store")},
    }
    name = name or f"{LOG_RELPATH}/{now:%Y%m%dT%H%M%S%fZ}.json"
    store.write_text(name, json.dumps(record, indent=1))
    return name
