"""Scores of every estimate against the observations: pooled, per station, per group, with bootstrap intervals.

The input is a *predictions* table, one row per test (cell, depth, day) of an
experiment (:data:`PREDICTION_COLUMNS`): the observations ``obs_matched``
(ERA5-matched in-situ, the paper's "adjusted in-situ SM") and ``obs_raw``
(the daily in-situ series), and one column per estimate (``smci``,
``era5land``, each extra product), all m3/m3.

For each (estimate, reference, depth) :func:`score_predictions` gives

* pooled metrics over every row where both are finite (the paper's Fig. 3);
* the median of per-station values (a station = one (cell, depth) series with
  at least :data:`MIN_STATION_DAYS` days; the paper's Fig. 5);
* a bootstrap 95 % interval of the pooled metrics, resampling station cells
  with replacement (all depths of a cell go together);

per depth and over all depths (``depth`` = -1), overall and per climate zone
and per year (``group_by`` ``all`` / ``climate_zone`` / ``year``). Against the
raw in-situ series only ubRMSE and R are scored: the raw series keeps the
station's own mean and scale, which the estimates do not try to match.
Every metric comes from :mod:`smci_dask.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from smci_dask.evaluation.metrics import METRICS

__all__ = [
    "ALL_DEPTHS",
    "MIN_STATION_DAYS",
    "PREDICTION_COLUMNS",
    "REFERENCES",
    "bootstrap_intervals",
    "padded",
    "per_station",
    "score_predictions",
]

#: Identifying columns of a predictions table (then ``obs_matched``, ``obs_raw`` and the estimates).
PREDICTION_COLUMNS: Final = ("experiment", "cell_id", "row", "col", "lat", "lon", "depth_cm", "time", "year", "climate_zone")
#: Observation columns and the metrics scored against each.
REFERENCES: Final[dict[str, tuple[str, ...]]] = {
    "matched": ("ubrmse", "rmse", "mae", "bias", "r", "r2"),
    "raw": ("ubrmse", "r"),
}
OBS_COLUMN: Final = {"matched": "obs_matched", "raw": "obs_raw"}
#: ``depth`` of the scores pooled over every depth.
ALL_DEPTHS: Final = -1
#: Fewest days for a station's own metrics.
MIN_STATION_DAYS: Final = 30
#: Metrics given a bootstrap interval.
CI_METRICS: Final = ("ubrmse", "rmse", "bias", "r")


def padded(values: npt.NDArray[np.float64], codes: npt.NDArray[np.int64], n_groups: int) -> npt.NDArray[np.float64]:
    """Rows of each group side by side: shape ``(n_groups, longest group)``, NaN-padded (metrics skip NaN)."""
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    counts = np.bincount(codes, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(codes.size) - starts[sorted_codes]
    out = np.full((n_groups, int(counts.max()) if counts.size and codes.size else 0), np.nan)
    out[sorted_codes, pos] = values[order]
    return out


def per_station(
    est: npt.NDArray[np.float64], obs: npt.NDArray[np.float64], station: npt.NDArray[np.int64], metrics: Sequence[str]
) -> pd.DataFrame:
    """Each station's metrics (``station`` codes 0..k-1) and its valid days ``n``; NaN metrics below :data:`MIN_STATION_DAYS`."""
    k = int(station.max()) + 1 if station.size else 0
    ok = np.isfinite(est) & np.isfinite(obs)
    e = padded(np.where(ok, est, np.nan), station, k)
    o = padded(np.where(ok, obs, np.nan), station, k)
    n = np.bincount(station[ok], minlength=k)
    out = pd.DataFrame({"n": n})
    enough = n >= MIN_STATION_DAYS
    for name in metrics:
        vals = np.asarray(METRICS[name](e, o, axis=1), dtype=np.float64) if k else np.zeros(0)
        out[name] = np.where(enough, vals, np.nan)
    return out


#: Metrics the bootstrap computes from per-cell sums (:func:`_pooled_from_sums`); others resample the rows themselves.
SUM_METRICS: Final = ("ubrmse", "rmse", "bias", "r", "r2")


def _cell_sums(e: npt.NDArray[np.float64], o: npt.NDArray[np.float64], code: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.float64]:
    """Per cell: n, sum e, sum o, sum e^2, sum o^2, sum e*o, sum (e-o)^2 - shape ``(k, 7)``."""
    d = e - o
    columns = (np.ones_like(e), e, o, e * e, o * o, e * o, d * d)
    return np.stack([np.bincount(code, weights=c, minlength=k) for c in columns], axis=1)


