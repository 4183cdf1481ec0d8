"""Mapping the fitted models of all 10 depths over the 1 km grid for every day: :func:`predict_product`.

Work is cut into tasks of (block of ``inference.time_block`` days x spatial
tile of ``inference.tile_size`` cells) and run in parallel on the cluster
(the client given, else the active distributed client, else one task after
another in this process). Each task (:func:`smci_dask.inference.tasks.run_task`)
reads its covariates once, builds features a day at a time with the one
feature function, predicts the 10 depths of its land cells and writes whole
product chunks (``product/smci_1km``, see :mod:`smci_dask.products.smci1km`).

Models reach each worker once per run: tasks carry the run name and the
model checksums only, and workers load the member files through
:func:`~smci_dask.models.store.load_model_cached` (a per-process cache keyed
by checksum, files verified on first load); a fitted model is never put in
a task's graph. Predictors run single-threaded inside tasks.

Memory per task, measured by ``benchmarks/bench_inference.py`` (peak RSS
above the loaded models, see ``benchmarks/README.md``): 0.04 / 0.12 / 0.45
GiB for tiles of 128 / 256 / 512 cells with 32 days (0.03 / 0.09 / 0.37 GiB
with 8 days: the time block barely matters, since a task holds only
``inference.write_days`` days of output and one day of features at a time).
The working set is the tile's inputs (statics, LAI composites, an ERA5-Land
window), one day's features (26 float32 per land cell) and predictions, and
the write buffer of ``write_days`` days x 10 depths (float32, plus the
encoding's temporaries). **Bound for the default task (512 x 512 cells x 32
days): 0.5 GiB plus the models of all 10 depths, so at most 2 GiB as long as
the models take at most 1.5 GiB** (the card's member sizes say; a 4 GiB
worker then never spills). Smaller tiles are for larger models.

Resumable and idempotent: a task writes its completion marker after its
region writes; a re-run lists the markers once and skips (tile, day) work
already done, so a run killed halfway and started again gives a product
identical to an uninterrupted run, and a repeated run writes nothing. The
product's ``complete_days`` attribute is updated last.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from smci_dask import __version__
from smci_dask import conventions as cv
from smci_dask.cluster import active_client
from smci_dask.config import Config
from smci_dask.covariates.era5land_store import complete_days as era5_complete_days
from smci_dask.covariates.lai import LAI_RELPATH
from smci_dask.covariates.static import STATIC_RELPATH
from smci_dask.errors import ConfigError, InputError
from smci_dask.features.build import ERA5_RELPATH, open_feature_sources
from smci_dask.grid import get_region, grid_for
from smci_dask.grid.spec import GridSpec, Tile
from smci_dask.inference.tasks import PredictTask, TaskContext, TaskResult, run_task
from smci_dask.io import Store, zarr_exists
from smci_dask.models.store import CARD_NAME, load_card, model_checksum, model_dir
from smci_dask.products.smci1km import (
    PRODUCT_1KM_RELPATH,
    create_product,
    day_ranges,
    load_markers,
    product_tile_size,
    set_complete_days,
)

Echo = Callable[[str], None]
#: Experiment whose models make the product (all stations, all years).
FINAL_EXPERIMENT: Final = "final"


@dataclass
class PredictReport:
    """What :func:`predict_product` did."""

    product: str
    run: str
    days: pd.DatetimeIndex
    tasks_total: int
    tasks_run: int
    tasks_skipped: int
    land_cell_days: int = 0
    seconds: float = 0.0
    part_seconds: dict[str, float] = field(default_factory=dict)
    complete_days: list[list[str]] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.land_cell_days / self.seconds if self.seconds > 0 else 0.0
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.part_seconds.items())
        first, last = (f"{self.days[0]:%Y-%m-%d}", f"{self.days[-1]:%Y-%m-%d}") if len(self.days) else ("-", "-")
        return (
            f"predict: {first}..{last} with run {self.run!r}: {self.tasks_run} task(s) run, {self.tasks_skipped} already done "
            f"(of {self.tasks_total}); {self.land_cell_days} land cell-days x 10 depths in {self.seconds:.1f} s ({rate:.0f} cell-days/s)"
            + (f"; task time: {parts}" if parts else "")
            + f" -> {self.product}"
        )


# ================================================================== period, runs, covariates
def product_period(cfg: Config) -> pd.DatetimeIndex:
    """Every day of the configured period (``years``, else the region's): the product's time axis."""
    years = cfg.years
    if years is None:
        if cfg.region.name == "custom":
            raise ConfigError("region.name is 'custom' and `years` is not set: give years: [first, last] for the product's time axis")
        years = get_region(cfg.region.name).years
    return pd.date_range(f"{years[0]}-01-01", f"{years[1]}-12-31", freq="D")


def _cards(store: Store, run: str, experiment: str) -> dict[int, dict[str, Any]]:
    return {int(d): load_card(store, run, experiment, int(d)) for d in cv.DEPTHS_CM}


def list_runs(store: Store, experiment: str = FINAL_EXPERIMENT) -> list[str]:
    """Runs under ``models/`` that hold a card for every depth of ``experiment``, oldest first (card times, then name)."""
    found: list[tuple[str, str]] = []
    for run in store.ls("models"):
        paths = [f"{model_dir(run, experiment, d)}/{CARD_NAME}" for d in cv.DEPTHS_CM]
        if all(store.exists(p) for p in paths):
            created = str(load_card(store, run, experiment, cv.DEPTHS_CM[-1]).get("created", ""))
            found.append((created, run))
    return [run for _, run in sorted(found)]


def resolve_run(store: Store, run: str | None, experiment: str = FINAL_EXPERIMENT) -> str:
    """``run`` checked to hold all 10 depths, or the latest complete run; InputError saying to train first."""
    if run is None:
        runs = list_runs(store, experiment)
        if not runs:
            raise InputError(
                f"no fitted models under {store.url_of('models')} (experiment {experiment!r}, all 10 depths); run `smci train` first"
            )
        return runs[-1]
    missing = [d for d in cv.DEPTHS_CM if not store.exists(model_dir(run, experiment, d), CARD_NAME)]
    if missing:
        have = ", ".join(list_runs(store, experiment)) or "none"
        raise InputError(
            f"run {run!r} has no {experiment!r} models for depths {missing} cm under {store.url_of('models', run)}; "
            f"complete runs: {have}. Run `smci train` first or pick another --run"
        )
    return run


def check_covariate_days(store: Store, days: pd.DatetimeIndex) -> None:
    """InputError naming the requested days that the ERA5-Land cube does not hold completely."""
    have = era5_complete_days(store, ERA5_RELPATH)
    missing = days.difference(have)
    if len(missing):
        ranges = "; ".join(a if a == b else f"{a}..{b}" for a, b in day_ranges(missing))
        held = f"it holds {have[0]:%Y-%m-%d}..{have[-1]:%Y-%m-%d}" if len(have) else "it holds no complete day"
        raise InputError(
            f"ERA5-Land cube {store.url_of(ERA5_RELPATH)} lacks {len(missing)} requested day(s): {ranges} ({held}); "
            "ingest them with `smci ingest era5land` or ask for other dates"
        )


def last_covered_days(cfg: Config, store: Store, n_days: int) -> pd.DatetimeIndex:
    """The last ``n_days`` days of the period that the ERA5-Land cube holds completely (e.g. the demo's days)."""
    have = era5_complete_days(store, ERA5_RELPATH).intersection(product_period(cfg))
    if not len(have):
        raise InputError(f"ERA5-Land cube {store.url_of(ERA5_RELPATH)} holds no day of the period; ingest ERA5-Land first")
    return pd.date_range(max(have[-1] - pd.Timedelta(days=n_days - 1), have[0]), have[-1], freq="D")


def requested_days(period: pd.DatetimeIndex, start: Any, end: Any) -> pd.DatetimeIndex:
    """The days ``start..end`` (inclusive), checked against the product's period."""
    try:
        first, last = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    except (ValueError, TypeError) as exc:
        raise InputError(f"dates {start!r}..{end!r}: not dates ({exc}); give YYYY-MM-DD") from None
    if first > last:
        raise InputError(f"start {first:%Y-%m-%d} is after end {last:%Y-%m-%d}; swap them")
    days = pd.date_range(first, last, freq="D")
    outside = days.difference(period)
    if len(outside):
        ranges = "; ".join(a if a == b else f"{a}..{b}" for a, b in day_ranges(outside))
        raise InputError(
            f"days {ranges} lie outside the product period {period[0]:%Y-%m-%d}..{period[-1]:%Y-%m-%d} "
            "(config `years`, else the region's); ask for days inside it or change `years`"
        )
    return days


def select_tiles(grid: GridSpec, tile_size: int, bbox: Sequence[float] | None) -> list[Tile]:
    """The product tiles (chunks) of the grid, or those a ``bbox`` (W, S, E, N degrees) touches; tiles are predicted whole."""
    tiles = grid.tiles(tile_size)
    if bbox is None:
        return tiles
    _, sub = grid.subgrid(tuple(float(x) for x in bbox))  # type: ignore[arg-type]
    return [
        t
        for t in tiles
        if t.rows.start < sub.rows.stop and sub.rows.start < t.rows.stop and t.cols.start < sub.cols.stop and sub.cols.start < t.cols.stop
    ]


# ================================================================== planning
def plan_tasks(
    tiles: Sequence[Tile],
    days: pd.DatetimeIndex,
    origin: pd.Timestamp,
    time_block: int,
    done: dict[tuple[int, int], pd.DatetimeIndex],
) -> tuple[list[PredictTask], int]:
    """Tasks for the (block, tile) pairs with requested days not yet done; and how many pairs were already done."""
    block_of = ((days - origin).days.to_numpy() // time_block).astype(np.int64)
    tasks: list[PredictTask] = []
    skipped = 0
    for block in np.unique(block_of):
        block_days = days[block_of == block]
        for tile in tiles:
            todo = block_days.difference(done.get(tile.index, pd.DatetimeIndex([])))
            if len(todo):
                tasks.append(PredictTask(int(block), tile, todo))
            else:
                skipped += 1
    return tasks, skipped


def _done_by_tile(store: Store, relpath: str) -> dict[tuple[int, int], pd.DatetimeIndex]:
    out: dict[tuple[int, int], pd.DatetimeIndex] = {}
    for (_, index), days in load_markers(store, relpath).items():
        out[index] = out[index].union(days) if index in out else days
    return out


def _complete(all_tiles: Sequence[Tile], done: dict[tuple[int, int], pd.DatetimeIndex]) -> pd.DatetimeIndex:
    """Days every tile of the grid has written."""
    common: pd.DatetimeIndex | None = None
    for tile in all_tiles:
        days = done.get(tile.index, pd.DatetimeIndex([]))
        common = days if common is None else common.intersection(days)
    return common if common is not None else pd.DatetimeIndex([])


# ================================================================== the run
def predict_product(
    cfg: Config,
    store: Store,
    *,
    start: Any,
    end: Any,
    bbox: Sequence[float] | None = None,
    run: str | None = None,
    client: Any = None,
    echo: Echo = print,
    experiment: str | None = None,
    relpath: str = PRODUCT_1KM_RELPATH,
    checkpoint: Callable[[TaskResult], None] | None = None,
    follow_product: bool = False,
) -> PredictReport:
    """Predict the 1 km product for ``start..end`` (every land cell, all 10 depths) into ``relpath``.

    Parameters
    ----------
    cfg : Config
        Region, period (``years``), ``inference.tile_size`` / ``time_block`` /
        ``interpolation``.
    store : Store
        Store root holding ``covariates/*`` and ``models/``; receives the product.
    start, end : date-like
        First and last day (inclusive), inside the period and the ERA5-Land cube's complete days.
    bbox : (west, south, east, north), optional
        Only the product tiles this box touches (each predicted whole).
    run : str, optional
        Model run under ``models/`` (default: the latest with all 10 depths).
    client : distributed.Client, optional
        Where tasks run (default: the active client, else this process, one task after another).
    echo : callable
        Progress lines (one per task).
    experiment : str, optional
        Model experiment (default ``inference.experiment``, ``final``: all stations, all years).
    relpath : str
        The product below ``store``.
    checkpoint : callable, optional
        Called in this process with each finished task's :class:`TaskResult`
        after its chunks and marker are written (a test hook: raising here
        stops the run as a crash would).
    follow_product : bool
        An existing product keeps whether it holds ``sm_spread``, whatever
        ``inference.uncertainty`` says (the refresh); default: a product that
        does not match the setting is an error naming the fix.

    Returns
    -------
    PredictReport

    Raises
    ------
    InputError
        No models (run `smci train` first), dates outside the period or the
        covariate stores (naming the days), or a product made by another run.
    """
    t_start = time.perf_counter()
    experiment = experiment or cfg.inference.experiment
    grid = grid_for(cfg.region.name, cfg.region.bbox)
    period = product_period(cfg)
    days = requested_days(period, start, end)
    run = resolve_run(store, run, experiment)
    check_covariate_days(store, days)
    sources = open_feature_sources(store)  # fails early, naming a missing covariate store
    cards = _cards(store, run, experiment)
    checksums = {d: model_checksum(c) for d, c in cards.items()}
    attrs = {
        "model_run": run,
        "model_experiment": experiment,
        "model_checksums": {str(d): s for d, s in checksums.items()},
        "model_training_fingerprints": {str(d): str(c.get("training_fingerprint", "")) for d, c in cards.items()},
        "code_version": __version__,
        "source": f"smci_dask {__version__} (smci predict)",
        "history": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} created by smci predict (smci_dask {__version__})",
        "inputs": {
            "era5land": store.url_of(ERA5_RELPATH),
            "lai": store.url_of(LAI_RELPATH),
            "static": store.url_of(STATIC_RELPATH),
            "models": store.url_of("models", run, experiment),
        },
        "era5land_interpolation": cfg.inference.interpolation,
        "time_block_days": cfg.inference.time_block,
    }
    want_spread: bool | None = cfg.inference.uncertainty
    if follow_product and zarr_exists(store, relpath):
        want_spread = None
    product = create_product(store, relpath, grid, period, tile_size=cfg.inference.tile_size, attrs=attrs, uncertainty=want_spread)
    with_spread = cv.SM_SPREAD in product.data_vars
    tile_size = product_tile_size(product)
    time_block = int(product.attrs.get("time_block_days", cfg.inference.time_block))
    all_tiles = grid.tiles(tile_size)
    tiles = select_tiles(grid, tile_size, bbox)
    done = _done_by_tile(store, relpath)
    tasks, skipped = plan_tasks(tiles, days, period[0], time_block, done)
    ctx = TaskContext(
        store,
        relpath,
        grid,
        run,
        experiment,
        checksums,
        period[0],
        cfg.inference.interpolation,
        cfg.inference.write_days,
        uuid.uuid4().hex,
        uncertainty=with_spread,
    )
    report = PredictReport(store.url_of(relpath), run, days, len(tasks) + skipped, len(tasks), skipped)
    model_mb = sum(int(m.get("bytes", 0)) for c in cards.values() for m in c["members"].values()) / 2**20
    echo(
        f"[predict] {len(days)} day(s) x {len(tiles)} tile(s) of {tile_size} x {tile_size} cells: {len(tasks)} task(s) to run, "
        f"{skipped} already written; models {run}/{experiment} ({model_mb:.0f} MB of model files, loaded once per worker)"
        + (f"; with {cv.SM_SPREAD} (spread of the trees)" if with_spread else "")
    )
    for i, result in enumerate(_execute(ctx, tasks, client, sources), start=1):
        report.land_cell_days += result.cell_days
        for k, v in result.seconds.items():
            report.part_seconds[k] = report.part_seconds.get(k, 0.0) + v
        echo(
            f"[predict] {i}/{len(tasks)} block {result.block} tile {result.tile}: {result.land_cells} land cells x "
            f"{result.days} day(s) in {sum(result.seconds.values()):.1f} s"
        )
        if checkpoint is not None:
            checkpoint(result)
    complete = _complete(all_tiles, _done_by_tile(store, relpath))
    set_complete_days(store, relpath, complete)
    report.complete_days = day_ranges(complete)
    report.seconds = time.perf_counter() - t_start
    echo(f"[predict] {report.summary()}")
    return report


def _execute(ctx: TaskContext, tasks: Sequence[PredictTask], client: Any, sources: Any) -> Any:
    """Yield each task's result as it finishes (on the cluster, or here one after another)."""
    client = active_client(client)
    if client is None:
        for task in tasks:
            yield run_task(ctx, task, sources=sources)
        return
    from distributed import as_completed

    futures = [client.submit(run_task, ctx, task, key=f"{task.key}-{ctx.token[:8]}", pure=False, retries=0) for task in tasks]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
