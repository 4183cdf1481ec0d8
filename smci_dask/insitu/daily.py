"""Daily targets from hourly station soil moisture: daily means, gap filling, averages per 1 km cell.

SMCI1.0 (Li, Shangguan et al. 2022) turns hourly in-situ soil moisture into
daily targets by dropping values flagged bad, filling short gaps linearly,
averaging to days and averaging the stations that share a 1 km cell. The
rules, each a parameter with the default below:

Daily means (:func:`daily_means`)
    A *sensor series* is one (station, depth range, sensor) of soil moisture
    (``variable == 'sm'``; m3/m3). Values count when they are finite and,
    where the frame has a boolean ``qc_good`` column (added by quality
    control), ``qc_good`` is True; without that column every finite value
    counts (a missing ``qc_good`` on a soil-moisture row counts as not
    good). Values are first averaged within each clock hour (so sub-hourly
    records do not weigh more than hourly ones), then over the day: the
    daily mean is the mean of the hourly means of the day. A day is kept
    when it has at least ``min_hours`` hours with a good value (default
    :data:`MIN_HOURS` = 12 of 24, SMCI1.0's rule); otherwise it is missing.
    Days run from 00:00 to 24:00 UTC unless a UTC offset is given (e.g.
    ``+8`` h for CMA stations, per network), in which case they are local
    calendar days and labelled by their local date.
Gap filling (:func:`fill_gaps`)
    The issue's rule (SMCI1.0): "fill gaps by linear interpolation from
    valid values within 5 days before and after, leave longer gaps (over 10
    days without any valid value) empty". A *gap* is a run of ``L`` missing
    days between two kept days of the same series. A missing day is filled
    when a kept day lies at most ``max_distance_days`` (default
    :data:`FILL_MAX_DISTANCE_DAYS` = 5) before or after it, i.e. when it is
    among the first or the last 5 days of its gap; its value is the linear
    interpolation in time between the two kept days that bound the gap. A gap
    of more than ``max_gap_days`` missing days (default :data:`MAX_GAP_DAYS`
    = 10, "over 10 days without any valid value") stays empty as a whole.
    With the defaults every gap of 1-10 days is filled completely (each of
    its days is within 5 days of one of its ends) and every gap of 11 days or
    more stays empty: 5 + 5 is exactly where the two numbers of the rule
    meet. A smaller ``max_distance_days`` fills only the edges of the gaps
    up to ``max_gap_days``. Nothing is extrapolated: days before a series'
    first kept day or after its last stay empty. Filled days are marked
    ``filled=True`` and carry ``n_hours=0``. (The pandas equivalent per
    series: ``interpolate("linear", limit=5, limit_direction="both",
    limit_area="inside")`` with the gaps over 10 days masked again.)
Cells (:func:`to_cells`)
    Each sensor goes to a product layer by :func:`~smci_dask.insitu.readers.assign_layer`
    (sensors with no layer, -1, are dropped and counted) and to the fine
    (1 km) cell holding its station's lat/lon (:meth:`GridSpec.rowcol`);
    stations outside the region, or missing from the station table, are
    dropped and listed. A station with several sensors on one layer (e.g.
    two probes at 5 cm) first gets the mean of its sensors for the day; the
    cell value of a (cell, layer, day) is then the plain mean of the
    station values present that day (gap-filled values included; a station
    without a value that day does not count). ``n_stations`` says how many
    stations made the value, ``n_filled`` how many of them were gap-filled
    on that day, ``station_ids`` which stations (sorted, joined by ``,``).

Everything is vectorised over whole tables (numpy/pandas group arithmetic;
no Python loop over stations, series or days).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.grid.spec import GridSpec
from smci_dask.insitu.readers import SERIES_KEYS, LayerRule, assign_layer, few_names
from smci_dask.io import Store, read_parquet

__all__ = [
    "CELL_COLUMNS",
    "DAILY_COLUMNS",
    "FILL_MAX_DISTANCE_DAYS",
    "MAX_GAP_DAYS",
    "MIN_HOURS",
    "QC_GOOD",
    "STATION_ID_SEPARATOR",
    "DAILY_RELPATH",
    "daily_means",
    "describe_dropped",
    "fill_gaps",
    "load_cell_daily",
    "to_cells",
]

#: Hours with a good value a day needs for a daily mean (SMCI1.0: at least half the day).
MIN_HOURS: Final = 12
#: A missing day is filled when a kept day lies at most this many days before or after it.
FILL_MAX_DISTANCE_DAYS: Final = 5
#: Gaps of more missing days than this stay empty as a whole.
MAX_GAP_DAYS: Final = 10
#: The boolean column quality control adds to the hourly rows (True = keep).
QC_GOOD: Final = "qc_good"
#: Joins the station ids of a cell in ``station_ids``.
STATION_ID_SEPARATOR: Final = ","

#: The daily cell table below the store root: Parquet, partitioned by ``depth_cm``.
DAILY_RELPATH: Final = "insitu/daily"

#: Columns of a daily sensor table (after the series keys present in the input).
DAILY_COLUMNS: Final = ("time", "sm", "n_hours", "filled")
#: Columns of the daily cell table (:func:`to_cells`), in order.
CELL_COLUMNS: Final = ("row", "col", "lat", "lon", "depth_cm", "time", "sm_raw", "n_stations", "n_filled", "station_ids")

_NS_PER_HOUR: Final = 3_600_000_000_000
_HOURS_PER_DAY: Final = 24


# ------------------------------------------------------------------ helpers
def _series_keys(df: pd.DataFrame) -> list[str]:
    """The sensor-series key columns present (``variable`` excluded: one variable at a time)."""
    return [k for k in SERIES_KEYS if k in df.columns and k != "variable"]


def _group_codes(df: pd.DataFrame, keys: Sequence[str]) -> npt.NDArray[np.int64]:
    """One int64 code per distinct key combination, ordered like the sorted keys (NaN keys form groups too)."""
    if not len(df):
        return np.zeros(0, dtype=np.int64)
    return df.groupby(list(keys), sort=True, observed=True, dropna=False).ngroup().to_numpy(dtype=np.int64)


def _runs(sorted_codes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(start index of each run of equal values, run id of every element) of a sorted code array."""
    if sorted_codes.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    new = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    return np.flatnonzero(new), np.cumsum(new) - 1


