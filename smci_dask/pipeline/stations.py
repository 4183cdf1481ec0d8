"""Station ingest and target matching: wiring of the in-situ stage (``smci ingest stations``).

:func:`ingest_stations`
    read (ISMN / CSV / Parquet) -> per station, as one Dask task each
    (:func:`process_station`): quality control hook (adds ``qc_good``,
    ``qc_flags``) -> :func:`~smci_dask.insitu.daily.daily_means` ->
    :func:`~smci_dask.insitu.daily.fill_gaps` -> the station's QC report
    rows. Each station's checked hourly rows are written to
    ``insitu/observations`` (Parquet, hourly, every variable, partitioned by
    ``variable``, one file per station and variable, with the QC columns
    when QC ran) as soon as its task is back, whole (a few stations are in
    flight at a time, so memory does not grow with the number of stations);
    then, once every station is done,
    :func:`~smci_dask.insitu.daily.to_cells` (stations sharing a 1 km cell
    averaged) and the other writes: ``insitu/stations.parquet`` (one row per
    station with its fine cell), ``insitu/daily`` (Parquet, partitioned by
    ``depth_cm``, raw targets ``sm_raw``), ``insitu/qc_report.csv`` and
    ``insitu/qc_report.png`` (readings raised per QC code and kept, per
    sensor and product layer). No store ever holds part of a station; a run
    that fails part-way leaves ``insitu/observations`` incomplete and the
    stage not done (the next run replaces it).
:func:`match_targets`
    ``insitu/daily`` + the ERA5-Land daily cube -> matching statistics over
    every day both have (the final model's targets) -> ``sm_matched`` added
    to ``insitu/daily``; the statistics in ``insitu/matching_stats.parquet``.
    Experiments do not use these statistics: they call
    :func:`~smci_dask.insitu.matching.matching_stats` with their own
    training mask.

One call of :func:`ingest_stations` ingests every station input of a run
(give several paths, e.g. ISMN folders and a CMA table): it replaces the
in-situ tables, and the matched targets with them (run :func:`match_targets`
again). The station tasks run on the active Dask client when there is one
(``smci ingest stations --cluster`` starts the configured cluster), else on
Dask's default local scheduler (threads); ``scheduler='sync'`` runs them one
after another in this process, with the same result. The daily rules come
from the config's ``insitu`` section (:class:`DailyRules`).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dask.callbacks import Callback

from smci_dask import conventions as cv
from smci_dask.cluster import active_client
from smci_dask.config import Config, InsituConfig
from smci_dask.covariates.era5land_store import open_era5land_daily
from smci_dask.errors import InputError
from smci_dask.grid import grid_for
from smci_dask.insitu import StationData, read_ismn, read_station_table
from smci_dask.insitu.daily import (
    DAILY_RELPATH,
    QC_GOOD,
    STATION_ID_SEPARATOR,
    daily_means,
    describe_dropped,
    fill_gaps,
    load_cell_daily,
    to_cells,
)
from smci_dask.insitu.matching import MIN_MATCH_DAYS, SWVL, apply_matching, era5_at_cells, era5_table, matching_stats
from smci_dask.insitu.qc_report import plot_qc_report, qc_report
from smci_dask.insitu.readers import SERIES_KEYS, LayerRule
from smci_dask.io import Store, store_from_config, write_parquet, zarr_exists

StationFormat = Literal["ismn", "csv", "parquet"]
Progress = Callable[[str], None]
QcHook = Callable[..., pd.DataFrame]

#: Paths below the store root.
OBSERVATIONS_RELPATH: Final = "insitu/observations"
STATIONS_RELPATH: Final = "insitu/stations.parquet"
MATCHING_STATS_RELPATH: Final = "insitu/matching_stats.parquet"
QC_REPORT_RELPATH: Final = "insitu/qc_report.csv"
QC_FIGURE_RELPATH: Final = "insitu/qc_report.png"
ERA5_RELPATH: Final = "covariates/era5land"

_FORMATS: Final = ("ismn", "csv", "parquet")
_PARQUET_SUFFIXES: Final = (".parquet", ".pq", ".parq")


# ------------------------------------------------------------------ reports
@dataclass
class StationIngestReport:
    """What :func:`ingest_stations` read, kept and wrote.

    Counts of soil-moisture data unless said otherwise: ``sensors`` are
    sensor series (station, depth range, sensor); ``hourly_rows`` the
    soil-moisture records read, ``hourly_rows_all`` every record (all
    variables); ``rows_kept`` the finite records QC kept (all finite ones
    without QC); ``daily_rows`` the sensor-days with at least ``min_hours``
    good hours, ``days_short`` those with fewer; ``gap_filled_days`` the
    sensor-days filled by interpolation; ``cell_days`` the rows of
    ``insitu/daily`` (cell x layer x day); ``cells`` the fine cells with
    data, ``cells_several_stations`` those shared by two or more stations.
    """

    inputs: list[str]
    fmt: str
    stations: int
    stations_outside: list[str]
    sensors: int
    sensors_without_layer: int
    hourly_rows: int
    hourly_rows_all: int
    qc_applied: bool
    rows_kept: int
    daily_rows: int
    days_short: int
    gap_filled_days: int
    cell_days: int
    cells: int
    cells_several_stations: int
    issues: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0
    scheduler: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few lines for people."""
        kept = f"{self.rows_kept} kept after QC" if self.qc_applied else f"{self.rows_kept} finite (no QC)"
        lines = [
            f"stations: {self.stations} read, {len(self.stations_outside)} outside the region; {self.sensors} soil-moisture sensors "
            f"({self.sensors_without_layer} without a product layer)",
            f"hourly: {self.hourly_rows} soil-moisture rows ({self.hourly_rows_all} all variables), {kept}",
            f"daily: {self.daily_rows} sensor-days, {self.days_short} days with too few hours, {self.gap_filled_days} gap-filled days",
            f"cells: {self.cell_days} cell-layer-days in {self.cells} cells, {self.cells_several_stations} with several stations",
            f"written: {', '.join(self.written)} in {self.seconds:.1f} s" + (f" (stations: {self.scheduler})" if self.scheduler else ""),
        ]
        return "\n".join(lines + [f"issue: {i}" for i in self.issues])


