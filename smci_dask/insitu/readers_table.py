"""Generic long station tables (CSV or Parquet), as national networks such as CMA deliver them.

One row per station, sensor depth and time:

=================  ==========================================================
column             accepted names (case-insensitive; spaces, '-', '.', '[]'
                   read as '_')
=================  ==========================================================
station            station, station_id, station_name, site, site_id, id
lat, lon           lat, latitude / lon, lng, long, longitude (degrees)
time               time, datetime, date_time, timestamp, time_utc, utc, date
sm                 sm, soil_moisture, soilmoisture, swc, vwc, theta
depth              one of: ``depth_from_cm`` + ``depth_to_cm``,
                   ``depth_from_m`` + ``depth_to_m`` (also ``depth_top_*`` /
                   ``depth_bottom_*``), ``depth_cm``, ``depth_m`` (a point
                   sensor); a depth without a unit is refused
optional           network, elevation_m (elevation, elev, altitude),
                   ts (soil_temperature, soil_temp, tsoil; deg C),
                   ta (air_temperature, air_temp, tair; deg C),
                   p (precipitation, precip, prcp, rain; mm),
                   sensor (instrument), qflag, provider_flag (flag)
=================  ==========================================================

Times are UTC: ISO 8601 (``2019-01-01T00:00:00Z``, ``2019-01-01 00:00``,
with or without an offset) or ``YYYY/MM/DD HH:MM[:SS]``; naive times are
taken as UTC. Soil moisture in percent is detected or declared (see
:func:`smci_dask.insitu.readers.to_m3m3`). Soil temperature is stored at the
sensor's depth; air temperature and precipitation once per station and time
(the first row's value) at ISMN's depths (-2 m and 0 m). Empty cells,
``NA``/``NaN`` and the fill values in ``na_values`` (default -9999) are
missing and dropped.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from smci_dask.errors import InputError, StoreError
from smci_dask.insitu.readers import (
    AIR_TEMPERATURE_DEPTH_M,
    PRECIPITATION_DEPTH_M,
    SM,
    STATION_COLUMNS,
    TIME_DTYPE,
    SmUnit,
    StationData,
    drop_duplicate_times,
    finish_observations,
    finish_sensors,
    open_source,
    to_m3m3,
)
from smci_dask.io import read_parquet

__all__ = ["TABLE_COLUMNS", "read_station_table"]

#: Canonical column -> accepted names (after normalising: lower case, runs of other characters -> '_').
TABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "station": ("station", "station_id", "station_name", "stationid", "site", "site_id", "id"),
    "network": ("network", "network_name"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "elevation_m": ("elevation_m", "elevation", "elev", "altitude", "alt"),
    "time": ("time", "datetime", "date_time", "timestamp", "time_utc", "utc", "date"),
    "sm": ("sm", "soil_moisture", "soilmoisture", "swc", "vwc", "theta"),
    "depth_from_cm": ("depth_from_cm", "depth_top_cm"),
    "depth_to_cm": ("depth_to_cm", "depth_bottom_cm"),
    "depth_from_m": ("depth_from_m", "depth_top_m"),
    "depth_to_m": ("depth_to_m", "depth_bottom_m"),
    "depth_cm": ("depth_cm",),
    "depth_m": ("depth_m",),
    "ts": ("ts", "soil_temperature", "soil_temp", "tsoil"),
    "ta": ("ta", "air_temperature", "air_temp", "tair"),
    "p": ("p", "precipitation", "precip", "prcp", "rain", "rainfall"),
    "sensor": ("sensor", "instrument"),
    "qflag": ("qflag", "ismn_flag", "quality_flag"),
    "provider_flag": ("provider_flag", "flag"),
}
_REQUIRED: Final = ("station", "lat", "lon", "time", "sm")
_DEPTH_FORMS: Final = (
    ("depth_from_cm", "depth_to_cm", 0.01),
    ("depth_from_m", "depth_to_m", 1.0),
    ("depth_cm", "depth_cm", 0.01),
    ("depth_m", "depth_m", 1.0),
)
_UNITLESS_DEPTH: Final = ("depth", "depth_from", "depth_to", "depth_top", "depth_bottom")
_TEXT: Final = ("station", "network", "sensor", "qflag", "provider_flag", "time")
_SLASH_FORMATS: Final = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d")
_MAX_DEPTH_M: Final = 5.0  # a depth_m column beyond this is surely in cm
_COORD_TOLERANCE_DEG: Final = 1e-4
_PARQUET_SUFFIXES: Final = (".parquet", ".pq", ".parq")


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def read_station_table(
    path_or_url: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    sm_unit: SmUnit = "auto",
    column_map: Mapping[str, str] | None = None,
    constants: Mapping[str, Any] | None = None,
    network: str | None = None,
    na_values: Sequence[float] = (-9999.0,),
) -> StationData:
    """Read a long station table (CSV, optionally compressed, or Parquet).

    Parameters
    ----------
    path_or_url : str or path
        Local path or fsspec URL. ``.parquet``/``.pq`` is Parquet; anything
        else CSV (',', ';' or tab separated, detected from the header line;
        ``.gz``/``.bz2``/``.xz``/``.zip`` decompressed).
    storage_options : dict, optional
        fsspec options for remote URLs.
    sm_unit : {'auto', 'm3/m3', 'percent'}
        Unit of soil moisture; ``'auto'`` detects percent per station (99th
        percentile > 1.0) and divides by 100.
    column_map : mapping, optional
        ``{column in the file: canonical name}`` (like
        ``DataFrame.rename``), for columns whose names are not among the
        accepted ones, e.g. ``{"utc": "time", "soil_moisture": "sm"}``.
        Canonical names: the keys of :data:`TABLE_COLUMNS`.
    constants : mapping, optional
        ``{canonical name: value}`` for columns the file lacks, e.g. a
        single-station file: ``{"station": "S1", "lat": 40.1, "lon": 116.3,
        "depth_m": 0.09}``.
    network : str, optional
        Network of stations without a ``network`` column; default the file
        name without its extensions.
    na_values : sequence of float
        Fill values read as missing, in any numeric column.

    Returns
    -------
    StationData
        ``qflag`` is empty unless the table has one; ``issues`` lists
        ignored columns, unit conversions and dropped duplicate timestamps
        (the first row of a series and time is kept).

    Raises
    ------
    InputError
        A required column is missing (the message names it and the
        accepted names), a depth without unit, a timestamp that is not a
        date or a value that is not a number (file and line), coordinates
        out of range, soil moisture neither m3/m3 nor percent.
    """
    store, name, display = open_source(path_or_url, storage_options)
    src = f"station table {display}"
    if not store.exists(name):
        raise InputError(f"{src}: no such file; check the path")
    parquet = name.lower().endswith(_PARQUET_SUFFIXES)
    if parquet:
        try:
            raw_df = read_parquet(store, name)
        except StoreError as exc:
            raise InputError(f"{src}: cannot read Parquet: {exc}") from None
        where = _row_label
    else:
        raw_df = _read_csv(store, name, src, column_map)
        where = _line_label
    if network is None:
        network = re.split(r"\.", name, maxsplit=1)[0] or "table"
    issues: list[str] = []
    df = _canonical(raw_df, src, column_map, constants, issues)
    n = len(df)
    station = _categorical_text(df["station"])
    if "" in station.categories and (station == "").any():
        i = int(np.flatnonzero(np.asarray(station == ""))[0])
        raise InputError(f"{src} {where(i)}: station is empty; give every row a station")
    net = _categorical_text(df["network"], default=network) if "network" in df else _constant(network, n)
    sid = _station_ids(net, station)
    time = _parse_times(df["time"], src, where)
    lat = _number(df["lat"], "lat", src, where, na_values)
    lon = _number(df["lon"], "lon", src, where, na_values)
    elev = _number(df["elevation_m"], "elevation_m", src, where, na_values) if "elevation_m" in df else np.full(n, np.nan)
    d_from, d_to = _depths(df, src, where, na_values, issues)
    stations = _station_table(sid, net, station, lat, lon, elev, src, issues)

    sm = _number(df["sm"], "sm", src, where, na_values)
    ok = np.isfinite(sm)
    sm_m3, unit_issues = to_m3m3(sm[ok], np.asarray(sid)[ok], unit=sm_unit, source=src)
    sm = sm.copy()
    sm[ok] = sm_m3
    issues.extend(unit_issues)
    # (variable, rows, values, depth_from, depth_to, sensor of the row?)
    parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]] = []
    rows = np.flatnonzero(ok)
    parts.append((SM, rows, sm[rows], d_from[rows], d_to[rows], True))
    if "ts" in df:
        ts = _number(df["ts"], "ts", src, where, na_values)
        rows = np.flatnonzero(np.isfinite(ts))
        parts.append(("ts", rows, ts[rows], d_from[rows], d_to[rows], False))
    if "ta" in df or "p" in df:
        key = pd.DataFrame({"s": sid.codes, "t": time})
        first_of_hour = ~key.duplicated().to_numpy()
        for var, depth in (("ta", AIR_TEMPERATURE_DEPTH_M), ("p", PRECIPITATION_DEPTH_M)):
            if var in df:
                v = _number(df[var], var, src, where, na_values)
                rows = np.flatnonzero(first_of_hour & np.isfinite(v))
                parts.append((var, rows, v[rows], np.full(len(rows), depth), np.full(len(rows), depth), False))
    sensor = _categorical_text(df["sensor"]) if "sensor" in df else _constant("", n)
    flags = {c: (_categorical_text(df[c]) if c in df else _constant("", n)) for c in ("qflag", "provider_flag")}
    obs = _long_table(parts, sid, net, station, time, sensor, flags)
    obs, dup = drop_duplicate_times(obs, source=src)
    issues.extend(dup)
    obs = finish_observations(obs)
    sensors = _sensor_table(obs, display)
    return StationData(obs, stations, sensors, issues=issues, attrs={"source": display})


def _long_table(
    parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]],
    sid: pd.Categorical,
    net: pd.Categorical,
    station: pd.Categorical,
    time: np.ndarray,
    sensor: pd.Categorical,
    flags: dict[str, pd.Categorical],
) -> pd.DataFrame:
    """Observations from row indices per variable, with categorical text built from codes (no per-row strings)."""
    rows = np.concatenate([p[1] for p in parts])
    variables = sorted({p[0] for p in parts})
    var_codes = np.concatenate([np.full(len(p[1]), variables.index(p[0])) for p in parts])
    if "" not in sensor.categories:
        sensor = sensor.add_categories([""])
    blank = sensor.categories.get_loc("")
    sensor_codes = np.concatenate([sensor.codes[p[1]] if p[5] else np.full(len(p[1]), blank, dtype=sensor.codes.dtype) for p in parts])
    return pd.DataFrame(
        {
            "station_id": sid.take(rows),
            "network": net.take(rows),
            "station": station.take(rows),
            "time": time[rows],
            "variable": pd.Categorical.from_codes(var_codes, categories=variables),
            "depth_from_m": np.concatenate([p[3] for p in parts]),
            "depth_to_m": np.concatenate([p[4] for p in parts]),
            "sensor": pd.Categorical.from_codes(sensor_codes, categories=sensor.categories),
            "value": np.concatenate([p[2] for p in parts]),
            "qflag": flags["qflag"].take(rows),
            "provider_flag": flags["provider_flag"].take(rows),
        }
    )


# ------------------------------------------------------------------ loading
def _line_label(i: int) -> str:
    return f"line {i + 2}"


def _row_label(i: int) -> str:
    return f"row {i + 1}"


def _decompress(raw: bytes, name: str, src: str) -> bytes:
    low = name.lower()
    try:
        if low.endswith(".gz"):
            return gzip.decompress(raw)
        if low.endswith(".bz2"):
            return bz2.decompress(raw)
        if low.endswith(".xz"):
            return lzma.decompress(raw)
        if low.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                members = [i for i in zf.infolist() if not i.is_dir()]
                if len(members) != 1:
                    raise InputError(f"{src}: a zipped table must hold exactly one file, this one holds {len(members)}; unzip it")
                return zf.read(members[0])
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise InputError(f"{src}: cannot decompress ({exc}); check the file") from None
    return raw


def _read_csv(store: Any, name: str, src: str, column_map: Mapping[str, str] | None) -> pd.DataFrame:
    try:
        raw = _decompress(store.read_bytes(name), name, src)
    except StoreError as exc:
        raise InputError(f"{src}: cannot read: {exc}") from None
    head = raw[: raw.find(b"\n")] if b"\n" in raw else raw
    head_text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    sep = max((",", ";", "\t"), key=head_text.count)
    names = [c.strip() for c in head_text.strip().split(sep)]
    renamed = {c: (column_map or {}).get(c, c) for c in names}
    dtype = {c: str for c in names if _canonical_name(renamed[c]) in _TEXT}
    try:
        return pd.read_csv(
            io.BytesIO(raw), sep=sep, dtype=dtype, encoding="utf-8-sig", skipinitialspace=True, na_values=["NA", "NaN", "nan", ""]
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f" line {m.group(1)}" if m else ""
        raise InputError(f"{src}{where}: not a readable CSV table ({exc}); check the file") from None


def _canonical_name(name: str) -> str | None:
    key = _normalise(name)
    for canon, names in TABLE_COLUMNS.items():
        if key in names:
            return canon
    return None


def _canonical(
    df: pd.DataFrame,
    src: str,
    column_map: Mapping[str, str] | None,
    constants: Mapping[str, Any] | None,
    issues: list[str],
) -> pd.DataFrame:
    """The table with canonical column names; InputError for missing or ambiguous ones."""
    cols = [str(c).strip() for c in df.columns]
    df = df.set_axis(cols, axis=1)
    mapping = dict(column_map or {})
    for source, target in mapping.items():
        if target not in TABLE_COLUMNS:
            raise InputError(
                f"{src}: column_map maps {source!r} to {target!r}, which is not a canonical name; use one of {sorted(TABLE_COLUMNS)}"
            )
        if source not in cols:
            raise InputError(
                f"{src}: column_map names column {source!r}, which the table lacks (it has {cols}); "
                "column_map is {file column: canonical name}"
            )
    chosen: dict[str, str] = {}
    ignored: list[str] = []
    for c in cols:
        canon = mapping.get(c) or _canonical_name(c)
        if canon is None:
            if _normalise(c) in _UNITLESS_DEPTH:
                raise InputError(
                    f"{src}: column {c!r} gives a depth without a unit; rename it (or use column_map) to depth_cm / depth_m, "
                    "or depth_from_cm + depth_to_cm / depth_from_m + depth_to_m"
                )
            ignored.append(c)
            continue
        if canon in chosen:
            raise InputError(
                f"{src}: columns {chosen[canon]!r} and {c!r} both give {canon!r}; drop one or map it elsewhere with column_map"
            )
        chosen[canon] = c
    out = pd.DataFrame({canon: df[c] for canon, c in chosen.items()})
    for canon, value in (constants or {}).items():
        if canon not in TABLE_COLUMNS:
            raise InputError(f"{src}: constants names {canon!r}, which is not a canonical name; use one of {sorted(TABLE_COLUMNS)}")
        if canon in out:
            raise InputError(f"{src}: constants gives {canon!r}, which the table already has (column {chosen[canon]!r}); give it once")
        out[canon] = value
    if ignored:
        issues.append(f"{src}: ignored columns {', '.join(ignored)}")
    for canon in _REQUIRED:
        if canon not in out:
            raise InputError(
                f"{src}: required column {canon!r} is missing (accepted names: {', '.join(TABLE_COLUMNS[canon])}); "
                f"rename it, pass column_map={{'<file column>': {canon!r}}} or constants={{{canon!r}: <value>}}"
            )
    if not any(a in out for a, _, _ in _DEPTH_FORMS):
        raise InputError(
            f"{src}: required depth column is missing (accepted: depth_from_cm + depth_to_cm, depth_from_m + depth_to_m, depth_cm, "
            "depth_m); rename a column, pass column_map or constants={'depth_m': <value>}"
        )
    return out.reset_index(drop=True)


# ------------------------------------------------------------------ columns
def _text(col: pd.Series) -> pd.Series:
    return col.astype(object).where(col.notna(), "").astype(str).str.strip().astype(object)


def _sorted_categorical(labels: Sequence[str] | np.ndarray, codes: np.ndarray) -> pd.Categorical:
    """Categorical of ``labels[codes]`` with sorted, unique categories."""
    cats, remap = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    return pd.Categorical.from_codes(remap[codes], categories=cats)


def _categorical_text(col: pd.Series, default: str = "") -> pd.Categorical:
    """Stripped text of a column as a categorical (missing or blank -> ``default``), without per-row strings."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    labels = [str(u).strip() or default for u in uniques] + [default]
    return _sorted_categorical(labels, np.where(codes < 0, len(uniques), codes))


