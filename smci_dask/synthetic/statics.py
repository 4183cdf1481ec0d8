"""Synthetic static 1 km layers and their GeoTIFFs.

:func:`make_statics` draws the static covariates of the synthetic world on the
fine (30 arc-second) grid of a region; :func:`write_static_geotiffs` writes
them as the GeoTIFFs the static-covariate reader ingests.

The landscape, relative to the region's extent (``x`` 0 at the west edge,
1 at the east edge):

* **Relief.** Mountains in the west (a front near ``x = 0.32`` that wanders
  with a smooth random field) rising to about 1000-1300 m, falling east to a
  plain at 20-70 m, with smooth random relief at 12 km and 3 km scales.
* **Water.** A sea in the south-east corner: the 2 x 2 ERA5-Land (0.1 degree)
  cells of the corner are fully water, and a ragged shore (a rounded square
  around the corner with a random radius of about 0.31 degree) leaves coarse
  cells along it mostly water but with land fine cells inside. One small
  inland lake (5 fine cells) sits inside an otherwise-land coarse cell of the
  eastern plain. Water is IGBP class 17 and NaN in every float layer.
* **Land cover** (IGBP, MODIS MCD12Q1 LC_Type1): croplands (12) on the plain
  with urban patches (13) and a few grassland patches (10); grasslands (10)
  and woody savannas (8) on the foothills; mixed forest (5) and woody
  savannas (8) in the mountains.
* **Soil texture** (sand/silt/clay, % weight, summing to 100): silty plain
  (loess), sandier and less clayey mountains; smooth 10 km fields.
  **Porosity** (m3/m3) from Saxton & Rawls (2006, eq. 2-5) with an
  organic-matter field, clipped to 0.35-0.55; **bulk density** (g/cm3)
  ``(1 - porosity) * 2.65``; **rock fragments** (% volume) 1-5 % on the plain,
  25-45 % in the mountains.
* **Climate zone** (Koppen-Geiger codes of ``conventions.KOPPEN_CLASSES``):
  Dwa (22) on the plain, BSk (7) on the foothills, Dwb (23) above about
  700 m; 0 (no class) over water.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import xarray as xr
from rasterio.crs import CRS
from rasterio.transform import Affine
from scipy import ndimage, special

from smci_dask import conventions as cv
from smci_dask.errors import GridError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store
from smci_dask.synthetic.fields import component_rng, smooth_field

FloatArray = npt.NDArray[np.float64]

# IGBP classes used by the synthetic world (MODIS MCD12Q1 LC_Type1)
MIXED_FOREST = 5
WOODY_SAVANNAS = 8
GRASSLANDS = 10
CROPLANDS = 12
URBAN = 13

#: IGBP class names of the classes the synthetic world uses.
IGBP_NAMES: dict[int, str] = {
    MIXED_FOREST: "Mixed Forests",
    WOODY_SAVANNAS: "Woody Savannas",
    GRASSLANDS: "Grasslands",
    CROPLANDS: "Croplands",
    URBAN: "Urban and Built-up Lands",
    cv.WATER_CLASS: "Water Bodies",
}

KOPPEN_BSK = 7
KOPPEN_DWA = 22
KOPPEN_DWB = 23

#: Fill value of the uint8 land-cover GeoTIFF (MCD12Q1 uses 255).
LANDCOVER_NODATA = 255
#: Fill value of the uint8 climate-zone GeoTIFF (Beck et al. 2018: 0 = no class / water).
CLIMATE_NODATA = 0

#: Long names of the layers (one table, in conventions).
STATIC_LONG_NAMES = cv.STATIC_LONG_NAMES

_INT_VARS = ("landcover", "climate_zone")
_SEA_RADIUS_DEG = 0.31
_PARTICLE_DENSITY = 2.65  # g/cm3


# ------------------------------------------------------------------ grid helpers
def grid_from_dataset(ds: xr.Dataset | xr.DataArray) -> GridSpec:
    """The :class:`GridSpec` whose cell centres are ``ds.lat`` / ``ds.lon``.

    Parameters
    ----------
    ds : xarray.Dataset or DataArray
        With 1-D coordinates ``lat`` (north to south) and ``lon`` (west to
        east), degrees, on the 30 arc-second grid.

    Returns
    -------
    GridSpec

    Raises
    ------
    GridError
        If the coordinates are not the centres of a north-up fine grid.
    """
    lat = np.asarray(ds[cv.LAT].values, dtype=np.float64)
    lon = np.asarray(ds[cv.LON].values, dtype=np.float64)
    west = round(lon[0] * cv.FINE_PER_DEGREE - 0.5)
    north = round(lat[0] * cv.FINE_PER_DEGREE + 0.5)
    grid = GridSpec(west, north - lat.size, west + lon.size, north)
    if not (np.allclose(grid.lat, lat, rtol=0, atol=1e-7) and np.allclose(grid.lon, lon, rtol=0, atol=1e-7)):
        raise GridError("dataset coordinates lat/lon are not the cell centres of a north-up 30 arc-second grid; build it on a GridSpec")
    return grid


def coarse_water_fraction(grid: GridSpec, water: npt.ArrayLike) -> FloatArray:
    """Fraction of water fine cells in each coarse (ERA5-Land 0.1 degree) cell.

    Parameters
    ----------
    grid : GridSpec
    water : array_like of bool, shape grid.shape
        True on water fine cells.

    Returns
    -------
    ndarray, shape grid.coarse_shape, float64, fraction 0-1
    """
    w = np.asarray(water, dtype=np.float64)
    rows = grid.fine_to_coarse_rows()
    cols = grid.fine_to_coarse_cols()
    nr, nc = grid.coarse_shape
    idx = (rows[:, None] * nc + cols[None, :]).ravel()
    total = np.bincount(idx, weights=w.ravel(), minlength=nr * nc)
    count = np.bincount(idx, minlength=nr * nc)
    return (total / np.maximum(count, 1)).reshape(nr, nc)


# ------------------------------------------------------------------ pieces of the world
def _water(grid: GridSpec, seed: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(sea, lake) masks: the south-east sea with a ragged shore and one small inland lake."""
    rng = component_rng(seed, "statics", "water")
    west, south, east, north = grid.bbox
    lat, lon = grid.lat, grid.lon
    u = (east - lon)[None, :]  # degrees west of the east edge
    v = (lat - south)[:, None]  # degrees north of the south edge
    dist = (u**4 + v**4) ** 0.25  # rounded square around the south-east corner
    ragged = 0.03 * smooth_field(lat, lon, 5.0, rng) + 0.012 * smooth_field(lat, lon, 1.5, rng)
    crow = grid.fine_to_coarse_rows()[:, None]
    ccol = grid.fine_to_coarse_cols()[None, :]
    nr, nc = grid.coarse_shape
    block = (crow >= nr - 2) & (ccol >= nc - 2)  # the corner's 2 x 2 coarse cells: fully water
    radius = _SEA_RADIUS_DEG
    for _ in range(12):
        sea = block | (dist < radius + ragged)
        frac = coarse_water_fraction(grid, sea)
        if ((frac > 0.5) & (frac < 1.0)).any():
            break
        radius += 0.01  # push the shore out until it cuts a coarse cell leaving it mostly water
    lake = _lake(grid, sea, rng)
    return sea, lake


