"""An extra gridded soil-moisture product for the synthetic world: ``somo_like``.

A stand-in for products such as SoMo.ml (0.25 degree, daily, layers 0-10,
10-30 and 30-50 cm) that ``smci evaluate`` scores beside ours at the station
cells (config ``evaluation.products``). Made from the truth, so it is good but
not perfect:

1. the 1 km truth averaged over each layer's product depths (0-10 cm: the
   10 cm layer; 10-30 cm: 20 and 30 cm; 30-50 cm: 40 and 50 cm) and over each
   0.25 degree cell (NaN over water ignored);
2. smoothed in time (exponential, ``tau`` 3 days: a product lags rain);
3. plus a smooth random bias per cell and layer (s.d. 0.02 m3/m3) and
   day-to-day AR(1) noise (s.d. 0.015 m3/m3, lag-1 correlation 0.7), seeded
   by the world seed; clipped to 0.01..0.6 m3/m3.

Written as NetCDF-4 with dims ``(time, layer, lat, lon)`` (latitude
descending, as most global products), variable ``SM`` in m3 m-3, ``layer``
labelled 1..3 with ``depth_top`` / ``depth_bottom`` (cm). The matching entry
for ``evaluation.products`` is :func:`product_config`.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store
from smci_dask.synthetic.fields import component_rng

#: Name and path (below the world's store) of the product.
SOMO_NAME: Final = "somo_like"
SOMO_PATH: Final = "products/somo_like.nc"
SOMO_VAR: Final = "SM"
#: Cell size, degrees.
SOMO_RES: Final = 0.25
#: Layers: label -> (top, bottom) cm, and the product depths (cm) averaged into each.
SOMO_LAYERS: Final[dict[int, tuple[int, int]]] = {1: (0, 10), 2: (10, 30), 3: (30, 50)}
SOMO_LAYER_DEPTHS: Final[dict[int, tuple[int, ...]]] = {1: (10,), 2: (20, 30), 3: (40, 50)}
#: Product depth (cm) -> layer label, for ``evaluation.products.<name>.depth_map``.
SOMO_DEPTH_MAP: Final[dict[int, int]] = {d: k for k, ds in SOMO_LAYER_DEPTHS.items() for d in ds}
#: Days of the truth read at once.
TIME_BLOCK: Final = 64


def product_axes(grid: GridSpec, res: float = SOMO_RES) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Cell-centre latitudes (descending) and longitudes of the ``res`` degree cells covering the region."""
    west, south, east, north = grid.bbox
    n_edge = math.ceil(north / res - 1e-9) * res
    s_edge = math.floor(south / res + 1e-9) * res
    w_edge = math.floor(west / res + 1e-9) * res
    e_edge = math.ceil(east / res - 1e-9) * res
    lat = n_edge - res / 2 - res * np.arange(round((n_edge - s_edge) / res))
    lon = w_edge + res / 2 + res * np.arange(round((e_edge - w_edge) / res))
    return lat, lon


def _averaging(fine: npt.NDArray[np.float64], centres: npt.NDArray[np.float64], res: float) -> npt.NDArray[np.float64]:
    """0/1 matrix (product cells x fine cells): which product cell holds each fine centre."""
    idx = np.abs(fine[None, :] - centres[:, None]) < res / 2
    return idx.astype(np.float64)


def make_somo_like(truth: xr.DataArray, grid: GridSpec, seed: int) -> xr.Dataset:
    """The product from the truth (``(time, depth, lat, lon)`` m3/m3, lazy or not); see the module docstring."""
    lat_p, lon_p = product_axes(grid)
    a_r = _averaging(np.asarray(truth[cv.LAT].values, dtype=np.float64), lat_p, SOMO_RES)
    a_c = _averaging(np.asarray(truth[cv.LON].values, dtype=np.float64), lon_p, SOMO_RES)
    times = pd.DatetimeIndex(truth[cv.TIME].values)
    nt, nl = len(times), len(SOMO_LAYERS)
    out = np.empty((nt, nl, lat_p.size, lon_p.size), dtype=np.float64)
    for start in range(0, nt, TIME_BLOCK):
        block = truth.isel({cv.TIME: slice(start, start + TIME_BLOCK)})
        for j, (label, depths) in enumerate(SOMO_LAYER_DEPTHS.items()):
            x = np.asarray(block.sel({cv.DEPTH: list(depths)}).mean(cv.DEPTH).values, dtype=np.float64)  # (t, lat, lon)
            ok = np.isfinite(x)
            s = np.einsum("pi,tij,qj->tpq", a_r, np.where(ok, x, 0.0), a_c)
            n = np.einsum("pi,tij,qj->tpq", a_r, ok.astype(np.float64), a_c)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start : start + len(x), j] = s / n
            del label
    # temporal smoothing (tau 3 days), seeded bias and AR(1) noise
    alpha = 1.0 - math.exp(-1.0 / 3.0)
    for t in range(1, nt):
        prev = out[t - 1]
        out[t] = np.where(np.isfinite(prev), prev + alpha * (out[t] - prev), out[t])
    rng = component_rng(seed, "products", SOMO_NAME)
    shape = (nl, lat_p.size, lon_p.size)
    bias = rng.normal(0.0, 0.02, shape)
    noise = np.empty_like(out)
    rho, sd = 0.7, 0.015
    noise[0] = rng.normal(0.0, sd, shape)
    eps = rng.normal(0.0, sd * math.sqrt(1 - rho**2), (nt, *shape))
    for t in range(1, nt):
        noise[t] = rho * noise[t - 1] + eps[t]
    values = np.clip(out + bias + noise, 0.01, 0.6)
    ds = xr.Dataset(
        {
            SOMO_VAR: (
                (cv.TIME, "layer", cv.LAT, cv.LON),
                values.astype(np.float32),
                {"units": "m3 m-3", "long_name": "volumetric soil moisture (synthetic SoMo.ml-like product)"},
            )
        },
        coords={
            cv.TIME: times,
            "layer": ("layer", np.array(list(SOMO_LAYERS), dtype=np.int32)),
            "depth_top": ("layer", np.array([v[0] for v in SOMO_LAYERS.values()], dtype=np.int32), {"units": "cm"}),
            "depth_bottom": ("layer", np.array([v[1] for v in SOMO_LAYERS.values()], dtype=np.int32), {"units": "cm"}),
            cv.LAT: (cv.LAT, lat_p, {"units": "degrees_north"}),
            cv.LON: (cv.LON, lon_p, {"units": "degrees_east"}),
        },
        attrs={"title": "somo_like: truth averaged to 0.25 degree and 3 layers, smoothed, biased and noisy", "seed": int(seed)},
    )
    return ds


def write_product(ds: xr.Dataset, store: Store, relpath: str = SOMO_PATH) -> str:
    """Write the product as NetCDF-4 (through a local temporary file, so any store works); returns ``relpath``."""
    enc = {SOMO_VAR: {"zlib": True, "complevel": 2, "_FillValue": np.float32(np.nan)}}
    with tempfile.TemporaryDirectory(prefix="smci-product-") as tmp:
        local = Path(tmp) / Path(relpath).name
        ds.to_netcdf(local, engine="netcdf4", format="NETCDF4", encoding=enc)
        store.put_file(local, relpath)
    return relpath


def product_config(store: Store, relpath: str = SOMO_PATH) -> dict[str, Any]:
    """The ``evaluation.products`` entry that points at the written product (add the store's storage options for a remote one)."""
    return {
        "url": store.url_of(relpath),
        "variable": SOMO_VAR,
        "depth_dim": "layer",
        "depth_map": dict(SOMO_DEPTH_MAP),
    }
