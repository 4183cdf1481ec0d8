"""Kernels of the Dorigo et al. (2013) spike, break and plateau checks (D06-D10), vectorised over many series.

The public checks live in :mod:`smci_dask.insitu.qc`; this module holds the
array code they share with :func:`~smci_dask.insitu.qc.apply_qc`.

Layout
------
Every kernel works on one flat float64 array that holds any number of hourly
sensor series one after the other, each preceded and followed by
:data:`PAD` NaN values (:class:`Layout`). The checks are positional, as in
the reference implementation (the ``flagit`` package of TU Wien): "t - 1" is
the previous element of the series, a window of 25 is 25 elements. The pads
are longer than every window and shift of the checks, so no result ever
depends on a neighbouring series, and a series gives the same flags alone
or among thousands: the kernels are plain numpy / pandas operations over the
whole array (pandas rolling windows, ``scipy.signal.savgol_filter``), with no
loop over series or rows.

Soil moisture in the kernels is in percent vol. (% = 100 x m3/m3), the unit
in which the reference implementation states its thresholds; the callers
convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import savgol_filter

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: NaN values before, between and after the series of a flat array: more than the longest window (25) or shift (24).
PAD: Final = 32

# ------------------------------------------------------------------ thresholds (percent vol. units, as flagit states them)
#: D06: relative change x[t] / x[t-1] outside [0.85, 1.15] (Eq. 4).
SPIKE_RATIO_LOW: Final = 0.85
SPIKE_RATIO_HIGH: Final = 1.15
#: D06: second derivatives either side of the spike of similar size, 0.8 < |f''(t-1) / f''(t+1)| < 1.2 (Eq. 5).
SPIKE_CURVATURE_LOW: Final = 0.8
SPIKE_CURVATURE_HIGH: Final = 1.2
#: D06: relative variance (variance / mean, % vol.) of the 24 h around the spike, the spike left out, below 1 (Eq. 6).
SPIKE_REL_VAR_MAX: Final = 1.0
#: D06: window of Eq. 6 (h, centred).
SPIKE_WINDOW: Final = 25
#: D07/D08: relative change |dx / x| above 0.1 (Eq. 7) and absolute change above 1 % vol.
BREAK_REL_CHANGE: Final = 0.1
BREAK_ABS_CHANGE: Final = 1.0
#: D07/D08: |f'(t)| above 10 x the mean f' of the centred 25 h window (Eq. 8), at least 4 values in it.
BREAK_DERIV_FACTOR: Final = 10.0
BREAK_WINDOW: Final = 25
BREAK_WINDOW_MIN: Final = 4
#: D07/D08: f''(t-1) and f''(t) of equal size (opposite signs at a step), |f''(t-1) / f''(t)| = 1 to 0.1 (Eq. 9) ...
BREAK_CURVATURE_RATIO: Final = 1.0
#: ... and |f''(t) / f''(t+2)| above 10 (the series is calm again two hours later).
BREAK_CURVATURE_AFTER: Final = 10.0
#: D07: a drop of more than 5 % vol. to exactly 0 (flagit's addition to the paper).
DROP_TO_ZERO: Final = 5.0
#: D09: a low plateau lasts at least 13 h; relative variance (var / mean, % vol.) of the next 13 h below 0.001 (Eq. 14).
LOW_PLATEAU_HOURS: Final = 13
LOW_PLATEAU_REL_VAR: Final = 0.001
#: D10: variance of the next 12 h at most 0.05 (% vol.)^2 (Eq. 10) ...
PLATEAU_HOURS: Final = 12
PLATEAU_VAR_MAX: Final = 0.05
#: ... a rise f' >= 0.25 % vol./h within +-12 h of its start (Eq. 11), a fall f' < 0 within 24 h of its end (Eq. 12) ...
PLATEAU_RISE: Final = 0.25
PLATEAU_RISE_HALF_WINDOW: Final = 12
PLATEAU_FALL_WINDOW: Final = 24
#: ... and a mean above 95 % of the highest reading below 60 % vol. (Eq. 13).
PLATEAU_LEVEL: Final = 0.95
PLATEAU_HIGHEST_BELOW: Final = 60.0


# ------------------------------------------------------------------ layout
@dataclass(frozen=True)
class Layout:
    """Where the series lie in a flat array: series ``i`` is ``flat[starts[i]:stops[i]]``.

    ``starts[0] == PAD``, ``starts[i + 1] == stops[i] + PAD`` and the array has
    ``stops[-1] + PAD`` elements; everything outside the series is NaN.
    """

    starts: IntArray
    stops: IntArray

    @classmethod
    def from_lengths(cls, lengths: npt.ArrayLike) -> Layout:
        n = np.asarray(lengths, dtype=np.int64)
        if (n < 1).any():
            raise ValueError("every series needs at least one element")
        stops = np.cumsum(n + PAD)
        return cls(starts=stops - n, stops=stops)

    @property
    def size(self) -> int:
        return int(self.stops[-1]) + PAD if self.stops.size else PAD

    @property
    def n_series(self) -> int:
        return int(self.starts.size)

    def series_of(self, positions: IntArray) -> IntArray:
        """Series number of flat ``positions`` (which must lie inside series)."""
        return np.searchsorted(self.starts, positions, side="right").astype(np.int64) - 1

    def inside(self) -> BoolArray:
        """True on elements that belong to a series (a read-only array, computed once)."""
        return self._inside

    @cached_property
    def _inside(self) -> BoolArray:
        mark = np.zeros(self.size + 1, dtype=np.int8)
        mark[self.starts] = 1
        mark[self.stops] = -1
        out = np.cumsum(mark[:-1], dtype=np.int8) > 0
        out.flags.writeable = False
        return out

    def per_element(self, per_series: npt.ArrayLike, fill: float = np.nan) -> FloatArray:
        """Spread one value per series over its elements (``fill`` in the pads)."""
        values = np.asarray(per_series, dtype=np.float64)
        out = np.full(self.size, fill, dtype=np.float64)
        lengths = self.stops - self.starts
        out[self.inside()] = np.repeat(values, lengths)
        return out


def single(values: npt.ArrayLike) -> tuple[FloatArray, Layout]:
    """One series as a flat array with its pads."""
    v = np.asarray(values, dtype=np.float64).ravel()
    layout = Layout.from_lengths([max(v.size, 1)])
    flat = np.full(layout.size, np.nan)
    flat[PAD : PAD + v.size] = v
    return flat, layout


def compress(keep: BoolArray, layout: Layout) -> tuple[IntArray, IntArray, Layout]:
    """Drop the elements not kept (e.g. missing readings), series by series.

    Returns
    -------
    kept : ndarray of int
        Positions, in the input array, of the kept elements.
    new_positions : ndarray of int
        Their positions in the compressed flat array.
    new_layout : Layout
        Layout of the compressed array; a series that keeps nothing keeps one
        NaN element, so series numbers stay the same.
    """
    kept = np.flatnonzero(keep & layout.inside())
    series = layout.series_of(kept)
    counts = np.bincount(series, minlength=layout.n_series).astype(np.int64)
    new_layout = Layout.from_lengths(np.maximum(counts, 1))
    before = np.cumsum(counts) - counts  # kept elements of the earlier series
    rank = np.arange(kept.size, dtype=np.int64) - before[series]
    return kept, new_layout.starts[series] + rank, new_layout


def rolling(values: FloatArray, window: int, min_periods: int, center: bool = False) -> pd.core.window.Rolling:
    """pandas rolling window over a flat array (NaN-skipping, count-based ``min_periods``)."""
    return pd.Series(values, copy=False).rolling(window, min_periods=min_periods, center=center)


def shift(values: npt.NDArray, k: int, fill: float | bool = np.nan) -> npt.NDArray:
    """``out[t] = values[t - k]`` (pandas ``shift(k)``), ``fill`` where that lies outside the array."""
    out = np.full_like(values, fill)
    if k > 0:
        out[k:] = values[:-k]
    elif k < 0:
        out[:k] = values[-k:]
    else:
        out[:] = values
    return out


def ahead(values: FloatArray, k: int, layout: Layout) -> FloatArray:
    """``out[t] = values[t + k]`` within each series (pandas ``shift(-k)`` on the series alone): NaN where t + k is past its end.

    Rolling windows with ``min_periods=1`` still see series values from the
    first pad positions; blanking the pads first keeps them from being
    shifted back into the series.
    """
    v = np.where(layout.inside(), values, np.nan)
    return shift(v, -k)


def _divide(a: FloatArray, b: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b


# ------------------------------------------------------------------ derivatives
def derivatives(x: FloatArray, layout: Layout) -> tuple[FloatArray, FloatArray]:
    """First and second derivative (per hour) from a Savitzky-Golay filter (window 3, order 2).

    As the reference implementation: ``savgol_filter(x, 3, 2, deriv, mode='nearest')``
    over each series, so f'(t) = (x[t+1] - x[t-1]) / 2 and f''(t) = x[t+1] - 2 x[t] + x[t-1]
    (to rounding), the first and last element using themselves as their
    missing neighbour, and a missing reading making its neighbours' derivatives
    missing.
    """
    xs = x.copy()
    xs[layout.starts - 1] = x[layout.starts]
    xs[layout.stops] = x[layout.stops - 1]
    d1 = savgol_filter(xs, 3, 2, deriv=1, mode="nearest")
    d2 = savgol_filter(xs, 3, 2, deriv=2, mode="nearest")
    outside = ~layout.inside()
    d1[outside] = np.nan
    d2[outside] = np.nan
    return d1, d2


# ------------------------------------------------------------------ D06 spikes
def _peak(x: FloatArray) -> tuple[BoolArray, BoolArray]:
    """(one-hour peak or trough at t, two-hour peak or trough at t and t + 1 with equal values)."""
    xm1, x1, x2 = shift(x, 1), shift(x, -1), shift(x, -2)
    one = ((xm1 < x) & (x > x1)) | ((xm1 > x) & (x < x1))
    two = ((xm1 < x) & (x == x1) & (x1 > x2)) | ((xm1 > x) & (x == x1) & (x1 < x2))
    return one, two & ~one


def _relative_variance_without_centre(x: FloatArray, rows: IntArray, window: int) -> FloatArray:
    """Variance (ddof 1) / mean of the ``window - 1`` values around each of ``rows``, the centre left out.

    NaN where the window holds a missing value or leaves the array. Computed
    two-pass per window (mean first, then squared deviations), as the
    reference does, on the few candidate rows only.
    """
    half = window // 2
    out = np.full(rows.size, np.nan)
    ok = (rows - half >= 0) & (rows + half < x.size)
    r = rows[ok]
    if r.size == 0:
        return out
    offsets = np.r_[np.arange(-half, 0), np.arange(1, half + 1)]
    win = x[r[:, None] + offsets[None, :]]
    mean = win.mean(axis=1)
    var = ((win - mean[:, None]) ** 2).sum(axis=1) / (win.shape[1] - 1)
    out[ok] = _divide(np.abs(var), mean)
    return out


def spikes(x: FloatArray, d2: FloatArray) -> BoolArray:
    """D06 on a flat array (percent vol.): see :func:`smci_dask.insitu.qc.flag_D06`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.round(x / shift(x, 1), 3)  # Eq. 4: x[t] / x[t-1]
        curvature = np.round(np.abs(shift(d2, 1) / shift(d2, -1)), 3)  # Eq. 5: f''(t-1) / f''(t+1)
    one, two = _peak(x)
    peak_code = np.where(one, 1.0, np.where(two, 2.0, 0.0))
    peak_code[np.isnan(x) | np.isnan(shift(x, 1)) | np.isnan(shift(x, -1))] = 0.0  # fewer than 3 readings around t
    two_hour = shift(peak_code, 1) > 1  # t is the second hour of a two-hour peak
    changed = (ratio > SPIKE_RATIO_HIGH) | (ratio < SPIKE_RATIO_LOW) | two_hour
    candidate = changed & (curvature > SPIKE_CURVATURE_LOW) & (curvature < SPIKE_CURVATURE_HIGH) & (peak_code > 0)
    rows = np.flatnonzero(candidate)
    spike = np.zeros(x.size, dtype=bool)
    spike[rows] = _relative_variance_without_centre(x, rows, SPIKE_WINDOW) < SPIKE_REL_VAR_MAX  # Eq. 6
    return spike | (shift(spike, 1, False) & two_hour)


