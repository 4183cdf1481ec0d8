"""Quality control of one station's hourly CSV file (``smci qc``): the tool a network operator runs on one file.

The file has one row per hour (columns as in flagit's test file): ``utc``
(timestamp; UTC unless it carries an offset such as ``+08:00``),
``soil_moisture`` (% vol. or m3/m3) and whichever ancillary columns exist:
``soil_temperature``, ``air_temperature`` (deg C), ``precipitation`` (mm in
the hour), gridded ``gldas_soil_temperature`` / ``grid_soil_temperature``
(deg C) and ``gldas_precipitation`` / ``grid_precipitation`` (mm). Other
columns are carried through untouched.

:func:`qc_file` checks it with :func:`~smci_dask.insitu.qc.apply_qc` and
writes the file back, every input column as it was (the text is not
re-formatted), plus ``qflag``: the codes raised, sorted and joined by commas
(``C03,D02``), ``G`` when none, ``M`` on a row without a soil-moisture
reading (ISMN's code for a missing value).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd

from smci_dask.errors import InputError, StoreError
from smci_dask.insitu.qc import ALL_CHECKS, apply_qc

__all__ = ["QcFileReport", "qc_file", "qflags"]

FileUnits = Literal["auto", "percent", "m3m3"]
#: File column -> QC frame column (the first present of each target wins).
ANCILLARY_NAMES: Final = {
    "soil_temperature": "soil_temperature",
    "air_temperature": "air_temperature",
    "precipitation": "precipitation",
    "grid_soil_temperature": "grid_soil_temperature",
    "gldas_soil_temperature": "grid_soil_temperature",
    "grid_precipitation": "grid_precipitation",
    "gldas_precipitation": "grid_precipitation",
}
TIME_COLUMN: Final = "utc"
SM_COLUMN: Final = "soil_moisture"
FLAG_COLUMN: Final = "qflag"
GOOD: Final = "G"
MISSING: Final = "M"
_HEADER_LINES: Final = 1


@dataclass
class QcFileReport:
    """What :func:`qc_file` did: rows, readings, units used, readings per code."""

    path: str
    out: str
    rows: int
    readings: int
    good: int
    units: str
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        raised = ", ".join(f"{c} {n}" for c, n in self.counts.items() if n) or "none"
        return (
            f"{self.path}: {self.rows} rows, {self.readings} soil-moisture readings ({self.units}), "
            f"{self.good} good (G), {self.readings - self.good} flagged; per code: {raised}\nwritten: {self.out}"
        )


def _numbers(text: pd.Series, column: str, path: str) -> np.ndarray:
    """Text -> float; empty cells are missing, anything else that is not a number is an error naming its line."""
    stripped = text.str.strip()
    values = pd.to_numeric(stripped.where(stripped != ""), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & (stripped != "").to_numpy())
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{path} line {i + 1 + _HEADER_LINES} column {column!r}: {text.iloc[i]!r} is not a number "
            f"({bad.size} such cells); fix it or leave the cell empty"
        )
    return values.to_numpy(dtype=np.float64)


def _times(text: pd.Series, path: str) -> pd.Series:
    """Text -> UTC timestamps (tz-naive); unparseable cells are an error naming their line."""
    stripped = text.str.strip()
    times = pd.to_datetime(stripped, utc=True, errors="coerce", format="mixed")
    bad = np.flatnonzero(times.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{path} line {i + 1 + _HEADER_LINES} column {TIME_COLUMN!r}: {text.iloc[i]!r} is not a date and time "
            f"({bad.size} such cells); write e.g. 2020-01-27 13:00:00 (UTC) or 2020-01-27T21:00:00+08:00"
        )
    hours = times.dt.floor("h")
    dup = np.flatnonzero(hours.duplicated(keep=False).to_numpy())
    if dup.size:
        first = dup[hours.iloc[dup] == hours.iloc[dup[0]]]
        lines = " and ".join(str(int(j) + 1 + _HEADER_LINES) for j in first[:2])
        raise InputError(
            f"{path} lines {lines} column {TIME_COLUMN!r}: two rows in the hour {hours.iloc[dup[0]]:%Y-%m-%d %H:00} UTC; "
            "the checks run on hourly series: keep one row per hour (average sub-hourly readings)"
        )
    return times.dt.tz_localize(None)


def _units(sm: np.ndarray, units: FileUnits) -> Literal["percent", "m3m3"]:
    """The declared units, or for 'auto': % vol. when any reading exceeds 1.5 (no soil holds 1.5 m3/m3)."""
    if units != "auto":
        return units
    finite = sm[np.isfinite(sm)]
    return "percent" if finite.size and float(np.max(finite)) > 1.5 else "m3m3"


def qflags(checked: pd.DataFrame) -> np.ndarray:
    """The ``qflag`` text of each row of :func:`~smci_dask.insitu.qc.apply_qc`'s result ('G' none, 'M' no reading)."""
    text = checked["qc_flags"].astype(object).to_numpy()
    out = np.where(text == "", GOOD, text).astype(object)
    out[~np.isfinite(checked["sm"].to_numpy(dtype=np.float64))] = MISSING
    return out


