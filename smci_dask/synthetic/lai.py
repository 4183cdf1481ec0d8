"""Synthetic MODIS-like 8-day leaf area index at 1 km, and its GeoTIFFs.

:func:`make_lai` draws an 8-day LAI series (m2/m2) on the fine grid, one
composite per MODIS MOD15A2H period: composites start on day-of-year 1, 9,
17, ..., 361 of every year (46 a year; the last one spans the turn of the
year). The seasonal cycle depends on the IGBP land-cover class:

=================  ==========  ===========================================
class              winter LAI  growing season
=================  ==========  ===========================================
croplands (12)     0.4         winter wheat peak ~3 (late April), summer
                               maize peak ~4 (mid August)
mixed forest (5)   1.0         broad summer peak ~5.3 (late July)
woody savannas (8) 0.5         summer peak ~2.7
grasslands (10)    0.3         summer peak ~1.7 (early August)
urban (13)         0.1         summer peak ~0.6
water (17)         NaN         (written as MODIS class 254)
=================  ==========  ===========================================

The growing-season amplitude varies in space (a smooth 6 km field,
+-15 %), from year to year (+-8 %) and, optionally, with the soil wetness of
the truth model (``soil_wetness``); every composite carries pixel noise
(sd 0.12 m2/m2, clipped at 0).

:func:`write_lai_files` writes one GeoTIFF per composite, named like MODIS
(``MOD15A2H.A2019001.Lai_500m.tif``) and encoded like the MOD15A2H
``Lai_500m`` layer: uint8 with scale factor 0.1 and offset 0 (valid 0-100),
254 on water and 255 as fill, either on the geographic fine grid or
reprojected (nearest neighbour) to the MODIS sinusoidal projection at the
1 km MODIS pixel size (926.625433 m) on the MODIS tile grid, so the
reprojection path of the LAI reader has test data.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import xarray as xr
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject, transform_bounds

from smci_dask import conventions as cv
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store
from smci_dask.synthetic.fields import component_rng, smooth_field
from smci_dask.synthetic.statics import (
    CROPLANDS,
    GRASSLANDS,
    MIXED_FOREST,
    URBAN,
    WOODY_SAVANNAS,
    geotiff_profile,
    grid_from_dataset,
)

LaiProjection = Literal["geographic", "sinusoidal"]

#: Name of the LAI variable in the dataset of :func:`make_lai`.
LAI_VAR = "lai"
#: MODIS 8-day composite step, days.
COMPOSITE_DAYS = 8
#: MOD15A2H Lai_500m class value for "perennial salt or water bodies".
LAI_WATER = 254
#: MODIS sinusoidal projection (sphere of radius 6371007.181 m) as a PROJ string.
MODIS_SINUSOIDAL_PROJ = "+proj=sinu +R=6371007.181 +nadgrids=@null +wktext"
#: Pixel size of the 1 km MODIS sinusoidal grid, m (tile width 1111950.5197665 m / 1200).
MODIS_1KM_PIXEL = 926.625433055833
#: Upper-left corner of the MODIS sinusoidal tile grid (tile h00v00), m.
MODIS_GRID_ORIGIN = (-20015109.355798, 10007554.677899)

#: Seasonal parameters per IGBP class: (winter LAI, [(peak amplitude, peak day-of-year, width in days), ...]).
SEASONAL: dict[int, tuple[float, list[tuple[float, float, float]]]] = {
    CROPLANDS: (0.4, [(2.6, 115.0, 22.0), (3.6, 226.0, 24.0)]),
    MIXED_FOREST: (1.0, [(4.3, 205.0, 48.0)]),
    WOODY_SAVANNAS: (0.5, [(2.2, 205.0, 45.0)]),
    GRASSLANDS: (0.3, [(1.4, 215.0, 40.0)]),
    URBAN: (0.1, [(0.5, 205.0, 45.0)]),
}
_DEFAULT_SEASON = SEASONAL[GRASSLANDS]
_NOISE_SD = 0.12  # m2/m2


def composite_dates(years: int | tuple[int, int] | Sequence[int]) -> pd.DatetimeIndex:
    """Start dates of the MODIS 8-day composites (day-of-year 1, 9, ..., 361) of ``years``.

    Parameters
    ----------
    years : int or (first, last)
        One year, or the first and last year (inclusive) as in
        ``RegionPreset.years``; a longer sequence lists the years.

    Returns
    -------
    pandas.DatetimeIndex
        46 dates a year.
    """
    out: list[pd.Timestamp] = []
    for year in _year_list(years):
        start = pd.Timestamp(year=year, month=1, day=1)
        out.extend(start + pd.Timedelta(days=d) for d in range(0, 366 if _leap(year) else 365, COMPOSITE_DAYS))
    return pd.DatetimeIndex(out, name=cv.TIME8)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _year_list(years: int | tuple[int, int] | Sequence[int]) -> list[int]:
    if isinstance(years, (int, np.integer)):
        return [int(years)]
    ys = [int(y) for y in years]
    if len(ys) == 2:
        if ys[1] < ys[0]:
            raise ValueError(f"years {tuple(ys)}: the last year is before the first")
        return list(range(ys[0], ys[1] + 1))
    return sorted(set(ys))


def modis_name(date: pd.Timestamp, *, product: str = "MOD15A2H", layer: str = "Lai_500m") -> str:
    """File name of the composite starting on ``date``, e.g. ``MOD15A2H.A2019001.Lai_500m.tif``."""
    ts = pd.Timestamp(date)
    return f"{product}.A{ts.year}{ts.day_of_year:03d}.{layer}.tif"


def seasonal_lai(landcover: npt.ArrayLike, doy: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(winter LAI, growing-season LAI above it) in m2/m2 for each cell on day-of-year ``doy``.

    Parameters
    ----------
    landcover : array_like of int
        IGBP classes.
    doy : float
        Day of year (1-366, fractional allowed).

    Returns
    -------
    (base, season) : ndarrays of the shape of ``landcover``, m2/m2
    """
    lc = np.asarray(landcover)
    base = np.zeros(lc.shape, dtype=np.float64)
    season = np.zeros(lc.shape, dtype=np.float64)
    classes = {int(c) for c in np.unique(lc)}
    for c in classes:
        b, peaks = SEASONAL.get(c, _DEFAULT_SEASON)
        value = 0.0
        for amp, peak, width in peaks:
            d = (doy - peak + 182.5) % 365.0 - 182.5  # circular distance in days
            value += amp * float(np.exp(-0.5 * (d / width) ** 2))
        sel = lc == c
        base[sel] = b
        season[sel] = value
    return base, season


