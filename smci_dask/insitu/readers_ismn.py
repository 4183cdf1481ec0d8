"""ISMN station files: header+values and CEOP formats, whole folders and zip archives.

The International Soil Moisture Network portal delivers one file per sensor
and variable, named
``<network>_<network>_<station>_<var>_<from>_<to>_<sensor>_<start>_<end>.stm``
(depths in m with six decimals; network and station may contain ``_``,
sensors contain ``-``), below ``<network>/<station>/`` folders, zipped, with
``<network>_<network>_<station>_static_variables.csv`` per station and a
``Metadata.xml`` describing the download. Two layouts exist:

header+values
    Line 1: ``CSE-id network station lat lon elevation depth_from depth_to
    sensor`` (whitespace-separated); then one line per record:
    ``YYYY/MM/DD HH:MM value qflag provider_flag``.
CEOP (separate files)
    Every line carries everything: ``YYYY/MM/DD HH:MM`` (nominal UTC time),
    ``YYYY/MM/DD HH:MM`` (actual time), CSE-id, network, station, lat, lon,
    elevation, depth_from, depth_to, value, qflag, provider_flag. The time
    used is the nominal one.

Line endings may be LF, CR LF or CR alone (the real files mix them). Value
lines are parsed in one ``pandas.read_csv`` call per file. The variable and
the sensor come from the file name; network, station, coordinates and depths
from the header (or CEOP lines), with the file name's six-decimal depths
preferred when the two agree to 0.005 m (the header rounds to 0.01 m).
ISMN's own quality flag is kept as ``qflag``.

In a folder (searched recursively) or archive, ``*.stm`` files are data,
``*_static_variables.csv`` station static variables, ``Metadata.xml`` the
download's description (title, bounding box, period: ``attrs['ismn_metadata']``)
and ``*.zip`` inside a folder are read as archives; anything else is
ignored (in an archive, e.g. the ``python_metadata/`` cache of the ``ismn``
package, it is listed in ``issues``). A single file given by name is always
read as a data file.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from smci_dask.errors import InputError, StoreError
from smci_dask.insitu.readers import (
    OBSERVATION_COLUMNS,
    SM,
    STATIC_COLUMNS,
    STATION_COLUMNS,
    SmUnit,
    StationData,
    empty_frame,
    few_names,
    finish_observations,
    finish_sensors,
    is_folder,
    open_source,
    station_id,
    to_m3m3,
)
from smci_dask.io import Store

__all__ = ["ISMN_VARIABLES", "parse_ismn_file_name", "read_custom_metadata", "read_ismn"]

#: ISMN variable names (custom metadata, docs) -> the abbreviations used in file names and here.
ISMN_VARIABLES: Final[dict[str, str]] = {
    "soil_moisture": "sm",
    "soil_temperature": "ts",
    "air_temperature": "ta",
    "precipitation": "p",
    "surface_temperature": "tsf",
    "snow_depth": "sd",
    "snow_water_equivalent": "sweq",
    "soil_suction": "su",
}

_NAME_RE: Final = re.compile(
    r"^(?P<prefix>.+)_(?P<variable>[A-Za-z]+)_(?P<depth_from>-?\d+(?:\.\d+)?)_(?P<depth_to>-?\d+(?:\.\d+)?)"
    r"_(?P<sensor>.+)_(?P<start>\d{8})_(?P<end>\d{8})\.stm$"
)
_STAMP: Final = r"\d{4}/\d{2}/\d{2}\s+\d{2}:\d{2}"
_VALUE_LINE_RE: Final = re.compile(rf"^\s*{_STAMP}\s+\S+")
_CEOP_LINE_RE: Final = re.compile(rf"^\s*{_STAMP}\s+{_STAMP}\s+\S+")
_FLOAT_RE: Final = re.compile(r"^[-+]?\d+(?:\.\d*)?$")
_HV_COLUMNS: Final = ("date", "clock", "value", "qflag", "provider_flag")
_CEOP_COLUMNS: Final = (
    "date",
    "clock",
    "date_actual",
    "clock_actual",
    "cse",
    "network",
    "station",
    "lat",
    "lon",
    "elevation_m",
    "depth_from_m",
    "depth_to_m",
    "value",
    "qflag",
    "provider_flag",
)
_EXPECTED: Final = (
    "expected a header line 'network network station lat lon elevation depth_from depth_to sensor' followed by "
    "'YYYY/MM/DD HH:MM value flag flag' lines, or CEOP lines 'YYYY/MM/DD HH:MM YYYY/MM/DD HH:MM network network station "
    "lat lon elevation depth_from depth_to value flag flag'"
)
_DEPTH_TOLERANCE_M: Final = 0.005
_COORD_TOLERANCE_DEG: Final = 1e-4
_STATIC_SUFFIX: Final = "_static_variables.csv"
#: Static-variable quantities -> column names in :attr:`StationData.stations`.
_STATIC_NAMES: Final[dict[str, str]] = {
    "saturation": "saturation",
    "clay fraction": "clay",
    "sand fraction": "sand",
    "silt fraction": "silt",
    "organic carbon": "organic_carbon",
    "land cover classification": "landcover",
    "climate classification": "climate_class",
}
_CLASS_QUANTITIES: Final = ("landcover", "climate_class")


# ------------------------------------------------------------------ file names
@dataclass(frozen=True)
class IsmnFileName:
    """The parts of an ISMN data file name (depths in m)."""

    prefix: str
    variable: str
    depth_from_m: float
    depth_to_m: float
    sensor: str
    start: str
    end: str


def parse_ismn_file_name(name: str) -> IsmnFileName | None:
    """Split ``<net>_<net>_<station>_<var>_<from>_<to>_<sensor>_<start>_<end>.stm``; None if it does not fit."""
    m = _NAME_RE.match(posixpath.basename(name))
    if m is None:
        return None
    return IsmnFileName(m["prefix"], m["variable"], float(m["depth_from"]), float(m["depth_to"]), m["sensor"], m["start"], m["end"])


# ------------------------------------------------------------------ one data file
@dataclass
class _DataFile:
    network: str
    station: str
    lat: float
    lon: float
    elevation_m: float
    depth_from_m: float
    depth_to_m: float
    sensor: str
    variable: str
    fmt: str
    records: pd.DataFrame  # time, value, qflag, provider_flag
    issues: list[str]


def _decode(raw: bytes) -> str:
    """Text with LF line ends whatever the file used (LF, CR LF, CR)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _not_ismn(source: str, line_no: int, what: str = "") -> InputError:
    detail = f" ({what})" if what else ""
    return InputError(
        f"ISMN file {source} line {line_no}: not an ISMN header+values or CEOP file{detail}; {_EXPECTED}; check the file or remove it"
    )


