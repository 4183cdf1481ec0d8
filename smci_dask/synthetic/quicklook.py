"""A one-page picture of a synthetic world: where the stations are and what the truth looks like.

``make_world`` writes it as ``quicklook.png``: elevation with the stations,
land cover, the true soil moisture on one summer day at 10, 50 and 100 cm, and
the true series at the busiest station cell for three depths beside the raw
readings of one of its sensors.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from smci_dask import conventions as cv  # noqa: E402
from smci_dask.grid import GridSpec  # noqa: E402


def render_quicklook(
    grid: GridSpec,
    statics: xr.Dataset,
    stations: pd.DataFrame,
    truth: xr.DataArray,
    obs: pd.DataFrame,
    *,
    title: str,
) -> bytes:
    """PNG bytes of the quick-look figure (see the module docstring)."""
    w, s, e, n = grid.bbox
    extent = (w, e, s, n)
    times = pd.DatetimeIndex(truth[cv.TIME].values)
    summer = [t for t in times if t.month == 7]
    day = summer[len(summer) // 2] if summer else times[len(times) // 2]

    fig, axes = plt.subplots(2, 3, figsize=(15, 9), constrained_layout=True)
    ax = axes[0, 0]
    im = ax.imshow(statics["elevation"].values, extent=extent, cmap="terrain")
    ax.scatter(stations["lon"], stations["lat"], s=14, c="k", marker="^", label=f"{len(stations)} stations")
    ax.set_title("elevation (m) and stations")
    ax.legend(loc="lower left", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8)

    ax = axes[0, 1]
    im = ax.imshow(statics["landcover"].values, extent=extent, cmap="tab20", interpolation="nearest")
    ax.set_title("land cover (IGBP class; 17 = water)")
    fig.colorbar(im, ax=ax, shrink=0.8)

    for ax, depth in zip((axes[0, 2], axes[1, 0], axes[1, 1]), (10, 50, 100), strict=True):
        field = truth.sel({cv.TIME: day, cv.DEPTH: depth}).values
        im = ax.imshow(field, extent=extent, cmap="YlGnBu", vmin=0.05, vmax=0.45)
        ax.set_title(f"true soil moisture {depth} cm, {day.date()} (m3/m3)")
        fig.colorbar(im, ax=ax, shrink=0.8)

    ax = axes[1, 2]
    busiest = stations.groupby(["row", "col"]).size().idxmax()
    series = truth.isel({cv.LAT: int(busiest[0]), cv.LON: int(busiest[1])})
    for depth in (10, 50, 100):
        ax.plot(times, series.sel({cv.DEPTH: depth}).values, label=f"truth {depth} cm")
    sid = stations[(stations["row"] == busiest[0]) & (stations["col"] == busiest[1])]["station"].iloc[0]
    raw = obs[(obs["station"] == sid) & (obs["depth_cm"] == 10)]
    if len(raw):
        daily = raw.set_index("time")["sm"].resample("D").mean()
        ax.plot(daily.index, daily.values, lw=0.6, color="grey", label=f"{sid} 10 cm sensor (daily mean)")
    ax.set_ylim(-0.05, 0.65)
    ax.set_title(f"cell row {busiest[0]}, col {busiest[1]}")
    ax.set_ylabel("m3/m3")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