def make_lai(
    grid: GridSpec,
    statics: xr.Dataset,
    years: int | tuple[int, int] | Sequence[int],
    seed: int,
    soil_wetness: Callable[[pd.Timestamp], npt.ArrayLike] | None = None,
) -> xr.Dataset:
    """8-day leaf area index on the fine grid (see the module docstring).

    Parameters
    ----------
    grid : GridSpec
        Fine grid of the region (that of ``statics``).
    statics : xarray.Dataset
        From :func:`~smci_dask.synthetic.statics.make_statics` (``landcover``).
    years : int or (first, last)
        Years to cover, inclusive.
    seed : int
        World seed; each year draws from its own generator, so a year's
        values do not depend on which other years are made.
    soil_wetness : callable, optional
        ``soil_wetness(start_date) -> array (lat, lon)`` (or a scalar) of
        relative soil wetness 0 (dry) to 1 (wet) during the composite that
        starts on ``start_date``; the growing-season amplitude is multiplied
        by ``0.7 + 0.6 * wetness`` (1.0 at wetness 0.5).

    Returns
    -------
    xarray.Dataset
        Variable ``lai`` (m2/m2, float32, dims ``(time8, lat, lon)``, NaN on
        water) with coordinate ``time8`` (composite start dates), ``lat``,
        ``lon`` and the 2-D coordinate ``land`` (bool).
    """
    landcover = np.asarray(statics["landcover"].values)
    if landcover.shape != grid.shape:
        raise ValueError(f"statics landcover has shape {landcover.shape}, the grid has {grid.shape}")
    water = landcover == cv.WATER_CLASS
    dates = composite_dates(years)
    space = component_rng(seed, "lai", "space")
    spatial = 1.0 + 0.15 * smooth_field(grid.lat, grid.lon, 6.0, space)
    out = np.empty((len(dates), *grid.shape), dtype=np.float32)
    for year in _year_list(years):
        rng = component_rng(seed, "lai", year)
        year_factor = 1.0 + 0.08 * float(rng.standard_normal())
        idx = np.flatnonzero(dates.year == year)
        for i in idx:
            date = dates[i]
            base, season = seasonal_lai(landcover, date.day_of_year + (COMPOSITE_DAYS - 1) / 2.0)
            amp = spatial * year_factor
            if soil_wetness is not None:
                wet = np.clip(np.asarray(soil_wetness(date), dtype=np.float64), 0.0, 1.0)
                amp = amp * (0.7 + 0.6 * wet)
            value = base + season * amp + rng.normal(0.0, _NOISE_SD, size=grid.shape)
            value = np.clip(value, 0.0, 9.5)
            value[water] = np.nan
            out[i] = value
    ds = xr.Dataset(
        {
            LAI_VAR: (
                (cv.TIME8, cv.LAT, cv.LON),
                out,
                {"units": "m2 m-2", "long_name": "Leaf area index (MODIS MOD15A2H-like 8-day composite)"},
            )
        },
        coords={
            cv.TIME8: (cv.TIME8, dates.values, {"long_name": "start date of the 8-day composite"}),
            cv.LAT: (cv.LAT, grid.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            cv.LON: (cv.LON, grid.lon, {"units": "degrees_east", "standard_name": "longitude"}),
            "land": ((cv.LAT, cv.LON), ~water, {"long_name": "Land mask (landcover != 17)"}),
        },
        attrs={"title": "smci_dask synthetic world: 8-day LAI at 1 km", "seed": int(seed), "crs": "EPSG:4326"},
    )
    return ds


# ------------------------------------------------------------------ encoding and files
def encode_lai(lai: npt.ArrayLike, water: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """MOD15A2H ``Lai_500m`` encoding: ``round(lai / 0.1)`` in 0-100, 254 on water, 255 where NaN on land.

    Parameters
    ----------
    lai : array_like
        LAI, m2/m2.
    water : array_like of bool
        True on water cells.

    Returns
    -------
    ndarray of uint8
    """
    v = np.asarray(lai, dtype=np.float64)
    q = np.clip(np.round(np.nan_to_num(v, nan=0.0) / cv.LAI_SCALE), 0, cv.LAI_VALID_MAX).astype(np.uint8)
    q[np.isnan(v)] = cv.LAI_FILL
    q[np.asarray(water, dtype=bool)] = LAI_WATER
    return q


def sinusoidal_target(grid: GridSpec) -> tuple[CRS, Affine, int, int]:
    """The MODIS sinusoidal 1 km raster that covers ``grid``, aligned on the MODIS tile grid.

    Returns
    -------
    (crs, transform, width, height)
        Pixel size 926.625433 m; the bounds are the region's bounds in the
        sinusoidal projection, snapped outward to whole MODIS pixels.
    """
    crs = CRS.from_proj4(MODIS_SINUSOIDAL_PROJ)
    left, bottom, right, top = transform_bounds(CRS.from_epsg(4326), crs, *grid.bbox, densify_pts=101)
    px = MODIS_1KM_PIXEL
    x0, y0 = MODIS_GRID_ORIGIN
    col0 = int(np.floor((left - x0) / px))
    col1 = int(np.ceil((right - x0) / px))
    row0 = int(np.floor((y0 - top) / px))
    row1 = int(np.ceil((y0 - bottom) / px))
    transform = Affine(px, 0.0, x0 + col0 * px, 0.0, -px, y0 - row0 * px)
    return crs, transform, col1 - col0, row1 - row0


def _lai_tags(date: pd.Timestamp) -> dict[str, str]:
    end = date + pd.Timedelta(days=COMPOSITE_DAYS - 1)
    return {
        "scale_factor": f"{cv.LAI_SCALE}",
        "add_offset": "0.0",
        "_FillValue": f"{cv.LAI_FILL}",
        "valid_range": f"0, {cv.LAI_VALID_MAX}",
        "units": "m^2/m^2",
        "long_name": "MODIS/Terra Gridded 500M Leaf Area Index LAI (8-day composite)",
        "water_value": f"{LAI_WATER}",
        "RANGEBEGINNINGDATE": date.strftime("%Y-%m-%d"),
        "RANGEENDINGDATE": end.strftime("%Y-%m-%d"),
        "source": "smci_dask synthetic world",
    }


def write_lai_files(
    ds: xr.Dataset,
    store: Store,
    relpath_dir: str,
    *,
    projection: LaiProjection = "geographic",
) -> list[str]:
    """Write one MODIS-like GeoTIFF per 8-day composite below ``relpath_dir``.

    Each file (``MOD15A2H.A<YYYY><DDD>.Lai_500m.tif``) is single-band uint8,
    deflate-compressed and tiled, with band nodata 255, band scale 0.1 and
    offset 0, and the GDAL metadata tags ``scale_factor`` (0.1),
    ``add_offset`` (0), ``_FillValue`` (255), ``valid_range`` (0, 100),
    ``units`` (m^2/m^2), ``long_name`` and the composite's
    ``RANGEBEGINNINGDATE`` / ``RANGEENDINGDATE``. Water is 254 (MODIS class
    "perennial salt or water bodies").

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`make_lai`.
    store : Store
    relpath_dir : str
        Folder below the store.
    projection : {"geographic", "sinusoidal"}
        ``geographic``: EPSG:4326 on the dataset's fine grid.
        ``sinusoidal``: the MODIS sinusoidal projection
        (``+proj=sinu +R=6371007.181``), 926.625433 m pixels aligned on the
        MODIS tile grid, covering the region, filled by nearest-neighbour
        reprojection (255 outside the region).

    Returns
    -------
    list of str
        Paths of the written files, relative to the store, in date order.
    """
    if projection not in ("geographic", "sinusoidal"):
        raise ValueError(f"projection must be 'geographic' or 'sinusoidal', got {projection!r}")
    grid = grid_from_dataset(ds)
    lai = ds[LAI_VAR]
    if "land" in ds.coords:
        water = ~np.asarray(ds.coords["land"].values, dtype=bool)
    else:
        water = np.isnan(np.asarray(lai.values)).all(axis=0)
    if projection == "geographic":
        profile = geotiff_profile(grid, np.uint8, cv.LAI_FILL)
        src_transform = profile["transform"]
    else:
        crs, transform, width, height = sinusoidal_target(grid)
        src_transform = Affine(*grid.transform)
        profile = geotiff_profile(grid, np.uint8, cv.LAI_FILL, crs=crs)
        profile.update(transform=transform, width=width, height=height)
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="smci-lai-") as tmp:
        for i, t in enumerate(pd.DatetimeIndex(lai[cv.TIME8].values)):
            q = encode_lai(lai.isel({cv.TIME8: i}).values, water)
            if projection == "sinusoidal":
                dst = np.full((profile["height"], profile["width"]), cv.LAI_FILL, dtype=np.uint8)
                reproject(
                    source=q,
                    destination=dst,
                    src_transform=src_transform,
                    src_crs=CRS.from_epsg(4326),
                    src_nodata=cv.LAI_FILL,
                    dst_transform=profile["transform"],
                    dst_crs=profile["crs"],
                    dst_nodata=cv.LAI_FILL,
                    resampling=Resampling.nearest,
                )
                q = dst
            name = modis_name(t)
            local = os.path.join(tmp, name)
            _write_band(local, q, profile, _lai_tags(t))
            rel = f"{relpath_dir.rstrip('/')}/{name}" if relpath_dir else name
            store.put_file(local, rel)
            written.append(rel)
    return written


def _write_band(path: str, data: npt.NDArray[np.uint8], profile: dict[str, Any], tags: dict[str, str]) -> None:
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(**tags)
        dst.update_tags(1, **tags)
        dst.scales = (cv.LAI_SCALE,)
        dst.offsets = (0.0,)
        dst.set_band_description(1, "Lai_500m")
        dst.set_band_unit(1, "m^2/m^2")