def _pooled_from_sums(t: npt.NDArray[np.float64], metric: str) -> npt.NDArray[np.float64]:
    """A pooled metric from summed statistics ``t`` (rows of the 7 sums of :func:`_cell_sums`).

    The same quantities as :mod:`smci_dask.evaluation.metrics`: ubRMSE is the
    population sd of ``e - o``, R and R^2 are NaN for fewer than two pairs or
    a constant series.
    """
    n, se, so, see, soo, seo, sdd = t.T
    with np.errstate(divide="ignore", invalid="ignore"):
        me, mo = se / n, so / n
        if metric == "bias":
            out = me - mo
        elif metric == "rmse":
            out = np.sqrt(sdd / n)
        elif metric == "ubrmse":
            out = np.sqrt(np.maximum(sdd / n - (me - mo) ** 2, 0.0))
        else:
            vo = np.maximum(soo - n * mo * mo, 0.0)
            if metric == "r":
                ve = np.maximum(see - n * me * me, 0.0)
                out = np.clip((seo - n * me * mo) / np.sqrt(ve * vo), -1.0, 1.0)
                out = np.where((n < 2) | (ve <= 0) | (vo <= 0), np.nan, out)
            else:  # r2
                out = np.where((n < 2) | (vo <= 0), np.nan, 1.0 - sdd / vo)
    return np.where(n > 0, out, np.nan)


