"""The evaluation's figures, each returned as PNG bytes (matplotlib, Agg: files only, no display).

Every axis carries its quantity and units; soil moisture is in m3/m3.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Final

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from smci_dask import conventions as cv  # noqa: E402

__all__ = [
    "distributions",
    "importance_bars",
    "metric_by_depth",
    "station_map",
    "station_mean_scatter",
    "time_series",
    "violins_by_zone",
]

SM_LABEL: Final = "soil moisture (m3/m3)"
#: Colours of the estimates (products after these cycle through the rest).
COLOURS: Final[dict[str, str]] = {"smci": "tab:blue", "era5land": "tab:gray"}
_CYCLE: Final = ("tab:orange", "tab:green", "tab:purple", "tab:brown")
LABELS: Final[dict[str, str]] = {"smci": "SMCI (ours)", "era5land": "ERA5-Land"}


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _colour(name: str, names: Sequence[str]) -> str:
    if name in COLOURS:
        return COLOURS[name]
    extra = [n for n in names if n not in COLOURS]
    return _CYCLE[extra.index(name) % len(_CYCLE)] if name in extra else "black"


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _grid(n: int, ncols: int = 5) -> tuple[plt.Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.3 * nrows), squeeze=False, layout="constrained")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def station_mean_scatter(pred: pd.DataFrame, estimates: Sequence[str], title: str) -> bytes:
    """Per-station (cell, depth) means: estimate vs matched in-situ observation, one panel per depth."""
    depths = sorted(int(d) for d in pred["depth_cm"].unique())
    fig, axes = _grid(len(depths))
    for ax, d in zip(axes, depths, strict=False):
        block = pred[pred["depth_cm"] == d]
        means = block.groupby("cell_id")[["obs_matched", *estimates]].mean()
        lo = float(np.nanmin(means.to_numpy())) if means.size else 0.0
        hi = float(np.nanmax(means.to_numpy())) if means.size else 0.5
        for est in estimates:
            ax.scatter(means["obs_matched"], means[est], s=12, alpha=0.8, color=_colour(est, estimates), label=_label(est))
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        ax.set_title(f"{d} cm ({len(means)} stations)", fontsize=9)
        ax.set_xlabel("in-situ (matched) mean, m3/m3", fontsize=8)
        ax.set_ylabel("estimated mean, m3/m3", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return _png(fig)


def distributions(pred: pd.DataFrame, estimates: Sequence[str], title: str) -> bytes:
    """Frequency distributions of the observations and the estimates, one panel per depth."""
    depths = sorted(int(d) for d in pred["depth_cm"].unique())
    fig, axes = _grid(len(depths))
    for ax, d in zip(axes, depths, strict=False):
        block = pred[pred["depth_cm"] == d]
        values = block[["obs_matched", *estimates]].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        bins = np.linspace(finite.min(), finite.max(), 40) if finite.size else 10
        ax.hist(block["obs_matched"].dropna(), bins=bins, density=True, color="black", histtype="step", lw=1.5, label="in-situ (matched)")
        for est in estimates:
            if block[est].notna().any():
                ax.hist(block[est].dropna(), bins=bins, density=True, histtype="step", color=_colour(est, estimates), label=_label(est))
        ax.set_title(f"{d} cm", fontsize=9)
        ax.set_xlabel(SM_LABEL, fontsize=8)
        ax.set_ylabel("density (1 / (m3/m3))", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return _png(fig)


def metric_by_depth(scores: pd.DataFrame, metrics: Sequence[str] = ("ubrmse", "r", "bias")) -> bytes:
    """Pooled metrics (matched reference) against depth: one line per estimate and experiment, with 95 % intervals where known."""
    sel = scores[(scores["group_by"] == "all") & (scores["reference"] == "matched") & (scores["depth"] >= 0)]
    estimates = list(dict.fromkeys(sel["estimate"]))
    experiments = list(dict.fromkeys(sel["experiment"]))
    units = {
        "ubrmse": "ubRMSE (m3/m3)",
        "rmse": "RMSE (m3/m3)",
        "bias": "bias (m3/m3)",
        "mae": "MAE (m3/m3)",
        "r": "R (-)",
        "r2": "R^2 (-)",
    }
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.0), squeeze=False)
    styles = {"year": "-", "station": "--"}
    for ax, m in zip(axes[0], metrics, strict=True):
        for exp in experiments:
            for est in estimates:
                part = sel[(sel["experiment"] == exp) & (sel["estimate"] == est)].sort_values("depth")
                if part.empty:
                    continue
                ax.plot(
                    part[m],
                    part["depth"],
                    styles.get(exp, ":"),
                    marker="o",
                    ms=3,
                    color=_colour(est, estimates),
                    label=f"{_label(est)}, {exp}",
                )
                if f"{m}_lo" in part and est == "smci":  # ours only: more bands would hide the lines
                    ax.fill_betweenx(part["depth"], part[f"{m}_lo"], part[f"{m}_hi"], color=_colour(est, estimates), alpha=0.12)
        ax.invert_yaxis()
        ax.set_xlabel(units.get(m, m))
        ax.set_ylabel("depth (cm)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        "Test scores against matched in-situ soil moisture by depth\n"
        "(solid: year-to-year, dashed: station-to-station; band: 95 % CI of ours)"
    )
    return _png(fig)


def station_map(stations: pd.DataFrame, metric: str, title: str, bbox: Sequence[float] | None = None) -> bytes:
    """Map of one per-station metric (averaged over depths) at the station cells."""
    per = stations.groupby("cell_id").agg(lat=("lat", "first"), lon=("lon", "first"), value=(metric, "mean"))
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(per["lon"], per["lat"], c=per["value"], s=30, cmap="viridis_r" if metric != "r" else "viridis", edgecolor="k", lw=0.3)
    units = {"ubrmse": "ubRMSE (m3/m3)", "bias": "bias (m3/m3)", "r": "R (-)"}
    fig.colorbar(sc, ax=ax, label=units.get(metric, metric) + ", mean over depths")
    if bbox is not None:
        ax.set_xlim(bbox[0], bbox[2])
        ax.set_ylim(bbox[1], bbox[3])
    ax.set_xlabel("longitude (degrees E)")
    ax.set_ylabel("latitude (degrees N)")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def violins_by_zone(stations: pd.DataFrame, metric: str, zones: Mapping[int, str] | None = None, title: str = "") -> bytes:
    """Per-station metric by climate zone (Koppen), one violin per zone and estimate."""
    zones = zones if zones is not None else cv.KOPPEN_CLASSES
    estimates = list(dict.fromkeys(stations["estimate"]))
    codes = sorted(int(z) for z in stations["climate_zone"].unique())
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(codes) * len(estimates)), 4))
    width = 0.8 / max(len(estimates), 1)
    for j, est in enumerate(estimates):
        data, pos = [], []
        for i, z in enumerate(codes):
            v = stations[(stations["estimate"] == est) & (stations["climate_zone"] == z)][metric].dropna().to_numpy()
            if v.size >= 2:
                data.append(v)
                pos.append(i + (j - (len(estimates) - 1) / 2) * width)
        if data:
            parts = ax.violinplot(data, positions=pos, widths=width * 0.9, showmedians=True)
            for body in parts["bodies"]:
                body.set_facecolor(_colour(est, estimates))
                body.set_alpha(0.5)
            for key in ("cmedians", "cmins", "cmaxes", "cbars"):
                if key in parts:
                    parts[key].set_color(_colour(est, estimates))
        ax.plot([], [], color=_colour(est, estimates), lw=6, alpha=0.5, label=_label(est))
    ax.set_xticks(range(len(codes)), [str(zones.get(z, z)) for z in codes])
    ax.set_xlabel("climate zone (Koppen)")
    ax.set_ylabel({"ubrmse": "per-station ubRMSE (m3/m3)", "r": "per-station R (-)"}.get(metric, metric))
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def time_series(pred: pd.DataFrame, estimates: Sequence[str], precipitation: pd.Series | None, title: str) -> bytes:
    """One station cell and depth: observations and estimates (m3/m3) over time, daily precipitation (mm/day) above."""
    fig, (ax_p, ax) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True, gridspec_kw={"height_ratios": [1, 3]})
    t = pd.DatetimeIndex(pred["time"])
    if precipitation is not None:
        ax_p.bar(precipitation.index, precipitation.to_numpy(), width=1.0, color="tab:cyan")
    ax_p.set_ylabel("precipitation\n(mm/day)", fontsize=8)
    ax.plot(t, pred["obs_matched"], color="black", lw=1.2, label="in-situ (matched)")
    if "obs_raw" in pred:
        ax.plot(t, pred["obs_raw"], color="black", lw=0.6, ls=":", label="in-situ (raw)")
    for est in estimates:
        ax.plot(t, pred[est], color=_colour(est, estimates), lw=0.9, label=_label(est))
    ax.set_ylabel(SM_LABEL)
    ax.set_xlabel("date")
    ax.legend(fontsize=7, ncol=3)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def importance_bars(perm: pd.DataFrame, kind: str = "family", title: str = "") -> bytes:
    """Permutation importance (RMSE increase, m3/m3) by depth: one bar group per feature family (or feature)."""
    sel = perm[perm["kind"] == kind]
    names = list(sel.groupby("name")["importance"].mean().sort_values(ascending=False).index)
    if kind == "feature":
        names = names[:12]
    depths = sorted(int(d) for d in sel["depth"].unique())
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) + 2), 4))
    width = 0.8 / max(len(depths), 1)
    cmap = plt.get_cmap("viridis", max(len(depths), 2))
    for j, d in enumerate(depths):
        part = sel[sel["depth"] == d].set_index("name").reindex(names)
        x = np.arange(len(names)) + (j - (len(depths) - 1) / 2) * width
        ax.bar(x, part["importance"], width=width, yerr=part["std"], color=cmap(j), label=f"{d} cm", capsize=1.5, error_kw={"lw": 0.6})
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("test RMSE increase when permuted (m3/m3)")
    ax.legend(fontsize=7, ncol=2, title="depth")
    ax.set_title(title, fontsize=10)
    return _png(fig)
