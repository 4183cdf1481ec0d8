"""Per-station quality-control report: readings flagged per check and share kept, per sensor depth; table and figure.

:func:`qc_report` counts, for every soil-moisture sensor series (station,
depth range, sensor), the readings, the readings raised by each QC code and
the readings kept (``qc_good``); :func:`plot_qc_report` draws the shares per
code and product layer as a heat map beside the share kept per layer.
``smci ingest stations`` writes both below the store (``insitu/qc_report.csv``,
``insitu/qc_report.png``).

The flags are read from the hourly table's ``qc_flags`` column (codes joined
by commas, as :func:`~smci_dask.insitu.qc.apply_qc` writes them): any QC that
writes its codes that way is reported, unknown codes after the ISMN ones.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from smci_dask import conventions as cv
from smci_dask.insitu.qc import ALL_CHECKS
from smci_dask.insitu.readers import SERIES_KEYS, LayerRule, assign_layer

__all__ = ["QC_REPORT_COLUMNS", "plot_qc_report", "qc_report"]

#: Leading columns of the report (the series keys present come first, then these, then one count per code).
QC_REPORT_COLUMNS: Final = ("depth_cm", "n_readings", "n_kept", "share_kept")
_FLAGS: Final = "qc_flags"
_GOOD: Final = "qc_good"


def _codes_of(flags: pd.Series) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(code per row into the distinct texts, the codes seen in ISMN order then sorted, indicator distinct x codes)."""
    idx, uniques = pd.factorize(flags.astype(object).fillna("").to_numpy(), use_na_sentinel=False)
    sets = [{c for c in str(u).split(",") if c} for u in uniques]
    seen = set().union(*sets) if sets else set()
    codes = [c for c in ALL_CHECKS if c in seen] + sorted(seen - set(ALL_CHECKS))
    indicator = np.array([[c in s for c in codes] for s in sets], dtype=np.int64).reshape(len(sets), len(codes))
    return idx.astype(np.int64), codes, indicator


def qc_report(
    hourly: pd.DataFrame,
    *,
    layer_rule: LayerRule = "nearest_centre",
    max_distance_cm: float = 10.0,
    max_width_cm: float = 15.0,
    all_codes: bool = True,
) -> pd.DataFrame:
    """Counts per QC code and share of readings kept, per soil-moisture sensor series.

    Parameters
    ----------
    hourly : pandas.DataFrame
        Long hourly observations (readers' columns: ``station_id``,
        ``variable``, ``value``, ``depth_from_m``, ``depth_to_m``, ``sensor``
        ...), after quality control when it ran: ``qc_flags`` (codes joined
        by commas) and ``qc_good`` (bool). Only ``variable == 'sm'`` rows count.
    layer_rule, max_distance_cm, max_width_cm
        Product layer of each sensor (:func:`~smci_dask.insitu.readers.assign_layer`).
    all_codes : bool
        One column per ISMN code (:data:`~smci_dask.insitu.qc.ALL_CHECKS`)
        even when none was raised (when ``qc_flags`` exists).

    Returns
    -------
    pandas.DataFrame
        One row per sensor series, sorted by its keys: the series keys present
        (``station_id``, ``depth_from_m``, ``depth_to_m``, ``sensor``), then
        ``network`` when present, ``depth_cm`` (product layer, -1: none),
        ``n_readings`` (finite soil-moisture readings), ``n_kept`` (of them,
        those QC kept; all without QC), ``share_kept`` (n_kept / n_readings,
        NaN without readings), then one count of readings per QC code raised
        (a reading raised by two codes counts under both).
    """
    sm = hourly.loc[(hourly["variable"] == cv.SM).to_numpy()] if "variable" in hourly.columns else hourly
    keys = [k for k in SERIES_KEYS if k in sm.columns and k != "variable"]
    value = sm["value"].to_numpy(dtype=np.float64)
    finite = np.isfinite(value)
    kept = finite.copy()
    if _GOOD in sm.columns:
        kept &= sm[_GOOD].astype("boolean").fillna(False).to_numpy(dtype=bool)
    grouped = sm.groupby(keys, sort=True, observed=True, dropna=False)
    group = grouped.ngroup().to_numpy(dtype=np.int64)
    n_groups = int(grouped.ngroups)
    out = grouped.size().reset_index()[keys]
    if "network" in sm.columns:
        first = np.full(n_groups, -1, dtype=np.int64)
        first[group[::-1]] = np.arange(len(sm))[::-1]  # a row of each group
        out["network"] = sm["network"].astype(object).to_numpy()[first]
    out["depth_cm"] = assign_layer(
        out["depth_from_m"].to_numpy(dtype=np.float64) if "depth_from_m" in out else np.full(n_groups, np.nan),
        out["depth_to_m"].to_numpy(dtype=np.float64) if "depth_to_m" in out else np.full(n_groups, np.nan),
        rule=layer_rule,
        max_distance_cm=max_distance_cm,
        max_width_cm=max_width_cm,
    ).astype(np.int16)
    out["n_readings"] = np.bincount(group, weights=finite, minlength=n_groups).astype(np.int64)
    out["n_kept"] = np.bincount(group, weights=kept, minlength=n_groups).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["share_kept"] = np.where(out["n_readings"] > 0, out["n_kept"] / out["n_readings"], np.nan)
    if _FLAGS in sm.columns:
        idx, codes, indicator = _codes_of(sm[_FLAGS])
        counts = {}
        for j, code in enumerate(codes):
            raised = indicator[idx, j].astype(bool) & finite
            counts[code] = np.bincount(group, weights=raised, minlength=n_groups).astype(np.int64)
        names = [c for c in ALL_CHECKS if all_codes or c in counts] + [c for c in codes if c not in ALL_CHECKS]
        for code in names:
            out[code] = counts.get(code, np.zeros(n_groups, dtype=np.int64))
    return out.reset_index(drop=True)