def parse_ismn_file(source: str, raw: bytes) -> _DataFile:
    """Parse one ISMN data file (either layout) given its name and bytes.

    Raises
    ------
    InputError
        Not an ISMN file, a line that does not parse, a timestamp that is not
        a date, a file name that does not tell the variable, or header and
        file name disagreeing on the depth.
    """
    text = _decode(raw)
    skipped = len(text) - len(text.lstrip("\n"))  # leading blank lines
    text = text[skipped:]
    nl = text.find("\n")
    first = text if nl < 0 else text[:nl]
    first_no = skipped + 1
    if not first.strip():
        raise InputError(f"ISMN file {source}: the file is empty; remove it or download it again")
    if _CEOP_LINE_RE.match(first):
        fmt, meta, records, issues = "ceop", None, *_parse_ceop(source, text, first_no)
    elif _VALUE_LINE_RE.match(first):
        raise _not_ismn(source, first_no, "a value line where the header line should be")
    else:
        meta = _parse_header(source, first, first_no)
        body = "" if nl < 0 else text[nl + 1 :]
        nxt = body.lstrip("\n")
        if nxt and not _VALUE_LINE_RE.match(nxt[: nxt.find("\n")] if "\n" in nxt else nxt):
            raise _not_ismn(source, first_no + 1 + len(body) - len(nxt), "the line after the header is not 'YYYY/MM/DD HH:MM value ...'")
        fmt = "header_values"
        records, issues = _parse_values(source, body, list(_HV_COLUMNS), first_no)
    parts = parse_ismn_file_name(source)
    if parts is None:
        raise InputError(
            f"ISMN file {source}: the file name does not follow the ISMN pattern "
            "'<network>_<network>_<station>_<var>_<depth_from>_<depth_to>_<sensor>_<start>_<end>.stm', "
            "so its variable is unknown; restore the name the ISMN portal gave it"
        )
    if fmt == "ceop":
        meta, records = _ceop_meta(source, records)
    assert meta is not None
    depth_from, depth_to = parts.depth_from_m, parts.depth_to_m
    for label, head, name in (("depth_from", meta["depth_from_m"], depth_from), ("depth_to", meta["depth_to_m"], depth_to)):
        if np.isfinite(head) and abs(head - name) > _DEPTH_TOLERANCE_M:
            raise InputError(
                f"ISMN file {source}: {label} is {head:g} m in the file but {name:g} m in its name; "
                "the file was renamed or edited: download it again"
            )
    sensor = parts.sensor
    head_sensor = str(meta.get("sensor") or "")
    if head_sensor and head_sensor.replace(" ", "-") != sensor:
        issues.append(f"ISMN file {source}: sensor {head_sensor!r} in the header, {sensor!r} in the name; used the name's")
    return _DataFile(
        meta["network"],
        meta["station"],
        meta["lat"],
        meta["lon"],
        meta["elevation_m"],
        depth_from,
        depth_to,
        sensor,
        parts.variable,
        fmt,
        records,
        issues,
    )


def _parse_header(source: str, line: str, line_no: int) -> dict[str, Any]:
    """Header line: ``cse network station... lat lon elevation depth_from depth_to sensor...``."""
    tokens = line.split()
    for i in range(3, len(tokens) - 4):
        if all(_FLOAT_RE.match(t) for t in tokens[i : i + 5]):
            lat, lon, elev, d_from, d_to = (float(t) for t in tokens[i : i + 5])
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 360.0):
                raise InputError(f"ISMN file {source} line {line_no}: latitude {lat} / longitude {lon} out of range; fix the header")
            return {
                "network": tokens[1],
                "station": " ".join(tokens[2:i]),
                "lat": lat,
                "lon": lon,
                "elevation_m": elev,
                "depth_from_m": d_from,
                "depth_to_m": d_to,
                "sensor": " ".join(tokens[i + 5 :]),
            }
    raise _not_ismn(source, line_no)