def _constant(value: str, n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _station_ids(net: pd.Categorical, station: pd.Categorical) -> pd.Categorical:
    """``"network/station"`` per row, built on the unique pairs."""
    ns = len(station.categories)
    pair = net.codes.astype(np.int64) * ns + station.codes.astype(np.int64)
    uniq, inverse = np.unique(pair, return_inverse=True)
    labels = [f"{net.categories[p // ns]}/{station.categories[p % ns]}" for p in uniq]
    return _sorted_categorical(labels, inverse)


def _number(col: pd.Series, name: str, src: str, where: Any, na_values: Sequence[float]) -> np.ndarray:
    """Float64 values of a column; InputError naming the first cell that is not a number."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(v) & col.notna().to_numpy() & (_text(col) != "").to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{src} {where(i)}: {name} {col.iloc[i]!r} is not a number; fix or remove the row")
    if len(na_values):
        v = np.where(np.isin(v, np.asarray(na_values, dtype=np.float64)), np.nan, v)
    return v


def _parse_times(col: pd.Series, src: str, where: Any) -> np.ndarray:
    """UTC times as tz-naive ``datetime64[ns]``; InputError naming the first that is not a date."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        t = col.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(col.dtype):
        t = col
    else:
        t = pd.to_datetime(col, format="ISO8601", utc=True, errors="coerce")
        if t.isna().any():  # other layouts, blanks and errors: only now look at the text
            text = _text(col)
            t = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
            for fmt in _SLASH_FORMATS:
                todo = t.isna() & (text != "")
                if not todo.any():
                    break
                t = t.where(~todo, pd.to_datetime(text.where(todo, ""), format=fmt, utc=True, errors="coerce"))
            bad = (t.isna() & (text != "")).to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"{src} {where(i)}: timestamp {text.iloc[i]!r} is not a date (expected ISO 8601 such as "
                    "'2019-01-01T00:00:00Z' or 'YYYY/MM/DD HH:MM'); fix or remove the row"
                )
        t = t.dt.tz_localize(None)
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise InputError(f"{src} {where(i)}: time is missing; fix or remove the row")
    return t.to_numpy(dtype=TIME_DTYPE)