def _by_layer(report: pd.DataFrame, codes: Sequence[str]) -> pd.DataFrame:
    """Sums per product layer (label 'none' for sensors without one)."""
    label = report["depth_cm"].astype(int).map(lambda d: f"{d} cm" if d > 0 else "none")
    order = [f"{d} cm" for d in cv.DEPTHS_CM if f"{d} cm" in set(label)] + (["none"] if (label == "none").any() else [])
    sums = report[["n_readings", "n_kept", *codes]].groupby(label.to_numpy()).sum()
    return sums.reindex(order)


def plot_qc_report(report: pd.DataFrame, *, title: str = "Quality control") -> bytes:
    """The report as a PNG: share of readings raised per code and product layer (heat map) and share kept per layer (bars).

    Parameters
    ----------
    report : pandas.DataFrame
        From :func:`qc_report` (possibly of many stations).
    title : str
        Figure title.

    Returns
    -------
    bytes
        A PNG image.
    """
    # the object-oriented API (no pyplot state): safe in threads and without a display
    from matplotlib.figure import Figure

    codes = [c for c in report.columns if c not in QC_REPORT_COLUMNS and c not in SERIES_KEYS and c != "network"]
    layers = _by_layer(report, codes)
    readings = layers["n_readings"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = layers[codes].to_numpy(dtype=np.float64) / readings[:, None] * 100.0 if codes else np.zeros((len(layers), 0))
        kept = layers["n_kept"].to_numpy(dtype=np.float64) / readings * 100.0
    fig = Figure(figsize=(3.0 + 0.4 * max(len(codes), 1) + 2.5, 1.6 + 0.3 * max(len(layers), 1)))
    heat_ax, bar_ax = fig.subplots(1, 2, width_ratios=[max(len(codes), 1), 4], sharey=True)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.22, top=0.82, wspace=0.08)
    y = np.arange(len(layers))
    if codes:
        image = heat_ax.imshow(np.nan_to_num(share), aspect="auto", cmap="viridis", vmin=0.0)
        heat_ax.set_xticks(np.arange(len(codes)), codes, rotation=90)
        fig.colorbar(image, ax=heat_ax, label="readings raised, %", location="top", shrink=0.8)
    else:
        heat_ax.text(0.5, 0.5, "no QC flags", ha="center", va="center", transform=heat_ax.transAxes)
        heat_ax.set_xticks([])
    heat_ax.set_yticks(y, list(layers.index))
    heat_ax.set_ylabel("product layer")
    bar_ax.barh(y, np.nan_to_num(kept), color="tab:green")
    bar_ax.set_xlim(0, 100)
    bar_ax.set_xlabel("readings kept, %")
    if len(layers):
        heat_ax.set_ylim(len(layers) - 0.5, -0.5)
    n_stations = int(report["station_id"].nunique()) if "station_id" in report else 0
    fig.suptitle(f"{title}: {n_stations} stations, {len(report)} sensors", fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
