"""Extra gridded products sampled at the station cells and days, to be scored beside ours.

A product is any Zarr store or NetCDF file with latitude, longitude and time
dimensions and a depth or layer dimension (SMAP-L4, SoMo.ml, ...), named in
``evaluation.products``::

    evaluation:
      products:
        somo: {url: s3://bucket/somo.zarr, variable: SM, depth_dim: layer,
               depth_map: {10: 1, 20: 2, 30: 2, 40: 3, 50: 3}}

Sampling rules:

* **Cell**: the product cell whose centre is nearest to the 1 km cell centre
  (``lat``, ``lon`` of the table), per axis, as ``Dataset.sel(method="nearest")``;
  a point farther than half a cell beyond the product's outermost centres
  gets NaN (the product does not cover it).
* **Day**: the product's time stamps floored to the day must equal the
  row's day (a product at 12 UTC counts for its day); other days are NaN.
  Several stamps on one day: their mean.
* **Depth**: ``depth_map`` maps a product depth (cm) to a label of the depth
  dimension (or to a position with ``depth_index: true``); depths without an
  entry are NaN (not scored).
* Values times ``scale`` (to m3/m3); the product's own fill values are
  decoded by xarray (CF ``_FillValue``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask.errors import InputError, StoreError

__all__ = ["open_product", "sample_product"]

_LAT_NAMES: Final = ("lat", "latitude", "y")
_LON_NAMES: Final = ("lon", "longitude", "x")
_TIME_NAMES: Final = ("time", "valid_time", "date")


def open_product(url: str, *, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Open a product lazily: a Zarr store (``*.zarr`` or a folder with Zarr metadata) or a NetCDF file, local or any fsspec URL.

    Raises
    ------
    StoreError
        Nothing readable at ``url``.
    """
    import fsspec

    opts = dict(storage_options or {})
    is_zarr = url.rstrip("/").endswith(".zarr")
    try:
        fs, path = fsspec.core.url_to_fs(url, **opts)
        if not is_zarr and fs.isdir(path):
            is_zarr = fs.exists(f"{path.rstrip('/')}/zarr.json") or fs.exists(f"{path.rstrip('/')}/.zgroup")
        if is_zarr:
            return xr.open_zarr(fs.get_mapper(path), consolidated=False, chunks={})  # never stale; Zarr 3 has no consolidation standard
        if "://" not in url or url.startswith("file://"):
            return xr.open_dataset(path, chunks={})
        return xr.open_dataset(fs.open(path, "rb"), engine="h5netcdf", chunks={})
    except (FileNotFoundError, OSError, ValueError, KeyError) as exc:
        raise StoreError(
            f"extra product {url}: cannot open it as Zarr or NetCDF ({type(exc).__name__}: {exc}); "
            "check evaluation.products.<name>.url and its storage_options"
        ) from None


def _dim(da: xr.DataArray, names: tuple[str, ...], what: str, url: str) -> str:
    for n in names:
        if n in da.dims:
            return n
    raise InputError(
        f"extra product {url}: variable {da.name!r} has no {what} dimension (one of {list(names)}); its dims are {list(da.dims)}"
    )