@dataclass
class MatchReport:
    """What :func:`match_targets` did: series are (cell, depth) pairs."""

    era5_relpath: str
    era5_first_day: str
    era5_last_day: str
    series: int
    series_matched: int
    unmatched_reasons: dict[str, int]
    rows: int
    rows_matched: int
    cells: int
    cells_substituted: int
    min_days: int
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        why = "; ".join(f"{n} {r}" for r, n in self.unmatched_reasons.items()) or "none"
        return "\n".join(
            [
                f"ERA5-Land {self.era5_relpath}: {self.era5_first_day}..{self.era5_last_day}; {self.cells} cells, "
                f"{self.cells_substituted} read from a neighbouring coarse cell (coast rule)",
                f"series: {self.series_matched} of {self.series} matched (unmatched: {why}); "
                f"rows: {self.rows_matched} of {self.rows} with sm_matched",
                f"written: {', '.join(self.written)} in {self.seconds:.1f} s",
            ]
        )


# ------------------------------------------------------------------ helpers
def _say(progress: Progress | None) -> Progress:
    return progress or (lambda _m: None)


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _read(
    path: str, fmt: StationFormat, storage_options: dict[str, Any] | None, read_options: Mapping[str, Any], client: Any = None
) -> StationData:
    opts = storage_options if _is_remote(path) else None
    if fmt == "ismn":
        return read_ismn(path, storage_options=opts, client=client, **read_options)
    if fmt == "parquet" and not path.rstrip("/").lower().endswith(_PARQUET_SUFFIXES):
        raise InputError(f"station table {path}: --format parquet needs a file ending in {', '.join(_PARQUET_SUFFIXES)}; rename it")
    if fmt == "csv" and path.rstrip("/").lower().endswith(_PARQUET_SUFFIXES):
        raise InputError(f"station table {path}: a Parquet file given with --format csv; use --format parquet")
    return read_station_table(path, storage_options=opts, **read_options)


@dataclass(frozen=True)
class DailyRules:
    """The rules from hourly readings to daily sensor values (config section ``insitu``; see :mod:`smci_dask.insitu.daily`).

    ``min_hours``: good hours a day needs; ``max_distance_days`` and
    ``max_gap_days``: gap filling; ``utc_offset_hours``: day boundary per
    network (hours ahead of UTC; others 0); ``bad_flags``: QC codes that drop
    a reading (passed to a QC hook with a ``bad_flags`` parameter);
    ``layer_rule``, ``layer_max_distance_cm``, ``layer_max_width_cm``: sensor
    depth range -> product layer.
    """

    min_hours: int = 12
    max_distance_days: int = 5
    max_gap_days: int = 10
    utc_offset_hours: Mapping[str, float] = field(default_factory=dict)
    bad_flags: tuple[str, ...] | None = None
    layer_rule: LayerRule = "nearest_centre"
    layer_max_distance_cm: float = 10.0
    layer_max_width_cm: float = 15.0

    @classmethod
    def from_config(cls, section: InsituConfig) -> DailyRules:
        return cls(
            min_hours=section.min_hours,
            max_distance_days=section.fill_max_distance_days,
            max_gap_days=section.max_gap_days,
            utc_offset_hours=dict(section.utc_offset_hours),
            bad_flags=tuple(section.bad_flags),
            layer_rule=section.layer_rule,
            layer_max_distance_cm=section.layer_max_distance_cm,
            layer_max_width_cm=section.layer_max_width_cm,
        )

    @property
    def layer_options(self) -> dict[str, Any]:
        return {"layer_rule": self.layer_rule, "max_distance_cm": self.layer_max_distance_cm, "max_width_cm": self.layer_max_width_cm}


