"""Automated quality control of hourly in-situ soil moisture: the ISMN checks of Dorigo et al. (2013).

Dorigo, W. A., et al. (2013): Global automated quality control of in situ
soil moisture data from the International Soil Moisture Network. Vadose Zone
Journal 12(3), doi:10.2136/vzj2012.0097. Rules, windows and thresholds follow
the paper as its reference implementation, the ``flagit`` package (TU Wien,
version 0.3), applies them; where the two differ, ``flagit`` is followed and
the check's docstring says so. The implementation here is our own, vectorised
over whole series and over many series at once (no loop over rows or series).

======  =====================================================================
code    the reading is flagged when
======  =====================================================================
C01     soil moisture < 0 m3/m3
C02     soil moisture > 0.6 m3/m3
C03     soil moisture > the saturation point of the soil (m3/m3, a parameter)
D01     in-situ soil temperature < 0 deg C
D02     in-situ air temperature < 0 deg C
D03     gridded soil temperature (ERA5-Land ``stl1`` here, GLDAS at ISMN) < 0 deg C
D04     soil moisture rises without in-situ precipitation in the last 24 h
D05     the same with gridded precipitation (ERA5-Land ``tp`` here)
D06     spike
D07     negative break (drop)
D08     positive break (jump)
D09     constant low values after a negative break
D10     saturated plateau (constant high values)
======  =====================================================================

Units. The public functions take soil moisture in m3/m3 (``units='percent'``
for % vol.). The range checks C01-C03 compare the readings as given; the
other checks run in % vol. (m3/m3 x 100), the unit in which ``flagit``
states its thresholds (spike relative variance < 1 % vol., break change > 1 %
vol., plateau variance <= 0.05 (% vol.)^2 ...), so a series gives the same
flags in either unit up to the last bit of the conversion. Temperatures are
deg C, precipitation mm per hourly record.

Time. Every check is positional over a regular hourly series, as in
``flagit``: "t - 1" is the hour before, a 25 h window is 25 hourly values.
A series given to a ``flag_*`` function must be hourly with missing hours as
NaN; :func:`apply_qc` builds that regular grid itself from whatever records
exist. D09 and D10 look at the valid readings only (a plateau may bridge a
gap), as ``flagit`` does.

Missing inputs. A check whose input is missing is not applied: no D01
without in-situ soil temperature, no D03 / D05 without gridded series, no
C03 without a saturation point; a missing value flags nothing at its hour.
The pipeline passes ERA5-Land series at the station's cell as the gridded
ancillary data (ISMN takes them from GLDAS): the soil temperature of the
layers ``stl1``..``stl4`` at their centre depths, which QC brings to each
sensor's depth (linear between them), and ``tp``, both daily means/totals
spread over the hours (``gridded_precipitation='daily'``); and only where
the station lacks the in-situ series (``gridded='fallback'``). flagit's
semantics (``gridded='always'``, hourly gridded series as given) are the
default of :func:`apply_qc` and of ``smci qc``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from smci_dask.insitu import qc_breaks as qb
from smci_dask.insitu.qc_breaks import PAD, Layout
from smci_dask.insitu.qc_frame import (
    ANCILLARY_COLUMNS,
    ANCILLARY_VALUES,
    QC_FRAME_COLUMNS,
    TS_DEPTH_TOLERANCE_M,
    Prepared,
    build_qc_frame,
    frame_of,
    prepare,
)

__all__ = [
    "ALL_CHECKS",
    "ANCILLARY_COLUMNS",
    "GriddedUse",
    "QC_FRAME_COLUMNS",
    "QcCode",
    "SmUnits",
    "apply_qc",
    "build_qc_frame",
    "flag_C01",
    "flag_C02",
    "flag_C03",
    "flag_D01",
    "flag_D02",
    "flag_D03",
    "flag_D04",
    "flag_D05",
    "flag_D06",
    "flag_D07",
    "flag_D08",
    "flag_D09",
    "flag_D10",
]

QcCode = Literal["C01", "C02", "C03", "D01", "D02", "D03", "D04", "D05", "D06", "D07", "D08", "D09", "D10"]
SmUnits = Literal["m3/m3", "percent"]
#: How the gridded series (D03, D05) relate to the in-situ ones (D01, D04): see :func:`apply_qc`.
GriddedUse = Literal["always", "fallback"]
#: Every check, in ISMN order (the order of the codes in ``qc_flags``).
ALL_CHECKS: Final[tuple[QcCode, ...]] = get_args(QcCode)

# ------------------------------------------------------------------ thresholds
#: C01 / C02: plausible range of soil moisture, m3/m3.
SM_MIN_M3M3: Final = 0.0
SM_MAX_M3M3: Final = 0.6
#: D01-D03: frozen soil or air below this temperature, deg C.
FREEZING_C: Final = 0.0
#: D04 / D05: hours of precipitation looked back and of the soil-moisture rise (24 h), and the window of its std (25 h).
RAIN_HOURS: Final = 24
RISE_STD_WINDOW: Final = 25
#: D04 / D05: less precipitation than this (mm in 24 h) is "no rain" when the sensor depth is unknown or 0.
RAIN_MIN_MM: Final = 0.2
#: D04 / D05: for a sensor whose top is at z (m, 0 < z < RAIN_MAX_DEPTH_M) "no rain" is less than z x 25 mm/m
#: (flagit: z x 0.05 x 0.5 x 1000 mm); sensors at RAIN_MAX_DEPTH_M or deeper are not checked.
RAIN_MM_PER_M_DEPTH: Final = 0.05 * 0.5 * 1000.0
RAIN_MAX_DEPTH_M: Final = 0.1
#: % vol. per m3/m3: the checks run in % vol., the unit of flagit's thresholds.
_PERCENT_PER_M3M3: Final = 100.0

#: Grid elements per batch in :func:`apply_qc` (bounds the memory: ~40 float64 arrays of this size).
BATCH_ELEMENTS: Final = 2_000_000

T = TypeVar("T", pd.Series, np.ndarray)


# ------------------------------------------------------------------ helpers
def _percent(sm: npt.ArrayLike, units: SmUnits) -> np.ndarray:
    if units not in get_args(SmUnits):
        raise ValueError(f"units must be one of {get_args(SmUnits)}, got {units!r}")
    v = np.asarray(sm, dtype=np.float64).ravel()
    return v * _PERCENT_PER_M3M3 if units == "m3/m3" else v


def _like(template: object, flags: np.ndarray, code: str) -> pd.Series | np.ndarray:
    """Return ``flags`` as a Series when the input was one (same index), else as an array."""
    if isinstance(template, pd.Series):
        return pd.Series(flags, index=template.index, name=code)
    return flags


def _below(values: npt.ArrayLike, limit: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v < limit


def _as_given(sm: npt.ArrayLike, units: SmUnits) -> tuple[np.ndarray, float]:
    """(readings as given, the unit's value of 1 m3/m3) for the range checks."""
    _percent([], units)  # validates units
    return np.asarray(sm, dtype=np.float64).ravel(), (_PERCENT_PER_M3M3 if units == "percent" else 1.0)


def _series_kernel(sm: npt.ArrayLike, units: SmUnits) -> tuple[np.ndarray, Layout, int]:
    x, layout = qb.single(_percent(sm, units))
    return x, layout, int(np.asarray(sm).size)


def _strip(flat: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(flat[PAD : PAD + n], dtype=bool)


# ------------------------------------------------------------------ C: plausible range
def flag_C01(sm: T, *, units: SmUnits = "m3/m3") -> T:
    """C01: soil moisture below 0 m3/m3.

    Parameters
    ----------
    sm : pandas.Series or array_like
        Soil moisture, m3/m3 (or % vol. with ``units='percent'``).
    units : {'m3/m3', 'percent'}

    Returns
    -------
    pandas.Series or ndarray of bool
        True where flagged (NaN is never flagged); a Series keeps ``sm``'s index.
    """
    x, _ = _as_given(sm, units)
    return _like(sm, x < SM_MIN_M3M3, "C01")


def flag_C02(sm: T, *, units: SmUnits = "m3/m3") -> T:
    """C02: soil moisture above 0.6 m3/m3 (60 % vol.).

    Parameters and returns as :func:`flag_C01`.
    """
    x, scale = _as_given(sm, units)
    return _like(sm, x > SM_MAX_M3M3 * scale, "C02")


def flag_C03(sm: T, saturation: float | npt.ArrayLike | None, *, units: SmUnits = "m3/m3") -> T:
    """C03: soil moisture above the soil's saturation point.

    ISMN derives the saturation point (porosity) of each station from HWSD
    sand, clay and organic matter with Saxton & Rawls (2006); the pipeline
    passes the station's porosity (static ``saturation`` / ``porosity``).

    Parameters
    ----------
    sm : pandas.Series or array_like
        Soil moisture, m3/m3 (or % vol. with ``units='percent'``).
    saturation : float or array_like or None
        Saturation point in the unit of ``sm``, one value or one per reading;
        None, 0 or NaN: the check is not applied (flagit skips it without one).
    units : {'m3/m3', 'percent'}

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    x, _ = _as_given(sm, units)
    if saturation is None:
        return _like(sm, np.zeros(x.size, dtype=bool), "C03")
    sat = np.broadcast_to(np.asarray(saturation, dtype=np.float64), x.shape)
    return _like(sm, (x > sat) & (sat > 0), "C03")


# ------------------------------------------------------------------ D01-D03: frozen soil
def flag_D01(soil_temperature: T) -> T:
    """D01: in-situ soil temperature below 0 deg C (frozen soil: the sensor reads liquid water only).

    Parameters
    ----------
    soil_temperature : pandas.Series or array_like
        deg C, at (or near) the sensor's depth; NaN where not measured.

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    return _like(soil_temperature, _below(soil_temperature, FREEZING_C), "D01")


def flag_D02(air_temperature: T) -> T:
    """D02: in-situ air temperature below 0 deg C.

    Parameters
    ----------
    air_temperature : pandas.Series or array_like
        deg C (2 m); NaN where not measured.

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    return _like(air_temperature, _below(air_temperature, FREEZING_C), "D02")


def flag_D03(grid_soil_temperature: T) -> T:
    """D03: gridded soil temperature below 0 deg C.

    ISMN uses GLDAS-Noah's top layer; the pipeline passes ERA5-Land ``stl1``
    (0-7 cm, converted from K to deg C) at the station's cell.

    Parameters
    ----------
    grid_soil_temperature : pandas.Series or array_like
        deg C; NaN where not available.

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    return _like(grid_soil_temperature, _below(grid_soil_temperature, FREEZING_C), "D03")


# ------------------------------------------------------------------ D04 / D05: rise without rain
def rain_threshold_mm(depth_from_m: float | None) -> float | None:
    """Least precipitation in 24 h (mm) that explains a rise at a sensor whose top is at ``depth_from_m``.

    ``None`` or 0 m: :data:`RAIN_MIN_MM` (0.2 mm); ``0 < z < 0.1`` m:
    ``z x 25`` mm (e.g. 2.25 mm at 0.09 m); 0.1 m and deeper: None, the check
    does not apply (ISMN applies D04 / D05 to surface sensors only).
    """
    if depth_from_m is None or not np.isfinite(depth_from_m) or depth_from_m == 0:
        return RAIN_MIN_MM
    if depth_from_m >= RAIN_MAX_DEPTH_M:
        return None
    return float(depth_from_m) * RAIN_MM_PER_M_DEPTH


def _rain_thresholds(depth_from_m: np.ndarray) -> np.ndarray:
    """Per series: the mm threshold, NaN where the check does not apply (0.1 m and deeper)."""
    d = np.asarray(depth_from_m, dtype=np.float64)
    out = np.where(np.isfinite(d) & (d != 0), d * RAIN_MM_PER_M_DEPTH, RAIN_MIN_MM)
    return np.where(np.isfinite(d) & (d >= RAIN_MAX_DEPTH_M), np.nan, out)


def _rise_without_rain(x: np.ndarray, rain_24h: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Rise in the last hour and over 24 h by more than 2 std of the last 25 h, with less rain than ``threshold`` in 24 h."""
    std2 = qb.rolling(x, RISE_STD_WINDOW, 1).std().to_numpy() * 2.0
    rise24 = x - qb.shift(x, RAIN_HOURS)
    rise1 = x - qb.shift(x, 1)
    return (rise1 > 0) & (rise24 > std2) & ~np.isclose(rise24, std2) & (rain_24h < threshold)


def _rain_in_situ(p: np.ndarray) -> np.ndarray:
    """Precipitation of the hour and the 23 before (mm, rounded to 0.1 mm as flagit; NaN only if all 24 are missing)."""
    return np.round(qb.rolling(p, RAIN_HOURS, 1).sum().to_numpy(), 1)


def _rain_gridded(p: np.ndarray, layout: Layout) -> np.ndarray:
    """Sum of the last 24 available gridded values (mm; flagit drops missing values first), NaN where missing."""
    kept, pos, small = qb.compress(~np.isnan(p), layout)
    packed = np.full(small.size, np.nan)
    packed[pos] = p[kept]
    sums = qb.rolling(packed, RAIN_HOURS, 1).sum().to_numpy()
    out = np.full(p.size, np.nan)
    out[kept] = sums[pos]
    return out


def _rain_days(p: np.ndarray, layout: Layout, first_hour: np.ndarray) -> np.ndarray:
    """Gridded precipitation of the UTC day of each hour and of the day before (mm), for daily-resolution series.

    When only daily totals are known (each hour holding a share of its day's
    total), the rain of the 24 h before hour t lies somewhere in t's day and
    the day before: their sum is the least window of whole days that holds
    those 24 h, so a rise is called "without rain" only when no rain fell in
    either day. Sums over the hours of the series' grid present; NaN where
    none of them holds a value. ``first_hour``: per series, the hour (since
    1970, UTC) of its first grid element.
    """
    inside = np.flatnonzero(layout.inside())
    seg = layout.series_of(inside)
    hour = first_hour[seg] + (inside - layout.starts[seg])
    day_start = (hour // 24) * 24
    lo = np.maximum(inside - (hour - (day_start - 24)), layout.starts[seg])
    hi = np.minimum(inside + (day_start + 23 - hour), layout.stops[seg] - 1)
    ok = np.isfinite(p)
    total = np.r_[0.0, np.cumsum(np.where(ok, p, 0.0))]
    count = np.r_[0, np.cumsum(ok)]
    out = np.full(p.size, np.nan)
    n = count[hi + 1] - count[lo]
    out[inside] = np.where(n > 0, total[hi + 1] - total[lo], np.nan)
    return out


def flag_D04(sm: T, precipitation: npt.ArrayLike, *, depth_from_m: float | None = None, units: SmUnits = "m3/m3") -> T:
    """D04: soil moisture rises without in-situ precipitation.

    Flagged at hour t when all hold (Dorigo et al. 2013; flagit):

    - soil moisture rose in the last hour, x[t] - x[t-1] > 0;
    - it rose over 24 h by more than twice the standard deviation of the last
      25 hourly readings, x[t] - x[t-24] > 2 std(x[t-24 .. t]) (not merely equal);
    - precipitation of hours t-23 .. t, summed and rounded to 0.1 mm, is
      below the rain threshold (:func:`rain_threshold_mm`: 0.2 mm, or
      depth x 25 mm/m for sensors above 0.1 m).

    Sensors whose top is at 0.1 m or deeper are not checked (ISMN applies the
    check to surface sensors only).

    Parameters
    ----------
    sm : pandas.Series or array_like
        Hourly soil moisture, m3/m3 (``units``), missing hours as NaN.
    precipitation : array_like
        In-situ precipitation of each hour, mm, aligned with ``sm``.
    depth_from_m : float, optional
        Depth of the sensor's top, m.
    units : {'m3/m3', 'percent'}

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    return _flag_rise(sm, precipitation, depth_from_m, units, "D04", lambda p, _layout: _rain_in_situ(p))


def flag_D05(sm: T, grid_precipitation: npt.ArrayLike, *, depth_from_m: float | None = None, units: SmUnits = "m3/m3") -> T:
    """D05: soil moisture rises without gridded precipitation.

    As :func:`flag_D04` with gridded precipitation (ERA5-Land ``tp`` at the
    station's cell, mm per hour; GLDAS at ISMN). As in flagit, the 24 h sum
    runs over the last 24 *available* gridded values, is not rounded, and an
    hour without a gridded value is not flagged.

    Parameters
    ----------
    sm : pandas.Series or array_like
        Hourly soil moisture, m3/m3 (``units``), missing hours as NaN.
    grid_precipitation : array_like
        mm per hour, aligned with ``sm``.
    depth_from_m : float, optional
    units : {'m3/m3', 'percent'}

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    return _flag_rise(sm, grid_precipitation, depth_from_m, units, "D05", _rain_gridded)


def _flag_rise(sm: T, precipitation: npt.ArrayLike, depth_from_m: float | None, units: SmUnits, code: str, rain: Any) -> T:
    """D04/D05 on one series: a rise without the 24 h rain that ``rain(p, layout)`` sums (in-situ or gridded)."""
    x, layout, n = _series_kernel(sm, units)
    threshold = rain_threshold_mm(depth_from_m)
    if threshold is None:
        return _like(sm, np.zeros(n, dtype=bool), code)
    p, _ = qb.single(precipitation)
    return _like(sm, _strip(_rise_without_rain(x, rain(p, layout), np.full(x.size, threshold)), n), code)


# ------------------------------------------------------------------ D06-D10: shape of the series
def flag_D06(sm: T, *, units: SmUnits = "m3/m3") -> T:
    """D06: spike.

    Flagged at hour t (Dorigo et al. 2013, Eqs. 4-6, with flagit's two-hour peaks):

    - t is a peak or trough: x[t-1] < x[t] > x[t+1] or x[t-1] > x[t] < x[t+1],
      or the first hour of a two-hour one (x[t-1] < x[t] == x[t+1] > x[t+2] or
      the reverse), whose second hour is flagged with it;
    - the reading changed by more than 15 %: x[t] / x[t-1] (rounded to 3
      decimals) > 1.15 or < 0.85 (or t is the second hour of a two-hour peak);
    - the curvature on both sides is alike: 0.8 < |f''(t-1) / f''(t+1)| < 1.2
      (3 decimals), f'' from a Savitzky-Golay filter (window 3, order 2);
    - the surroundings are calm: variance / mean of the 24 readings
      x[t-12 .. t+12] without x[t] (all present) is below 1 (% vol.).

    Parameters
    ----------
    sm : pandas.Series or array_like
        Hourly soil moisture, m3/m3 (``units``), missing hours as NaN.
    units : {'m3/m3', 'percent'}

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    x, layout, n = _series_kernel(sm, units)
    _, d2 = qb.derivatives(x, layout)
    return _like(sm, _strip(qb.spikes(x, d2), n), "D06")


def flag_D07(sm: T, *, units: SmUnits = "m3/m3") -> T:
    """D07: negative break (drop).

    Flagged at hour t (Dorigo et al. 2013, Eqs. 7-9) when f'(t) < 0 and

    - the relative change |(x[t] - x[t-1]) / x[t]| > 0.1 and the absolute
      change > 1 % vol. (0.01 m3/m3), x[t] != 0;
    - |f'(t)| > 10 |mean f'| over t-12 .. t+12 (at least 4 values), not
      merely equal;
    - the second derivative flips: |f''(t-1) / f''(t)| rounded to 0.1 is 1,
      f''(t) != 0, and |f''(t) / f''(t+2)| > 10 (no second break right after);

    or (flagit's addition) the reading dropped by more than 5 % vol. to exactly 0.

    Parameters and returns as :func:`flag_D06`.
    """
    x, layout, n = _series_kernel(sm, units)
    d1, d2 = qb.derivatives(x, layout)
    return _like(sm, _strip(qb.breaks(x, d1, d2)[0], n), "D07")


def flag_D08(sm: T, *, units: SmUnits = "m3/m3") -> T:
    """D08: positive break (jump): the break rule of :func:`flag_D07` with f'(t) > 0.

    Parameters and returns as :func:`flag_D06`.
    """
    x, layout, n = _series_kernel(sm, units)
    d1, d2 = qb.derivatives(x, layout)
    return _like(sm, _strip(qb.breaks(x, d1, d2)[1], n), "D08")


def flag_D09(sm: T, *, drops: npt.ArrayLike | None = None, units: SmUnits = "m3/m3") -> T:
    """D09: constant low values following a negative break.

    On the valid readings only (a gap does not end a plateau), with x[t]
    the t-th valid reading (Dorigo et al. 2013, Eq. 14; flagit):

    - rel(t) = var(x[t .. t+12]) / mean(x[t .. t+12]), both rounded to 4
      decimals (% vol.), ddof 1; a run of zeros counts as rel = 0;
    - a low plateau starts at a D07 drop with rel(t) < 0.001 and ends where
      rel rises by 0.001 or more from one hour to the next;
    - every reading of the plateau and of the 12 h after it is flagged
      (a plateau lasts at least 13 h); the first 12 readings of a series are
      never flagged.

    Parameters
    ----------
    sm : pandas.Series or array_like
        Hourly soil moisture, m3/m3 (``units``), missing hours as NaN.
    drops : array_like of bool, optional
        D07 flags of ``sm``; computed with :func:`flag_D07` when not given.
    units : {'m3/m3', 'percent'}

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    x, layout, n = _series_kernel(sm, units)
    if drops is None:
        d1, d2 = qb.derivatives(x, layout)
        d07 = qb.breaks(x, d1, d2)[0]
    else:
        d07, _ = qb.single(np.asarray(drops, dtype=np.float64))
        d07 = d07 == 1
    return _like(sm, _strip(_low_plateaus(x, d07, layout), n), "D09")


def _low_plateaus(x: np.ndarray, d07: np.ndarray, layout: Layout) -> np.ndarray:
    kept, pos, small = qb.compress(~np.isnan(x), layout)
    xs = np.full(small.size, np.nan)
    xs[pos] = x[kept]
    drops = np.zeros(small.size, dtype=bool)
    drops[pos] = d07[kept]
    out = np.zeros(x.size, dtype=bool)
    out[kept] = qb.low_plateaus(xs, drops, small)[pos]
    return out


def flag_D10(sm: T, *, highest: float | None = None, outside_runs: bool = False, units: SmUnits = "m3/m3") -> T:
    """D10: saturated plateau (constant high values).

    On the valid readings only (Dorigo et al. 2013, Eqs. 10-13; flagit):

    - low variance: var(x[t .. t+11]) <= 0.05 (% vol.)^2; a run of such t
      with the 11 readings its last window covers is a candidate period;
    - it starts with a rise: the largest f' within 12 h of the run's first
      reading, rounded to 3 decimals, is >= 0.25 % vol./h;
    - it ends with a fall: the smallest f' within the 24 h after the run's
      last reading, rounded to 3 decimals, is < 0;
    - the plateau runs from the hour of that rise (f' rounded to 3 decimals
      equal to it; the period's start if the rise lies outside the period) to
      the hour of the fall (the period's end if outside), and is flagged
      whole when its mean exceeds 95 % of ``highest``.

    flagit 0.3 also treats the readings outside every low-variance run as
    one more candidate (its "group 0", an artefact of numbering the runs with
    0 for "no run"): rise and fall are taken at the first and last of those
    readings, the period is every reading with one of them among itself and
    the 11 before, and the pseudo-plateau between usually spans most of the
    series, flagging all of it when a wet series stays within 5 % of its
    highest value. That is not Dorigo et al.'s rule, so it is off by default;
    ``outside_runs=True`` reproduces flagit.

    Parameters
    ----------
    sm : pandas.Series or array_like
        Hourly soil moisture, m3/m3 (``units``), missing hours as NaN.
    highest : float, optional
        Reference level in the unit of ``sm``: the highest reading below 0.6
        m3/m3 of the series when not given (ISMN: of the previous two years).
    outside_runs : bool
        Also test flagit's group-0 pseudo-plateau (see above).
    units : {'m3/m3', 'percent'}

    Returns
    -------
    pandas.Series or ndarray of bool
    """
    x, layout, n = _series_kernel(sm, units)
    d1, _ = qb.derivatives(x, layout)
    if highest is None:
        top = _highest(x, layout)
    else:
        top = _percent([highest], units)
    return _like(sm, _strip(_saturated_plateaus(x, d1, top, layout, outside_runs), n), "D10")


def _highest(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Per series: the highest reading below 60 % vol. (NaN if none)."""
    v = np.where(x < qb.PLATEAU_HIGHEST_BELOW, x, np.nan)
    with np.errstate(invalid="ignore"):
        top = np.fmax.reduceat(v, layout.starts)
    return top


def _saturated_plateaus(x: np.ndarray, d1: np.ndarray, top: np.ndarray, layout: Layout, outside_runs: bool) -> np.ndarray:
    kept, pos, small = qb.compress(~np.isnan(x), layout)
    xs = np.full(small.size, np.nan)
    xs[pos] = x[kept]
    ds = np.full(small.size, np.nan)
    ds[pos] = d1[kept]
    out = np.zeros(x.size, dtype=bool)
    out[kept] = qb.saturated_plateaus(xs, ds, small.per_element(top), small, outside_runs)[pos]
    return out


# ------------------------------------------------------------------ whole tables
def _saturation_per_series(prep: Prepared, saturation: float | Mapping[str, float] | pd.Series | None) -> np.ndarray:
    """Saturation point per series, m3/m3 (NaN: C03 not applied)."""
    n = len(prep.series)
    if saturation is None:
        return np.full(n, np.nan)
    if np.isscalar(saturation):
        return np.full(n, float(saturation))  # type: ignore[arg-type]
    mapping = pd.Series(saturation, dtype=np.float64)
    mapping.index = mapping.index.astype(str)
    mapping = mapping[~mapping.index.duplicated()]
    return mapping.reindex(prep.series["station_id"].astype(str)).to_numpy(dtype=np.float64)


def _batches(lengths: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive groups of series whose padded lengths add up to about ``size`` (at least one series each)."""
    if lengths.size == 0:
        return []
    total = np.cumsum(lengths + PAD)
    cut = np.searchsorted(total, np.arange(size, int(total[-1]) + size, size), side="right")
    bounds = np.unique(np.r_[0, np.clip(cut, 1, lengths.size), lengths.size])
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def apply_qc(
    obs: pd.DataFrame,
    *,
    saturation: float | Mapping[str, float] | pd.Series | None = None,
    ancillary: pd.DataFrame | None = None,
    checks: Iterable[QcCode] = ALL_CHECKS,
    ts_depth_tolerance_m: float = TS_DEPTH_TOLERANCE_M,
    d10_outside_runs: bool = False,
    batch_elements: int = BATCH_ELEMENTS,
    bad_flags: Iterable[QcCode] | None = None,
    gridded: GriddedUse = "always",
    gridded_precipitation: Literal["hourly", "daily"] = "hourly",
) -> pd.DataFrame:
    """Flag hourly soil moisture with the ISMN checks, every sensor series at once.

    Input frames
    ------------
    ``obs`` is one of

    - the long table of the readers (:attr:`StationData.observations`): one
      row per record with ``station_id``, ``time`` (UTC), ``variable``,
      ``value`` and, where known, ``depth_from_m``, ``depth_to_m``, ``sensor``.
      The ``'sm'`` rows (m3/m3) are checked, one series per station, depth
      range and sensor. Air temperature (``'ta'``, deg C) and precipitation
      (``'p'``, mm per hour) of the same station and hour are joined (the
      mean where a station has several sensors); soil temperature (``'ts'``,
      deg C) comes from the station's sensor whose depth centre is nearest
      the soil-moisture sensor's, within ``ts_depth_tolerance_m``.
    - a wide frame (:data:`QC_FRAME_COLUMNS`): ``time`` and ``sm`` (m3/m3)
      required; ``station_id``, ``depth_from_m``, ``depth_to_m``, ``sensor``
      name the series where given (else one series); ``soil_temperature``,
      ``air_temperature``, ``precipitation``, ``grid_soil_temperature``,
      ``grid_precipitation`` are that series' ancillary values. Rows with NaN
      ``sm`` may carry ancillary values for hours without a reading (as in
      flagit's frames).

    Each series is laid on a regular hourly grid from its first to its last
    row (missing hours NaN) before the positional checks run; ancillary values
    at hours without a soil-moisture reading count too (e.g. rain during a
    gap). Timestamps are floored to the hour; two readings of a series in one
    hour are an error.

    Parameters
    ----------
    obs : pandas.DataFrame
        See above.
    saturation : float or mapping or pandas.Series, optional
        Saturation point (porosity), m3/m3: one value for every station, or
        one per ``station_id``; a station without one is not checked by C03.
    ancillary : pandas.DataFrame, optional
        Gridded series at the stations (:data:`ANCILLARY_COLUMNS`: ``station_id``,
        ``time``, ``grid_soil_temperature`` deg C, ``grid_precipitation`` mm
        per hour), e.g. ERA5-Land at the station's cell: D03 and D05 use
        them; without them those checks are not applied. With a column
        ``depth_m`` the rows give the gridded soil temperature at several
        depths (m, e.g. ERA5-Land's layer centres 0.035, 0.175, 0.64,
        1.945): each sensor takes it at its depth centre, linear between the
        depths around it (the shallowest / deepest beyond them), as D01 takes
        the in-situ sensor nearest its depth; ``grid_precipitation`` is then
        the station's (the mean of the values given at the hour).
        Where a wide frame has its own ``grid_*`` values, those come first.
    checks : iterable of str
        Codes to apply (default: all of :data:`ALL_CHECKS`). D09 always uses
        the D07 rule, applied or not.
    ts_depth_tolerance_m : float
        Largest difference (m) between the depth centres of a soil-moisture
        sensor and the soil-temperature sensor that stands for it.
    d10_outside_runs : bool
        D10 also tests flagit's group-0 pseudo-plateau (see :func:`flag_D10`).
    batch_elements : int
        Series are checked in batches of about this many grid hours (memory:
        about 40 float64 arrays of this size at once).
    bad_flags : iterable of str, optional
        The codes that make a reading bad (``qc_good`` False); default every
        applied check. The others are still computed and reported.
    gridded : {'always', 'fallback'}
        'always' (flagit, ISMN): D03 and D05 run wherever the gridded series
        exist, beside D01 and D04. 'fallback': the gridded series stand in
        for missing in-situ ones only: D03 at the hours without an in-situ
        soil temperature for the sensor (where D01 cannot run), D05 at the
        hours whose 24 h in-situ precipitation window holds no value (where
        D04 cannot run). The pipeline uses 'fallback' (a model's frozen soil
        or rain never overrules the station's own thermometer or gauge).
    gridded_precipitation : {'hourly', 'daily'}
        Time resolution of ``grid_precipitation``. 'hourly' (flagit): D05
        sums the last 24 gridded values. 'daily': the values are shares of
        daily totals (UTC days) and the hour it rained is unknown, so D05
        sums the day of the reading and the day before (the least whole days
        that hold the 24 h before it): D05 at daily resolution, which never
        calls a rise "without rain" when rain fell within 24 h.

    Returns
    -------
    pandas.DataFrame
        The rows checked (for a long table: its ``sm`` rows; for a wide frame:
        all rows), index and columns kept, plus the ancillary columns used
        (see :func:`build_qc_frame`), one boolean column per applied check
        named by its code (True = flagged), ``qc_flags`` (the codes raised, in
        :data:`ALL_CHECKS` order, comma-joined, e.g. ``'C01,D06'``; ``''`` when
        none; categorical) and ``qc_good`` (a reading present and none of
        ``bad_flags`` raised).
        A row without a soil-moisture reading carries no flag.
    """
    wanted = set(checks)
    bad = set(ALL_CHECKS) if bad_flags is None else set(bad_flags)
    unknown = sorted((wanted | bad) - set(ALL_CHECKS))
    if unknown:
        raise ValueError(f"unknown QC checks {unknown}; choose from {ALL_CHECKS}")
    if gridded not in get_args(GriddedUse):
        raise ValueError(f"gridded must be one of {get_args(GriddedUse)}, got {gridded!r}")
    if gridded_precipitation not in ("hourly", "daily"):
        raise ValueError(f"gridded_precipitation must be 'hourly' or 'daily', got {gridded_precipitation!r}")
    codes = tuple(c for c in ALL_CHECKS if c in wanted)
    prep = prepare(obs, ancillary, ts_depth_tolerance_m)
    n_rows = len(prep.out)
    flags = {code: np.zeros(n_rows, dtype=bool) for code in codes}
    used = {column: np.full(n_rows, np.nan) for column in ANCILLARY_VALUES if column in prep.sources}
    if n_rows:
        sat = _saturation_per_series(prep, saturation)
        depth = prep.series["depth_from_m"].to_numpy(dtype=np.float64) if "depth_from_m" in prep.series.columns else None
        order = np.argsort(prep.row_series, kind="stable")
        row_bounds = np.searchsorted(prep.row_series[order], np.arange(len(prep.series) + 1))
        for batch in _batches(prep.last - prep.first + 1, batch_elements):
            rows = order[row_bounds[batch[0]] : row_bounds[batch[-1] + 1]]
            depth_b = np.full(batch.size, np.nan) if depth is None else depth[batch]
            found, values = _check_batch(
                prep, batch, rows, codes, sat[batch], depth_b, d10_outside_runs, gridded == "fallback", gridded_precipitation == "daily"
            )
            for code, value in found.items():
                flags[code][rows] = value
            for column, value in values.items():
                used[column][rows] = value
    out = frame_of(prep, used)
    present = np.isfinite(prep.sm)  # a row without a reading carries no flag (and is not good)
    for code in codes:
        flags[code] &= present
        out[code] = flags[code]
    out["qc_flags"] = _join_codes(flags, codes, n_rows)
    good = present.copy()
    for code, value in flags.items():
        if code in bad:
            good &= ~value
    out["qc_good"] = good
    return out


def _check_batch(
    prep: Prepared,
    batch: np.ndarray,
    rows: np.ndarray,
    codes: tuple[str, ...],
    sat: np.ndarray,
    depth: np.ndarray,
    d10_outside_runs: bool,
    fallback: bool = False,
    daily_rain: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(flags, ancillary values) of the rows ``rows`` (all rows of the series ``batch``), from one hourly grid of those series.

    ``fallback``: the gridded series count only where the in-situ one is missing (see :func:`apply_qc`, ``gridded``);
    ``daily_rain``: the gridded precipitation has daily resolution (``gridded_precipitation='daily'``).
    """
    first = prep.first[batch]
    layout = Layout.from_lengths(prep.last[batch] - first + 1)
    local = np.empty(len(prep.series), dtype=np.int64)
    local[batch] = np.arange(batch.size)
    row_local = local[prep.row_series[rows]]
    row_hour = prep.row_hour[rows]
    pos = layout.starts[row_local] + row_hour - first[row_local]
    raw = prep.sm[rows]
    x = np.full(layout.size, np.nan)
    x[pos] = raw * _PERCENT_PER_M3M3

    # the ancillary columns at every hour of the grid (also at hours without a soil-moisture reading)
    grids: dict[str, np.ndarray] = {}
    if prep.sources:
        inside = np.flatnonzero(layout.inside())
        seg = layout.series_of(inside)
        inside_series, inside_hour = batch[seg], first[seg] + inside - layout.starts[seg]
        present = [column for column in ANCILLARY_VALUES if column in prep.sources]
        for column, found in prep.values_many(present, inside_series, inside_hour).items():
            grids[column] = np.full(layout.size, np.nan)
            grids[column][inside] = found
    if fallback and "grid_soil_temperature" in grids and "soil_temperature" in grids:
        # D03 only where D01 has no in-situ soil temperature
        grids["grid_soil_temperature"] = np.where(np.isnan(grids["soil_temperature"]), grids["grid_soil_temperature"], np.nan)
    values = {column: g[pos] for column, g in grids.items()}

    def at_rows(flat: np.ndarray) -> np.ndarray:
        return np.asarray(flat[pos], dtype=bool)

    found: dict[str, np.ndarray] = {}
    # the range checks compare the readings as given, in m3/m3 (0.427 is not above a saturation of 0.427)
    if "C01" in codes:
        found["C01"] = raw < SM_MIN_M3M3
    if "C02" in codes:
        found["C02"] = raw > SM_MAX_M3M3
    if "C03" in codes:
        s = sat[row_local]
        found["C03"] = (raw > s) & (s > 0)
    for code, column in (("D01", "soil_temperature"), ("D02", "air_temperature"), ("D03", "grid_soil_temperature")):
        if code in codes:
            found[code] = values[column] < FREEZING_C if column in values else np.zeros(rows.size, bool)
    threshold = layout.per_element(_rain_thresholds(depth))
    if "D04" in codes:
        p = grids.get("precipitation")
        found["D04"] = np.zeros(rows.size, bool) if p is None else at_rows(_rise_without_rain(x, _rain_in_situ(p), threshold))
    if "D05" in codes:
        p = grids.get("grid_precipitation")
        if p is None:
            found["D05"] = np.zeros(rows.size, bool)
        else:
            rain = _rain_days(p, layout, first) if daily_rain else _rain_gridded(p, layout)
            if fallback and "precipitation" in grids:  # D05 only where D04 has no in-situ precipitation in its 24 h window
                rain = np.where(np.isnan(_rain_in_situ(grids["precipitation"])), rain, np.nan)
            found["D05"] = at_rows(_rise_without_rain(x, rain, threshold))
    if {"D06", "D07", "D08", "D09", "D10"} & set(codes):
        d1, d2 = qb.derivatives(x, layout)
        if "D06" in codes:
            found["D06"] = at_rows(qb.spikes(x, d2))
        if {"D07", "D08", "D09"} & set(codes):
            drops, jumps = qb.breaks(x, d1, d2)
            if "D07" in codes:
                found["D07"] = at_rows(drops)
            if "D08" in codes:
                found["D08"] = at_rows(jumps)
            if "D09" in codes:
                found["D09"] = at_rows(_low_plateaus(x, drops, layout))
        if "D10" in codes:
            found["D10"] = at_rows(_saturated_plateaus(x, d1, _highest(x, layout), layout, d10_outside_runs))
    return found, values


def _join_codes(flags: dict[str, np.ndarray], codes: tuple[str, ...], n_rows: int) -> pd.Categorical:
    """Comma-joined codes per row, as a categorical (one category per combination that occurs)."""
    bits = np.zeros(n_rows, dtype=np.int64)
    for i, code in enumerate(codes):
        bits |= flags[code].astype(np.int64) << i
    present = np.flatnonzero(np.bincount(bits, minlength=1))
    index = np.zeros(int(present[-1]) + 1 if present.size else 1, dtype=np.int64)
    index[present] = np.arange(present.size)
    labels = [",".join(code for i, code in enumerate(codes) if (int(b) >> i) & 1) for b in present]
    return pd.Categorical.from_codes(index[bits], categories=pd.Index(labels, dtype=object))
