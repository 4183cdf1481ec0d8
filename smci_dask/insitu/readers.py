"""Station data as read from files: the common table layout, depth layers, units.

Every station reader returns a :class:`StationData`: long observations, one
row per station, one row per sensor file, and a list of issues the reader
met and resolved (duplicate timestamps dropped, files skipped). The readers
themselves live in :mod:`smci_dask.insitu.readers_ismn` (ISMN files, folders
and zip archives) and :mod:`smci_dask.insitu.readers_table` (long CSV /
Parquet tables such as the CMA networks deliver); both are re-exported here
and from :mod:`smci_dask.insitu`.

Decisions shared by the readers
-------------------------------
Times
    UTC, stored tz-naive as ``datetime64[ns]``. ISMN files are UTC by
    definition; naive table timestamps are taken as UTC, aware ones are
    converted to UTC.
Duplicate timestamps
    Within one sensor series (station, variable, depth range, sensor) the
    first record in reading order is kept (files in sorted path order, rows
    in file order); every dropped group is reported in
    :attr:`StationData.issues` with its file and the first duplicate time.
    Reading a folder that holds the same series twice (e.g. the header+values
    and the CEOP copy of one sensor) therefore gives the series once.
Soil-moisture units
    The product is in m3/m3. ``sm_unit='auto'`` takes a station's soil
    moisture as percent (vol.) when the 99th percentile of its finite values
    exceeds 1.0 and divides it by 100; ``'percent'`` always divides;
    ``'m3/m3'`` never does. A series whose 99th percentile exceeds 100
    (percent) or, declared m3/m3, exceeds 1.0 is neither and is rejected with
    :class:`~smci_dask.errors.InputError`. Single values outside [0, 1] after
    conversion are kept: quality control flags them.
Depth layers
    :func:`assign_layer` maps a sensor's depth range to a product layer
    (see its docstring for the rule).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from smci_dask import conventions as cv
from smci_dask.errors import InputError, StoreError
from smci_dask.io import Store

if TYPE_CHECKING:  # re-exported lazily (see __getattr__ at the end)
    from smci_dask.insitu.readers_ismn import read_custom_metadata, read_ismn
    from smci_dask.insitu.readers_table import read_station_table

__all__ = [
    "OBSERVATION_COLUMNS",
    "SENSOR_COLUMNS",
    "STATION_COLUMNS",
    "VARIABLE_UNITS",
    "LayerRule",
    "SmUnit",
    "StationData",
    "add_custom_metadata",
    "assign_layer",
    "read_custom_metadata",
    "read_ismn",
    "read_station_table",
    "to_m3m3",
]

LayerRule = Literal["nearest_centre", "overlap"]
SmUnit = Literal["auto", "m3/m3", "percent"]

#: Variables (ISMN abbreviations) and their units in :attr:`StationData.observations`.
VARIABLE_UNITS: Final[dict[str, str]] = {
    "sm": "m3/m3",  # soil moisture, volumetric
    "ts": "degC",  # soil temperature
    "ta": "degC",  # air temperature
    "p": "mm",  # precipitation over the record's interval (hourly for ISMN)
}
SM: Final = cv.SM

#: Depth (m, negative above ground) given to air temperature and precipitation read from a table (ISMN's convention).
AIR_TEMPERATURE_DEPTH_M: Final = -2.0
PRECIPITATION_DEPTH_M: Final = 0.0

#: Columns of :attr:`StationData.observations`, in order.
OBSERVATION_COLUMNS: Final = (
    "station_id",
    "network",
    "station",
    "time",
    "variable",
    "depth_from_m",
    "depth_to_m",
    "sensor",
    "value",
    "qflag",
    "provider_flag",
)
#: Columns every :attr:`StationData.stations` has (static variables follow).
STATION_COLUMNS: Final = ("station_id", "network", "station", "lat", "lon", "elevation_m")
#: Columns of :attr:`StationData.sensors`, in order.
SENSOR_COLUMNS: Final = (
    "station_id",
    "network",
    "station",
    "variable",
    "depth_from_m",
    "depth_to_m",
    "sensor",
    "file",
    "format",
    "n_values",
)
#: Columns of :attr:`StationData.static_variables`, in order.
STATIC_COLUMNS: Final = ("station_id", "quantity", "unit", "depth_from_m", "depth_to_m", "value", "description", "source")

#: Keys of one sensor series.
SERIES_KEYS: Final = ("station_id", "variable", "depth_from_m", "depth_to_m", "sensor")
_CATEGORICAL: Final = ("station_id", "network", "station", "variable", "sensor", "qflag", "provider_flag")
TIME_DTYPE: Final = "datetime64[ns]"

#: Percent detection: a station's soil moisture is percent when this quantile of its values exceeds 1.0.
PERCENT_QUANTILE: Final = 0.99


def station_id(network: str, station: str) -> str:
    """The station key ``"<network>/<station>"``."""
    return f"{network}/{station}"


# ------------------------------------------------------------------ container
@dataclass
class StationData:
    """Station observations and metadata as read from files.

    Attributes
    ----------
    observations : pandas.DataFrame
        Long table, one row per record, sorted by series then time; columns
        :data:`OBSERVATION_COLUMNS`: ``station_id`` (``"network/station"``),
        ``network``, ``station``, ``time`` (UTC, tz-naive ``datetime64[ns]``),
        ``variable`` (``'sm'`` soil moisture m3/m3, ``'ts'`` soil temperature
        deg C, ``'ta'`` air temperature deg C, ``'p'`` precipitation mm),
        ``depth_from_m``, ``depth_to_m`` (m below the surface, negative above
        it), ``sensor``, ``value`` (float64, units as given),
        ``qflag`` (ISMN quality flag, e.g. ``'G'``, ``'U'``, ``'D05,D06'``;
        empty where the source has none) and ``provider_flag`` (the data
        provider's flag as given, empty where none). Text columns are
        categorical.
    stations : pandas.DataFrame
        One row per station: :data:`STATION_COLUMNS` (``lat``, ``lon`` in
        degrees, ``elevation_m`` in m, NaN where unknown) plus static
        variables where the source has them, e.g. ``saturation_0_30cm``
        (m3/m3), ``clay_0_30cm`` (% weight), ``landcover`` (ESA CCI class),
        ``climate_class`` (Koeppen-Geiger code).
    sensors : pandas.DataFrame
        One row per sensor series and file: :data:`SENSOR_COLUMNS`
        (``format`` is ``'header_values'``, ``'ceop'`` or ``'table'``;
        ``n_values`` the records of the series in the file: for ISMN files
        before duplicates with other files were dropped, for tables after).
    static_variables : pandas.DataFrame
        ISMN static variables in long form (:data:`STATIC_COLUMNS`; ``value``
        as text), empty for tables.
    issues : list of str
        What the reader met and resolved without failing: duplicate
        timestamps dropped, files or columns skipped, units converted.
    attrs : dict
        Descriptive metadata of the source (e.g. ``ismn_metadata`` from an
        ISMN ``Metadata.xml``).
    """

    observations: pd.DataFrame
    stations: pd.DataFrame
    sensors: pd.DataFrame
    static_variables: pd.DataFrame = field(default_factory=lambda: empty_frame(STATIC_COLUMNS))
    issues: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def concat(cls, parts: Iterable[StationData]) -> StationData:
        """Join several reads (e.g. ISMN and a CMA table) into one.

        Observations are de-duplicated again (first part wins); a station in
        more than one part keeps its first row, with static variables filled
        from the later parts.
        """
        parts = list(parts)
        if not parts:
            raise InputError("StationData.concat: nothing to join; read at least one source first")
        issues = [i for p in parts for i in p.issues]
        obs = pd.concat([_decategorise(p.observations) for p in parts], ignore_index=True)
        obs, dup_issues = drop_duplicate_times(obs, source="joined data")
        stations = _combine_stations([p.stations for p in parts])
        sensors = finish_sensors(pd.concat([_decategorise(p.sensors) for p in parts], ignore_index=True))
        statics = pd.concat([p.static_variables for p in parts], ignore_index=True)
        attrs: dict[str, Any] = {}
        for p in parts:
            attrs.update(p.attrs)
        return cls(finish_observations(obs), stations, sensors, statics, issues + dup_issues, attrs)

    def summary(self) -> str:
        """One line: stations, sensors, records and issues."""
        return (
            f"{self.stations.shape[0]} stations, {self.sensors.shape[0]} sensor files, "
            f"{self.observations.shape[0]} records, {len(self.issues)} issues"
        )


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    """An empty frame with ``columns``."""
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def _decategorise(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object)
    return out


def _combine_stations(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stations of several reads: first row per station, gaps filled from later ones."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame(STATION_COLUMNS)
    out = frames[0].set_index("station_id")
    for f in frames[1:]:
        out = out.combine_first(f.set_index("station_id"))
    out = out.reset_index()
    rest = [c for c in out.columns if c not in STATION_COLUMNS]
    return out[list(STATION_COLUMNS) + rest].sort_values("station_id", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ layers
def assign_layer(
    depth_from_m: npt.ArrayLike,
    depth_to_m: npt.ArrayLike,
    *,
    rule: LayerRule = "nearest_centre",
    max_distance_cm: float = 10.0,
    max_width_cm: float = 15.0,
) -> npt.NDArray[np.int64]:
    """Product layer (cm, one of ``conventions.DEPTHS_CM``) of each sensor, or -1 for "not used".

    The product layers are labelled 10, 20, ..., 100 cm; layer ``d`` spans
    ``(d - 10, d]`` cm (``conventions.DEPTH_BOUNDS_CM``), so its centre is at
    ``d - 5`` cm. This is how SMCI1.0's in-situ sources report: a CMA sensor
    "at 10 cm" (depth 0.10-0.10 m) and a CMA layer "0-10 cm" (0.00-0.10 m)
    both belong to layer 10; "10-20 cm" to layer 20; an ISMN ThetaProbe at
    0.05 m to layer 10.

    Rules
    -----
    ``'nearest_centre'`` (default)
        The sensor's mid-depth ``m = (from + to) / 2`` goes to the layer
        whose centre is nearest; a tie (``m`` exactly on a layer boundary,
        i.e. a point sensor at 10, 20, ... cm) goes to the layer it bounds
        from below (the shallower one). Equivalently ``ceil(m / 10) * 10``,
        with ``m`` in [0, 10] going to layer 10.
    ``'overlap'``
        The layer sharing the longest part of the range ``[from, to]``
        (ties to the shallower layer); a point sensor, or a range below
        100 cm, falls back to ``'nearest_centre'``. The two rules agree for
        ranges up to 10 cm wide and differ for wider ones (0-30 cm: layer 20
        by centre, 10 by overlap).

    Under both rules a sensor is not used (-1) when its range is wider than
    ``max_width_cm`` (cosmic-ray probes, 0-19 cm and wider, integrate over
    several layers), when its mid-depth is above the surface (``m < 0``:
    air temperature), deeper than ``100 + max_distance_cm`` cm, or a depth
    is missing (NaN). ``from > to`` is read as the same range reversed.

    Parameters
    ----------
    depth_from_m, depth_to_m : array_like of float
        Top and bottom of each sensor's range, m below the surface
        (broadcast together).
    rule : {'nearest_centre', 'overlap'}
    max_distance_cm : float
        How far below the deepest layer's bottom (100 cm) a sensor may sit
        and still be mapped to it, cm.
    max_width_cm : float
        The widest range (``to - from``) mapped to a layer, cm.

    Returns
    -------
    numpy.ndarray of int64
        Layer label in cm (10, 20, ..., 100) or -1, shaped like the
        broadcast inputs.
    """
    if rule not in ("nearest_centre", "overlap"):
        raise InputError(f"assign_layer: rule {rule!r} is unknown; use 'nearest_centre' or 'overlap'")
    a, b = np.broadcast_arrays(np.asarray(depth_from_m, dtype=np.float64), np.asarray(depth_to_m, dtype=np.float64))
    # cm, rounded to a micrometre so 0.1 m * 100 lands exactly on 10 cm
    top = np.round(np.minimum(a, b) * 100.0, 4)
    bottom = np.round(np.maximum(a, b) * 100.0, 4)
    mid = np.round((top + bottom) / 2.0, 4)
    depths = np.asarray(cv.DEPTHS_CM, dtype=np.float64)
    thick = float(depths[0])  # 10 cm layers
    deepest = float(depths[-1])
    with np.errstate(invalid="ignore"):
        layer = np.clip(np.ceil(mid / thick) * thick, depths[0], deepest)
        if rule == "overlap":
            lo = depths - thick
            ov = np.minimum(bottom[..., None], depths) - np.maximum(top[..., None], lo)
            ov = np.where(np.isfinite(ov), ov, 0.0)
            best = ov.max(axis=-1)
            by_overlap = depths[np.argmax(ov, axis=-1)]
            layer = np.where((bottom > top) & (best > 0), by_overlap, layer)
        bad = ~np.isfinite(mid) | (mid < 0) | (mid > deepest + max_distance_cm) | ((bottom - top) > max_width_cm)
    out = np.where(bad, -1, np.nan_to_num(layer, nan=-1)).astype(np.int64)
    return out


# ------------------------------------------------------------------ units
def to_m3m3(
    values: npt.ArrayLike,
    stations: npt.ArrayLike,
    *,
    unit: SmUnit = "auto",
    source: str,
) -> tuple[npt.NDArray[np.float64], list[str]]:
    """Soil moisture in m3/m3, per station, from m3/m3 or percent (vol.).

    Parameters
    ----------
    values : array_like of float
        Soil moisture, m3/m3 or % vol.
    stations : array_like
        Station of each value (the unit is decided per station).
    unit : {'auto', 'm3/m3', 'percent'}
        ``'auto'``: a station whose 99th percentile of finite values exceeds
        1.0 is percent and is divided by 100. ``'percent'``: all divided by
        100. ``'m3/m3'``: kept.
    source : str
        The file, for messages.

    Returns
    -------
    values : numpy.ndarray of float64
        m3/m3.
    issues : list of str
        One line per conversion decision worth knowing.

    Raises
    ------
    InputError
        A station's 99th percentile exceeds 100 (neither unit), or exceeds
        1.0 when ``unit='m3/m3'``; an unknown ``unit``.
    """
    if unit not in ("auto", "m3/m3", "percent"):
        raise InputError(f"{source}: sm_unit {unit!r} is unknown; use 'auto', 'm3/m3' or 'percent'")
    v = np.asarray(values, dtype=np.float64).copy()
    st = pd.Series(np.asarray(stations)).astype(str)
    if v.size == 0:
        return v, []
    q = pd.Series(np.where(np.isfinite(v), v, np.nan)).groupby(st.to_numpy(), sort=True).quantile(PERCENT_QUANTILE)
    issues: list[str] = []
    for name, p99 in q.items():
        if not np.isfinite(p99):
            continue
        if p99 > 100.0:
            raise InputError(
                f"{source} station {name}: soil moisture is neither m3/m3 nor percent "
                f"(99th percentile {p99:.4g} > 100); fix the values or the column mapping"
            )
        if unit == "m3/m3" and p99 > 1.0:
            raise InputError(
                f"{source} station {name}: soil moisture declared m3/m3 but its 99th percentile is {p99:.4g} > 1; "
                "it looks like percent: declare sm_unit='percent' (or 'auto')"
            )
    if unit == "percent":
        v /= 100.0
        dry = [str(n) for n, p in q.items() if np.isfinite(p) and p <= 1.0]
        if dry:
            issues.append(f"{source}: soil moisture declared percent but stations {few_names(dry)} never exceed 1 %; check the unit")
    elif unit == "auto":
        pct = q.index[(q > 1.0).to_numpy()]
        if len(pct):
            v[st.isin(pct).to_numpy()] /= 100.0
            issues.append(
                f"{source}: soil moisture of stations {few_names([str(x) for x in pct])} read as percent "
                "(99th percentile > 1) and divided by 100"
            )
            rest = [str(n) for n, p in q.items() if np.isfinite(p) and p <= 1.0]
            if rest:
                issues.append(
                    f"{source}: stations {few_names(rest)} read as m3/m3 while others in the same file are percent; check the units"
                )
    return v, issues


def few_names(names: Sequence[str], n: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# ------------------------------------------------------------------ table finishing
def drop_duplicate_times(
    obs: pd.DataFrame, source: Sequence[str] | npt.NDArray[np.object_] | str = "input"
) -> tuple[pd.DataFrame, list[str]]:
    """Keep the first record of each (series, time); report what was dropped.

    Parameters
    ----------
    obs : pandas.DataFrame
        Observations in reading order (:data:`OBSERVATION_COLUMNS`).
    source : str or sequence of str
        The file (of each row), for the messages.

    Returns
    -------
    obs : pandas.DataFrame
        Without the later duplicates.
    issues : list of str
        One line per series and file with duplicates.
    """
    if obs.empty:
        return obs, []
    keys = [*SERIES_KEYS, "time"]
    dup = _duplicated(obs, keys)
    if not dup.any():
        return obs, []
    dropped = obs.loc[dup, keys].copy()
    dropped["_source"] = source if isinstance(source, str) else np.asarray(source, dtype=object)[dup]
    issues = []
    for (sid, var, a, b, sensor, src), g in dropped.groupby([*SERIES_KEYS, "_source"], sort=True, observed=True, dropna=False):
        first = pd.Timestamp(g["time"].min())
        issues.append(
            f"{src}: station {sid} {var} {a:g}-{b:g} m {sensor}: {len(g)} duplicate timestamps "
            f"(first {first:%Y-%m-%d %H:%M}); kept the first record of each"
        )
    return obs.loc[~dup].reset_index(drop=True), issues


def _duplicated(df: pd.DataFrame, keys: Sequence[str]) -> npt.NDArray[np.bool_]:
    """``df.duplicated(keys)`` via one int64 code per series (factorised columns, mixed radix): faster on long tables."""
    code = np.zeros(len(df), dtype=np.int64)
    size = 1
    for k in keys[:-1]:
        codes, uniques = pd.factorize(df[k], use_na_sentinel=False)
        if size * (len(uniques) + 1) >= 2**62:  # would overflow: fall back to pandas
            return df.duplicated(subset=list(keys), keep="first").to_numpy()
        code = code * (len(uniques) + 1) + codes
        size *= len(uniques) + 1
    last = df[keys[-1]].to_numpy()
    return pd.DataFrame({"series": code, "last": last}).duplicated(keep="first").to_numpy()


def finish_observations(obs: pd.DataFrame) -> pd.DataFrame:
    """Column order, dtypes (categorical text, ``datetime64[ns]``) and sort order of observations."""
    if obs.empty:
        out = empty_frame(OBSERVATION_COLUMNS)
        out["time"] = pd.Series([], dtype=TIME_DTYPE)
        for c in ("depth_from_m", "depth_to_m", "value"):
            out[c] = pd.Series([], dtype=np.float64)
    else:
        out = obs.loc[:, list(OBSERVATION_COLUMNS)].copy()
        out["time"] = out["time"].astype(TIME_DTYPE)
        for c in ("depth_from_m", "depth_to_m", "value"):
            out[c] = out[c].astype(np.float64)
        out = out.sort_values([*SERIES_KEYS, "time"], kind="stable").reset_index(drop=True)
    for c in _CATEGORICAL:
        col = out[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.cat.remove_unused_categories()
            if not pd.api.types.is_string_dtype(col.cat.categories) or col.isna().any():  # str categories, no missing
                col = col.astype(object).fillna("").astype(str).astype("category")
            out[c] = col
        else:
            out[c] = col.astype(object).fillna("").astype(str).astype("category")
    return out


def finish_sensors(sensors: pd.DataFrame) -> pd.DataFrame:
    """Column order, dtypes and sort order of the sensor table."""
    if sensors.empty:
        return empty_frame(SENSOR_COLUMNS)
    out = sensors.loc[:, list(SENSOR_COLUMNS)].copy()
    out["n_values"] = out["n_values"].astype(np.int64)
    for c in ("depth_from_m", "depth_to_m"):
        out[c] = out[c].astype(np.float64)
    return out.sort_values([*SERIES_KEYS, "file"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ metadata
def add_custom_metadata(data: StationData, table: pd.DataFrame) -> StationData:
    """Join a :func:`read_custom_metadata` table onto the stations (station table) or sensors (sensor table).

    Rows are matched on ``station_id`` (and ``variable``, ``sensor``, depths
    to 1 mm for a sensor table); a key given twice keeps its first row and is
    reported in ``issues``, rows matching nothing are counted in ``issues``.
    """
    sensor_level = "sensor" in table.columns
    keys = ["station_id", "variable", "sensor", "depth_from_m", "depth_to_m"] if sensor_level else ["station_id"]
    meta = table.drop(columns=[c for c in ("network", "station") if c in table.columns]).copy()
    issues = list(data.issues)
    key_frame = meta[keys].copy()
    for c in ("depth_from_m", "depth_to_m"):
        if c in key_frame:
            key_frame[c] = key_frame[c].round(3)
    dup = key_frame.duplicated(keep="first").to_numpy()
    if dup.any():
        which = few_names([str(x) for x in meta.loc[dup, "station_id"].unique()], 3)
        issues.append(f"custom metadata: {int(dup.sum())} rows repeat an earlier key ({which}); kept the first")
    meta = meta.loc[~dup]
    target = data.sensors if sensor_level else data.stations
    left = target.copy()
    right = meta.copy()
    for c in ("depth_from_m", "depth_to_m"):
        if c in keys:
            left[f"_{c}"] = left[c].astype(np.float64).round(3)
            right[f"_{c}"] = right[c].round(3)
            right = right.drop(columns=c)
    on = [f"_{k}" if k.startswith("depth_") else k for k in keys]
    if sensor_level:
        left["variable"] = left["variable"].astype(str)
        left["sensor"] = left["sensor"].astype(str)
    left["station_id"] = left["station_id"].astype(str)
    clash = [c for c in right.columns if c in left.columns and c not in on]
    right = right.rename(columns={c: f"{c}_custom" for c in clash})
    merged = left.merge(right, on=on, how="left", indicator=True)
    unmatched = len(right) - right.merge(left[on].drop_duplicates(), on=on, how="inner").shape[0]
    if unmatched:
        issues.append(f"custom metadata: {unmatched} rows match no {'sensor' if sensor_level else 'station'} that was read")
    merged = merged.drop(columns=["_merge", *[c for c in merged.columns if c.startswith("_depth_")]])
    if sensor_level:
        return StationData(data.observations, data.stations, merged, data.static_variables, issues, dict(data.attrs))
    return StationData(data.observations, merged, data.sensors, data.static_variables, issues, dict(data.attrs))


# ------------------------------------------------------------------ sources
def open_source(path_or_url: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> tuple[Store, str, str]:
    """(store of the parent folder, file name, display name) of a file or folder URL.

    The display name is the URL as the user gave it, for messages.
    """
    url = os.fspath(path_or_url).strip()
    if not url:
        raise InputError("no input path given; pass a file, folder or URL")
    if "://" in url:
        proto, rest = url.split("://", 1)
        rest = rest.rstrip("/")
        parent, name = posixpath.split(rest)
        parent_url = f"{proto}://{parent}" if parent else f"{proto}://"
    else:
        full = os.path.abspath(os.path.expanduser(url))
        parent_url, name = os.path.split(full)
    try:
        store = Store.from_url(parent_url, storage_options)
    except StoreError as exc:
        raise InputError(f"{url}: cannot open its folder: {exc}") from None
    return store, name, url


def is_folder(store: Store, name: str) -> bool:
    """Whether ``name`` below ``store`` is a folder (False for files and missing paths)."""
    try:
        return bool(store.fs.isdir(store.join(name)))
    except Exception:  # noqa: BLE001 - an unreachable store is reported when the file is opened
        return False


def __getattr__(name: str) -> Any:
    """Re-export the readers without an import cycle (they import this module)."""
    if name in ("read_ismn", "read_custom_metadata"):
        from smci_dask.insitu import readers_ismn

        return getattr(readers_ismn, name)
    if name == "read_station_table":
        from smci_dask.insitu import readers_table

        return readers_table.read_station_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
