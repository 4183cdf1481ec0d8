"""Input frames of the quality control: the readers' long table or a wide hourly frame, joined by integer keys.

:func:`~smci_dask.insitu.qc.apply_qc` takes either frame; this module turns
it into soil-moisture rows (series number, hour, value) and ancillary tables
that answer "value of this column for this series (or station) at this
hour" in O(1) per query: each table holds, per series or station, a dense
hourly array from its first to its last record (the mean where several
sensors report the same hour). No pandas merge, no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from smci_dask.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Columns of the wide QC frame; only ``time`` and ``sm`` are required.
QC_FRAME_COLUMNS: Final = (
    "station_id",
    "depth_from_m",
    "depth_to_m",
    "sensor",
    "time",
    "sm",
    "soil_temperature",
    "air_temperature",
    "precipitation",
    "grid_soil_temperature",
    "grid_precipitation",
)
#: Columns of the gridded ancillary frame (e.g. ERA5-Land at the station's cell), one row per station and hour
#: (and per depth of the gridded soil temperature where the optional column ``depth_m`` is given, see :func:`prepare`).
ANCILLARY_COLUMNS: Final = ("station_id", "time", "grid_soil_temperature", "grid_precipitation")
#: Optional column of the gridded ancillary frame: depth (m) of the row's gridded soil temperature, e.g. a layer centre.
ANCILLARY_DEPTH: Final = "depth_m"
#: The ancillary columns a QC frame may carry, in situ then gridded (deg C, deg C, mm, deg C, mm).
ANCILLARY_VALUES: Final = ("soil_temperature", "air_temperature", "precipitation", "grid_soil_temperature", "grid_precipitation")
#: Keys of one soil-moisture series (those present are used).
SERIES_KEYS: Final = ("station_id", "depth_from_m", "depth_to_m", "sensor")
#: Soil temperature of another depth stands for the sensor's when the depth centres differ by no more than this (m).
TS_DEPTH_TOLERANCE_M: Final = 0.05


@dataclass(frozen=True)
class Dense:
    """Hourly values per entity (series or station), dense from each entity's first to its last record."""

    first: IntArray  # first hour per entity (hours since 1970)
    length: IntArray  # hours per entity (0: no record)
    offset: IntArray  # start of the entity in the flat columns
    columns: dict[str, FloatArray]

    @classmethod
    def build(cls, entity: IntArray, hour: IntArray, columns: dict[str, FloatArray], n_entities: int, unique: bool = False) -> Dense:
        """From records (entity, hour, values); the mean of the finite values where an hour repeats (``unique``: none does)."""
        first, last = group_range(entity, hour, n_entities)
        length = np.where(last >= first, last - first + 1, 0)
        first = np.where(length > 0, first, 0)
        offset = np.cumsum(length) - length
        idx = offset[entity] + hour - first[entity]
        size = int(length.sum())
        out: dict[str, FloatArray] = {}
        for name, values in columns.items():
            v = np.asarray(values, dtype=np.float64)
            if unique:
                out[name] = np.full(size, np.nan)
                out[name][idx] = v
                continue
            ok = np.isfinite(v)
            sums = np.bincount(idx[ok], weights=v[ok], minlength=size)
            counts = np.bincount(idx[ok], minlength=size)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return cls(first=first, length=length, offset=offset, columns=out)

    def where(self, entity: IntArray, hour: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """(index into the columns, whether there is one) for each (entity, hour); entity -1: none."""
        e = np.maximum(entity, 0)
        rel = hour - self.first[e]
        ok = (entity >= 0) & (rel >= 0) & (rel < self.length[e])
        return self.offset[e] + rel, ok

    def take(self, column: str, index: IntArray, ok: npt.NDArray[np.bool_]) -> FloatArray:
        values = self.columns[column]
        if values.size == 0:
            return np.full(index.size, np.nan)
        return np.where(ok, np.take(values, index, mode="clip"), np.nan)

    def lookup(self, column: str, entity: IntArray, hour: IntArray) -> FloatArray:
        """Value of ``column`` for each (entity, hour); NaN where there is none (entity -1: none)."""
        return self.take(column, *self.where(entity, hour))


@dataclass
class Prepared:
    """Soil-moisture rows, their series and the ancillary tables (see the module docstring)."""

    out: pd.DataFrame  # the rows to flag, as given
    long: bool  # built from a long readers table
    sm: FloatArray  # soil moisture of the rows, m3/m3 as given
    row_series: IntArray
    row_hour: IntArray
    series: pd.DataFrame  # one row per series: the series keys present (always station_id)
    series_station: IntArray
    stations: pd.Index
    first: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # first and last hour per series
    last: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # column -> tables in order of priority: ("series" | "station", table)
    sources: dict[str, list[tuple[str, Dense]]] = field(default_factory=dict)

    def add(self, level: str, table: Dense) -> None:
        for column in table.columns:
            self.sources.setdefault(column, []).append((level, table))

    def values_at(self, column: str, series: IntArray, hour: IntArray) -> FloatArray:
        """Value of ``column`` for each (series, hour): from the first table that has one, else NaN."""
        return self.values_many([column], series, hour)[column]

    def values_many(self, columns: list[str], series: IntArray, hour: IntArray) -> dict[str, FloatArray]:
        """:meth:`values_at` for several columns, locating each table's rows once."""
        located: dict[int, tuple[IntArray, npt.NDArray[np.bool_]]] = {}
        out: dict[str, FloatArray] = {}
        for column in columns:
            values: FloatArray | None = None
            for level, table in self.sources.get(column, []):
                if id(table) not in located:
                    located[id(table)] = table.where(series if level == "series" else self.series_station[series], hour)
                found = table.take(column, *located[id(table)])
                values = found if values is None else np.where(np.isnan(values), found, values)
            out[column] = np.full(series.size, np.nan) if values is None else values
        return out


def hours_of(time: pd.Series, what: str) -> IntArray:
    """Hours since 1970-01-01 (UTC, floored) of a time column; aware times are converted to UTC."""
    t = time
    if not pd.api.types.is_datetime64_any_dtype(t):
        try:
            t = pd.to_datetime(t, utc=True)
        except (ValueError, TypeError) as err:
            raise InputError(f"{what}: column 'time' holds values that are not dates ({err}); give UTC timestamps") from err
    if isinstance(t.dtype, pd.DatetimeTZDtype):
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    if t.isna().any():
        raise InputError(f"{what}: column 'time' has {int(t.isna().sum())} missing timestamps; drop or fix those rows")
    return t.to_numpy().astype("datetime64[h]").astype(np.int64)


def _factorize(column: pd.Series) -> tuple[IntArray, pd.Index]:
    """(code per row, -1 for missing; the distinct values as text) without turning every row into a Python string."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64), pd.Index(column.cat.categories.astype(str), dtype=object)
    codes, uniques = pd.factorize(column.to_numpy(), use_na_sentinel=True)
    return codes.astype(np.int64), pd.Index([str(u) for u in uniques], dtype=object)


def _recode(codes: IntArray, labels: pd.Index, target: pd.Index) -> IntArray:
    """Codes into ``labels`` -> codes into ``target`` (-1 where absent)."""
    lookup = np.r_[target.get_indexer(labels), -1].astype(np.int64)  # code -1 picks the trailing -1
    return lookup[codes]


def _codes(df: pd.DataFrame, keys: list[str]) -> tuple[IntArray, pd.DataFrame]:
    """Integer code per row of the combination of ``keys`` (NaN is a value) and the table of combinations, sorted."""
    grouped = df.groupby(keys, sort=True, dropna=False, observed=True)
    codes = grouped.ngroup().to_numpy().astype(np.int64)
    table = grouped.size().reset_index()[keys]
    return codes, table.reset_index(drop=True)


def _check_unique(series: IntArray, hour: IntArray, table: pd.DataFrame, what: str) -> None:
    """Raise when two rows of a series fall in one hour (cheap when the rows are sorted by series and time)."""
    if series.size < 2:
        return
    h0 = int(hour.min())
    key = series * (int(hour.max()) - h0 + 1) + (hour - h0)
    step = np.diff(key)
    if (step > 0).all():  # sorted by series and time, as readers deliver them
        return
    ordered = np.sort(key)
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    if dup.size:
        i = int(np.flatnonzero(key == ordered[dup[0]])[1])
        key = ", ".join(f"{k}={v}" for k, v in table.iloc[int(series[i])].items())
        stamp = np.datetime64(int(hour[i]), "h")
        raise InputError(
            f"{what}: {dup.size} readings share an hour with another of the same sensor (first: {key}, {stamp}); "
            "QC runs on hourly series: average or drop sub-hourly readings first"
        )


def group_range(group: IntArray, values: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    """(min, max) of ``values`` per group 0 .. n_groups - 1 (int64 max / min for an empty group)."""
    lo = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    if group.size == 0:
        return lo, hi
    if (np.diff(group) >= 0).all():  # rows sorted by group, as readers deliver them: one pass per bound
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        lo[group[starts]] = np.minimum.reduceat(values, starts)
        hi[group[starts]] = np.maximum.reduceat(values, starts)
    else:
        np.minimum.at(lo, group, values)
        np.maximum.at(hi, group, values)
    return lo, hi


def _finish(prep: Prepared) -> Prepared:
    prep.first, prep.last = group_range(prep.row_series, prep.row_hour, len(prep.series))
    return prep


def _prepare_long(obs: pd.DataFrame, ts_depth_tolerance_m: float) -> Prepared:
    """Long readers table -> the soil-moisture rows, their series, and station / depth ancillary tables."""
    what = "observations"
    missing = [c for c in ("station_id", "time", "variable", "value") if c not in obs.columns]
    if missing:
        raise InputError(f"{what}: columns {missing} are missing; pass StationData.observations (columns OBSERVATION_COLUMNS)")
    var_code, var_names = _factorize(obs["variable"])
    hours = hours_of(obs["time"], what)
    value = obs["value"].to_numpy(dtype=np.float64)
    station_of_row, stations = _factorize(obs["station_id"])

    def rows_of(name: str) -> npt.NDArray[np.bool_]:
        return var_code == (var_names.get_loc(name) if name in var_names else -2)

    is_sm = rows_of("sm")
    out = obs.loc[is_sm]
    keys = [k for k in SERIES_KEYS if k in obs.columns]
    codes, series = _codes(out, keys)
    prep = Prepared(
        out=out,
        long=True,
        sm=value[is_sm],
        row_series=codes,
        row_hour=hours[is_sm],
        series=series,
        series_station=stations.get_indexer(series["station_id"].astype(str)).astype(np.int64),
        stations=stations,
    )
    _check_unique(prep.row_series, prep.row_hour, series, what)
    for var, column in (("ta", "air_temperature"), ("p", "precipitation")):
        sel = rows_of(var) & (station_of_row >= 0)
        if sel.any():
            prep.add("station", Dense.build(station_of_row[sel], hours[sel], {column: value[sel]}, len(stations)))
    sel = rows_of("ts")
    if sel.any() and "depth_from_m" in obs.columns and "depth_to_m" in obs.columns:
        ts_code, ts_table = _codes(obs.loc[sel, ["station_id", "depth_from_m", "depth_to_m"]], ["station_id", "depth_from_m", "depth_to_m"])
        pairs = match_ts_depths(series, ts_table, ts_depth_tolerance_m)
        if len(pairs):
            # every ts record goes to each soil-moisture series its depth was matched to
            ts_hours, ts_values = hours[sel], value[sel]
            order = np.argsort(ts_code, kind="stable")
            bounds = np.searchsorted(ts_code[order], np.arange(len(ts_table) + 1))
            sm_of = pairs["sm"].to_numpy(dtype=np.int64)
            ts_of = pairs["ts"].to_numpy(dtype=np.int64)
            counts = bounds[ts_of + 1] - bounds[ts_of]
            starts = np.repeat(bounds[ts_of], counts)
            within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            rows = order[starts + within]
            target = np.repeat(sm_of, counts)
            prep.add("series", Dense.build(target, ts_hours[rows], {"soil_temperature": ts_values[rows]}, len(series)))
    return prep


def match_ts_depths(series: pd.DataFrame, ts_table: pd.DataFrame, tolerance_m: float) -> pd.DataFrame:
    """Soil-temperature depth of each soil-moisture series: same station, nearest depth centre within ``tolerance_m`` (m).

    Returns
    -------
    pandas.DataFrame
        Columns ``sm`` (row of ``series``) and ``ts`` (row of ``ts_table``); a
        series without a match is absent. Ties go to the shallower sensor.
    """
    if "depth_from_m" not in series.columns or "depth_to_m" not in series.columns:
        return pd.DataFrame({"sm": np.zeros(0, np.int64), "ts": np.zeros(0, np.int64)})
    sm = pd.DataFrame(
        {
            "station_id": series["station_id"].astype(str).to_numpy(),
            "sm": np.arange(len(series)),
            "mid_sm": (series["depth_from_m"].to_numpy(float) + series["depth_to_m"].to_numpy(float)) / 2,
        }
    )
    ts = pd.DataFrame(
        {
            "station_id": ts_table["station_id"].astype(str).to_numpy(),
            "ts": np.arange(len(ts_table)),
            "mid_ts": (ts_table["depth_from_m"].to_numpy(float) + ts_table["depth_to_m"].to_numpy(float)) / 2,
        }
    )
    both = sm.merge(ts, on="station_id")
    both["offset"] = (both["mid_sm"] - both["mid_ts"]).abs()
    both = both[both["offset"] <= tolerance_m + 1e-9].sort_values(["sm", "offset", "mid_ts"])
    return both.drop_duplicates("sm")[["sm", "ts"]].reset_index(drop=True)


def _prepare_wide(frame: pd.DataFrame) -> Prepared:
    """Wide QC frame -> its rows, series and a per-series table of its own ancillary columns."""
    what = "QC frame"
    missing = [c for c in ("time", "sm") if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: columns {missing} are missing; give at least 'time' (UTC) and 'sm' (m3/m3), see QC_FRAME_COLUMNS")
    hours = hours_of(frame["time"], what)
    keys = [k for k in SERIES_KEYS if k in frame.columns]
    if keys:
        codes, series = _codes(frame, keys)
    else:
        codes, series = np.zeros(len(frame), dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1 if len(frame) else 0))
    if "station_id" not in series.columns:
        series["station_id"] = ""
    stations = pd.Index(pd.unique(series["station_id"].astype(str)))
    prep = Prepared(
        out=frame.copy(deep=False),  # columns are added, never changed in place
        long=False,
        sm=frame["sm"].to_numpy(dtype=np.float64),
        row_series=codes,
        row_hour=hours,
        series=series,
        series_station=stations.get_indexer(series["station_id"].astype(str)).astype(np.int64),
        stations=stations,
    )
    _check_unique(codes, hours, series, what)
    own = {c: frame[c].to_numpy(dtype=np.float64) for c in ANCILLARY_VALUES if c in frame.columns}
    if own:
        prep.add("series", Dense.build(codes, hours, own, len(series), unique=True))
    return prep


def _add_gridded(prep: Prepared, ancillary: pd.DataFrame) -> None:
    """Station-level gridded series as the last source of their columns."""
    what = "ancillary"
    if "station_id" not in ancillary.columns or "time" not in ancillary.columns:
        raise InputError(f"{what}: columns 'station_id' and 'time' are needed; see ANCILLARY_COLUMNS")
    columns = [c for c in ANCILLARY_COLUMNS[2:] if c in ancillary.columns]
    if not columns:
        raise InputError(f"{what}: none of the columns {list(ANCILLARY_COLUMNS[2:])}; nothing to check with")
    station = _recode(*_factorize(ancillary["station_id"]), prep.stations)
    known = station >= 0  # stations without soil moisture are ignored
    hours = hours_of(ancillary["time"], what)[known]
    values = {c: ancillary[c].to_numpy(dtype=np.float64)[known] for c in columns}
    if ANCILLARY_DEPTH in ancillary.columns and "grid_soil_temperature" in values:
        depth = ancillary[ANCILLARY_DEPTH].to_numpy(dtype=np.float64)[known]
        if np.isnan(depth).all():
            raise InputError(f"{what}: column {ANCILLARY_DEPTH!r} holds no depth; give the depth (m) of each gridded soil temperature")
        _add_gridded_at_depth(prep, station[known], hours, depth, values.pop("grid_soil_temperature"))
    if values:
        prep.add("station", Dense.build(station[known], hours, values, len(prep.stations)))


def sensor_depth_centres(series: pd.DataFrame) -> FloatArray:
    """Depth centre (m) of each soil-moisture series; NaN where its depth is not known."""
    if "depth_from_m" not in series.columns:
        return np.full(len(series), np.nan)
    top = series["depth_from_m"].to_numpy(dtype=np.float64)
    bottom = series["depth_to_m"].to_numpy(dtype=np.float64) if "depth_to_m" in series.columns else top
    return (top + np.where(np.isnan(bottom), top, bottom)) / 2


def _add_gridded_at_depth(prep: Prepared, station: IntArray, hours: IntArray, depth: FloatArray, temperature: FloatArray) -> None:
    """Gridded soil temperature at each sensor's depth, linear in depth between the gridded depths around it.

    A sensor above the shallowest gridded depth (or of unknown depth) takes
    the shallowest, one below the deepest takes the deepest. Stands for the
    soil temperature at the sensor as D01's in-situ one does (ISMN: the GLDAS
    layer of the sensor), not the surface layer's for every depth.
    """
    ok = np.isfinite(depth)
    levels = np.unique(depth[ok])
    tables = []
    for z in levels:
        at = ok & (depth == z)
        tables.append(Dense.build(station[at], hours[at], {"t": temperature[at]}, len(prep.stations)))
    n_series = len(prep.series)
    sst = prep.series_station
    has = sst >= 0
    # each series spans its station's gridded hours (the union over depths)
    first = np.full(n_series, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n_series, np.iinfo(np.int64).min, dtype=np.int64)
    for table in tables:
        e = np.maximum(sst, 0)
        present = has & (table.length[e] > 0)
        first = np.where(present, np.minimum(first, table.first[e]), first)
        last = np.where(present, np.maximum(last, table.first[e] + table.length[e] - 1), last)
    length = np.where(last >= first, last - first + 1, 0)
    if not length.any():
        return
    series = np.repeat(np.arange(n_series, dtype=np.int64), length)
    hour = np.repeat(first, length) + np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    mid = sensor_depth_centres(prep.series)
    mid = np.where(np.isnan(mid), levels[0], mid)
    if levels.size > 1:
        below = np.clip(np.searchsorted(levels, mid, side="left"), 1, levels.size - 1)
    else:
        below = np.zeros(n_series, np.int64)
    above = np.maximum(below - 1, 0)
    span = levels[below] - levels[above]
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(span > 0, np.clip((mid - levels[above]) / np.where(span > 0, span, 1.0), 0.0, 1.0), 0.0)
    st_rows, w = sst[series], weight[series]
    upper = np.full(series.size, np.nan)
    lower = np.full(series.size, np.nan)
    for k, table in enumerate(tables):
        sel = np.flatnonzero(above[series] == k)
        upper[sel] = table.lookup("t", st_rows[sel], hour[sel])
        sel = np.flatnonzero(below[series] == k)
        lower[sel] = table.lookup("t", st_rows[sel], hour[sel])
    # a weight of 0 or 1 needs one depth only (its neighbour may be missing)
    value = np.where(w == 0, upper, np.where(w == 1, lower, (1 - w) * upper + w * lower))
    prep.add("series", Dense.build(series, hour, {"grid_soil_temperature": value}, n_series, unique=True))


def prepare(obs: pd.DataFrame, ancillary: pd.DataFrame | None, ts_depth_tolerance_m: float) -> Prepared:
    """Rows, series and ancillary tables of a long table (column ``variable``) or a wide frame (column ``sm``)."""
    if "variable" in obs.columns:
        prep = _prepare_long(obs, ts_depth_tolerance_m)
    elif "sm" in obs.columns:
        prep = _prepare_wide(obs)
    else:
        raise InputError("QC input: neither a long observations table (column 'variable') nor a wide QC frame (column 'sm'); see apply_qc")
    if ancillary is not None:
        _add_gridded(prep, ancillary)
    return _finish(prep)


def frame_of(prep: Prepared, values: dict[str, FloatArray] | None = None) -> pd.DataFrame:
    """The rows with the ancillary values used at their hours (and ``sm`` for a long table).

    ``values`` holds columns already looked up for every row; the others are looked up here.
    """
    out = prep.out
    if prep.long:
        out["sm"] = prep.sm
    given = values or {}
    for column in ANCILLARY_VALUES:
        if column in given:
            values_c = given[column]
        elif column in prep.sources:
            values_c = prep.values_at(column, prep.row_series, prep.row_hour)
        else:
            values_c = np.full(len(out), np.nan)
        if column in out.columns:
            own = out[column].to_numpy(dtype=np.float64)
            out[column] = np.where(np.isnan(own), values_c, own)
        elif prep.long or column in prep.sources:
            out[column] = values_c
    return out


def build_qc_frame(
    obs: pd.DataFrame, *, ancillary: pd.DataFrame | None = None, ts_depth_tolerance_m: float = TS_DEPTH_TOLERANCE_M
) -> pd.DataFrame:
    """The wide QC frame of a long observations table: its soil-moisture rows with their ancillary values.

    Parameters
    ----------
    obs : pandas.DataFrame
        Long table as the readers give it (:attr:`StationData.observations`;
        see :func:`~smci_dask.insitu.qc.apply_qc` for the joins), or a wide
        frame (then only the gridded columns of ``ancillary`` are added).
    ancillary : pandas.DataFrame, optional
        Gridded series per station and hour (:data:`ANCILLARY_COLUMNS`).
    ts_depth_tolerance_m : float
        Largest difference (m) between the depth centres of a soil-moisture
        sensor and the soil-temperature sensor that stands for it.

    Returns
    -------
    pandas.DataFrame
        The ``sm`` rows of a long table (index and columns kept) plus ``sm``
        (m3/m3) and ``soil_temperature``, ``air_temperature``,
        ``precipitation`` (in situ: deg C, deg C, mm), ``grid_soil_temperature``,
        ``grid_precipitation`` (deg C, mm) at the row's hour, NaN where none.
    """
    return frame_of(prepare(obs, ancillary, ts_depth_tolerance_m))