def _takes(hook: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(hook).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _run_qc(
    qc: QcHook, hourly: pd.DataFrame, stations: pd.DataFrame, bad_flags: Sequence[str] | None = None, ancillary: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Call the QC hook and give its columns to every hourly row.

    The hook is called as ``qc(hourly)``, with ``stations=...`` when it has a
    ``stations`` parameter and ``bad_flags=...`` when it has a ``bad_flags``
    parameter (and the rules name some). It may return every row or only the
    rows it checked (e.g. :func:`smci_dask.insitu.qc.apply_qc` returns the
    soil-moisture rows), with their index kept: its new columns are then
    joined back on the index, missing (NA) on the rows it did not check;
    boolean columns become pandas' nullable ``boolean``.
    """
    name = getattr(qc, "__name__", repr(qc))
    kwargs: dict[str, Any] = {}
    if _takes(qc, "stations"):
        kwargs["stations"] = stations
    if bad_flags is not None and _takes(qc, "bad_flags"):
        kwargs["bad_flags"] = list(bad_flags)
    if ancillary is not None and _takes(qc, "ancillary"):
        kwargs["ancillary"] = ancillary
    out = qc(hourly, **kwargs)
    if not isinstance(out, pd.DataFrame) or QC_GOOD not in out.columns:
        raise InputError(f"quality control {name!r}: must return the hourly table with a boolean {QC_GOOD!r} column")
    if not pd.api.types.is_bool_dtype(out[QC_GOOD].dtype):
        raise InputError(f"quality control {name!r}: column {QC_GOOD!r} has dtype {out[QC_GOOD].dtype}; give booleans")
    if len(out) == len(hourly) and out.index.equals(hourly.index):
        return out
    if out.index.has_duplicates or not out.index.isin(hourly.index).all():
        raise InputError(f"quality control {name!r}: returned rows whose index is not that of the hourly table; keep the index")
    new = [c for c in out.columns if c not in hourly.columns]
    if not hourly.index.is_unique:  # positions are ambiguous: join on the labels
        joined = out[new].reindex(hourly.index)
        for c in new:
            if pd.api.types.is_bool_dtype(out[c].dtype):
                joined[c] = joined[c].astype("boolean")
        return pd.concat([hourly, joined], axis=1)
    at = hourly.index.get_indexer(out.index)
    extra = {}
    for c in new:
        if pd.api.types.is_bool_dtype(out[c].dtype):
            # placed by position into a masked array: reindexing gives an object column whose
            # conversion to 'boolean' was ~40 % of a station task's time
            checked = out[c].array
            values, mask = np.zeros(len(hourly), dtype=bool), np.ones(len(hourly), dtype=bool)
            values[at] = np.asarray(checked.fillna(False) if checked.dtype == "boolean" else checked, dtype=bool)
            mask[at] = np.asarray(pd.isna(checked), dtype=bool)
            extra[c] = pd.arrays.BooleanArray(values, mask)
        else:
            extra[c] = out[c].reindex(hourly.index).array
    return pd.concat([hourly, pd.DataFrame(extra, index=hourly.index)], axis=1)


def _station_table(stations: pd.DataFrame, grid: Any) -> pd.DataFrame:
    """Stations with their fine cell (``row``, ``col``; -1 outside) and ``in_region``."""
    out = stations.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(str)
    row, col = grid.rowcol(out["lat"].to_numpy(dtype=np.float64), out["lon"].to_numpy(dtype=np.float64), outside="mask")
    out["row"] = row.astype(np.int32)
    out["col"] = col.astype(np.int32)
    out["in_region"] = row >= 0
    return out


def _write_replacing(df: pd.DataFrame, store: Store, relpath: str, partition_cols: Sequence[str] | None = None) -> None:
    """Write a table, removing what an earlier run left at ``relpath`` (a partitioned dataset would keep stale parts)."""
    store.rm(relpath)
    write_parquet(df, store, relpath, partition_cols=partition_cols)


# ------------------------------------------------------------------ one station
@dataclass
class StationResult:
    """What :func:`process_station` gives back for one station."""

    hourly: pd.DataFrame  # the station's rows, with the QC columns when QC ran
    daily: pd.DataFrame  # daily sensor values, gap-filled (fill_gaps)
    report: pd.DataFrame  # QC report rows, one per soil-moisture sensor (qc_report)
    rows_used: int  # good soil-moisture rows
    daily_rows: int  # kept sensor-days (before filling)
    days_short: int
    days_filled: int


def process_station(
    hourly: pd.DataFrame, station: pd.DataFrame, qc: QcHook | None, rules: DailyRules, gridded: pd.DataFrame | None = None
) -> StationResult:
    """Quality control, daily means, gap filling and the QC report of one station (one Dask task).

    Parameters
    ----------
    hourly : pandas.DataFrame
        The station's long hourly observations (every variable), as the readers give them.
    station : pandas.DataFrame
        The station's row of the station table (``row``/``col`` and statics).
    qc : callable or None
        The QC hook (see :func:`ingest_stations`); None: every finite value is good.
    rules : DailyRules
    gridded : pandas.DataFrame, optional
        ERA5-Land at the station's cell, daily (:func:`era5_at_stations`): made hourly here
        (:func:`hourly_ancillary`) and given to a hook that takes ``ancillary`` (checks D03, D05).

    Returns
    -------
    StationResult
    """
    if qc is not None:
        anc = None
        if gridded is not None and len(hourly):
            # only the station's own span: hours beyond it would stretch the hourly grid the positional checks run on
            anc = hourly_ancillary(gridded, hourly["station_id"].iloc[0])
            anc = anc[(anc["time"] >= hourly["time"].min()) & (anc["time"] <= hourly["time"].max())]
        hourly = _run_qc(qc, hourly, station, rules.bad_flags, anc)
    offsets: float | Mapping[str, float] = dict(rules.utc_offset_hours) if rules.utc_offset_hours else 0.0
    daily = daily_means(hourly, min_hours=rules.min_hours, utc_offset_hours=offsets)
    filled = fill_gaps(daily, max_distance_days=rules.max_distance_days, max_gap_days=rules.max_gap_days)
    report = qc_report(hourly, **rules.layer_options)
    return StationResult(
        hourly=hourly,
        daily=filled,
        report=report,
        rows_used=int(daily.attrs["rows_used"]),
        daily_rows=len(daily),
        days_short=int(daily.attrs["days_short"]),
        days_filled=int(filled.attrs["days_filled"]),
    )


class _CountTasks(Callback):  # type: ignore[misc]
    """Progress of the local schedulers: a line at every tenth of the station tasks."""

    def __init__(self, n: int, say: Progress) -> None:
        super().__init__()
        self.n, self.say, self.done, self.next = n, say, 0, max(n // 10, 1)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if isinstance(key, str) and key.startswith("station-"):
            self.done += 1
            if self.done >= self.next or self.done == self.n:
                self.say(f"stations done: {self.done} of {self.n}")
                self.next = self.done + max(self.n // 10, 1)


#: Station tasks in flight per worker thread: enough to keep the workers busy, few enough to bound memory.
_IN_FLIGHT_PER_THREAD: Final = 2


def _run_stations(
    parts: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]],
    qc: QcHook | None,
    rules: DailyRules,
    scheduler: str | None,
    say: Progress,
    consume: Callable[[int, StationResult], None],
) -> str:
    """One Dask task per station: on the active client, else the local scheduler ``scheduler``; ``consume(i, result)`` per station.

    Only a few stations are in flight at a time (:data:`_IN_FLIGHT_PER_THREAD`
    per worker thread): a station's frame goes to the cluster when its task is
    submitted and its result is handed to ``consume`` and dropped as soon as it
    is back, so neither the workers nor this process ever hold every
    station's hourly rows twice. Returns where the tasks ran.
    """
    client = active_client() if scheduler is None else None
    if client is not None:
        where = f"Dask client {client.scheduler.address}"
        say(f"quality control and daily values of {len(parts)} stations as Dask tasks on the {where}")
        from distributed import as_completed

        threads = max(sum(client.nthreads().values()), 1)
        window = max(_IN_FLIGHT_PER_THREAD * threads, 2)
        tag = f"{id(parts):x}"

        def submit(i: int) -> Any:
            hourly, st, anc = parts[i]
            [data] = client.scatter([hourly])
            return client.submit(process_station, data, st, qc, rules, anc, key=f"station-{i}-{tag}", pure=False)

        index = {}
        queue = as_completed()
        for i in range(min(window, len(parts))):
            fut = submit(i)
            index[fut.key] = i
            queue.add(fut)
        nxt, step = len(index), max(len(parts) // 10, 1)
        for done, fut in enumerate(queue, start=1):
            i = index.pop(fut.key)
            result = fut.result()
            fut.release()
            del fut
            if nxt < len(parts):
                new = submit(nxt)
                index[new.key] = nxt
                queue.add(new)
                nxt += 1
            consume(i, result)
            del result
            if done % step == 0 or done == len(parts):
                say(f"stations done: {done} of {len(parts)}")
        return where
    where = f"local Dask scheduler ({scheduler or dask.config.get('scheduler', None) or 'threads'})"
    say(f"quality control and daily values of {len(parts)} stations as Dask tasks on the {where}")
    batch = max(_IN_FLIGHT_PER_THREAD * (os.cpu_count() or 1), 2)
    with _CountTasks(len(parts), say):
        for start in range(0, len(parts), batch):
            tasks = [
                dask.delayed(process_station, pure=False)(h, st, qc, rules, anc, dask_key_name=f"station-{i}")
                for i, (h, st, anc) in enumerate(parts[start : start + batch], start=start)
            ]
            for i, result in enumerate(dask.compute(*tasks, scheduler=scheduler), start=start):
                consume(i, result)
    return where


class _ObservationParts:
    """``insitu/observations`` written one station at a time: ``variable=<v>/station-<i>.parquet``.

    The dataset is the one ``write_parquet(..., partition_cols=["variable"])``
    would write from all stations at once (hive partitions, pandas metadata in
    every file), without ever holding all stations. Categorical columns are
    stored as dictionaries with int32 indices whatever their size in a
    station, and :meth:`close` gives every part the same schema (columns a
    station lacks as nulls, a column all-null in one station typed as in the
    others), as a dataset read needs.
    """

    def __init__(self, store: Store, relpath: str) -> None:
        self.store, self.relpath = store, relpath
        self.files: list[tuple[str, pa.Schema]] = []
        store.rm(relpath)
        store.makedirs(relpath)

    def write(self, i: int, hourly: pd.DataFrame) -> None:
        if hourly.empty:
            return
        for value, part in hourly.groupby("variable", observed=True, sort=True):
            # the pandas metadata keeps 'variable' (its place and dtype), the file not: it is in the folder name
            table = pa.Table.from_pandas(part, preserve_index=False).drop_columns(["variable"])
            table = table.cast(_wide_dictionaries(table.schema))
            relpath = f"{self.relpath}/variable={value}/station-{i:06d}.parquet"
            self._put(relpath, table)
            self.files.append((relpath, table.schema))

    def _put(self, relpath: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.store.write_bytes(relpath, sink.getvalue().to_pybytes())

    def close(self) -> None:
        """Rewrite the (rare) parts whose schema differs from the union of all parts'."""
        if not self.files:
            return
        schemas = [s.remove_metadata() for _, s in self.files]
        try:
            union = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"{self.relpath}: the stations' hourly tables have incompatible columns ({exc}); check the QC hook") from None
        for (relpath, schema), bare in zip(self.files, schemas, strict=True):
            if bare.equals(union):
                continue
            table = pq.read_table(self.store.join(relpath), filesystem=self.store.fs)
            columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type) for f in union]
            self._put(relpath, pa.Table.from_arrays(columns, schema=union.with_metadata(schema.metadata)))