# ------------------------------------------------------------------ D07 / D08 breaks
def breaks(x: FloatArray, d1: FloatArray, d2: FloatArray) -> tuple[BoolArray, BoolArray]:
    """(D07 drops, D08 jumps) on a flat array (percent vol.): see :func:`smci_dask.insitu.qc.flag_D07`."""
    change = x - shift(x, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_change = np.abs(change / x)  # Eq. 7
        mean_slope = np.abs(rolling(d1, BREAK_WINDOW, BREAK_WINDOW_MIN, center=True).mean().to_numpy() * BREAK_DERIV_FACTOR)  # Eq. 8
        curvature = np.round(np.abs(shift(d2, 1) / d2), 1)  # Eq. 9
        after = np.abs(d2 / shift(d2, -2))
    slope = np.abs(d1)
    found = (
        (rel_change > BREAK_REL_CHANGE)
        & (np.abs(change) > BREAK_ABS_CHANGE)
        & (x != 0)
        & (slope > mean_slope)
        & ~np.isclose(slope, mean_slope)
        & np.isclose(curvature, BREAK_CURVATURE_RATIO, atol=1e-2)
        & (d2 != 0)
        & (after > BREAK_CURVATURE_AFTER)
    )
    to_zero = (np.abs(change) > DROP_TO_ZERO) & (x == 0)
    return (found & (d1 < 0)) | to_zero, found & (d1 > 0)


# ------------------------------------------------------------------ D09 low plateaus after a drop
def low_plateaus(x: FloatArray, drops: BoolArray, layout: Layout) -> BoolArray:
    """D09 on a compressed flat array (no missing readings inside series): see :func:`smci_dask.insitu.qc.flag_D09`."""
    n = LOW_PLATEAU_HOURS
    ahead = rolling(x, n, n)
    var = shift(np.round(ahead.var().to_numpy(), 4), -(n - 1))  # of x[t .. t+12]
    mean = shift(np.round(ahead.mean().to_numpy(), 4), -(n - 1))
    rel_var = _divide(var, mean)
    rel_var[np.isnan(rel_var) & (x == 0)] = 0.0  # a run of zeros after a drop to zero
    event = np.where(drops & (rel_var < LOW_PLATEAU_REL_VAR), 1, 0)
    with np.errstate(invalid="ignore"):
        ends = (np.diff(rel_var, prepend=np.nan) >= LOW_PLATEAU_REL_VAR) & (event == 0)
    event[ends] = -1
    event[~layout.inside()] = -1  # every series starts outside a plateau
    # state machine: on at +1, off at -1, unchanged at 0 -> on where the last non-zero event is +1
    idx = np.where(event != 0, np.arange(event.size), 0)
    np.maximum.accumulate(idx, out=idx)
    on = (event[idx] == 1).astype(np.float64)
    on[~layout.inside()] = np.nan
    # a plateau flags at least 13 h: t is flagged when it is on or was on within the 12 h before
    held = rolling(on, n, n).max().to_numpy()
    return held > 0


# ------------------------------------------------------------------ D10 saturated plateaus
def _runs(mask: BoolArray) -> tuple[IntArray, IntArray]:
    """(first, last) position of each run of True."""
    m = np.r_[False, mask, False].astype(np.int8)
    d = np.diff(m)
    return np.flatnonzero(d == 1).astype(np.int64), np.flatnonzero(d == -1).astype(np.int64) - 1


def _first_valid_in_runs(values: FloatArray, first: IntArray, last: IntArray, from_end: bool) -> FloatArray:
    """First (or last) non-NaN value of ``values`` within each run [first, last]."""
    n = values.size
    ok = ~np.isnan(values)
    if from_end:
        pos = np.where(ok, np.arange(n), -1)
        np.maximum.accumulate(pos, out=pos)
        p = pos[last]
        good = p >= first
    else:
        pos = np.where(ok, np.arange(n), n)
        pos = np.minimum.accumulate(pos[::-1])[::-1]
        p = pos[first]
        good = p <= last
    out = np.full(first.size, np.nan)
    out[good] = values[p[good]]
    return out


def _first_equal_in(values: FloatArray, targets: FloatArray, lo: IntArray, hi: IntArray) -> IntArray:
    """First position p in [lo, hi] with ``values[p] == target`` for each (target, lo, hi); -1 if none.

    The intervals are expanded into one array of positions (their total
    length is at most the candidate periods'), compared at once, and the
    first hit of each interval picked: no loop over the queries.
    """
    out = np.full(targets.size, -1, dtype=np.int64)
    lengths = np.maximum(hi - lo + 1, 0)
    total = int(lengths.sum())
    if total == 0:
        return out
    query = np.repeat(np.arange(targets.size), lengths)
    pos = np.repeat(lo, lengths) + np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    hit = values[pos] == targets[query]
    q, p = query[hit], pos[hit]
    if q.size:
        pick = np.r_[True, q[1:] != q[:-1]]  # q is sorted and p rises within each query
        out[q[pick]] = p[pick]
    return out


def _first_per_series(mask: BoolArray, layout: Layout, last: bool = False) -> IntArray:
    """First (or last) position of ``mask`` in each series; -1 where a series has none."""
    pos = np.flatnonzero(mask & layout.inside())
    out = np.full(layout.n_series, -1, dtype=np.int64)
    if pos.size:
        series = layout.series_of(pos)  # non-decreasing, as pos is sorted
        change = series[1:] != series[:-1]
        pick = np.flatnonzero(np.r_[change, True] if last else np.r_[True, change])
        out[series[pick]] = pos[pick]
    return out


def _outside_runs_candidate(
    low_var: BoolArray, rise_at: FloatArray, fall_at: FloatArray, d1: FloatArray, layout: Layout
) -> tuple[IntArray, IntArray]:
    """flagit's group 0: (start, stop) per series of the pseudo-plateau made of the readings outside every low-variance run."""
    inside = layout.inside()
    outside = inside & ~low_var
    first_rise = _first_per_series(outside & ~np.isnan(rise_at), layout)
    last_fall = _first_per_series(outside & ~np.isnan(fall_at), layout, last=True)
    ok = (first_rise >= 0) & (last_fall >= 0)
    rise = np.full(layout.n_series, np.nan)
    fall = np.full(layout.n_series, np.nan)
    rise[ok] = np.round(rise_at[first_rise[ok]], 3)
    fall[ok] = np.round(fall_at[last_fall[ok]], 3)
    ok &= (rise >= PLATEAU_RISE) & (fall < 0)
    # its "period": every reading with a reading outside the runs among itself and the 11 before
    period = inside & (rolling(outside.astype(np.float64), PLATEAU_HOURS, 1).max().to_numpy() > 0)
    series_of = np.full(d1.size, -1, dtype=np.int64)
    series_of[inside] = np.repeat(np.arange(layout.n_series), layout.stops - layout.starts)
    safe = np.maximum(series_of, 0)
    begin = _first_per_series(period, layout)
    end = _first_per_series(period, layout, last=True)
    at_rise = _first_per_series(period & (d1 == rise[safe]), layout)
    at_fall = _first_per_series(period & (d1 == fall[safe]), layout)
    start = np.where(at_rise >= 0, at_rise, begin)
    stop = np.where(at_fall >= 0, at_fall, end)
    ok &= (begin >= 0) & (stop >= start)
    return start[ok], stop[ok]


def saturated_plateaus(x: FloatArray, d1: FloatArray, highest: FloatArray, layout: Layout, outside_runs: bool = False) -> BoolArray:
    """D10 on a compressed flat array: see :func:`smci_dask.insitu.qc.flag_D10`.

    ``highest`` is the per-element threshold reference (the series' highest
    reading below 60 % vol., spread over its elements); ``outside_runs`` adds
    flagit's group-0 pseudo-plateau.
    """
    n = PLATEAU_HOURS
    low_var = shift(rolling(x, n, n).var().to_numpy(), -(n - 1)) <= PLATEAU_VAR_MAX  # Eq. 10, of x[t .. t+11]
    first, last = _runs(low_var)
    w = 2 * PLATEAU_RISE_HALF_WINDOW + 1
    # max f' in t-12 .. t+12 and min f' in t .. t+24; NaN for the last 12 (24) readings of a series, as in flagit
    rise_at = ahead(rolling(d1, w, 1).max().to_numpy(), PLATEAU_RISE_HALF_WINDOW, layout)
    fall_at = ahead(rolling(d1, PLATEAU_FALL_WINDOW + 1, 1).min().to_numpy(), PLATEAU_FALL_WINDOW, layout)
    rise = np.round(_first_valid_in_runs(rise_at, first, last, from_end=False), 3)
    fall = np.round(_first_valid_in_runs(fall_at, first, last, from_end=True), 3)
    keep = (rise >= PLATEAU_RISE) & (fall < 0)  # Eq. 11, 12
    first, last, rise, fall = first[keep], last[keep], rise[keep], fall[keep]
    # the low-variance period: the run and the 11 h its last window covers, within the series
    period_end = np.minimum(last + n - 1, layout.stops[layout.series_of(first)] - 1)
    # from the hour of the rise (if inside the period, else its start) to the hour of the fall (else its end); the
    # rounded extreme must equal an unrounded f' exactly, as in flagit (else the period's bound is taken)
    start = _first_equal_in(d1, rise, first, period_end)
    start = np.where(start >= 0, start, first)
    stop = _first_equal_in(d1, fall, first, period_end)
    stop = np.where(stop >= 0, stop, period_end)
    if outside_runs:
        start0, stop0 = _outside_runs_candidate(low_var, rise_at, fall_at, d1, layout)
        start, stop = np.r_[start, start0], np.r_[stop, stop0]
    ok = stop >= start
    start, stop = start[ok], stop[ok]
    if start.size == 0:
        return np.zeros(x.size, dtype=bool)
    bounds = np.empty(2 * start.size, dtype=np.int64)
    bounds[0::2], bounds[1::2] = start, stop + 1  # stop + 1 < x.size: the array ends in pads
    mean = np.add.reduceat(np.where(np.isnan(x), 0.0, x), bounds)[0::2] / (stop - start + 1)
    high = mean > PLATEAU_LEVEL * highest[start]  # Eq. 13
    mark = np.zeros(x.size + 1, dtype=np.int64)
    np.add.at(mark, start[high], 1)
    np.add.at(mark, stop[high] + 1, -1)
    return np.cumsum(mark[:-1]) > 0
