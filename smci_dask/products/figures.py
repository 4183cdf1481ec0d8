"""A map figure of the 1 km product: one day at three depths (the demo ends with it)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from smci_dask import conventions as cv  # noqa: E402
from smci_dask.io import Store  # noqa: E402
from smci_dask.products.smci1km import PRODUCT_1KM_RELPATH, open_product  # noqa: E402


def render_product_day(
    store: Store, day: Any, *, depths: Sequence[int] = (10, 50, 100), relpath: str = PRODUCT_1KM_RELPATH, title: str | None = None
) -> bytes:
    """PNG bytes: the product's soil moisture (m3/m3) on ``day`` at ``depths``, water (fill) left blank."""
    ds = open_product(store, relpath)
    day = pd.Timestamp(day).normalize()
    lat, lon = ds[cv.LAT].values, ds[cv.LON].values
    half = abs(float(lat[0] - lat[1])) / 2 if lat.size > 1 else 1 / 240
    extent = (float(lon[0]) - half, float(lon[-1]) + half, float(lat[-1]) - half, float(lat[0]) + half)
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 4.4), constrained_layout=True, squeeze=False)
    for ax, depth in zip(axes[0], depths, strict=True):
        field = np.asarray(ds[cv.SM].sel({cv.TIME: day, cv.DEPTH: depth}).values, dtype=np.float32)
        im = ax.imshow(np.ma.masked_invalid(field), extent=extent, cmap="YlGnBu", vmin=0.05, vmax=0.45)
        ax.set_title(f"{depth} cm ({depth - 10}-{depth} cm layer)")
        ax.set_xlabel("longitude (degrees east)")
        ax.set_ylabel("latitude (degrees north)")
        fig.colorbar(im, ax=ax, shrink=0.85, label="soil moisture (m3/m3)")
    fig.suptitle(title or f"{relpath}, {day:%Y-%m-%d}, run {ds.attrs.get('model_run', '?')}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def write_product_day_figure(
    store: Store, day: Any, target: str, *, depths: Sequence[int] = (10, 50, 100), relpath: str = PRODUCT_1KM_RELPATH
) -> str:
    """Write :func:`render_product_day` as PNG to ``target`` below ``store``; returns its URL."""
    store.write_bytes(target, render_product_day(store, day, depths=depths, relpath=relpath))
    return store.url_of(target)