def _lake(grid: GridSpec, sea: npt.NDArray[np.bool_], rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Five fine cells of water inside one all-land coarse cell of the eastern plain, away from the sea."""
    lake = np.zeros(grid.shape, dtype=bool)
    frac = coarse_water_fraction(grid, sea)
    nr, nc = grid.coarse_shape
    wet = frac > 0
    near2 = ndimage.binary_dilation(wet, structure=np.ones((5, 5), dtype=bool))
    near1 = ndimage.binary_dilation(wet, structure=np.ones((3, 3), dtype=bool))
    interior = [(r, c) for r in range(1, nr - 1) for c in range(1, nc - 1)]
    # preference: eastern plain 2 cells from the sea; any interior cell not touching it; any dry cell
    cand = [(r, c) for r, c in interior if c >= nc // 2 and not near2[r, c]]
    cand = cand or [(r, c) for r, c in interior if not near1[r, c]]
    cand = cand or [(r, c) for r in range(nr) for c in range(nc) if not near1[r, c]]
    if not cand:
        return lake
    r, c = cand[int(rng.integers(len(cand)))]
    rows = np.flatnonzero(grid.fine_to_coarse_rows() == r)
    cols = np.flatnonzero(grid.fine_to_coarse_cols() == c)
    if rows.size < 6 or cols.size < 6:
        return lake
    r0 = rows[int(rng.integers(2, rows.size - 3))]
    c0 = cols[int(rng.integers(2, cols.size - 3))]
    lake[r0 : r0 + 2, c0 : c0 + 2] = True  # a 2 x 2 block plus one cell: 5 fine cells
    lake[r0 + 2, c0 + int(rng.integers(2))] = True
    return lake


def _saxton_rawls_porosity(sand_frac: FloatArray, clay_frac: FloatArray, om_pct: FloatArray) -> FloatArray:
    """Saturated water content (m3/m3) of Saxton & Rawls (2006), eq. 2-5, no density adjustment.

    ``sand_frac``, ``clay_frac`` are weight fractions (0-1), ``om_pct`` organic matter (% weight).
    """
    s, c, om = sand_frac, clay_frac, om_pct
    t33t = -0.251 * s + 0.195 * c + 0.011 * om + 0.006 * s * om - 0.027 * c * om + 0.452 * s * c + 0.299
    t33 = t33t + (1.283 * t33t**2 - 0.374 * t33t - 0.015)
    ts33t = 0.278 * s + 0.034 * c + 0.022 * om - 0.018 * s * om - 0.027 * c * om - 0.584 * s * c + 0.078
    ts33 = ts33t + (0.636 * ts33t - 0.107)
    return t33 + ts33 - 0.097 * s + 0.043


def _relief(grid: GridSpec, seed: int) -> tuple[FloatArray, FloatArray]:
    """(elevation in m, mountain weight 0-1) on every fine cell, water included."""
    rng = component_rng(seed, "statics", "elevation")
    west, _, east, _ = grid.bbox
    lat, lon = grid.lat, grid.lon
    x = ((lon - west) / (east - west))[None, :]
    front = 0.32 + 0.05 * smooth_field(lat, lon, 25.0, rng)
    mountain = special.expit((front - x) / 0.07)
    big = smooth_field(lat, lon, 12.0, rng)
    small = smooth_field(lat, lon, 3.0, rng)
    elevation = 25.0 + 45.0 * (1.0 - x) + mountain * (650.0 + 230.0 * big + 110.0 * small) + (1.0 - mountain) * 6.0 * small
    return np.maximum(elevation, 2.0), mountain


def _landcover(grid: GridSpec, elevation: FloatArray, water: npt.NDArray[np.bool_], seed: int) -> npt.NDArray[np.uint8]:
    rng = component_rng(seed, "statics", "landcover")
    lat, lon = grid.lat, grid.lon
    bumpy = elevation + 40.0 * smooth_field(lat, lon, 4.0, rng)
    urban = smooth_field(lat, lon, 1.5, rng) > 1.75
    grass_patch = smooth_field(lat, lon, 2.5, rng) > 1.6
    shrub = smooth_field(lat, lon, 3.0, rng)
    forest = smooth_field(lat, lon, 4.0, rng)
    lc = np.full(grid.shape, CROPLANDS, dtype=np.uint8)
    lc[grass_patch] = GRASSLANDS
    lc[urban] = URBAN
    foothills = (bumpy >= 150.0) & (bumpy < 500.0)
    lc[foothills] = np.where(shrub[foothills] > 0.0, WOODY_SAVANNAS, GRASSLANDS)
    valley = foothills & (bumpy < 250.0) & (forest > 0.6)
    lc[valley] = CROPLANDS
    mountains = bumpy >= 500.0
    lc[mountains] = np.where(forest[mountains] > -0.3, MIXED_FOREST, WOODY_SAVANNAS)
    lc[water] = cv.WATER_CLASS
    return lc


def _soils(grid: GridSpec, mountain: FloatArray, seed: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """(sand %, silt %, clay %, porosity m3/m3, rock fragments %) on every fine cell."""
    rng = component_rng(seed, "statics", "soil")
    lat, lon = grid.lat, grid.lon
    f_sand, f_silt, f_clay = (smooth_field(lat, lon, 10.0, rng) for _ in range(3))
    w_sand = np.exp(np.log(25.0) + 0.6 * mountain + 0.25 * f_sand)
    w_silt = np.exp(np.log(53.0) - 0.4 * mountain + 0.2 * f_silt)
    w_clay = np.exp(np.log(22.0) - 0.3 * mountain + 0.25 * f_clay)
    total = w_sand + w_silt + w_clay
    sand = np.round(100.0 * w_sand / total, 1)
    clay = np.round(100.0 * w_clay / total, 1)
    silt = 100.0 - sand - clay
    om = np.clip(1.2 + 1.5 * mountain + 0.3 * smooth_field(lat, lon, 8.0, rng), 0.3, 5.0)
    porosity = np.clip(_saxton_rawls_porosity(sand / 100.0, clay / 100.0, om), 0.35, 0.55)
    rock = np.clip(3.0 + 30.0 * mountain + 2.0 * smooth_field(lat, lon, 6.0, rng) * (1.0 + 3.0 * mountain), 0.5, 60.0)
    return sand, silt, clay, porosity, rock


def _climate(grid: GridSpec, elevation: FloatArray, seed: int) -> npt.NDArray[np.uint8]:
    rng = component_rng(seed, "statics", "climate")
    z = elevation + 60.0 * smooth_field(grid.lat, grid.lon, 8.0, rng)
    return np.where(z < 250.0, KOPPEN_DWA, np.where(z < 700.0, KOPPEN_BSK, KOPPEN_DWB)).astype(np.uint8)


# ------------------------------------------------------------------ public API
def make_statics(grid: GridSpec, seed: int) -> xr.Dataset:
    """Static 1 km covariates of the synthetic world (see the module docstring).

    Parameters
    ----------
    grid : GridSpec
        Fine grid of the region.
    seed : int
        World seed; the same seed and grid give identical layers.

    Returns
    -------
    xarray.Dataset
        Dims ``(lat, lon)`` with coordinates ``grid.lat``, ``grid.lon``
        (degrees) and variables

        - ``elevation`` (m, float32), ``sand``, ``silt``, ``clay`` (% weight,
          float32, summing to 100), ``porosity`` (m3/m3, float32, 0.35-0.55),
          ``bulk_density`` (g/cm3, float32, ``(1 - porosity) * 2.65``),
          ``rock_fragment`` (% volume, float32): NaN on water;
        - ``landcover`` (uint8, IGBP class, 17 on water);
        - ``climate_zone`` (uint8, Koppen-Geiger code, 0 on water);
        - ``land`` (bool, ``landcover != 17``).
    """
    elevation, mountain = _relief(grid, seed)
    sea, lake = _water(grid, seed)
    water = sea | lake
    landcover = _landcover(grid, elevation, water, seed)
    sand, silt, clay, porosity, rock = _soils(grid, mountain, seed)
    climate = _climate(grid, elevation, seed)
    climate[water] = CLIMATE_NODATA
    bulk = (1.0 - porosity) * _PARTICLE_DENSITY

    def masked(a: FloatArray) -> npt.NDArray[np.float32]:
        out = a.astype(np.float32)
        out[water] = np.nan
        return out

    dims = (cv.LAT, cv.LON)
    data: dict[str, Any] = {
        "elevation": masked(elevation),
        "landcover": landcover,
        "sand": masked(sand),
        "silt": masked(silt),
        "clay": masked(clay),
        "porosity": masked(porosity),
        "bulk_density": masked(bulk),
        "rock_fragment": masked(rock),
        "climate_zone": climate,
    }
    ds = xr.Dataset(
        {name: (dims, data[name], {"units": cv.STATIC_VARS[name], "long_name": STATIC_LONG_NAMES[name]}) for name in cv.STATIC_VARS},
        coords={
            cv.LAT: (cv.LAT, grid.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            cv.LON: (cv.LON, grid.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={
            "title": "smci_dask synthetic world: static 1 km layers",
            "seed": int(seed),
            "bbox": list(grid.bbox),
            "crs": "EPSG:4326",
        },
    )
    ds["landcover"].attrs.update(flag_values=list(IGBP_NAMES), flag_meanings=" ".join(n.replace(" ", "_") for n in IGBP_NAMES.values()))
    codes = [KOPPEN_BSK, KOPPEN_DWA, KOPPEN_DWB]
    ds["climate_zone"].attrs.update(flag_values=codes, flag_meanings=" ".join(cv.KOPPEN_CLASSES[c] for c in codes))
    ds["land"] = (dims, landcover != cv.WATER_CLASS, {"long_name": "Land mask (landcover != 17)", "units": "1"})
    return ds


def _nodata(name: str, dtype: np.dtype[Any]) -> float:
    if name == "landcover":
        return LANDCOVER_NODATA
    if name == "climate_zone":
        return CLIMATE_NODATA
    if np.issubdtype(dtype, np.floating):
        return float("nan")
    raise ValueError(f"no nodata value for static layer {name!r} of dtype {dtype}")


def geotiff_profile(grid: GridSpec, dtype: str | np.dtype[Any], nodata: float | None, *, crs: CRS | None = None) -> dict[str, Any]:
    """A rasterio profile for a single-band, deflate-compressed, tiled GeoTIFF on ``grid``.

    Parameters
    ----------
    grid : GridSpec
        Geographic fine grid (EPSG:4326 unless ``crs``).
    dtype : str or numpy dtype
    nodata : float or None
        Band nodata value (NaN allowed for float bands).
    crs : rasterio.crs.CRS, optional

    Returns
    -------
    dict
        Keyword arguments for ``rasterio.open(path, "w", **profile)``.
    """
    dt = np.dtype(dtype)
    return {
        "driver": "GTiff",
        "height": grid.nrows,
        "width": grid.ncols,
        "count": 1,
        "dtype": dt.name,
        "crs": crs or CRS.from_epsg(4326),
        "transform": Affine(*grid.transform),
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 3 if np.issubdtype(dt, np.floating) else 2,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }


def write_static_geotiffs(ds: xr.Dataset, store: Store, relpath_dir: str) -> list[str]:
    """Write one GeoTIFF per static layer (``<name>.tif``) below ``relpath_dir``.

    Each file is single-band, EPSG:4326, with the transform of the dataset's
    grid, deflate-compressed and tiled (256 x 256), with nodata NaN (float
    layers), 255 (land cover) or 0 (climate zone), and GDAL metadata tags
    ``units``, ``long_name`` and ``description`` (also set as the band's unit
    and description). Files are written to a local temporary file and copied
    with :meth:`Store.put_file`, so any store (local, memory, S3) works.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`make_statics` (``land`` is derived from ``landcover`` and
        not written).
    store : Store
    relpath_dir : str
        Folder below the store, e.g. ``"raw/static"``.

    Returns
    -------
    list of str
        Paths of the written files, relative to the store.
    """
    grid = grid_from_dataset(ds)
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="smci-static-") as tmp:
        for name in cv.STATIC_VARS:
            if name not in ds:
                continue
            arr = np.asarray(ds[name].values)
            if arr.dtype == np.bool_:
                arr = arr.astype(np.uint8)
            nodata = _nodata(name, arr.dtype)
            local = os.path.join(tmp, f"{name}.tif")
            units = str(ds[name].attrs.get("units", cv.STATIC_VARS[name]))
            long_name = str(ds[name].attrs.get("long_name", STATIC_LONG_NAMES.get(name, name)))
            with rasterio.open(local, "w", **geotiff_profile(grid, arr.dtype, nodata)) as dst:
                dst.write(arr, 1)
                dst.update_tags(units=units, long_name=long_name, description=long_name, variable=name, source="smci_dask synthetic world")
                dst.update_tags(1, units=units, long_name=long_name)
                dst.set_band_description(1, name)
                dst.set_band_unit(1, units)
            rel = f"{relpath_dir.rstrip('/')}/{name}.tif" if relpath_dir else f"{name}.tif"
            store.put_file(local, rel)
            written.append(rel)
    return written