def qc_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    units: FileUnits = "auto",
    saturation: float | None = None,
    depth_from_m: float | None = None,
) -> QcFileReport:
    """Check one station's hourly CSV file and write it back with a ``qflag`` column (see the module docstring).

    Parameters
    ----------
    path : str or path
        The input CSV (local file).
    out : str or path
        The output CSV; written whole or not at all (temporary name, then renamed).
    units : {'auto', 'percent', 'm3m3'}
        Units of ``soil_moisture`` (and of ``saturation``); 'auto': % vol.
        when a reading exceeds 1.5.
    saturation : float, optional
        Saturation point of the soil in the file's units (C03); none: C03 not applied.
    depth_from_m : float, optional
        Depth of the sensor's top, m (D04 / D05 apply above 0.1 m; default: 0.2 mm rain threshold).

    Returns
    -------
    QcFileReport

    Raises
    ------
    InputError
        A missing file or column, a cell that is not a number or a date
        (naming its line), two rows in one hour.
    """
    name = os.fspath(path)
    try:
        text = pd.read_csv(name, dtype=str, keep_default_na=False, skipinitialspace=False)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file; check the path") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{name}: not a readable CSV table ({str(err).strip()}); give a comma-separated file with a header line") from None
    missing = [c for c in (TIME_COLUMN, SM_COLUMN) if c not in text.columns]
    if missing:
        raise InputError(
            f"{name} line 1: column(s) {missing} missing (columns: {list(text.columns)}); the file needs "
            f"'{TIME_COLUMN}' and '{SM_COLUMN}', optionally {sorted(ANCILLARY_NAMES)}"
        )
    if FLAG_COLUMN in text.columns:
        raise InputError(f"{name} line 1: the file already has a {FLAG_COLUMN!r} column; remove it or check the original file")
    sm = _numbers(text[SM_COLUMN], SM_COLUMN, name)
    used = _units(sm, units)
    scale = 100.0 if used == "percent" else 1.0
    frame = pd.DataFrame({"time": _times(text[TIME_COLUMN], name), "sm": sm / scale})
    if depth_from_m is not None:
        frame["depth_from_m"] = float(depth_from_m)
        frame["depth_to_m"] = float(depth_from_m)
    for column, target in ANCILLARY_NAMES.items():
        if column in text.columns and target not in frame.columns:
            frame[target] = _numbers(text[column], column, name)
    checked = apply_qc(frame, saturation=None if saturation is None else float(saturation) / scale)
    result = text.assign(**{FLAG_COLUMN: qflags(checked)})
    _write_atomic(result, Path(out))
    present = np.isfinite(sm)
    return QcFileReport(
        path=name,
        out=os.fspath(out),
        rows=len(text),
        readings=int(present.sum()),
        good=int(checked["qc_good"].sum()),
        units="% vol." if used == "percent" else "m3/m3",
        counts={code: int(checked[code].sum()) for code in ALL_CHECKS if code in checked.columns},
    )


def _write_atomic(df: pd.DataFrame, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(tmp, index=False)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"{target}: cannot write the output ({exc.strerror or exc}); check the folder and its permissions") from None
