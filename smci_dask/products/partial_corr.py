"""Partial correlation, per cell, of soil moisture with precipitation, air temperature and radiation (SMCI1.0's Fig. 10).

For every cell, the soil moisture of one layer and three drivers from
ERA5-Land are aggregated to periods (``freq``: ``"YS"`` years as the paper,
or months ``"MS"``, or ``None`` for the days themselves): soil moisture,
air temperature (``t2m``) and radiation (``ssrd``) as period means,
precipitation (``tp``) as the period total. The partial correlation of soil
moisture with one driver given the other two is then, from the inverse
``P`` of the 4 x 4 correlation matrix of the four period series of the cell::

    r(sm, x | others) = -P[sm, x] / sqrt(P[sm, sm] * P[x, x])

(the correlation of the residuals of sm and x after regressing both on the
other two drivers: the same number). A cell gets NaN where a series has a
gap in a period, where soil moisture or that driver is constant over the
periods, or where the series are linearly dependent; a constant driver (a
dry spell of daily precipitation) is left out of the others' controls, as a
regression would absorb it into its intercept. Only whole periods count
(every day of the period in the data). It needs at least :data:`MIN_PERIODS` periods (two controls leave ``n - 4``
degrees of freedom); with the synthetic worlds' 2-3 years use months.

Our map is computed on the 1 km grid, each cell with the drivers of the
ERA5-Land cell that holds it (the coast rule of
:func:`~smci_dask.grid.landmask.nearest_valid_coarse` for cells whose own
coarse cell has no values); ERA5-Land's on its own 0.1 degree grid, with
the soil moisture of the depth's matching layer (``matching.layers``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.grid.landmask import nearest_valid_coarse
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store

__all__ = ["DRIVERS", "MIN_PERIODS", "partial_correlation", "partial_correlation_maps", "render_partial_correlation"]

#: ERA5-Land drivers: name -> (aggregation over a period, label).
DRIVERS: Final[dict[str, tuple[str, str]]] = {
    "tp": ("sum", "precipitation"),
    "t2m": ("mean", "air temperature"),
    "ssrd": ("mean", "solar radiation"),
}
#: Fewest periods for a partial correlation with two controls (one degree of freedom).
MIN_PERIODS: Final = 5


def partial_correlation(y: npt.ArrayLike, drivers: Mapping[str, npt.ArrayLike]) -> dict[str, npt.NDArray[np.float64]]:
    """Partial correlation of ``y`` with each driver given the others, along axis 0, for every cell at once.

    Parameters
    ----------
    y : array_like
        ``(n_periods, ...)``.
    drivers : mapping of str to array_like
        Each of the shape of ``y``.

    Returns
    -------
    dict of str to numpy.ndarray
        One array per driver, the shape of ``y`` without axis 0; NaN where
        a cell has a missing value, where ``y`` or that driver is constant, or
        where the series are dependent (a constant driver is left out of the
        other drivers' controls).
    """
    names = list(drivers)
    stack = np.stack([np.asarray(y, dtype=np.float64), *[np.asarray(drivers[k], dtype=np.float64) for k in names]], axis=-1)
    n = stack.shape[0]
    if n < MIN_PERIODS:
        raise InputError(f"partial correlation: {n} period(s); it needs at least {MIN_PERIODS} (use a shorter period, e.g. months)")
    cells = stack.reshape(n, -1, stack.shape[-1])  # (n, cells, k)
    ok = np.isfinite(cells).all(axis=(0, 2))  # no gap in any series of the cell
    z = np.where(ok[None, :, None], cells, 0.0)
    z = z - z.mean(axis=0)
    sd = np.sqrt((z**2).mean(axis=0))  # (cells, k)
    scale = np.maximum(np.abs(np.where(ok[None, :, None], cells, 0.0)).max(axis=0), 1.0)
    varies = sd > 1e-12 * scale  # (cells, k): False for a constant series
    z = np.where(varies[None], z / np.where(varies, sd, 1.0)[None], 0.0)
    corr = np.einsum("nci,ncj->cij", z, z) / n  # (cells, k, k)
    k = corr.shape[-1]
    # a constant driver carries nothing to control for: as if left out (1 on its diagonal, 0 elsewhere)
    corr[:, np.arange(k), np.arange(k)] = 1.0
    well = ok & varies[:, 0] & (np.abs(np.linalg.det(corr)) > 1e-10)
    inverse = np.linalg.inv(np.where(well[:, None, None], corr, np.eye(k)))
    out: dict[str, npt.NDArray[np.float64]] = {}
    for j, name in enumerate(names, start=1):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = -inverse[:, 0, j] / np.sqrt(inverse[:, 0, 0] * inverse[:, j, j])
        out[name] = np.where(well & varies[:, j], np.clip(r, -1.0, 1.0), np.nan).reshape(stack.shape[1:-1])
    return out


def _periods(days: pd.DatetimeIndex, freq: str | None) -> tuple[npt.NDArray[np.int64], pd.DatetimeIndex]:
    """Period number of every day (-1: not in a whole period) and the first day of each whole period."""
    if freq is None:
        return np.arange(len(days)), days
    if freq not in ("YS", "MS"):
        raise InputError(f"partial correlation: period {freq!r} is unknown; use 'YS' (years), 'MS' (months) or None (days)")
    months = days.month if freq == "MS" else np.ones(len(days), dtype=np.int64)
    first = pd.DatetimeIndex([pd.Timestamp(y, m, 1) for y, m in zip(days.year, months, strict=True)])
    length = np.where(first.is_leap_year, 366, 365) if freq == "YS" else first.days_in_month.to_numpy()
    label = np.full(len(days), -1, dtype=np.int64)
    whole: list[pd.Timestamp] = []
    for start in pd.DatetimeIndex(first.unique()).sort_values():
        members = np.flatnonzero(first == start)
        if len(members) == length[members[0]]:  # the days are unique and daily: the whole period is there
            label[members] = len(whole)
            whole.append(start)
    return label, pd.DatetimeIndex(whole)


def _aggregate(values: npt.NDArray[np.floating], label: npt.NDArray[np.int64], n: int, how: str) -> npt.NDArray[np.float64]:
    out = np.stack([np.asarray(values[label == p], dtype=np.float64).sum(axis=0) for p in range(n)]) if n else np.empty((0,))
    if how == "mean":
        counts = np.bincount(label[label >= 0], minlength=n).astype(np.float64)
        out = out / counts.reshape((-1,) + (1,) * (out.ndim - 1))
    return out


def partial_correlation_maps(
    store: Store,
    grid: GridSpec,
    *,
    depth_cm: int,
    layer: int,
    freq: str | None = "YS",
    start: Any = None,
    end: Any = None,
    product_relpath: str | None = None,
    era5_relpath: str | None = None,
) -> xr.Dataset:
    """Partial-correlation maps of our product and of ERA5-Land at one depth (see the module docstring).

    Parameters
    ----------
    store : Store
        Store root with ``product/smci_1km`` and ``covariates/era5land``.
    grid : GridSpec
        The region.
    depth_cm : int
        Product depth (10..100).
    layer : int
        ERA5-Land layer of that depth (``matching.layers``), for ERA5-Land's map.
    freq : str or None
        ``"YS"`` (years, the paper), ``"MS"`` (months) or ``None`` (days).
    start, end : date-like, optional
        Days to use (default: every complete day of the product).

    Returns
    -------
    xarray.Dataset
        ``smci_<driver>`` on ``(lat, lon)`` (1 km) and ``era5land_<driver>``
        on ``(era5_lat, era5_lon)`` (0.1 degree), dimensionless in [-1, 1];
        attributes ``periods`` (their number), ``freq``, ``first_day``, ``last_day``.

    Raises
    ------
    InputError
        Fewer than :data:`MIN_PERIODS` whole periods in the days both stores hold.
    """
    from smci_dask.covariates.era5land_store import open_era5land_daily
    from smci_dask.features.build import ERA5_RELPATH
    from smci_dask.products.smci1km import PRODUCT_1KM_RELPATH, open_product

    product = open_product(store, product_relpath or PRODUCT_1KM_RELPATH, complete_only=True)
    era5 = open_era5land_daily(store, era5_relpath or ERA5_RELPATH)
    days = pd.DatetimeIndex(product[cv.TIME].values).intersection(pd.DatetimeIndex(era5[cv.TIME].values))
    if start is not None or end is not None:
        days = days[(days >= pd.Timestamp(start or days.min())) & (days <= pd.Timestamp(end or days.max()))]
    label, periods = _periods(days, freq)
    if len(periods) < MIN_PERIODS:
        raise InputError(
            f"partial correlation: {len(periods)} whole period(s) of {freq or 'days'} in the {len(days)} day(s) both the product and "
            f"ERA5-Land hold ({days.min():%Y-%m-%d}..{days.max():%Y-%m-%d}); it needs at least {MIN_PERIODS}: use a shorter "
            "period (months) or more days"
            if len(days)
            else "partial correlation: the product and ERA5-Land share no complete day; run `smci predict` first"
        )
    keep = label >= 0
    used = days[keep]
    label = label[keep]
    swvl = f"swvl{int(layer)}"
    era = era5[[*DRIVERS, swvl]].sel({cv.TIME: used}).load()
    sm = np.asarray(product[cv.SM].sel({cv.TIME: used, cv.DEPTH: int(depth_cm)}).values, dtype=np.float64)
    coarse = {v: _aggregate(np.asarray(era[v].values), label, len(periods), DRIVERS[v][0]) for v in DRIVERS}
    ours_sm = _aggregate(sm, label, len(periods), "mean")
    era_sm = _aggregate(np.asarray(era[swvl].values), label, len(periods), "mean")
    # drivers at 1 km: the coarse cell holding each fine cell (the nearest with values where it has none)
    valid = np.all([np.isfinite(coarse[v]).all(axis=0) for v in DRIVERS], axis=0)
    near_r, near_c = nearest_valid_coarse(valid)
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    cr, cc = near_r[rows[:, None], cols[None, :]], near_c[rows[:, None], cols[None, :]]
    fine = {v: coarse[v][:, cr, cc] for v in DRIVERS}
    ours = partial_correlation(ours_sm, fine)
    theirs = partial_correlation(era_sm, coarse)
    attrs = {"long_name": "", "units": "1", "comment": "partial correlation of the period series given the other two drivers"}
    data: dict[str, Any] = {}
    for v, (how, label_text) in DRIVERS.items():
        text = f"partial correlation of {depth_cm} cm soil moisture with {label_text} ({how} per period)"
        data[f"smci_{v}"] = ((cv.LAT, cv.LON), ours[v], {**attrs, "long_name": text + ", our 1 km product"})
        data[f"era5land_{v}"] = (("era5_lat", "era5_lon"), theirs[v], {**attrs, "long_name": text + f", ERA5-Land layer {layer}"})
    return xr.Dataset(
        data,
        coords={
            cv.LAT: product[cv.LAT].values,
            cv.LON: product[cv.LON].values,
            "era5_lat": np.asarray(era[cv.LAT].values),
            "era5_lon": np.asarray(era[cv.LON].values),
        },
        attrs={
            "periods": len(periods),
            "freq": freq or "days",
            "first_day": f"{used.min():%Y-%m-%d}",
            "last_day": f"{used.max():%Y-%m-%d}",
            "depth_cm": int(depth_cm),
            "era5land_layer": int(layer),
        },
    )


def render_partial_correlation(maps: xr.Dataset, *, drivers: Sequence[str] = tuple(DRIVERS)) -> bytes:
    """PNG bytes: two rows (our product, ERA5-Land) x one map per driver, colour scale -1..1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(drivers), figsize=(4.6 * len(drivers), 8), constrained_layout=True, squeeze=False)
    im = None
    for col, v in enumerate(drivers):
        for row, (prefix, lat, lon, who) in enumerate(
            ((f"smci_{v}", cv.LAT, cv.LON, "ours, 1 km"), (f"era5land_{v}", "era5_lat", "era5_lon", "ERA5-Land, 0.1 degree"))
        ):
            la, lo = maps[lat].values, maps[lon].values
            half_y = abs(float(la[0] - la[1])) / 2 if la.size > 1 else 0.05
            half_x = abs(float(lo[1] - lo[0])) / 2 if lo.size > 1 else 0.05
            extent = (float(lo[0]) - half_x, float(lo[-1]) + half_x, float(la[-1]) - half_y, float(la[0]) + half_y)
            ax = axes[row][col]
            im = ax.imshow(np.ma.masked_invalid(maps[prefix].values), extent=extent, cmap="RdBu", vmin=-1, vmax=1)
            ax.set_title(f"{who}: with {DRIVERS[v][1]}")
            ax.set_xlabel("longitude (degrees east)")
            ax.set_ylabel("latitude (degrees north)")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.7, label="partial correlation (given the other two drivers)")
    fig.suptitle(
        f"{maps.attrs.get('depth_cm')} cm soil moisture vs drivers, {maps.attrs.get('periods')} periods ({maps.attrs.get('freq')}), "
        f"{maps.attrs.get('first_day')}..{maps.attrs.get('last_day')}"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