def _nearest(coord: npt.NDArray[np.float64], points: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Position of the nearest coordinate value (-1 beyond half a cell outside the outermost centres)."""
    order = np.argsort(coord, kind="stable")
    sc = coord[order]
    pos = np.clip(np.searchsorted(sc, points), 1, max(sc.size - 1, 1))
    if sc.size == 1:
        best = np.zeros(points.size, dtype=np.int64)
        half = np.inf
    else:
        left, right = sc[pos - 1], sc[pos]
        best = np.where(np.abs(points - left) <= np.abs(right - points), pos - 1, pos)
        half = 0.5 * float(np.max(np.diff(sc)))
    out = order[best].astype(np.int64)
    far = (points < sc[0] - half - 1e-9) | (points > sc[-1] + half + 1e-9)
    out[far] = -1
    return out


def sample_product(
    ds: xr.Dataset,
    variable: str,
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    time: npt.ArrayLike,
    depth_cm: npt.ArrayLike,
    *,
    depth_map: Mapping[int, Any],
    depth_dim: str | None = None,
    depth_index: bool = False,
    scale: float = 1.0,
    url: str = "the product",
) -> npt.NDArray[np.float64]:
    """The product's value at each (lat, lon, day, depth) row (see the module docstring); m3/m3 after ``scale``.

    Reads only the product cells that hold a row, for every time step (one
    pointwise selection per depth label), so a large product costs its
    station cells' series, not its grid.

    Raises
    ------
    InputError
        The variable, a dimension or a ``depth_map`` label is not in the product.
    """
    if variable not in ds.data_vars:
        raise InputError(
            f"extra product {url}: no variable {variable!r} (has {sorted(map(str, ds.data_vars))}); set evaluation.products.<name>.variable"
        )
    da = ds[variable]
    ylat = _dim(da, _LAT_NAMES, "latitude", url)
    xlon = _dim(da, _LON_NAMES, "longitude", url)
    tdim = _dim(da, _TIME_NAMES, "time", url)
    others = [d for d in da.dims if d not in (ylat, xlon, tdim)]
    if depth_dim is None:
        if len(others) != 1:
            raise InputError(
                f"extra product {url}: cannot tell its depth dimension among {others}; set evaluation.products.<name>.depth_dim"
            )
        depth_dim = str(others[0])
    elif depth_dim not in da.dims:
        raise InputError(
            f"extra product {url}: no dimension {depth_dim!r} (dims {list(da.dims)}); fix evaluation.products.<name>.depth_dim"
        )
    extra = [d for d in others if d != depth_dim]
    if extra:
        raise InputError(f"extra product {url}: dimensions {extra} besides lat/lon/time/{depth_dim}; select them first")

    lat_p = np.asarray(lat, dtype=np.float64).ravel()
    lon_p = np.asarray(lon, dtype=np.float64).ravel()
    day = pd.DatetimeIndex(np.asarray(time, dtype="datetime64[ns]").ravel()).floor("D")
    depth = np.asarray(depth_cm, dtype=np.int64).ravel()
    n = lat_p.size
    if not (lon_p.size == n == len(day) == depth.size):
        raise InputError(f"sample_product: lat, lon, time and depth_cm differ in length ({n}, {lon_p.size}, {len(day)}, {depth.size})")
    out = np.full(n, np.nan)
    iy = _nearest(np.asarray(da[ylat].values, dtype=np.float64), lat_p)
    ix = _nearest(np.asarray(da[xlon].values, dtype=np.float64), lon_p)
    pdays = pd.DatetimeIndex(np.asarray(da[tdim].values, dtype="datetime64[ns]")).floor("D")
    uniq_days = pdays.unique()
    it = uniq_days.get_indexer(day)
    labels = list(np.asarray(da[depth_dim].values)) if depth_dim in da.coords else list(range(da.sizes[depth_dim]))
    for d in np.unique(depth):
        if int(d) not in depth_map:
            continue
        label = depth_map[int(d)]
        if depth_index:
            if not 0 <= int(label) < da.sizes[depth_dim]:
                raise InputError(f"extra product {url}: depth_map {int(d)} -> position {label} is outside 0..{da.sizes[depth_dim] - 1}")
            layer = da.isel({depth_dim: int(label)})
        else:
            if label not in labels:
                raise InputError(f"extra product {url}: depth_map {int(d)} -> {label!r} is not a {depth_dim} value ({labels})")
            layer = da.sel({depth_dim: label})
        sel = (depth == d) & (iy >= 0) & (ix >= 0) & (it >= 0)
        if not sel.any():
            continue
        cells, inverse = np.unique(np.stack([iy[sel], ix[sel]]), axis=1, return_inverse=True)
        series = layer.isel({ylat: xr.DataArray(cells[0], dims="cell"), xlon: xr.DataArray(cells[1], dims="cell")})
        series = series.transpose(tdim, "cell")
        values = np.asarray(series.values, dtype=np.float64)  # (time, cells)
        if len(uniq_days) != len(pdays):  # several stamps per day: their mean
            values = pd.DataFrame(values).groupby(uniq_days.get_indexer(pdays)).mean().to_numpy()
        out[sel] = values[it[sel], inverse.ravel()] * float(scale)
    return out
