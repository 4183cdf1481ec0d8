"""Agreement metrics between an estimate and an observation, defined once.

Every function takes ``(estimate, observation)`` as array-likes of the same
(broadcastable) shape: numpy arrays (or anything ``numpy.asarray`` takes,
such as lists and pandas Series), dask arrays (the result stays lazy) or
xarray DataArrays (the result is a DataArray; reduce along ``dim``). Pairs
where either value is NaN are skipped. By default the reduction is over
every element; ``axis`` (numpy, dask) or ``dim`` (xarray) reduces along some
dimensions only, e.g. one value per station.

Definitions, with ``d = estimate - observation`` over the ``N`` valid pairs:

=========  ===========================================  =====================
name       formula                                      units
=========  ===========================================  =====================
bias       ``mean(d)``                                  those of the inputs
rmse       ``sqrt(mean(d**2))``                         those of the inputs
mae        ``mean(abs(d))``                             those of the inputs
ubrmse     ``sqrt(mean((d - mean(d))**2))``             those of the inputs
pearson_r  ``cov(e, o) / (std(e) std(o))``              dimensionless
r2         ``1 - SSE / SST``                            dimensionless
=========  ===========================================  =====================

``ubrmse**2 = rmse**2 - bias**2`` (population moments); ``SSE = sum(d**2)``,
``SST = sum((o - mean(o))**2)`` (the SMCI1.0 paper's printed R^2 formula has
a stray ``N``; this is the usual coefficient of determination, as
``sklearn.metrics.r2_score``). With no valid pair every metric is NaN; R is
NaN where either series is constant or ``N < 2``; R^2 is NaN where the
observation is constant or ``N < 2``. For soil moisture the inputs are in
m3/m3, so bias, RMSE, MAE and ubRMSE are in m3/m3.

Each sum is a two-pass (centred) one, so nearly constant series of values
near 0.3 m3/m3 do not lose their variance to cancellation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

import numpy as np
import xarray as xr

__all__ = ["METRICS", "METRIC_UNITS", "bias", "mae", "pearson_r", "r2", "rmse", "scores", "ubrmse"]

Axis = int | tuple[int, ...] | None
Dim = Hashable | Sequence[Hashable] | None


# ------------------------------------------------------------------ shared plumbing
def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")


def _like(ref: xr.DataArray, values: Any) -> xr.DataArray:
    """A plain array as a DataArray on the trailing dims of ``ref`` (numpy broadcasting by position)."""
    arr = values if _is_dask(values) else np.asarray(values, dtype=np.float64)
    if arr.ndim > ref.ndim:
        raise ValueError(f"metrics: an array of {arr.ndim} dims cannot pair with a DataArray of dims {ref.dims}")
    return xr.DataArray(arr, dims=ref.dims[ref.ndim - arr.ndim :])


def _prepare(estimate: Any, observation: Any, axis: Axis, dim: Dim) -> tuple[Any, Any, Any, Callable[..., Any]]:
    """Inputs as float arrays with invalid pairs zeroed, the valid mask, and the reducing sum."""
    xa = isinstance(estimate, xr.DataArray) or isinstance(observation, xr.DataArray)
    if xa:
        if axis is not None:
            raise TypeError("metrics: give `dim` (not `axis`) to reduce xarray inputs along some dimensions")
        ref = estimate if isinstance(estimate, xr.DataArray) else observation
        e, o = (x if isinstance(x, xr.DataArray) else _like(ref, x) for x in (estimate, observation))
        e, o = e.astype(np.float64), o.astype(np.float64)
        valid = e.notnull() & o.notnull()
        e, o = xr.where(valid, e, 0.0), xr.where(valid, o, 0.0)

        def total(x: Any, keep: bool = False) -> Any:
            return x.sum(dim=dim, skipna=False)  # named dims broadcast back without keepdims

        return e, o, valid, total
    if dim is not None:
        raise TypeError("metrics: `dim` needs xarray inputs; give `axis` for numpy or dask arrays")
    e = estimate if _is_dask(estimate) else np.asarray(estimate, dtype=np.float64)
    o = observation if _is_dask(observation) else np.asarray(observation, dtype=np.float64)
    e, o = e.astype(np.float64), o.astype(np.float64)
    if not _is_dask(e) and not _is_dask(o) and e.shape != o.shape:
        e, o = np.broadcast_arrays(e, o)
    valid = ~(np.isnan(e) | np.isnan(o))
    e, o = np.where(valid, e, 0.0), np.where(valid, o, 0.0)

    def total(x: Any, keep: bool = False) -> Any:
        return x.sum(axis=axis, keepdims=keep)

    return e, o, valid, total


def _where(cond: Any, x: Any, other: Any) -> Any:
    return xr.where(cond, x, other) if isinstance(cond, xr.DataArray) else np.where(cond, x, other)


def _ratio(num: Any, den: Any) -> Any:
    """``num / den``, NaN where ``den`` is 0 (no warnings)."""
    ok = den > 0
    return _where(ok, num / _where(ok, den, 1.0), np.nan)


def _finish(x: Any) -> Any:
    """numpy 0-d results as numpy float64 scalars; everything else as it is."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return np.float64(x)
    return x