def _good_mask(df: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Finite values that quality control kept (all finite ones without a ``qc_good`` column)."""
    good = np.isfinite(df["value"].to_numpy(dtype=np.float64))
    if QC_GOOD in df.columns:
        col = df[QC_GOOD]
        if pd.api.types.is_bool_dtype(col.dtype):  # numpy bool or nullable boolean (NA where QC did not look)
            good &= col.to_numpy(dtype=bool, na_value=False)
        else:  # object, e.g. after a join with rows QC did not see
            if not col.dropna().map(lambda v: isinstance(v, bool | np.bool_)).all():
                raise InputError(f"hourly observations: column {QC_GOOD!r} has dtype {col.dtype}; quality control must give booleans")
            good &= col.astype(object).fillna(False).to_numpy(dtype=bool)
    return good


def _offsets_ns(df: pd.DataFrame, utc_offset_hours: float | Mapping[str, float]) -> npt.NDArray[np.int64] | int:
    """Offset of local time from UTC per row, ns (one number, or per network from a mapping)."""
    if isinstance(utc_offset_hours, Mapping):
        if "network" not in df.columns:
            raise InputError("daily_means: utc_offset_hours is given per network but the observations have no 'network' column")
        offsets = {str(k): float(v) for k, v in utc_offset_hours.items()}
        hours = df["network"].map(lambda net: offsets.get(str(net), 0.0)).astype(np.float64).to_numpy()  # per category when categorical
        return np.round(hours * _NS_PER_HOUR).astype(np.int64)
    return int(round(float(utc_offset_hours) * _NS_PER_HOUR))


def _check_columns(df: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {missing}; columns present: {list(df.columns)}")


# ------------------------------------------------------------------ daily means
def daily_means(
    hourly: pd.DataFrame,
    *,
    min_hours: int = MIN_HOURS,
    variable: str = cv.SM,
    utc_offset_hours: float | Mapping[str, float] = 0.0,
) -> pd.DataFrame:
    """Daily mean soil moisture of every sensor series from hourly observations.

    See the module docstring for the rules (good values, hourly then daily
    means, ``min_hours``, day boundaries).

    Parameters
    ----------
    hourly : pandas.DataFrame
        Long observations as the readers give them
        (:data:`~smci_dask.insitu.readers.OBSERVATION_COLUMNS`: ``station_id``,
        ``time`` UTC tz-naive, ``variable``, ``depth_from_m``, ``depth_to_m``,
        ``sensor``, ``value`` in m3/m3, ...), optionally with a boolean
        ``qc_good`` column from quality control (absent: all finite values
        are good). Rows of other variables are ignored.
    min_hours : int
        Hours (clock hours of the day with at least one good value) a day
        needs; 1-24.
    variable : str
        The variable to average (``'sm'``).
    utc_offset_hours : float or mapping of str to float
        Offset of the day boundary from UTC in hours (``8`` for UTC+8), or a
        mapping ``{network: offset}`` (networks not in it: 0).

    Returns
    -------
    pandas.DataFrame
        One row per sensor series and kept day, sorted by series then day:
        the series key columns present in ``hourly`` (``station_id``,
        ``depth_from_m``, ``depth_to_m``, ``sensor``; plus ``network`` when
        present), ``time`` (the day, ``datetime64[ns]`` at 00:00),
        ``sm`` (daily mean, m3/m3), ``n_hours`` (hours with a good value,
        int16) and ``filled`` (False). ``attrs`` holds ``rows_used`` (good
        hourly rows) and ``days_short`` (days with some good value but fewer
        than ``min_hours`` hours).

    Raises
    ------
    InputError
        A required column is missing, ``qc_good`` is not boolean, or
        ``min_hours`` is outside 1-24.
    """
    if not 1 <= int(min_hours) <= _HOURS_PER_DAY:
        raise InputError(f"daily_means: min_hours={min_hours} must be between 1 and {_HOURS_PER_DAY}")
    _check_columns(hourly, ("station_id", "time", "value"), "hourly observations")
    df = hourly
    if "variable" in df.columns:
        df = df.loc[(df["variable"] == variable).to_numpy()]
    keys = _series_keys(df)
    extra = ["network"] if "network" in df.columns else []
    good = _good_mask(df)
    df = df.loc[good]
    series = _group_codes(df, keys)
    t = df["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64) + _offsets_ns(df, utc_offset_hours)
    hour = np.floor_divide(t, _NS_PER_HOUR)
    value = df["value"].to_numpy(dtype=np.float64)

    # 1. mean per clock hour of each series
    h0 = int(hour.min()) if hour.size else 0
    span_h = int(hour.max()) - h0 + 1 if hour.size else 1
    code_h = series * span_h + (hour - h0)
    order = np.argsort(code_h, kind="stable")
    code_h = code_h[order]
    starts_h, run_h = _runs(code_h)
    n_h = np.bincount(run_h)
    hour_mean = np.bincount(run_h, weights=value[order]) / np.maximum(n_h, 1)
    first_row_h = order[starts_h]  # a row of each hour bin, for the keys
    bin_series = code_h[starts_h] // span_h
    bin_day = np.floor_divide(code_h[starts_h] % span_h + h0, _HOURS_PER_DAY)

    # 2. mean of the hourly means per day; days with enough hours
    d0 = int(bin_day.min()) if bin_day.size else 0
    span_d = int(bin_day.max()) - d0 + 1 if bin_day.size else 1
    code_d = bin_series * span_d + (bin_day - d0)  # sorted, as code_h is
    starts_d, run_d = _runs(code_d)
    n_hours = np.bincount(run_d)
    day_mean = np.bincount(run_d, weights=hour_mean) / np.maximum(n_hours, 1)
    keep = n_hours >= int(min_hours)
    rows = first_row_h[starts_d][keep]

    out = df[keys + extra].iloc[rows].reset_index(drop=True)
    days = (code_d[starts_d][keep] % span_d + d0) * _HOURS_PER_DAY * _NS_PER_HOUR
    out["time"] = days.astype("datetime64[ns]")
    out[cv.SM] = day_mean[keep]
    out["n_hours"] = n_hours[keep].astype(np.int16)
    out["filled"] = np.zeros(len(out), dtype=bool)
    out.attrs = {"rows_used": int(good.sum()), "days_short": int((~keep).sum())}
    return out


# ------------------------------------------------------------------ gap filling
def fill_gaps(daily: pd.DataFrame, *, max_distance_days: int = FILL_MAX_DISTANCE_DAYS, max_gap_days: int = MAX_GAP_DAYS) -> pd.DataFrame:
    """Fill the days of short gaps by linear interpolation (see the module docstring for the rule).

    Parameters
    ----------
    daily : pandas.DataFrame
        Kept days as :func:`daily_means` gives them: series key columns,
        ``time`` (days at 00:00), ``sm`` (m3/m3); when absent, ``n_hours`` is
        added as -1 (unknown) and ``filled`` as False. Rows with NaN ``sm``
        are not kept days and are dropped first.
    max_distance_days : int
        A missing day is filled when a kept day lies at most this many days
        before or after it (0: fill nothing).
    max_gap_days : int
        Gaps of more missing days than this stay empty as a whole.

    Returns
    -------
    pandas.DataFrame
        The kept days plus one row per filled day (``filled=True``,
        ``n_hours=0``, ``sm`` linearly interpolated between the kept days
        that bound its gap), sorted by series then day.
        ``attrs["days_filled"]`` counts the filled days.

    Raises
    ------
    InputError
        A negative setting, a missing column, times that are not whole days or
        a series with a day twice.
    """
    for name, value in (("max_distance_days", max_distance_days), ("max_gap_days", max_gap_days)):
        if int(value) < 0:
            raise InputError(f"fill_gaps: {name}={value} must be >= 0")
    _check_columns(daily, ("station_id", "time", cv.SM), "daily table")
    keys = _series_keys(daily)
    df = daily.loc[np.isfinite(daily[cv.SM].to_numpy(dtype=np.float64))]
    if "n_hours" not in df.columns:
        df = df.assign(n_hours=np.full(len(df), -1, dtype=np.int16))
    if "filled" not in df.columns:
        df = df.assign(filled=np.zeros(len(df), dtype=bool))
    series = _group_codes(df, keys)
    t = df["time"].to_numpy(dtype="datetime64[ns]")
    if (t != t.astype("datetime64[D]")).any():
        raise InputError("fill_gaps: times must be whole days at 00:00 (use daily_means first)")
    day = t.astype("datetime64[D]").astype(np.int64)
    order = np.lexsort((day, series))
    df = df.iloc[order].reset_index(drop=True)
    series, day = series[order], day[order]
    sm = df[cv.SM].to_numpy(dtype=np.float64)
    same = series[1:] == series[:-1]
    step = np.diff(day)
    if (same & (step == 0)).any():
        i = int(np.flatnonzero(same & (step == 0))[0])
        raise InputError(f"fill_gaps: series of station {df['station_id'].iloc[i]} has the day {t[order][i]} twice")
    missing = np.where(same, step - 1, 0)
    fill = (missing >= 1) & (missing <= int(max_gap_days))
    left = np.flatnonzero(fill)  # the kept day before each gap that may be filled
    n_gap = missing[left]
    src = np.repeat(left, n_gap)
    k = np.arange(src.size) - np.repeat(np.cumsum(n_gap) - n_gap, n_gap) + 1  # 1..L within each gap
    length = np.repeat(n_gap, n_gap)
    near = np.minimum(k, length + 1 - k) <= int(max_distance_days)  # a kept day within reach before or after
    src, k, length = src[near], k[near], length[near]
    frac = k / (length + 1)
    new = df.iloc[src].reset_index(drop=True)
    new["time"] = (day[src] + k).astype("datetime64[D]").astype("datetime64[ns]")
    new[cv.SM] = sm[src] + (sm[src + 1] - sm[src]) * frac
    new["n_hours"] = np.zeros(len(new), dtype=df["n_hours"].dtype)
    new["filled"] = np.ones(len(new), dtype=bool)
    out = pd.concat([df, new], ignore_index=True)
    out = out.iloc[np.lexsort((np.r_[day, day[src] + k], np.r_[series, series[src]]))].reset_index(drop=True)
    out["filled"] = out["filled"].astype(bool)
    out.attrs = {"days_filled": int(src.size)}
    return out


# ------------------------------------------------------------------ cells
def to_cells(
    daily: pd.DataFrame,
    stations: pd.DataFrame,
    grid: GridSpec,
    *,
    layer_rule: LayerRule = "nearest_centre",
    max_distance_cm: float = 10.0,
    max_width_cm: float = 15.0,
) -> pd.DataFrame:
    """Daily soil moisture per fine cell and product layer: stations sharing a cell averaged.

    See the module docstring for the rule.

    Parameters
    ----------
    daily : pandas.DataFrame
        Daily sensor series (:func:`daily_means`, usually after
        :func:`fill_gaps`): ``station_id``, ``depth_from_m``, ``depth_to_m``
        (m), ``time`` (days), ``sm`` (m3/m3), optionally ``filled``.
    stations : pandas.DataFrame
        ``station_id``, ``lat``, ``lon`` (degrees) of every station.
    grid : GridSpec
        The region's fine grid.
    layer_rule, max_distance_cm, max_width_cm
        Passed to :func:`~smci_dask.insitu.readers.assign_layer`.

    Returns
    -------
    pandas.DataFrame
        One row per (cell, layer, day) with a value, sorted by ``row``,
        ``col``, ``depth_cm``, ``time``; columns :data:`CELL_COLUMNS`:
        ``row``, ``col`` (fine cell, int32), ``lat``, ``lon`` (cell centre,
        degrees), ``depth_cm`` (product layer, int16), ``time``, ``sm_raw``
        (m3/m3), ``n_stations``, ``n_filled`` (int16), ``station_ids``
        (categorical text). ``attrs``: ``stations_outside`` (ids of stations
        outside the region or without coordinates), ``stations_unknown``
        (ids absent from ``stations``), ``sensors_without_layer`` (sensor
        series that map to no product layer) and ``stations_used``.
    """
    _check_columns(daily, ("station_id", "depth_from_m", "depth_to_m", "time", cv.SM), "daily table")
    _check_columns(stations, ("station_id", "lat", "lon"), "station table")
    st = stations.drop_duplicates("station_id").reset_index(drop=True)
    st_ids = st["station_id"].astype(str).to_numpy()
    srow, scol = grid.rowcol(st["lat"].to_numpy(dtype=np.float64), st["lon"].to_numpy(dtype=np.float64), outside="mask")
    inside = srow >= 0

    df = daily.loc[np.isfinite(daily[cv.SM].to_numpy(dtype=np.float64))]
    sid = df["station_id"].astype(str).to_numpy()
    idx = pd.Index(st_ids).get_indexer(sid)
    depth = assign_layer(
        df["depth_from_m"].to_numpy(dtype=np.float64),
        df["depth_to_m"].to_numpy(dtype=np.float64),
        rule=layer_rule,
        max_distance_cm=max_distance_cm,
        max_width_cm=max_width_cm,
    )
    unknown = sorted(set(sid[idx < 0]))
    outside = sorted(set(st_ids[~inside]) & set(sid))
    no_layer = df.loc[depth < 0, [k for k in _series_keys(df)]].drop_duplicates()
    use = (idx >= 0) & (depth >= 0)
    use[use] = inside[idx[use]]
    df = df.loc[use]
    idx, depth = idx[use], depth[use]
    filled = df["filled"].to_numpy(dtype=bool) if "filled" in df.columns else np.zeros(len(df), dtype=bool)
    day = df["time"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    sm = df[cv.SM].to_numpy(dtype=np.float64)

    # station value per (station, layer, day): mean of its sensors; filled when all of them are
    d0 = int(day.min()) if day.size else 0
    nd = int(day.max()) - d0 + 1 if day.size else 1
    nl = len(cv.DEPTHS_CM)
    layer_i = np.searchsorted(np.asarray(cv.DEPTHS_CM), depth)
    cells_used, cell = np.unique(srow[idx].astype(np.int64) * grid.ncols + scol[idx], return_inverse=True)
    cell = cell.astype(np.int64).ravel()
    # order: cell, layer, day, station -> station groups nested in cell groups
    key_s = ((cell * nl + layer_i) * nd + (day - d0)) * len(st_ids) + idx
    order = np.argsort(key_s, kind="stable")
    key_s = key_s[order]
    starts_s, run_s = _runs(key_s)
    n_sens = np.bincount(run_s)
    st_sm = np.bincount(run_s, weights=sm[order]) / np.maximum(n_sens, 1)
    st_filled = np.bincount(run_s, weights=filled[order].astype(np.float64)) == n_sens
    st_of = key_s[starts_s] % len(st_ids)
    key_c = key_s[starts_s] // len(st_ids)

    # cell value per (cell, layer, day): mean of the station values
    starts_c, run_c = _runs(key_c)
    n_st = np.bincount(run_c)
    cell_sm = np.bincount(run_c, weights=st_sm) / np.maximum(n_st, 1)
    n_fill = np.bincount(run_c, weights=st_filled.astype(np.float64)).astype(np.int16)
    kc = key_c[starts_c]
    c_day = kc % nd + d0
    c_layer = (kc // nd) % nl
    c_cell = cells_used[kc // (nd * nl)]
    rows = (c_cell // grid.ncols).astype(np.int32)
    cols = (c_cell % grid.ncols).astype(np.int32)
    lat, lon = grid.latlon(rows, cols) if rows.size else (np.zeros(0), np.zeros(0))

    out = pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "lat": np.asarray(lat, dtype=np.float64),
            "lon": np.asarray(lon, dtype=np.float64),
            "depth_cm": np.asarray(cv.DEPTHS_CM, dtype=np.int16)[c_layer],
            "time": (c_day.astype("datetime64[D]")).astype("datetime64[ns]"),
            "sm_raw": cell_sm,
            "n_stations": n_st.astype(np.int16),
            "n_filled": n_fill,
            "station_ids": _station_lists(st_ids, st_of, starts_c, n_st),
        }
    )
    out.attrs = {
        "stations_outside": outside,
        "stations_unknown": unknown,
        "sensors_without_layer": len(no_layer),
        "stations_used": int(np.unique(idx).size),
    }
    return out


def _station_lists(
    st_ids: npt.NDArray[np.str_], st_of: npt.NDArray[np.int64], starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]
) -> pd.Categorical:
    """The sorted, joined station ids of each cell-day group (a Python join only for the shared cells)."""
    if starts.size == 0:
        return pd.Categorical(np.array([], dtype=object))
    single = counts == 1
    text = np.empty(starts.size, dtype=object)
    text[single] = st_ids[st_of[starts[single]]]
    for g in np.flatnonzero(~single):  # groups of several stations: few (shared cells)
        members = st_ids[st_of[starts[g] : starts[g] + counts[g]]]
        text[g] = STATION_ID_SEPARATOR.join(sorted(members))
    return pd.Categorical(text)


def describe_dropped(cells: pd.DataFrame) -> list[str]:
    """Lines saying which stations and sensors :func:`to_cells` left out (from its ``attrs``)."""
    a = cells.attrs
    out = []
    if a.get("stations_outside"):
        ids = a["stations_outside"]
        out.append(f"{len(ids)} station(s) outside the region or without coordinates dropped: {few_names(ids)}")
    if a.get("stations_unknown"):
        ids = a["stations_unknown"]
        out.append(f"{len(ids)} station(s) missing from the station table dropped: {few_names(ids)}")
    if a.get("sensors_without_layer"):
        out.append(
            f"{a['sensors_without_layer']} sensor series map to no product layer (too deep, too wide or above ground) and were dropped"
        )
    return out


def load_cell_daily(store: Store, relpath: str = DAILY_RELPATH, *, depths: Sequence[int] | None = None) -> pd.DataFrame:
    """Read the daily cell table (written by the station ingest), sorted by ``row``, ``col``, ``depth_cm``, ``time``.

    Parameters
    ----------
    store : Store
        The store root.
    relpath : str
        The Parquet dataset below it (partitioned by ``depth_cm``).
    depths : sequence of int, optional
        Only these product depths (cm); default all.

    Returns
    -------
    pandas.DataFrame
        :data:`CELL_COLUMNS` (and ``sm_matched`` once targets are matched).
    """
    filters = [("depth_cm", "in", [int(d) for d in depths])] if depths is not None else None
    df = read_parquet(store, relpath, filters=filters)
    df = df.sort_values(["row", "col", "depth_cm", "time"], kind="stable").reset_index(drop=True)
    if "station_ids" in df.columns and not isinstance(df["station_ids"].dtype, pd.CategoricalDtype):
        df["station_ids"] = df["station_ids"].astype("category")
    return df