def bootstrap_intervals(
    est: npt.NDArray[np.float64],
    obs: npt.NDArray[np.float64],
    cells: npt.NDArray[np.int64],
    metrics: Sequence[str],
    *,
    draws: int,
    seed: int,
    batch: int = 16,
    rows: bool = False,
) -> dict[str, tuple[float, float]]:
    """2.5 and 97.5 percentiles of each pooled metric over ``draws`` resamplings of the cells (with replacement).

    A resampled pool is the cells drawn, each as often as drawn, so its
    pooled sums are the per-cell sums weighted by those counts: the metrics
    of :data:`SUM_METRICS` come from ``counts @ sums`` (one small matrix
    product per batch of draws, whatever the number of rows; the values are
    shifted by the observations' mean first, so the squares lose no precision).
    Other metrics (MAE), or all with ``rows=True`` (the slow way, kept for
    ``benchmarks/bench_scoring.py``), stack the drawn cells' rows.
    """
    if draws <= 0 or est.size == 0:
        return {m: (np.nan, np.nan) for m in metrics}
    ok = np.isfinite(est) & np.isfinite(obs)
    _, code = np.unique(cells, return_inverse=True)
    k = int(code.max()) + 1
    by_sums = [m for m in metrics if m in SUM_METRICS and not rows]
    by_rows = [m for m in metrics if m not in by_sums]
    sums = np.zeros((k, 7))
    if ok.any():
        shift = float(obs[ok].mean())  # one shift for both: differences unchanged, squares small
        sums = _cell_sums(est[ok] - shift, obs[ok] - shift, code[ok], k)
    e = padded(np.where(ok, est, np.nan), code, k) if by_rows else None
    o = padded(np.where(ok, obs, np.nan), code, k) if by_rows else None
    rng = np.random.default_rng(seed)
    samples: dict[str, list[npt.NDArray[np.float64]]] = {m: [] for m in metrics}
    for start in range(0, draws, batch):
        b = min(batch, draws - start)
        pick = rng.integers(0, k, size=(b, k))
        if by_sums:
            counts = np.bincount((np.arange(b)[:, None] * k + pick).ravel(), minlength=b * k).reshape(b, k).astype(np.float64)
            pooled = counts @ sums
            for m in by_sums:
                samples[m].append(_pooled_from_sums(pooled, m))
        if by_rows:
            eb = e[pick].reshape(b, -1)
            ob = o[pick].reshape(b, -1)
            for m in by_rows:
                samples[m].append(np.asarray(METRICS[m](eb, ob, axis=1), dtype=np.float64))
    out = {}
    for m in metrics:
        vals = np.concatenate(samples[m])
        vals = vals[np.isfinite(vals)]
        out[m] = (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if vals.size else (np.nan, np.nan)
    return out


def _score_block(block: pd.DataFrame, est_col: str, reference: str, *, bootstrap: int, seed: int, with_ci: bool) -> dict[str, float] | None:
    metrics = REFERENCES[reference]
    est = block[est_col].to_numpy(dtype=np.float64)
    obs = block[OBS_COLUMN[reference]].to_numpy(dtype=np.float64)
    ok = np.isfinite(est) & np.isfinite(obs)
    if not ok.any():
        return None
    est, obs = est[ok], obs[ok]
    cells = block["cell_id"].to_numpy(dtype=np.int64)[ok]
    depth = block["depth_cm"].to_numpy(dtype=np.int64)[ok]
    series = pd.MultiIndex.from_arrays([cells, depth])
    code = pd.factorize(series)[0].astype(np.int64)
    row: dict[str, float] = {"n": float(ok.sum()), "n_stations": float(np.unique(cells).size), "n_series": float(code.max() + 1)}
    for m in metrics:
        row[m] = float(METRICS[m](est, obs))
    st = per_station(est, obs, code, metrics)
    for m in metrics:
        vals = st[m].to_numpy()
        row[f"median_{m}"] = float(np.nanmedian(vals)) if np.isfinite(vals).any() else np.nan
    if with_ci:
        ci = bootstrap_intervals(est, obs, cells, [m for m in CI_METRICS if m in metrics], draws=bootstrap, seed=seed)
        for m, (lo, hi) in ci.items():
            row[f"{m}_lo"], row[f"{m}_hi"] = lo, hi
    return row


def score_predictions(
    predictions: pd.DataFrame,
    estimates: Sequence[str],
    *,
    bootstrap: int = 200,
    seed: int = 0,
    group_by: Sequence[str] = ("climate_zone", "year"),
) -> pd.DataFrame:
    """Every score of every estimate against both references (see the module docstring).

    Parameters
    ----------
    predictions : pandas.DataFrame
        :data:`PREDICTION_COLUMNS`, ``obs_matched``, ``obs_raw`` and the ``estimates`` columns (m3/m3).
    estimates : sequence of str
        Estimate columns (``smci``, ``era5land``, product names).
    bootstrap : int
        Draws for the 95 % intervals (of the ``group_by == 'all'`` scores; 0: none).
    seed : int
        Seed of the draws.
    group_by : sequence of str
        Columns to break the scores down by, besides ``all``.

    Returns
    -------
    pandas.DataFrame
        One row per (experiment, estimate, reference, depth, group_by, group):
        ``n`` (pairs), ``n_stations`` (cells), ``n_series`` (cell-depths),
        the pooled metrics, ``median_<metric>`` and, for ``group_by == 'all'``,
        ``<metric>_lo`` / ``<metric>_hi``; metrics in m3/m3 (R, R^2 dimensionless).
        ``depth`` is :data:`ALL_DEPTHS` for all depths pooled.
    """
    rows = []
    for experiment, exp_rows in predictions.groupby("experiment", sort=False):
        depth_blocks: list[tuple[int, pd.DataFrame]] = [(int(d), b) for d, b in exp_rows.groupby("depth_cm", sort=True)]
        depth_blocks.append((ALL_DEPTHS, exp_rows))
        for depth, block in depth_blocks:
            for est_col in estimates:
                if est_col not in block.columns or not np.isfinite(block[est_col].to_numpy(dtype=np.float64)).any():
                    continue
                for reference in REFERENCES:
                    key = {"experiment": experiment, "estimate": est_col, "reference": reference, "depth": depth}
                    row = _score_block(block, est_col, reference, bootstrap=bootstrap, seed=seed, with_ci=True)
                    if row is not None:
                        rows.append({**key, "group_by": "all", "group": "all", **row})
                    for col in group_by:
                        for value, part in block.groupby(col, sort=True):
                            row = _score_block(part, est_col, reference, bootstrap=0, seed=seed, with_ci=False)
                            if row is not None:
                                rows.append({**key, "group_by": col, "group": str(value), **row})
    out = pd.DataFrame(rows)
    if len(out):
        out["depth"] = out["depth"].astype(np.int64)
        for c in ("n", "n_stations", "n_series"):
            out[c] = out[c].astype(np.int64)
    return out


def station_scores(predictions: pd.DataFrame, estimates: Sequence[str], reference: str = "matched") -> pd.DataFrame:
    """Per-station (cell, depth) metrics of each estimate, with the station's lat/lon and climate zone (for maps and violins)."""
    frames = []
    metrics = REFERENCES[reference]
    for (experiment, depth), block in predictions.groupby(["experiment", "depth_cm"], sort=True):
        codes, cells = pd.factorize(block["cell_id"])
        info = block.groupby(codes).agg(lat=("lat", "first"), lon=("lon", "first"), climate_zone=("climate_zone", "first"))
        for est_col in estimates:
            if est_col not in block.columns:
                continue
            st = per_station(
                block[est_col].to_numpy(dtype=np.float64),
                block[OBS_COLUMN[reference]].to_numpy(dtype=np.float64),
                codes.astype(np.int64),
                metrics,
            )
            st["cell_id"] = np.asarray(cells)
            st = pd.concat([st, info.reset_index(drop=True)], axis=1)
            st.insert(0, "estimate", est_col)
            st.insert(0, "depth", int(depth))
            st.insert(0, "experiment", experiment)
            frames.append(st)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