def _wide_dictionaries(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every dictionary column's indices int32 (pandas picks int8 or int16 by a station's categories)."""
    return pa.schema(
        [
            pa.field(f.name, pa.dictionary(pa.int32(), f.type.value_type), f.nullable) if pa.types.is_dictionary(f.type) else f
            for f in schema
        ],
        metadata=schema.metadata,
    )


def _rows_of(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[rows]``: a view when the rows are one run (a station's rows in sorted observations), a copy otherwise."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and bool((np.diff(rows) == 1).all()):
        return frame.iloc[int(rows[0]) : int(rows[-1]) + 1]
    return frame.iloc[rows]


def _concat(frames: Sequence[pd.DataFrame], like: pd.DataFrame) -> pd.DataFrame:
    """Concatenate per-station frames keeping categorical columns categorical (their categories differ per station)."""
    if not frames:
        return like.iloc[:0]
    out = pd.concat(frames)
    for c in frames[0].columns:
        if isinstance(frames[0][c].dtype, pd.CategoricalDtype) and not isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("category")
    return out


# ------------------------------------------------------------------ ingest
def ingest_stations(
    cfg: Config,
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    fmt: StationFormat,
    store: Store | None = None,
    qc: QcHook | None = None,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    read_options: Mapping[str, Any] | None = None,
    rules: DailyRules | None = None,
    scheduler: str | None = None,
    **overrides: Any,
) -> StationIngestReport:
    """Read station files, apply QC and the daily rules per station, and write the in-situ tables and the QC report.

    Parameters
    ----------
    cfg : Config
        Settings: the region (``cfg.region``), the daily rules
        (``cfg.insitu``) and, when ``store`` is None, the store (``cfg.store``).
    paths : str, path or sequence of them
        Station inputs: ISMN files, folders or zip archives (``fmt='ismn'``),
        long CSV or Parquet tables (``'csv'``, ``'parquet'``); local paths or
        fsspec URLs.
    fmt : {'ismn', 'csv', 'parquet'}
        Format of every path.
    store : Store, optional
        Store root to write below; default ``cfg.store``.
    qc : callable, optional
        Quality control: ``qc(hourly) -> hourly`` with a boolean ``qc_good``
        column (and any flag columns, e.g. ``qc_flags``), called per station;
        with ``stations=`` (that station's row of the station table, with
        ``row``/``col`` and the static variables, e.g. the saturation point)
        when it has a ``stations`` parameter, and ``bad_flags=`` (the rules'
        codes that drop a reading) when it has a ``bad_flags`` parameter. It
        may return only the rows it checked (index kept); its columns are
        joined back onto all rows (NA where not checked) before
        ``insitu/observations`` is written. Without it every finite value
        counts as good. With a distributed client it must pickle (a module
        function does).
    progress : callable, optional
        Called with one line per step.
    storage_options : dict, optional
        fsspec options for remote input URLs; default ``cfg.store.storage_options``.
    read_options : mapping, optional
        Keyword arguments for the reader (:func:`~smci_dask.insitu.read_ismn`:
        ``variables``, ``sm_unit``; :func:`~smci_dask.insitu.read_station_table`:
        ``network``, ``sm_unit``, ``column_map``, ``constants``, ``na_values``).
    rules : DailyRules, optional
        The daily rules; default from ``cfg.insitu``.
    scheduler : str, optional
        None: the active Dask client if there is one, else Dask's default
        local scheduler; or a local scheduler name (``'sync'``, ``'threads'``,
        ``'processes'``).
    **overrides
        Single rules replacing those of ``rules`` (fields of :class:`DailyRules`,
        e.g. ``min_hours=18``).

    Returns
    -------
    StationIngestReport

    Raises
    ------
    InputError
        An unknown format, an unreadable input (the reader's message), a QC
        hook that gives no boolean ``qc_good``.
    """
    t0 = time.perf_counter()
    say = _say(progress)
    if fmt not in _FORMATS:
        raise InputError(f"station format {fmt!r} is unknown; use one of {', '.join(_FORMATS)}")
    names = [os.fspath(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]
    if not names:
        raise InputError("no station input given; pass at least one file, folder or URL")
    rules = rules if rules is not None else DailyRules.from_config(cfg.insitu)
    unknown = sorted(set(overrides) - set(DailyRules.__dataclass_fields__))
    if unknown:
        raise TypeError(f"ingest_stations: unknown rules {unknown}; the rules are {list(DailyRules.__dataclass_fields__)}")
    rules = replace(rules, **overrides)
    store = store if store is not None else store_from_config(cfg)
    opts = cfg.store.storage_options if storage_options is None else storage_options
    grid = grid_for(cfg.region.name, cfg.region.bbox)

    parts = []
    client = active_client() if scheduler is None else None  # ISMN files are parsed on its workers
    for name in names:
        say(f"reading {fmt} {name}" + (" (files parsed on the cluster)" if client is not None and fmt == "ismn" else ""))
        parts.append(_read(name, fmt, opts, dict(read_options or {}), client))
    data = parts[0] if len(parts) == 1 else StationData.concat(parts)
    hourly = data.observations
    say(f"read {data.summary()}")
    stations = _station_table(data.stations, grid)
    if qc is not None:
        say(f"quality control: {getattr(qc, '__name__', 'hook')}")

    by_station = hourly.groupby("station_id", sort=True, observed=True, dropna=False).indices
    station_ids = stations["station_id"].astype(str).to_numpy()
    use_grid = cfg.insitu.gridded_ancillary and qc is not None and _takes(qc, "ancillary")
    gridded = era5_at_stations(store, grid, stations, say) if use_grid else None
    work = [
        (_rows_of(hourly, rows), stations.loc[station_ids == str(sid)], None if gridded is None else gridded.get(str(sid)))
        for sid, rows in by_station.items()
    ]
    del hourly, by_station
    # each station's checked hourly rows go to insitu/observations as soon as they are back (the other tables are small)
    say(f"writing {OBSERVATIONS_RELPATH} station by station")
    writer = _ObservationParts(store, OBSERVATIONS_RELPATH)
    daily_parts: dict[int, pd.DataFrame] = {}
    report_parts: dict[int, pd.DataFrame] = {}
    tally = {"rows": 0, "sm_rows": 0, "sensors": 0, "rows_used": 0, "daily_rows": 0, "days_short": 0, "days_filled": 0}

    def consume(i: int, r: StationResult) -> None:
        writer.write(i, r.hourly)
        sm_rows = r.hourly.loc[(r.hourly["variable"] == cv.SM).to_numpy()]
        keys = [k for k in SERIES_KEYS if k in sm_rows.columns]
        tally["rows"] += len(r.hourly)
        tally["sm_rows"] += len(sm_rows)
        tally["sensors"] += int(sm_rows.groupby(keys, observed=True, dropna=False).ngroups) if len(sm_rows) else 0
        for k in ("rows_used", "daily_rows", "days_short", "days_filled"):
            tally[k] += getattr(r, k)
        daily_parts[i], report_parts[i] = r.daily, r.report

    where = _run_stations(work, qc, rules, scheduler, say, consume)
    del work
    writer.close()
    filled = _concat([daily_parts[i] for i in sorted(daily_parts)], pd.DataFrame())
    report_table = _concat([report_parts[i] for i in sorted(report_parts)], pd.DataFrame()).reset_index(drop=True)
    sensors = tally["sensors"]

    cells = to_cells(
        filled.reset_index(drop=True),
        stations,
        grid,
        layer_rule=rules.layer_rule,
        max_distance_cm=rules.layer_max_distance_cm,
        max_width_cm=rules.layer_max_width_cm,
    )
    dropped = describe_dropped(cells)
    for line in dropped:
        say(line)
    daily_rows, days_filled = tally["daily_rows"], tally["days_filled"]
    say(f"daily: {daily_rows} sensor-days, {days_filled} gap-filled, {len(cells)} cell-layer-days")

    # every station is done: now the other writes, each table whole
    written = []
    say(f"wrote {OBSERVATIONS_RELPATH} ({tally['rows']} rows); writing {STATIONS_RELPATH}, {DAILY_RELPATH}, {QC_REPORT_RELPATH}")
    _write_replacing(stations, store, STATIONS_RELPATH)
    _write_replacing(cells, store, DAILY_RELPATH, partition_cols=["depth_cm"])
    store.rm(MATCHING_STATS_RELPATH)  # statistics of earlier targets no longer hold
    store.write_text(QC_REPORT_RELPATH, report_table.to_csv(index=False))
    store.write_bytes(QC_FIGURE_RELPATH, plot_qc_report(report_table, title="Quality control" if qc is not None else "No QC"))
    written += [OBSERVATIONS_RELPATH, STATIONS_RELPATH, DAILY_RELPATH, QC_REPORT_RELPATH, QC_FIGURE_RELPATH]

    lists = cells["station_ids"].astype("category").cat.categories  # a few distinct lists, however many rows
    used_ids = {sid for text in lists for sid in str(text).split(STATION_ID_SEPARATOR)}
    used = stations[stations["in_region"] & stations["station_id"].isin(used_ids)]
    per_cell = used.groupby(["row", "col"]).size()
    return StationIngestReport(
        inputs=names,
        fmt=fmt,
        stations=len(stations),
        stations_outside=list(cells.attrs["stations_outside"]),
        sensors=sensors,
        sensors_without_layer=int(cells.attrs["sensors_without_layer"]),
        hourly_rows=tally["sm_rows"],
        hourly_rows_all=tally["rows"],
        qc_applied=qc is not None,
        rows_kept=tally["rows_used"],
        daily_rows=daily_rows,
        days_short=tally["days_short"],
        gap_filled_days=days_filled,
        cell_days=len(cells),
        cells=int(cells[["row", "col"]].drop_duplicates().shape[0]),
        cells_several_stations=int((per_cell > 1).sum()),
        issues=list(data.issues) + dropped,
        written=written,
        seconds=round(time.perf_counter() - t0, 2),
        scheduler=where,
    )


# ------------------------------------------------------------------ matching
def match_targets(
    cfg: Config,
    store: Store | None = None,
    *,
    era5_relpath: str = ERA5_RELPATH,
    min_days: int = MIN_MATCH_DAYS,
    progress: Progress | None = None,
) -> MatchReport:
    """Add ``sm_matched`` to ``insitu/daily``: every (cell, depth) matched to ERA5-Land over all common days.

    These are the final model's targets: the statistics use every day both
    the cell and the cube have (all years), and every row gets a matched
    value from them, days outside the cube's period included. A (cell,
    depth) without a valid match (too few common days, a constant series)
    keeps NaN. The statistics go to ``insitu/matching_stats.parquet``.

    Parameters
    ----------
    cfg : Config
        Region, ``matching.layers`` (depth -> ERA5-Land layer) and, when
        ``store`` is None, the store.
    store : Store, optional
        Store root holding ``insitu/daily`` and the ERA5-Land cube.
    era5_relpath : str
        The ERA5-Land daily cube below the store.
    min_days : int
        Fewest common days for a match (:data:`~smci_dask.insitu.matching.MIN_MATCH_DAYS`).
    progress : callable, optional
        Called with one line per step.

    Returns
    -------
    MatchReport
    """
    t0 = time.perf_counter()
    say = _say(progress)
    store = store if store is not None else store_from_config(cfg)
    grid = grid_for(cfg.region.name, cfg.region.bbox)
    cells = load_cell_daily(store)
    cells = cells.drop(columns=[c for c in ("sm_matched",) if c in cells.columns])
    layers = dict(cfg.matching.layers)
    era5 = open_era5land_daily(store, era5_relpath)
    if era5.sizes[cv.TIME] == 0:
        raise InputError(f"ERA5-Land daily cube {era5_relpath!r} in {store.url} holds no complete day; ingest ERA5-Land first")
    wanted = sorted({SWVL.format(k) for d, k in layers.items() if d in set(cells["depth_cm"].astype(int))})
    uc = cells[["row", "col"]].drop_duplicates()
    say(f"ERA5-Land {', '.join(wanted)} at {len(uc)} cells")
    at = era5_at_cells(era5, grid, uc["row"].to_numpy(), uc["col"].to_numpy(), variables=wanted)
    table = era5_table(at)
    stats = matching_stats(cells, table, layers=layers, min_days=min_days)
    out = apply_matching(cells, stats)
    _write_replacing(out, store, DAILY_RELPATH, partition_cols=["depth_cm"])
    write_parquet(stats, store, MATCHING_STATS_RELPATH)
    reasons = stats.loc[~stats["valid"], "reason"].value_counts()
    days = pd.DatetimeIndex(era5[cv.TIME].values)
    report = MatchReport(
        era5_relpath=era5_relpath,
        era5_first_day=str(days.min().date()),
        era5_last_day=str(days.max().date()),
        series=len(stats),
        series_matched=int(stats["valid"].sum()),
        unmatched_reasons={str(k): int(v) for k, v in reasons.items()},
        rows=len(out),
        rows_matched=int(out["sm_matched"].notna().sum()),
        cells=len(uc),
        cells_substituted=int(np.asarray(at["substituted"].values).sum()),
        min_days=int(min_days),
        written=[DAILY_RELPATH, MATCHING_STATS_RELPATH],
        seconds=round(time.perf_counter() - t0, 2),
    )
    say(report.summary())
    return report


#: ERA5-Land's soil temperature layers (stl1..stl4) and the depths (m) of their centres, for D03 at the sensor's depth.
STL_DEPTHS_M: Final = {f"stl{k}": (a + b) / 200.0 for k, (a, b) in cv.ERA5_LAYERS_CM.items()}


def era5_at_stations(store: Store, grid: Any, stations: pd.DataFrame, say: Progress | None = None) -> dict[str, pd.DataFrame] | None:
    """ERA5-Land soil temperature of every layer and precipitation at each station's cell, daily: ``{station_id: frame}``.

    The gridded series of Dorigo's D03 (frozen soil) and D05 (rise without
    rain) for stations without in-situ soil temperature or precipitation.
    Read from the daily cube ``covariates/era5land`` (coast rule as in the
    matching); None when the store has no cube yet (the checks then run only
    where the station files carry those columns). Frames: ``time`` (day),
    ``stl1`` .. ``stl4`` (K; those the cube holds, at least ``stl1``), ``tp`` (mm/day).
    """
    if not zarr_exists(store, ERA5_RELPATH):
        if say is not None:
            say(f"no ERA5-Land cube at {store.url_of(ERA5_RELPATH)}: D03/D05 use only the stations' own columns")
        return None
    era5 = open_era5land_daily(store, ERA5_RELPATH)
    inside = stations[stations["row"] >= 0].drop_duplicates("station_id")
    if era5.sizes[cv.TIME] == 0 or not {"stl1", "tp"} <= set(era5.data_vars) or inside.empty:
        return None
    names = [v for v in STL_DEPTHS_M if v in era5.data_vars] + ["tp"]
    at = era5_at_cells(era5, grid, inside["row"].to_numpy(), inside["col"].to_numpy(), variables=names).load()
    days = pd.DatetimeIndex(at[cv.TIME].values)
    values = {v: at[v].values for v in names}  # (time, cell)
    return {
        str(sid): pd.DataFrame({"time": days, **{v: values[v][:, k] for v in names}})
        for k, sid in enumerate(inside["station_id"].astype(str))
    }


def hourly_ancillary(daily: pd.DataFrame, station_id: Any) -> pd.DataFrame:
    """The daily ERA5-Land series of one station as the hourly ancillary table of :func:`~smci_dask.insitu.qc.apply_qc`.

    Soil temperature: one row per hour and ERA5-Land layer (``stl1`` ..
    ``stl4``, those given), ``depth_m`` the layer's centre (0.035, 0.175,
    0.64, 1.945 m), so that QC takes the temperature at each sensor's depth
    (linear between the layer centres) instead of the 0-7 cm layer's for
    every sensor; each hour carries its UTC day's mean (the store keeps daily
    values only; the days of the cube run 00-24 UTC). Only the top layer has
    much of a diurnal cycle, and no sensor of the product's depths (10 cm and
    deeper) reads it alone.

    Precipitation (on the ``stl1`` rows): 1/24 of the day's total on every
    hour of the day. The hour a day's rain fell is unknown, so QC runs D05
    (sensors above 0.1 m only) at daily resolution on it
    (``gridded_precipitation='daily'``: no rain in the reading's day and
    the day before), never on the even spread as if it were hourly (which
    would call a rise at 02 UTC after heavy rain at 01 UTC "without rain").
    In the pipeline the gridded series only stand in where the station has
    no in-situ soil temperature or precipitation (``gridded='fallback'``).
    """
    days = pd.DatetimeIndex(daily["time"])
    hours = (days.values[:, None] + np.arange(24).astype("timedelta64[h]")[None, :]).ravel()
    layers = [v for v in STL_DEPTHS_M if v in daily.columns]
    rain = np.repeat(daily["tp"].to_numpy(np.float64) / 24.0, 24)
    return pd.DataFrame(
        {
            "station_id": station_id,
            "time": np.tile(hours, len(layers)),
            "depth_m": np.repeat([STL_DEPTHS_M[v] for v in layers], hours.size),
            "grid_soil_temperature": np.concatenate([np.repeat(daily[v].to_numpy(np.float64) - 273.15, 24) for v in layers]),
            "grid_precipitation": np.concatenate([rain] + [np.full(hours.size, np.nan)] * (len(layers) - 1)),
        }
    )


def qc_with_saturation(
    hourly: pd.DataFrame, stations: pd.DataFrame, bad_flags: Sequence[str] | None = None, ancillary: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The ISMN automated checks (:func:`smci_dask.insitu.qc.apply_qc`) with each station's saturation point.

    The saturation point (m3/m3) is the station table's ``saturation`` (or the
    ISMN static file's ``saturation_0_30cm``); stations without one get no C03.
    ``bad_flags``: the codes that drop a reading (default all); ``ancillary``:
    ERA5-Land at the station's cell, hourly (:func:`hourly_ancillary`; D03,
    D05), used only where the station lacks the in-situ series (soil
    temperature at the sensor for D01, precipitation for D04), as the issue
    asks: ``gridded='fallback'`` of :func:`~smci_dask.insitu.qc.apply_qc`.
    This is the QC hook :func:`ingest_stations` uses from the CLI and the demo.
    """
    from smci_dask.insitu.qc import apply_qc

    column = next((c for c in ("saturation", "saturation_0_30cm") if c in stations.columns), None)
    saturation = stations.drop_duplicates("station_id").set_index("station_id")[column] if column else None
    return apply_qc(
        hourly,
        saturation=saturation,  # type: ignore[arg-type]
        bad_flags=bad_flags,  # type: ignore[arg-type]
        ancillary=ancillary,
        gridded="fallback",
        gridded_precipitation="daily",
    )