def _parse_ceop(source: str, text: str, first_no: int) -> tuple[pd.DataFrame, list[str]]:
    return _parse_values(source, text, list(_CEOP_COLUMNS), first_no - 1)


def _parse_values(source: str, body: str, names: list[str], line_offset: int) -> tuple[pd.DataFrame, list[str]]:
    """Parse whitespace-separated value lines in one go; line numbers in errors count from ``line_offset``.

    Every column is read as text and factorised at once: dates, clock times,
    values and flags are converted and checked once per distinct text (a
    file repeats its dates 24 times, its flags on every line), and the flags
    (and CEOP's station columns) come back categorical, so no Python string
    per record outlives the file.
    """
    if not body.strip():
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in names}), [f"ISMN file {source}: no value lines"]
    try:
        # no names: the field count comes from the first line, so a longer line anywhere is an error, never an index
        df = pd.read_csv(io.StringIO(body), sep=r"\s+", header=None, dtype=object, na_filter=False, skip_blank_lines=True, engine="c")
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        where = f" line {line_offset + int(m.group(2))}" if m else ""
        saw = f" ({m.group(3)} fields where the first value line has {m.group(1)})" if m else ""
        raise InputError(f"ISMN file {source}{where}: a value line does not parse{saw}; {_EXPECTED}; fix or remove the line") from None
    n = len(df)
    if df.shape[1] > len(names):
        extra = (df.iloc[:, len(names) :] != "").any(axis=1).to_numpy()
        i = int(np.flatnonzero(extra)[0])
        raise InputError(
            f"ISMN file {source} line {_line_of_row(body, i, line_offset)}: a value line does not parse "
            f"({int((df.iloc[i] != '').sum())} fields, expected at most {len(names)}); {_EXPECTED}; fix or remove the line"
        )
    # column -> (codes per row, distinct texts); a column no line has (e.g. the provider flag) is all ""
    cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, c in enumerate(names):
        if k < df.shape[1]:
            codes, uniques = pd.factorize(df[k].to_numpy(dtype=object))
            cols[c] = (codes, np.asarray(uniques, dtype=object))
        else:
            cols[c] = (np.zeros(n, dtype=np.intp), np.array([""], dtype=object))
    del df

    def first_row(bad_text: np.ndarray, c: str) -> int | None:
        """First row whose text in column ``c`` is flagged in ``bad_text`` (one flag per distinct text)."""
        if not bad_text.any():
            return None
        return int(np.flatnonzero(bad_text[cols[c][0]])[0])

    def text(c: str, i: int) -> str:
        codes, uniques = cols[c]
        return str(uniques[codes[i]])

    n_min = 3 if len(names) == len(_HV_COLUMNS) else 13  # the provider flag (and for CEOP the ISMN flag) may be missing
    need = names[n_min - 1]
    i = first_row(cols[need][1] == "", need)
    if i is not None:
        raise InputError(
            f"ISMN file {source} line {_line_of_row(body, i, line_offset)}: too few fields; {_EXPECTED}; fix or remove the line"
        )
    (d_codes, d_text), (c_codes, c_text) = cols["date"], cols["clock"]
    day = pd.to_datetime(pd.Series(d_text, dtype=object), format="%Y/%m/%d", errors="coerce").to_numpy(dtype="datetime64[ns]")
    clock = pd.to_datetime("2000/01/01 " + pd.Series(c_text, dtype=object), format="%Y/%m/%d %H:%M", errors="coerce")
    since_midnight = (clock - pd.Timestamp("2000-01-01")).to_numpy(dtype="timedelta64[ns]")
    bad = np.isnat(day)[d_codes] | np.isnat(since_midnight)[c_codes]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"ISMN file {source} line {_line_of_row(body, i, line_offset)}: timestamp {text('date', i) + ' ' + text('clock', i)!r} "
            "is not a date (expected 'YYYY/MM/DD HH:MM'); fix or remove the line"
        )
    v_codes, v_text = cols["value"]
    number = pd.to_numeric(pd.Series(v_text, dtype=object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    i = first_row(np.isnan(number) & ~np.isin(np.char.lower(v_text.astype(str)), ["nan", "na", "-nan"]), "value")
    if i is not None:
        raise InputError(
            f"ISMN file {source} line {_line_of_row(body, i, line_offset)}: value {text('value', i)!r} is not a number; "
            "fix or remove the line"
        )
    out = pd.DataFrame(
        {
            "time": day[d_codes] + since_midnight[c_codes],
            "value": number[v_codes],
            **{c: _categorical(*cols[c]) for c in ("qflag", "provider_flag")},
        },
        copy=False,
    )
    if len(names) == len(_CEOP_COLUMNS):
        for c in _CEOP_COLUMNS[4:12]:
            out[c] = _categorical(*cols[c])
    issues = []
    missing = ~np.isfinite(out["value"].to_numpy())
    if missing.any():
        issues.append(f"ISMN file {source}: {int(missing.sum())} NaN values dropped")
        out = out.loc[~missing].reset_index(drop=True)
    return out, issues


def _categorical(codes: np.ndarray, texts: np.ndarray) -> pd.Categorical:
    """A categorical column from factorised text (``codes`` index ``texts``, which are distinct)."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(texts.astype(str), dtype=str))


def _line_of_row(body: str, row: int, line_offset: int) -> int:
    """File line number of data row ``row`` of ``body`` (blank lines skipped), only computed for messages."""
    seen = -1
    for n, line in enumerate(body.split("\n"), start=1):
        if line.strip():
            seen += 1
            if seen == row:
                return line_offset + n
    return line_offset + 1


def _ceop_meta(source: str, records: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """Station and depth of a CEOP file (constant over its lines); the records without those columns."""
    meta: dict[str, Any] = {"sensor": ""}
    if records.empty:
        raise InputError(f"ISMN file {source}: no value lines; remove the file")
    for c in ("network", "station", "lat", "lon", "elevation_m", "depth_from_m", "depth_to_m"):
        values = pd.unique(records[c])
        if len(values) != 1:
            raise InputError(
                f"ISMN file {source}: column {c} takes {len(values)} values ({', '.join(map(str, values[:3]))}); a CEOP file "
                "from the ISMN portal holds one sensor; split the file per sensor"
            )
        v = str(values[0])
        if c in ("network", "station"):
            meta[c] = v
        else:
            try:
                meta[c] = float(v)
            except ValueError:
                raise InputError(f"ISMN file {source}: {c} {v!r} is not a number; check the file") from None
    return meta, records.loc[:, ["time", "value", "qflag", "provider_flag"]]


# ------------------------------------------------------------------ static variables
def parse_static_variables(source: str, raw: bytes) -> tuple[str, pd.DataFrame]:
    """Parse ``<net>_<net>_<station>_static_variables.csv`` (';'-separated).

    Returns
    -------
    prefix : str
        ``<net>_<net>_<station>`` from the file name.
    table : pandas.DataFrame
        ``quantity``, ``unit``, ``depth_from_m``, ``depth_to_m`` (NaN where
        none), ``value`` (text), ``description``, ``source``.
    """
    text = _decode(raw)
    try:
        df = pd.read_csv(io.StringIO(text), sep=";", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"ISMN static variables {source}: not a ';'-separated table ({exc}); download it again") from None
    need = ("quantity_name", "unit", "depth_from[m]", "depth_to[m]", "value")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"ISMN static variables {source}: columns {missing} missing (has {list(df.columns)}); download it again")

    def depth(col: str) -> np.ndarray:
        d = pd.to_numeric(df[col].str.strip().replace("", np.nan), errors="coerce").to_numpy(dtype=np.float64)
        return np.where(d < -90.0, np.nan, d)  # ISMN writes -99.90 for "no depth"

    table = pd.DataFrame(
        {
            "quantity": df["quantity_name"].str.strip().to_numpy(dtype=object),
            "unit": df["unit"].str.strip().to_numpy(dtype=object),
            "depth_from_m": depth("depth_from[m]"),
            "depth_to_m": depth("depth_to[m]"),
            "value": df["value"].str.strip().to_numpy(dtype=object),
            "description": (df["description"] if "description" in df else pd.Series([""] * len(df))).str.strip().to_numpy(dtype=object),
            "source": (df["quantity_source_name"] if "quantity_source_name" in df else pd.Series([""] * len(df))).to_numpy(dtype=object),
        }
    )
    table = table[table["quantity"] != ""].reset_index(drop=True)
    base = posixpath.basename(source)
    prefix = base[: -len(_STATIC_SUFFIX)] if base.endswith(_STATIC_SUFFIX) else base.rsplit(".", 1)[0]
    return prefix, table


def _static_column(quantity: str, depth_from_m: float, depth_to_m: float) -> str:
    name = _STATIC_NAMES.get(quantity.lower(), re.sub(r"[^0-9a-z]+", "_", quantity.lower()).strip("_"))
    if np.isfinite(depth_from_m) and np.isfinite(depth_to_m):
        name += f"_{round(depth_from_m * 100):d}_{round(depth_to_m * 100):d}cm"
    return name


def _wide_statics(statics: pd.DataFrame) -> pd.DataFrame:
    """One row per station: ``saturation_0_30cm``, ``clay_0_30cm``, ..., ``landcover``, ``climate_class`` (+ ``_name``).

    Where a quantity appears more than once at the same depth (land cover of
    2000, 2005, 2010) the last row, the most recent source, wins.
    """
    if statics.empty:
        return pd.DataFrame({"station_id": pd.Series([], dtype=object)})
    rows: dict[str, dict[str, Any]] = {}
    for r in statics.itertuples(index=False):
        col = _static_column(r.quantity, r.depth_from_m, r.depth_to_m)
        row = rows.setdefault(r.station_id, {"station_id": r.station_id})
        try:
            row[col] = float(r.value)
        except ValueError:
            row[col] = r.value
        if col in _CLASS_QUANTITIES:
            row[f"{col}_name"] = r.description
    wide = pd.DataFrame(list(rows.values()))
    if "landcover" in wide:
        wide["landcover"] = pd.to_numeric(wide["landcover"], errors="coerce").round().astype("Int64")
    return wide


def _split_prefix(prefix: str) -> tuple[str, str] | None:
    """``<net>_<net>_<station>`` -> (net, station); the network may contain '_'."""
    tok = prefix.split("_")
    for k in range(1, len(tok) // 2 + 1):
        if tok[:k] == tok[k : 2 * k] and len(tok) > 2 * k:
            return "_".join(tok[:k]), "_".join(tok[2 * k :])
    return None


# ------------------------------------------------------------------ Metadata.xml
def parse_metadata_xml(source: str, raw: bytes) -> dict[str, Any]:
    """Title, bounding box (west, south, east, north; degrees) and period (``begin``, ``end``) of an ISMN ``Metadata.xml``."""
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise InputError(f"ISMN metadata {source}: not valid XML ({exc}); download it again") from None
    out: dict[str, Any] = {"file": source}
    for key, tag in (("title", "title"), ("begin", "beginPosition"), ("end", "endPosition")):
        found = _texts_below(root, tag)
        if found:
            out[key] = found[0]
    try:
        box = tuple(
            float(_texts_below(root, t)[0])
            for t in ("westBoundLongitude", "southBoundLatitude", "eastBoundLongitude", "northBoundLatitude")
        )
    except (IndexError, ValueError):
        box = ()
    if box:
        out["bbox"] = box
    return out


def _texts_below(root: ElementTree.Element, tag: str) -> list[str]:
    """The non-empty texts in and below the first element named ``tag`` (any namespace)."""
    for e in root.iter():
        if e.tag.rsplit("}", 1)[-1] == tag:
            return [(x.text or "").strip() for x in e.iter() if (x.text or "").strip()]
    return []


# ------------------------------------------------------------------ members of folders and archives
Loader = Callable[[], bytes]
#: What is read from a folder (recursively); other files are ignored.
_FOLDER_PATTERNS: Final = ("**/*.stm", f"**/*{_STATIC_SUFFIX}", "**/Metadata.xml", "**/*.zip")


def _kind(name: str) -> str:
    base = posixpath.basename(name)
    if base.endswith(_STATIC_SUFFIX):
        return "static"
    if base.lower() == "metadata.xml":
        return "xml"
    if base.endswith(".stm"):
        return "data"
    if base.lower().endswith(".zip"):
        return "zip"
    return "other"


def _zip_members(display: str, fileobj: Any) -> Iterator[tuple[str, str, Loader]]:
    try:
        zf = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise InputError(f"ISMN archive {display}: not a zip archive ({exc}); download it again") from None
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            kind = _kind(info.filename)
            yield f"{display}!{info.filename}", ("other" if kind == "zip" else kind), partial(_read_member, zf, info, display)


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, display: str) -> bytes:
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"ISMN archive {display}: member {info.filename} is damaged ({exc}); download the archive again") from None


@dataclass(frozen=True)
class _FileLoader:
    """The bytes of one file of a folder: picklable, so a cluster worker can read the file itself."""

    store: Store
    rel: str

    def __call__(self) -> bytes:
        return self.store.read_bytes(self.rel)


def _parse_files(items: Sequence[tuple[str, _FileLoader]]) -> list[_DataFile]:
    """Read and parse a few data files (one cluster task of :func:`read_ismn`)."""
    return [parse_ismn_file(shown, load()) for shown, load in items]


#: Data files per parse task on a cluster, and tasks in flight per worker thread (bounds the memory in flight).
_FILES_PER_TASK: Final = 8
_TASKS_PER_THREAD: Final = 3


class _Parser:
    """Parse data files here, or as cluster tasks when a client is given (files of a folder only); results in file order."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.done: dict[int, _DataFile] = {}
        self.batch: list[tuple[int, str, _FileLoader]] = []
        self.futures: dict[Any, list[int]] = {}
        self.n = 0
        if client is not None:
            from distributed import as_completed

            self.window = _TASKS_PER_THREAD * max(sum(client.nthreads().values()), 1)
            self.queue = as_completed()

    def add(self, shown: str, load: Loader) -> None:
        i, self.n = self.n, self.n + 1
        if self.client is None or not isinstance(load, _FileLoader):
            self.done[i] = parse_ismn_file(shown, load())
            return
        self.batch.append((i, shown, load))
        if len(self.batch) >= _FILES_PER_TASK:
            self._submit()

    def _submit(self) -> None:
        if not self.batch:
            return
        items, self.batch = self.batch, []
        fut = self.client.submit(_parse_files, [(shown, load) for _, shown, load in items], pure=False)
        self.futures[fut] = [i for i, _, _ in items]
        self.queue.add(fut)
        while len(self.futures) >= self.window:
            self._collect(next(self.queue))

    def _collect(self, fut: Any) -> None:
        for i, parsed in zip(self.futures.pop(fut), fut.result(), strict=True):
            self.done[i] = parsed
        fut.release()

    def results(self) -> list[_DataFile]:
        if self.client is not None:
            self._submit()
            try:
                for fut in self.queue:
                    self._collect(fut)
            finally:
                self.client.cancel(list(self.futures))
        return [self.done[i] for i in range(self.n)]


def _members(store: Store, name: str, display: str) -> Iterator[tuple[str, str, Loader]]:
    """(display name, kind, loader) of every file of a file, folder or zip archive."""
    if is_folder(store, name):
        sub = store.child(name)
        found: set[str] = set()
        for pattern in _FOLDER_PATTERNS:
            found.update(sub.glob(pattern))
        for rel in sorted(found):
            kind = _kind(rel)
            shown = posixpath.join(display.rstrip("/"), rel)
            if kind == "zip":
                with sub.open(rel, "rb") as f:
                    yield from _zip_members(shown, f)
            else:
                yield shown, kind, _FileLoader(sub, rel)
        return
    if not store.exists(name):
        raise InputError(f"ISMN input {display}: no such file, folder or archive; check the path")
    if _kind(name) == "zip":
        try:
            with store.open(name, "rb") as f:
                yield from _zip_members(display, f)
        except StoreError as exc:
            raise InputError(f"ISMN archive {display}: cannot open: {exc}") from None
        return
    kind = _kind(name)
    yield display, ("data" if kind in ("other", "data") else kind), (lambda: store.read_bytes(name))


# ------------------------------------------------------------------ public readers
def read_ismn(
    path_or_url: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    variables: Sequence[str] = ("sm", "ts", "ta", "p"),
    sm_unit: SmUnit = "m3/m3",
    client: Any = None,
) -> StationData:
    """Read ISMN station data: one ``.stm`` file, a folder (recursively) or a ``.zip`` archive.

    Parameters
    ----------
    path_or_url : str or path
        Local path or fsspec URL (``s3://...``, ``memory://...``) of a data
        file in header+values or CEOP layout, a folder as the ISMN portal
        delivers it, or a zip archive (read member by member, in memory).
    storage_options : dict, optional
        fsspec options for remote URLs.
    variables : sequence of str
        ISMN variable abbreviations to read (``sm`` soil moisture m3/m3,
        ``ts`` soil temperature deg C, ``ta`` air temperature deg C, ``p``
        precipitation mm); files of other variables are skipped.
    sm_unit : {'m3/m3', 'auto', 'percent'}
        Unit of soil moisture. ISMN delivers m3/m3, so a file whose 99th
        percentile exceeds 1 is rejected unless ``'auto'`` or ``'percent'``
        is given (see :func:`smci_dask.insitu.readers.to_m3m3`).
    client : distributed.Client, optional
        Parse the data files of a folder as tasks on this cluster (its
        workers read the files themselves; a few files per task, results in
        file order, the same tables as without it); files of a zip archive
        are parsed here.

    Returns
    -------
    StationData
        Observations, stations (with static variables where a
        ``*_static_variables.csv`` was read), sensors and issues (files
        skipped, NaN values and duplicate timestamps dropped: the first
        record of a series and time wins, files taken in sorted order).

    Raises
    ------
    InputError
        A file that is not ISMN (the message names it and the line), a bad
        timestamp or value, a missing path, soil moisture not in m3/m3.
    """
    store, name, display = open_source(path_or_url, storage_options)
    wanted = set(variables)
    issues: list[str] = []
    skipped_at: list[tuple[int, str]] = []  # (member number, name): reported in the members' order
    names: list[tuple[int, str]] = []
    parser = _Parser(client)
    statics: list[pd.DataFrame] = []
    static_prefix: list[str] = []
    meta_xml: list[dict[str, Any]] = []
    for k, (shown, kind, load) in enumerate(_members(store, name, display)):
        if kind == "other":
            skipped_at.append((k, shown))
        elif kind == "xml":
            try:
                meta_xml.append(parse_metadata_xml(shown, load()))
            except InputError as exc:
                issues.append(f"{exc}; skipped")
        elif kind == "static":
            prefix, table = parse_static_variables(shown, load())
            statics.append(table)
            static_prefix.append(prefix)
        else:
            parts = parse_ismn_file_name(shown)
            if parts is not None and parts.variable not in wanted:
                skipped_at.append((k, shown))
                continue
            names.append((k, shown))
            parser.add(shown, load)
    files: list[tuple[str, _DataFile]] = []
    for (k, shown), f in zip(names, parser.results(), strict=True):
        if f.variable not in wanted:
            skipped_at.append((k, shown))
            continue
        files.append((shown, f))
    skipped = [shown for _, shown in sorted(skipped_at)]
    if skipped:
        issues.append(f"{display}: skipped {len(skipped)} files that are not requested ISMN data ({few_names(skipped)})")
    if not files:
        issues.append(f"{display}: no data files of variables {sorted(wanted)}")
    if not files and not statics and not meta_xml:
        raise InputError(
            f"ISMN input {display}: no ISMN data files (*.stm) of variables {sorted(wanted)} found; check the path and 'variables'"
        )
    data = _assemble(files, issues, sm_unit)
    data.attrs["source"] = display
    if meta_xml:
        data.attrs["ismn_metadata"] = meta_xml
    if statics:
        _attach_statics(data, statics, static_prefix)
    return data


def _assemble(files: list[tuple[str, _DataFile]], issues: list[str], sm_unit: SmUnit) -> StationData:
    """Station, sensor and observation tables of the parsed files (their records are released on the way)."""
    sensors: list[dict[str, Any]] = []
    stations: dict[str, dict[str, Any]] = {}
    for shown, f in files:
        sid = station_id(f.network, f.station)
        issues.extend(f.issues)
        n = len(f.records)
        if f.variable == SM and n:
            values, unit_issues = to_m3m3(
                f.records["value"].to_numpy(dtype=np.float64), np.full(n, sid, dtype=object), unit=sm_unit, source=f"ISMN file {shown}"
            )
            f.records = f.records.assign(value=values)
            issues.extend(unit_issues)
        st = stations.get(sid)
        if st is None:
            stations[sid] = {
                "station_id": sid,
                "network": f.network,
                "station": f.station,
                "lat": f.lat,
                "lon": f.lon,
                "elevation_m": f.elevation_m,
            }
        elif abs(st["lat"] - f.lat) > _COORD_TOLERANCE_DEG or abs(st["lon"] - f.lon) > _COORD_TOLERANCE_DEG:
            issues.append(
                f"ISMN file {shown}: station {sid} at {f.lat:.5f}, {f.lon:.5f} but {st['lat']:.5f}, {st['lon']:.5f} in "
                "an earlier file; kept the first coordinates"
            )
        sensors.append(
            {
                "station_id": sid,
                "network": f.network,
                "station": f.station,
                "variable": f.variable,
                "depth_from_m": f.depth_from_m,
                "depth_to_m": f.depth_to_m,
                "sensor": f.sensor,
                "file": shown,
                "format": f.fmt,
                "n_values": n,
            }
        )
    obs, dup = _observations(files)
    issues.extend(dup)
    station_table = pd.DataFrame(list(stations.values())) if stations else empty_frame(STATION_COLUMNS)
    if len(station_table):
        station_table = station_table.sort_values("station_id", kind="stable").reset_index(drop=True)
    sensor_table = finish_sensors(pd.DataFrame(sensors)) if sensors else finish_sensors(pd.DataFrame())
    return StationData(obs, station_table, sensor_table, issues=issues)


def _code_dtype(n: int) -> type[np.signedinteger[Any]]:
    """The smallest signed integer type for category codes -1 .. n-1."""
    return np.int8 if n < 2**7 else np.int16 if n < 2**15 else np.int32


def _observations(files: list[tuple[str, _DataFile]]) -> tuple[pd.DataFrame, list[str]]:
    """The observation table of the files (as :func:`~smci_dask.insitu.readers.finish_observations` leaves it) and the duplicate issues.

    Built column by column without a per-record Python object: times and
    values are copied once into arrays of the final length (each file's
    records are released as soon as they are copied); the per-file columns
    (station, variable, depths, sensor) are a file number per record turned
    into categorical codes; the flags' per-file categories are merged into
    one set. Records are sorted by series and time (stable, so the first
    record in reading order wins a duplicate time) unless the files already
    come in that order, which the ISMN folder layout usually gives.
    """
    lengths = np.array([len(f.records) for _, f in files], dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return finish_observations(pd.DataFrame()), []
    keys = [(station_id(f.network, f.station), f.variable, f.depth_from_m, f.depth_to_m, f.sensor) for _, f in files]
    rank = {k: i for i, k in enumerate(sorted(set(keys)))}
    series_of_file = np.array([rank[k] for k in keys], dtype=np.int32)
    flag_cats: dict[str, dict[str, int]] = {}
    for c in ("qflag", "provider_flag"):
        texts = {str(x) for (_, f), n in zip(files, lengths, strict=True) if n for x in f.records[c].array.categories}
        flag_cats[c] = {t: i for i, t in enumerate(sorted(texts))}
    time = np.empty(total, dtype="datetime64[ns]")
    value = np.empty(total, dtype=np.float64)
    flags = {c: np.empty(total, dtype=_code_dtype(len(cats))) for c, cats in flag_cats.items()}
    fid = np.empty(total, dtype=_code_dtype(len(files)))
    in_order, last_series, pos = True, -1, 0
    for k, ((_, f), n) in enumerate(zip(files, lengths, strict=True)):
        if not n:
            continue
        rec, f.records = f.records, f.records.iloc[:0].copy()  # a slice would keep the records alive
        t = rec["time"].to_numpy(dtype="datetime64[ns]")
        time[pos : pos + n] = t
        value[pos : pos + n] = rec["value"].to_numpy(dtype=np.float64)
        for c, cats in flag_cats.items():
            col = rec[c].array
            recode = np.array([cats[str(x)] for x in col.categories], dtype=flags[c].dtype)
            flags[c][pos : pos + n] = recode[col.codes]
        fid[pos : pos + n] = k
        in_order = in_order and series_of_file[k] > last_series and bool((t[1:] > t[:-1]).all())
        last_series = series_of_file[k]
        pos += n
        del rec, t
    issues: list[str] = []
    if not in_order:
        series = series_of_file[fid]
        order = np.lexsort((time.view(np.int64), series))  # stable: reading order among equal keys
        series, fid, time, value = series[order], fid[order], time[order], value[order]
        flags = {c: v[order] for c, v in flags.items()}
        del order
        dup = np.zeros(total, dtype=bool)
        dup[1:] = (series[1:] == series[:-1]) & (time[1:] == time[:-1])
        del series
        if dup.any():
            issues = _duplicate_issues(files, keys, fid[dup], time[dup])
            keep = ~dup
            fid, time, value = fid[keep], time[keep], value[keep]
            flags = {c: v[keep] for c, v in flags.items()}
    used = np.bincount(fid, minlength=len(files)) > 0

    def per_file(texts: Sequence[str]) -> pd.Categorical:
        cats = sorted({t for t, u in zip(texts, used, strict=True) if u})
        index = {t: i for i, t in enumerate(cats)}
        code_of_file = np.array([index.get(t, -1) for t in texts], dtype=_code_dtype(len(cats)))
        return pd.Categorical.from_codes(code_of_file[fid], categories=pd.Index(cats, dtype=str))

    def flag(c: str) -> pd.Categorical:
        cats = pd.Index(list(flag_cats[c]), dtype=str)
        return pd.Categorical.from_codes(flags.pop(c), categories=cats).remove_unused_categories()

    columns = {
        "station_id": per_file([k[0] for k in keys]),
        "network": per_file([f.network for _, f in files]),
        "station": per_file([f.station for _, f in files]),
        "time": time,
        "variable": per_file([k[1] for k in keys]),
        "depth_from_m": np.array([k[2] for k in keys], dtype=np.float64)[fid],
        "depth_to_m": np.array([k[3] for k in keys], dtype=np.float64)[fid],
        "sensor": per_file([k[4] for k in keys]),
        "value": value,
        "qflag": flag("qflag"),
        "provider_flag": flag("provider_flag"),
    }
    return pd.DataFrame(columns, columns=list(OBSERVATION_COLUMNS), copy=False), issues


def _duplicate_issues(files: list[tuple[str, _DataFile]], keys: list[tuple[Any, ...]], fid: np.ndarray, time: np.ndarray) -> list[str]:
    """One line per file with duplicate timestamps (a later record of a series at a time already read)."""
    per = pd.DataFrame({"fid": fid, "time": time}).groupby("fid", sort=True)["time"].agg(["size", "min"])
    lines = []
    for k, (n, first) in zip(per.index, per.itertuples(index=False), strict=True):
        sid, var, a, b, sensor = keys[k]
        lines.append(
            (
                (*keys[k], files[k][0]),
                f"{files[k][0]}: station {sid} {var} {a:g}-{b:g} m {sensor}: {n} duplicate timestamps "
                f"(first {pd.Timestamp(first):%Y-%m-%d %H:%M}); kept the first record of each",
            )
        )
    return [line for _, line in sorted(lines)]


def _attach_statics(data: StationData, tables: list[pd.DataFrame], prefixes: list[str]) -> None:
    """Fill ``data.static_variables`` and the wide static columns of ``data.stations``."""
    known = {f"{r.network}_{r.network}_{r.station}": r.station_id for r in data.stations.itertuples(index=False)}
    long_parts = []
    for table, prefix in zip(tables, prefixes, strict=True):
        sid = known.get(prefix)
        if sid is None:
            split = _split_prefix(prefix)
            sid = station_id(*split) if split else prefix
            data.issues.append(f"static variables of station {sid}: no data file of the station was read; kept in static_variables only")
        t = table.copy()
        t.insert(0, "station_id", sid)
        long_parts.append(t)
    statics = pd.concat(long_parts, ignore_index=True).loc[:, list(STATIC_COLUMNS)]
    data.static_variables = statics
    wide = _wide_statics(statics)
    if len(data.stations) and len(wide.columns) > 1:
        data.stations = data.stations.merge(wide, on="station_id", how="left")


# ------------------------------------------------------------------ custom metadata
def read_custom_metadata(path_or_url: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a user's ';'-separated station or sensor metadata table (the ``ismn`` package's custom-metadata CSV).

    A station table has columns ``network``, ``station`` and any metadata
    columns; a sensor table adds ``instrument`` (sensor), ``variable`` (ISMN
    long name such as ``soil_moisture``, or abbreviation) and
    ``depth_from``/``depth_to`` (m). Metadata columns are kept as given
    (``<name>_depth_from``/``_depth_to`` columns describe the depth a value
    refers to).

    Returns
    -------
    pandas.DataFrame
        ``station_id`` first, keys renamed to ``sensor``, ``variable``
        (abbreviation), ``depth_from_m``, ``depth_to_m``; then the metadata
        columns. Join it with :func:`smci_dask.insitu.readers.add_custom_metadata`.
    """
    store, name, display = open_source(path_or_url, storage_options)
    try:
        raw = store.read_bytes(name)
    except StoreError as exc:
        raise InputError(f"custom metadata {display}: cannot read: {exc}") from None
    try:
        df = pd.read_csv(io.StringIO(_decode(raw)), sep=";", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"custom metadata {display}: not a ';'-separated table ({exc}); fix the file") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in ("network", "station") if c not in df.columns]
    if missing:
        raise InputError(f"custom metadata {display}: column(s) {missing} missing (has {list(df.columns)}); add them")
    df = df.rename(columns={"instrument": "sensor", "depth_from": "depth_from_m", "depth_to": "depth_to_m"})
    sensor_keys = [c for c in ("sensor", "variable", "depth_from_m", "depth_to_m") if c in df.columns]
    if sensor_keys and len(sensor_keys) < 4:
        raise InputError(
            f"custom metadata {display}: a sensor table needs instrument, variable, depth_from and depth_to; has only {sensor_keys}"
        )
    for c in ("depth_from_m", "depth_to_m"):
        if c in df:
            d = pd.to_numeric(df[c], errors="coerce")
            if d.isna().any():
                raise InputError(
                    f"custom metadata {display} line {int(np.flatnonzero(d.isna().to_numpy())[0]) + 2}: {c[:-2]} is not a number"
                )
            df[c] = d.astype(np.float64)
    if "variable" in df:
        df["variable"] = df["variable"].map(lambda v: ISMN_VARIABLES.get(v, v))
    df.insert(0, "station_id", [station_id(n, s) for n, s in zip(df["network"], df["station"], strict=True)])
    return df