def _depths(df: pd.DataFrame, src: str, where: Any, na_values: Sequence[float], issues: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(depth_from_m, depth_to_m) from the first depth form the table has."""
    used = None
    for a, b, scale in _DEPTH_FORMS:
        if a in df or b in df:
            if used is not None:
                issues.append(f"{src}: depth taken from {used}; {a}/{b} ignored")
                continue
            if a not in df or b not in df:
                raise InputError(f"{src}: {a if a in df else b} is given without {b if a in df else a}; give both ends of the depth range")
            top = _number(df[a], a, src, where, na_values) * scale
            bottom = _number(df[b], b, src, where, na_values) * scale
            for arr, name in ((top, a), (bottom, b)):
                if np.isnan(arr).any():
                    raise InputError(f"{src} {where(int(np.flatnonzero(np.isnan(arr))[0]))}: {name} is missing; every row needs a depth")
            if scale == 1.0 and np.nanmax(np.abs(np.r_[top, bottom])) > _MAX_DEPTH_M:
                raise InputError(
                    f"{src}: {a} reaches {np.nanmax(np.abs(np.r_[top, bottom])):g} m; that looks like cm: name the column(s) *_cm instead"
                )
            used = f"{a}/{b}" if a != b else a
            d_from, d_to = top, bottom
    return d_from, d_to


def _station_table(
    sid: pd.Categorical,
    net: pd.Categorical,
    station: pd.Categorical,
    lat: np.ndarray,
    lon: np.ndarray,
    elev: np.ndarray,
    src: str,
    issues: list[str],
) -> pd.DataFrame:
    frame = pd.DataFrame({"station_id": sid, "network": net, "station": station, "lat": lat, "lon": lon, "elevation_m": elev})
    g = frame.groupby("station_id", sort=True, observed=True)
    first = g.first()  # first non-missing value of each column
    spread = g[["lat", "lon"]].max() - g[["lat", "lon"]].min()
    moved = spread.index[(spread > _COORD_TOLERANCE_DEG).any(axis=1).to_numpy()]
    if len(moved):
        issues.append(f"{src}: stations {', '.join(map(str, moved[:5]))} change coordinates between rows; kept the first")
        firsts = frame.drop_duplicates("station_id").set_index("station_id")
        first.loc[moved, ["lat", "lon"]] = firsts.loc[moved, ["lat", "lon"]]
    for name in first.index[first["lat"].isna() | first["lon"].isna()]:
        raise InputError(f"{src}: station {name} has no coordinates; fill lat and lon")
    bad = first.index[((first["lat"].abs() > 90) | (first["lon"] < -180) | (first["lon"] > 360)).to_numpy()]
    if len(bad):
        s = bad[0]
        raise InputError(
            f"{src}: station {s} at lat {first.loc[s, 'lat']}, lon {first.loc[s, 'lon']} is off the globe; check lat/lon (degrees)"
        )
    out = first.reset_index()
    for c in ("station_id", "network", "station"):
        out[c] = out[c].astype(str).astype(object)
    return out[list(STATION_COLUMNS)]


def _sensor_table(obs: pd.DataFrame, display: str) -> pd.DataFrame:
    keys = ["station_id", "network", "station", "variable", "depth_from_m", "depth_to_m", "sensor"]
    if obs.empty:
        return finish_sensors(pd.DataFrame())
    counts = obs.groupby(keys, observed=True, sort=True).size().rename("n_values").reset_index()
    counts = counts[counts["n_values"] > 0]
    for c in ("station_id", "network", "station", "variable", "sensor"):
        counts[c] = counts[c].astype(str)
    counts["file"] = display
    counts["format"] = "table"
    return finish_sensors(counts)