def _count_mean(valid: Any, values: Any, total: Callable[..., Any]) -> tuple[Any, Any]:
    n = total(valid.astype(np.float64))
    return n, _ratio(total(values), n)


def _centred(valid: Any, x: Any, total: Callable[..., Any], n: Any) -> Any:
    """``x`` minus its mean over the valid pairs, zero elsewhere."""
    mean = _ratio(total(x, True), total(valid.astype(np.float64), True))
    return _where(valid, x - mean, 0.0)


# ------------------------------------------------------------------ the metrics
def bias(estimate: Any, observation: Any, *, axis: Axis = None, dim: Dim = None) -> Any:
    """Mean of ``estimate - observation`` over the pairs where neither is NaN.

    Parameters
    ----------
    estimate, observation : array_like, dask array or xarray.DataArray
        Same (broadcastable) shape and units (m3/m3 for soil moisture).
    axis : int or tuple of int, optional
        Axes to reduce (numpy, dask); default all.
    dim : str or sequence of str, optional
        Dimensions to reduce (xarray); default all.

    Returns
    -------
    float, numpy/dask array or xarray.DataArray
        In the units of the inputs (m3/m3); positive: the estimate is too wet.
    """
    e, o, valid, total = _prepare(estimate, observation, axis, dim)
    _, mean = _count_mean(valid, e - o, total)
    return _finish(mean)


def rmse(estimate: Any, observation: Any, *, axis: Axis = None, dim: Dim = None) -> Any:
    """Root-mean-square error ``sqrt(mean((estimate - observation)**2))`` over the valid pairs.

    Parameters and returns as :func:`bias`; units those of the inputs (m3/m3).
    """
    e, o, valid, total = _prepare(estimate, observation, axis, dim)
    d = e - o
    _, mse = _count_mean(valid, d * d, total)
    return _finish(np.sqrt(mse))


def mae(estimate: Any, observation: Any, *, axis: Axis = None, dim: Dim = None) -> Any:
    """Mean absolute error ``mean(abs(estimate - observation))`` over the valid pairs.

    Parameters and returns as :func:`bias`; units those of the inputs (m3/m3).
    """
    e, o, valid, total = _prepare(estimate, observation, axis, dim)
    _, m = _count_mean(valid, abs(e - o), total)
    return _finish(m)


def ubrmse(estimate: Any, observation: Any, *, axis: Axis = None, dim: Dim = None) -> Any:
    """Unbiased RMSE: the RMSE of the differences after removing their mean (``sqrt(rmse**2 - bias**2)``).

    The population standard deviation (``ddof=0``) of ``estimate - observation``
    over the valid pairs; insensitive to a constant offset between the series.
    Parameters and returns as :func:`bias`; units those of the inputs (m3/m3).
    """
    e, o, valid, total = _prepare(estimate, observation, axis, dim)
    d = e - o
    n = total(valid.astype(np.float64))
    dc = _centred(valid, d, total, n)
    return _finish(np.sqrt(_ratio(total(dc * dc), n)))


