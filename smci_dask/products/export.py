"""Distribution files of the 1 km and 9 km products in the SMCI1.0 layout: NetCDF, one file per day or per year.

Each file holds ``sm`` ``(time, depth, lat, lon)`` for its days and all 10
layers, int16 in 0.001 m3/m3 with fill -999 (``scale_factor`` 0.001,
``_FillValue`` -999, as the product and SMCI1.0), zlib-compressed, with the
product's CF attributes (units, standard and long names, depth/lat/lon
bounds, the ``crs`` grid mapping) and provenance (and ``sm_spread`` where
the product holds it). Names: ``SMCI_<label>_<YYYYMMDD>.nc``
(``period='day'``) or ``SMCI_<label>_<YYYY>.nc`` (``period='year'``), label
``1km`` or ``9km``. Only days the product lists as complete are exported;
a file is written to a local temporary file and then copied into the
target store in one piece, so a reader never sees half a file.

An exported int16 code is bit for bit the product's (decoded values are
codes x 0.001 and encode back to the same codes).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.io import Store
from smci_dask.products.smci1km import COMPLETE_DAYS_ATTR, PRODUCT_1KM_RELPATH, day_ranges, open_product, ranges_to_days

Period = Literal["day", "year"]
#: Where exports go below the store root by default.
EXPORT_RELPATH: Final = "exports/smci_1km"
#: Spatial chunk of the NetCDF variable (cells).
NC_CHUNK: Final = 512


def export_name(day: pd.Timestamp, period: Period, label: str = "1km") -> str:
    return f"SMCI_{label}_{day:%Y%m%d}.nc" if period == "day" else f"SMCI_{label}_{day:%Y}.nc"


def _groups(days: pd.DatetimeIndex, period: Period, label: str) -> dict[str, pd.DatetimeIndex]:
    keys = days.strftime("%Y%m%d") if period == "day" else days.strftime("%Y")
    return {export_name(days[keys == k][0], period, label): days[keys == k] for k in pd.unique(keys)}


def _file_dataset(product: xr.Dataset, days: pd.DatetimeIndex) -> tuple[xr.Dataset, dict[str, Any]]:
    """The product's (decoded) slice for ``days`` and the NetCDF encoding that stores the same int16 codes again.

    Decoded values are ``code * 0.001`` (NaN for fill); encoding divides by
    0.001 and rounds, which gives back exactly ``code`` (the error is far below 0.5).
    """
    ds = product.sel({cv.TIME: days}).load()
    ny, nx = ds.sizes[cv.LAT], ds.sizes[cv.LON]
    encoding: dict[str, Any] = {
        name: {  # sm, and sm_spread where the product holds it: the same int16 codes
            "dtype": cv.PRODUCT_DTYPE,
            "_FillValue": np.int16(cv.PRODUCT_FILL),
            "scale_factor": cv.PRODUCT_SCALE,
            "zlib": True,
            "complevel": 4,
            "chunksizes": (1, 1, min(NC_CHUNK, ny), min(NC_CHUNK, nx)),
        }
        for name in (cv.SM, cv.SM_SPREAD)
        if name in ds.data_vars
    }
    encoding |= {
        cv.TIME: {"units": f"days since {days[0]:%Y-%m-%d}", "calendar": "proleptic_gregorian", "dtype": "int32"},
    }
    for name in ds.variables:
        ds[name].encoding = {}
    attrs = {k: v for k, v in product.attrs.items() if k != COMPLETE_DAYS_ATTR}
    ds.attrs = {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in attrs.items()}  # NetCDF attributes are flat
    ds.attrs["time_coverage_start"] = f"{days[0]:%Y-%m-%d}"
    ds.attrs["time_coverage_end"] = f"{days[-1]:%Y-%m-%d}"
    return ds, encoding


def export_netcdf(
    store: Store,
    *,
    start: Any,
    end: Any,
    period: Period = "day",
    relpath: str = PRODUCT_1KM_RELPATH,
    out: Store | None = None,
    out_relpath: str = EXPORT_RELPATH,
    echo: Callable[[str], None] = print,
    label: str = "1km",
) -> list[str]:
    """Write the NetCDF files of ``start..end`` (complete days only); returns their URLs.

    Parameters
    ----------
    store : Store
        Store root holding the product.
    start, end : date-like
        Days to export (inclusive); each must be complete in the product.
    period : {'day', 'year'}
        One file per day or per calendar year (the days of that year asked for).
    out : Store, optional
        Where the files go (default ``store``), below ``out_relpath``.

    Raises
    ------
    InputError
        Days the product does not list as complete (named), or a bad ``period``.
    """
    if period not in ("day", "year"):
        raise InputError(f"export period {period!r} is unknown; use 'day' or 'year'")
    product = open_product(store, relpath)
    days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(), freq="D")
    complete = ranges_to_days(product.attrs.get(COMPLETE_DAYS_ATTR, []))
    missing = days.difference(complete)
    if len(missing) or not len(days):
        ranges = "; ".join(a if a == b else f"{a}..{b}" for a, b in day_ranges(missing)) or "(none asked for)"
        raise InputError(
            f"product {store.url_of(relpath)} does not hold days {ranges} completely; run `smci predict` for them first "
            f"(complete: {'; '.join(f'{a}..{b}' for a, b in day_ranges(complete)) or 'none'})"
        )
    target = out if out is not None else store
    urls: list[str] = []
    for name, group in _groups(days, period, label).items():
        ds, encoding = _file_dataset(product, group)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            ds.to_netcdf(local, engine="netcdf4", format="NETCDF4", encoding=encoding)
            target.put_file(local, f"{out_relpath}/{name}")
        urls.append(target.url_of(out_relpath, name))
        echo(f"[export] {name}: {len(group)} day(s) x {len(cv.DEPTHS_CM)} depths -> {urls[-1]}")
    return urls


def export_files(store: Store, out_relpath: str = EXPORT_RELPATH) -> Sequence[str]:
    """Names of the NetCDF files below ``out_relpath``."""
    return [n for n in store.ls(out_relpath) if n.endswith(".nc")]