def _constant(valid: Any, x: Any, total: Callable[..., Any], axis: Axis, dim: Dim) -> Any:
    """True where the valid values of ``x`` are all equal (or there are none)."""
    hi = _where(valid, x, -np.inf)
    lo = _where(valid, x, np.inf)
    if isinstance(hi, xr.DataArray):
        return (hi.max(dim=dim) - lo.min(dim=dim)) <= 0
    if _is_dask(hi):
        return (hi.max(axis=axis) - lo.min(axis=axis)) <= 0
    return (hi.max(axis=axis, initial=-np.inf) - lo.min(axis=axis, initial=np.inf)) <= 0  # no pair: -inf - inf


def pearson_r(estimate: Any, observation: Any, *, axis: Axis = None, dim: Dim = None) -> Any:
    """Pearson correlation coefficient of the valid pairs.

    NaN where fewer than two pairs are valid or either series is constant
    (as ``scipy.stats.pearsonr``, which warns there). Parameters as
    :func:`bias`; the result is dimensionless, in [-1, 1].
    """
    e, o, valid, total = _prepare(estimate, observation, axis, dim)
    n = total(valid.astype(np.float64))
    ec = _centred(valid, e, total, n)
    oc = _centred(valid, o, total, n)
    see, soo = total(ec * ec), total(oc * oc)
    degenerate = _constant(valid, e, total, axis, dim) | _constant(valid, o, total, axis, dim) | (n < 2)
    r = _ratio(total(ec * oc), np.sqrt(see * soo))
    r = _where(degenerate, np.nan, np.clip(r, -1.0, 1.0))
    return _finish(r)


def r2(estimate: Any, observation: Any, *, axis: Axis = None, dim: Dim = None) -> Any:
    """Coefficient of determination ``1 - SSE/SST`` of the estimate for the observation.

    ``SSE = sum((estimate - observation)**2)``, ``SST = sum((observation -
    mean(observation))**2)`` over the valid pairs (as
    ``sklearn.metrics.r2_score``); at most 1, negative when the estimate is
    worse than the observation's own mean. NaN where the observation is
    constant or fewer than two pairs are valid. Parameters as :func:`bias`;
    dimensionless.
    """
    e, o, valid, total = _prepare(estimate, observation, axis, dim)
    n = total(valid.astype(np.float64))
    d = e - o
    oc = _centred(valid, o, total, n)
    sst = total(oc * oc)
    degenerate = _constant(valid, o, total, axis, dim) | (n < 2)
    out = 1.0 - _ratio(total(d * d), sst)
    return _finish(_where(degenerate, np.nan, out))


#: Every metric by its report name, in report order.
METRICS: Final[dict[str, Callable[..., Any]]] = {
    "ubrmse": ubrmse,
    "rmse": rmse,
    "mae": mae,
    "bias": bias,
    "r": pearson_r,
    "r2": r2,
}
#: Units of each metric for soil moisture inputs in m3/m3.
METRIC_UNITS: Final[dict[str, str]] = {"ubrmse": "m3/m3", "rmse": "m3/m3", "mae": "m3/m3", "bias": "m3/m3", "r": "1", "r2": "1"}


def scores(estimate: Any, observation: Any, *, names: Sequence[str] | None = None) -> dict[str, float]:
    """Every metric (or ``names`` of :data:`METRICS`) of two 1-D series, plus ``n`` (valid pairs), as plain floats.

    Computes dask inputs. Units as :data:`METRIC_UNITS`.
    """
    e = np.asarray(estimate.compute() if _is_dask(estimate) else estimate, dtype=np.float64).ravel()
    o = np.asarray(observation.compute() if _is_dask(observation) else observation, dtype=np.float64).ravel()
    if e.shape != o.shape:
        raise ValueError(f"scores: estimate has {e.size} values, observation {o.size}; give one estimate per observation")
    unknown = sorted(set(names or ()) - set(METRICS))
    if unknown:
        raise ValueError(f"scores: unknown metric(s) {unknown}; choose from {list(METRICS)}")
    out: dict[str, float] = {"n": float(np.count_nonzero(~(np.isnan(e) | np.isnan(o))))}
    for name in names or METRICS:
        out[name] = float(METRICS[name](e, o))
    return out
