"""Static 1 km layers: GeoTIFFs of any CRS and resolution -> ``covariates/static`` and its 0.1 degree aggregates.

Reading (:func:`read_static_rasters`)
-------------------------------------
One single-band GeoTIFF per variable of :data:`conventions.STATIC_VARS`
(elevation m, landcover IGBP class, sand/silt/clay %, porosity m3 m-3,
bulk_density g cm-3, rock_fragment %, climate_zone Koppen code). A file's
variable is its ``variable`` metadata tag, else its name (``sand.tif``);
``{variable: path}`` names files that are called otherwise. A folder (local
or any fsspec URL) or a glob is expanded to its ``.tif``/``.tiff`` files.
A file that holds no known variable, a variable given twice and a missing
variable are :class:`~smci_dask.errors.InputError` (listing what is missing).

Onto the 1 km grid
------------------
* A geographic (EPSG:4326) raster with 30 arc-second pixels on the grid's
  cell edges is *cut*, not resampled: values are copied exactly (it may
  cover more than the region).
* Any other raster is reprojected with ``rasterio.warp.reproject`` (GDAL),
  reading only the source window around the region. The method depends on
  the source's pixel size: a source with at least 2 pixels per 1 km cell
  (by area) is *finer* and is aggregated (continuous layers: ``average``
  over the source pixels, weighted by overlap; classes: ``mode``); a source
  of about the grid's size or coarser is interpolated (continuous:
  ``bilinear``; classes: ``nearest``). Source nodata never enters a value.
* Every 1 km cell must lie inside the raster: a raster that does not cover
  the region is an InputError naming the file and the number of cells it
  misses.

Units
-----
A file's units are its band unit, else its band's or its dataset's
``units`` tag. Spelling variants are accepted (``m3/m3`` = ``m3 m-3``,
``g/cm3`` = ``g cm-3``, ``percent`` = ``%``). Known other units are
converted and the conversion recorded in the variable's ``converted_from``
attribute: porosity in ``%`` (x 0.01); bulk density in ``kg m-3``
(x 0.001) or ``cg cm-3`` (SoilGrids, x 0.01); sand/silt/clay in ``g kg-1``
(SoilGrids, x 0.1); rock fragments in ``cm3 dm-3`` (SoilGrids, x 0.1);
elevation in ``km`` (x 1000). Any other unit is an InputError naming the
file, the variable, the found and expected units and the fix. A file
without units is accepted, but every layer's values must lie in a plausible
range (e.g. porosity 0-1 m3 m-3): porosity of 35-55 without units is
reported as "looks like %". Class layers must be dimensionless
(``1`` or no units).

Layers in memory and in the store
---------------------------------
Continuous layers are float32 with NaN where the source has no data;
``landcover`` is uint8 (IGBP 1-17, 255 = no data) and ``climate_zone``
uint8 (Koppen code, 0 = no class / water), both stored as raw codes (no
``_FillValue`` masking; the code is in the ``nodata`` attribute), and
``land`` (bool) is :func:`smci_dask.grid.land_mask_from_landcover`.

0.1 degree aggregates (:func:`static_coarse`)
---------------------------------------------
For the 9 km product, each ERA5-Land cell of the grid's coarse grid
(centre +- 0.05 degree, i.e. its true footprint: the 6 fine rows/columns
at the region's south/east edge that belong to a coarse cell outside the
grid enter no aggregate) gets: the mean of each continuous layer over its
*land* fine cells, the mode of each class layer over its land fine cells
(ties: the smallest code), ``land_fraction`` (land fine cells / fine cells
with a land-cover class) and ``land`` (``land_fraction >= 0.5``, ERA5-Land's
own ``lsm >= 0.5`` rule). A coarse cell without land fine cells has NaN
means, ``landcover`` 17 (water; 255 if it has no class at all) and
``climate_zone`` 0. The aggregates live in their own store group
``covariates/static_coarse`` with the *same variable names* on dims
``(lat, lon)`` at the coarse cell centres (like ``covariates/era5land``),
so the 9 km inference reads them exactly as the 1 km one reads
``covariates/static``.

Writing (:func:`write_static`)
------------------------------
The group is written whole (metadata and data, ``complete`` attribute
false), then ``complete: true`` last; a reader (:func:`open_static`)
refuses a group that is not complete. Writing the same layers again changes nothing
(the stored arrays are compared first and nothing is written when they are
equal); different layers replace the group.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
import xarray as xr
from rasterio.windows import Window

from smci_dask import conventions as cv
from smci_dask.covariates.era5land import units_match
from smci_dask.covariates.rasters import (
    RasterGeometry,
    choose_method,
    expand_paths,
    open_raster,
    raster_to_grid,
)
from smci_dask.errors import GridError, InputError, StoreError
from smci_dask.grid.landmask import land_mask_from_landcover
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store, open_zarr, write_zarr, zarr_exists

PathsOrDir = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]]
LayerKind = Literal["continuous", "classes"]
Method = Literal["auto", "nearest", "bilinear", "average", "mode"]

#: Store groups written by :func:`write_static`.
STATIC_RELPATH = "covariates/static"
STATIC_COARSE_RELPATH = "covariates/static_coarse"
#: Root attribute set true after every array of a static group is written.
COMPLETE_ATTR = "complete"
#: Cells per chunk along lat and lon (1 km: 512 x 512, the inference tile of DESIGN.md; 1 MB of float32). Kept by
#: benchmarks/bench_stores.py: 1024 halves map and station reads from S3 but makes every inference task read 4 MB
#: per layer for its 1 MB; 256 is 2-3x slower everywhere (see benchmarks/README.md).
SPACE_CHUNK = 512

#: Class layers (uint8 codes) and their no-data codes.
CLASS_NODATA: dict[str, int] = {"landcover": 255, "climate_zone": 0}
CLASS_VARS = tuple(CLASS_NODATA)
CONTINUOUS_VARS = tuple(v for v in cv.STATIC_VARS if v not in CLASS_NODATA)

#: Plausible value ranges (after unit conversion); values outside mean a wrong unit or a corrupt file.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "elevation": (-500.0, 9000.0),
    "landcover": (0, 255),
    "sand": (0.0, 100.0),
    "silt": (0.0, 100.0),
    "clay": (0.0, 100.0),
    "porosity": (0.0, 1.0),
    "bulk_density": (0.0, 3.0),
    "rock_fragment": (0.0, 100.0),
    "climate_zone": (0, 30),
}

#: Other units a static layer may come in, with the factor to its :data:`conventions.STATIC_VARS` unit.
UNIT_CONVERSIONS: dict[str, dict[str, float]] = {
    "elevation": {"km": 1000.0},
    "sand": {"g kg-1": 0.1},
    "silt": {"g kg-1": 0.1},
    "clay": {"g kg-1": 0.1},
    "porosity": {"%": 0.01, "1": 1.0, "cm3 cm-3": 1.0},
    "bulk_density": {"kg m-3": 0.001, "cg cm-3": 0.01, "kg dm-3": 1.0, "t m-3": 1.0},
    "rock_fragment": {"cm3 dm-3": 0.1},
}
_DIMENSIONLESS = {"", "1", "-", "none", "dimensionless", "class", "classes", "code"}
_PERCENT = {"percent", "pct", "% weight", "% vol", "% volume", "%vol", "%wt"}

#: Long names of the layers (one table, in conventions).
LONG_NAMES = cv.STATIC_LONG_NAMES


# ================================================================== static layers
@dataclass(frozen=True)
class StaticWriteReport:
    """What :func:`write_static` (or :func:`ingest_static`) did.

    ``layers``: variables written (or found unchanged); ``land_cells``: land
    1 km cells; ``coarse_land_cells``: 0.1 degree cells with ``land``;
    ``unchanged``: the store already held these layers and nothing was
    written; ``replaced``: different layers were replaced; ``relpaths``: the
    fine and coarse groups.
    """

    layers: list[str]
    shape: tuple[int, int]
    coarse_shape: tuple[int, int]
    land_cells: int
    coarse_land_cells: int
    unchanged: bool
    replaced: bool
    relpaths: tuple[str, str]
    methods: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the CLI."""
        state = "unchanged (already in the store)" if self.unchanged else ("replaced" if self.replaced else "written")
        return (
            f"static: {len(self.layers)} layers on {self.shape[0]} x {self.shape[1]} cells ({self.land_cells} land), "
            f"0.1 degree aggregates {self.coarse_shape[0]} x {self.coarse_shape[1]} ({self.coarse_land_cells} land); "
            f"{state} -> {self.relpaths[0]}, {self.relpaths[1]}"
        )


def _norm_unit(units: str) -> str:
    u = units.strip()
    return "%" if u.lower() in _PERCENT else u


def _same_unit(found: str, expected: str) -> bool:
    f, e = _norm_unit(found), _norm_unit(expected)
    if f.lower() in _DIMENSIONLESS and e.lower() in _DIMENSIONLESS:
        return True
    if f == "%" or e == "%":
        return f == e
    return units_match(f, e)


def _unit_factor(name: str, found: str | None, path: str) -> tuple[float, str | None]:
    """(factor to the expected unit, the found unit when converted) of layer ``name``; InputError for a wrong unit."""
    expected = cv.STATIC_VARS[name]
    if found is None or not found.strip():
        return 1.0, None
    if _same_unit(found, expected):
        return 1.0, None
    for other, factor in UNIT_CONVERSIONS.get(name, {}).items():
        if _same_unit(found, other):
            return factor, found
    known = UNIT_CONVERSIONS.get(name, {})
    also = f" (or one of {', '.join(repr(k) for k in known)}, converted)" if known else ""
    raise InputError(
        f"static file {path}: variable {name!r} has units {found!r}, expected {expected!r}{also}; "
        f"convert the layer to {expected!r} and set its units tag, or fix the tag if the values are already in {expected!r}"
    )


def _file_units(src: rasterio.DatasetReader) -> str | None:
    unit = src.units[0] if src.units else None
    if unit:
        return str(unit)
    for tags in (src.tags(1), src.tags()):
        if "units" in tags:
            return str(tags["units"])
    return None


def _identify(path: str, storage_options: dict[str, Any] | None) -> str | None:
    with open_raster(path, storage_options, "static") as src:
        tagged = src.tags().get("variable") or src.tags(1).get("variable")
    if tagged in cv.STATIC_VARS:
        return str(tagged)
    stem = posixpath.basename(path.rstrip("/")).split(".")[0].lower()
    return stem if stem in cv.STATIC_VARS else None


def _static_files(paths_or_dir: PathsOrDir, storage_options: dict[str, Any] | None) -> dict[str, str]:
    if isinstance(paths_or_dir, Mapping):
        unknown = sorted(set(map(str, paths_or_dir)) - set(cv.STATIC_VARS))
        if unknown:
            raise InputError(f"static layers {', '.join(unknown)} are not known; the static variables are {', '.join(cv.STATIC_VARS)}")
        return {str(k): expand_paths(v, storage_options, (".tif", ".tiff"), "static")[0] for k, v in paths_or_dir.items()}
    files = expand_paths(paths_or_dir, storage_options, (".tif", ".tiff"), "static")
    found: dict[str, str] = {}
    for path in files:
        name = _identify(path, storage_options)
        if name is None:
            raise InputError(
                f"static file {path}: cannot tell which variable it holds (no 'variable' tag and its name is not one of "
                f"{', '.join(cv.STATIC_VARS)}); rename it <variable>.tif or pass {{variable: path}}"
            )
        if name in found:
            raise InputError(f"static variable {name!r} is given twice: {found[name]} and {path}; keep one")
        found[name] = path
    return found


def _decode_continuous(src: rasterio.DatasetReader, factor: float) -> Callable[[npt.NDArray[Any]], npt.NDArray[np.float32]]:
    nodata = src.nodata
    scale = float(src.scales[0]) if src.scales and src.scales[0] else 1.0
    offset = float(src.offsets[0]) if src.offsets and src.offsets[0] else 0.0

    def decode(raw: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        bad = ~np.isfinite(raw) if np.issubdtype(raw.dtype, np.floating) else np.zeros(raw.shape, dtype=bool)
        if nodata is not None and not np.isnan(nodata):
            bad |= raw == nodata
        values = raw.astype(np.float64) * scale + offset
        if factor != 1.0:
            values = values * factor
        out = values.astype(np.float32)
        out[bad] = np.nan
        return out

    return decode


def _decode_classes(src: rasterio.DatasetReader, name: str, path: str) -> Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]:
    nodata = src.nodata
    ours = CLASS_NODATA[name]

    def decode(raw: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        bad = ~np.isfinite(raw) if np.issubdtype(raw.dtype, np.floating) else np.zeros(raw.shape, dtype=bool)
        if nodata is not None and not np.isnan(nodata):
            bad |= raw == nodata
        vals = np.where(bad, ours, raw)
        if np.issubdtype(vals.dtype, np.floating):
            if not np.allclose(vals, np.round(vals)):
                raise InputError(
                    f"static file {path}: class layer {name!r} holds non-integer values; give class codes (integers), "
                    "resampled by nearest or mode"
                )
            vals = np.round(vals)
        if vals.size and (vals.min() < 0 or vals.max() > 255):
            raise InputError(f"static file {path}: class layer {name!r} holds codes outside 0..255 ({vals.min()}..{vals.max()})")
        return vals.astype(np.uint8)

    return decode


def _read_layer(
    name: str, path: str, grid: GridSpec, storage_options: dict[str, Any] | None
) -> tuple[npt.NDArray[Any], dict[str, Any], str]:
    kind: LayerKind = "classes" if name in CLASS_NODATA else "continuous"
    with open_raster(path, storage_options, "static") as src:
        if src.crs is None:
            raise InputError(f"static file {path}: has no CRS; give it one (e.g. gdal_edit.py -a_srs EPSG:4326)")
        found = _file_units(src)
        attrs: dict[str, Any] = {"units": cv.STATIC_VARS[name], "long_name": LONG_NAMES[name], "source_file": path}
        if kind == "classes":
            if found is not None and not _same_unit(found, "1"):
                raise InputError(
                    f"static file {path}: class layer {name!r} has units {found!r}, expected '1' (class codes); "
                    "is it the right file? Remove the units tag if it holds class codes"
                )
            decode: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] = _decode_classes(src, name, path)
            nodata, dtype = float(CLASS_NODATA[name]), np.uint8
        else:
            factor, converted = _unit_factor(name, found, path)
            if converted is not None:
                attrs["converted_from"] = f"{converted} (x {factor:g})"
            decode = _decode_continuous(src, factor)
            nodata, dtype = float("nan"), np.float32
        geom = RasterGeometry(src.crs, src.transform, src.width, src.height)
        method = choose_method(geom, grid, kind)

        def read_window(r0: int, r1: int, c0: int, c1: int) -> npt.NDArray[Any]:
            return src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))

        values, covered, how = raster_to_grid(geom, read_window, grid, decode=decode, nodata=nodata, dtype=dtype, resampling=method)
    if not covered.all():
        raise InputError(
            f"static file {path}: does not cover the region {grid.bbox}: {int((~covered).sum())} of {covered.size} 1 km cells "
            "lie outside the raster; give a raster that contains the region"
        )
    attrs["resampling"] = how
    _check_plausible(name, values, path, found)
    return values, attrs, how


def _check_plausible(name: str, values: npt.NDArray[Any], path: str, units: str | None) -> None:
    lo, hi = PLAUSIBLE[name]
    if name in CLASS_NODATA:
        v = values[values != CLASS_NODATA[name]]
    else:
        v = values[np.isfinite(values)]
    if not v.size:
        return
    vmin, vmax = float(v.min()), float(v.max())
    if vmin >= lo and vmax <= hi:
        return
    expected = cv.STATIC_VARS[name]
    hint = f"the file's units {units!r} are wrong or the file is corrupt" if units else f"the file has no units tag; set it to {expected!r}"
    if name == "porosity" and vmax > 1.0 and vmax <= 100.0:
        hint = "they look like % (set the units tag to '%' to have them converted, or divide by 100)"
    elif name == "bulk_density" and vmax > 100.0:
        hint = "they look like kg m-3 or cg cm-3 (set the units tag to have them converted)"
    elif name in ("sand", "silt", "clay") and vmax > 100.0:
        hint = "they look like g kg-1 (set the units tag to 'g kg-1' to have them converted)"
    raise InputError(
        f"static file {path}: variable {name!r} has values {vmin:g}..{vmax:g}, outside the plausible {lo:g}..{hi:g} {expected}; {hint}"
    )


def read_static_rasters(
    paths_or_dir: PathsOrDir,
    grid: GridSpec,
    *,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Read the static GeoTIFFs onto the 1 km grid (see the module docstring for the rules).

    Parameters
    ----------
    paths_or_dir : path, URL, glob, list of them, or {variable: path}
        The GeoTIFFs (local or any fsspec URL), or a folder holding
        ``<variable>.tif``.
    grid : GridSpec
        The region's 1 km grid.
    storage_options : dict, optional
        fsspec options for remote files (e.g. ``endpoint_url``).

    Returns
    -------
    xarray.Dataset
        Dims ``(lat, lon)`` (the grid's centres, degrees): elevation (m),
        sand, silt, clay (% weight), porosity (m3 m-3), bulk_density
        (g cm-3), rock_fragment (% volume) as float32 with NaN; landcover
        (uint8 IGBP code, 255 = no data), climate_zone (uint8 Koppen code,
        0 = none); each with ``units``, ``long_name``, ``source_file``,
        ``resampling`` (and ``converted_from`` when converted).

    Raises
    ------
    InputError
        A variable is missing or given twice, a file is unreadable, has no
        CRS, has a wrong unit or implausible values, or does not cover the
        region.
    """
    files = _static_files(paths_or_dir, storage_options)
    missing = [v for v in cv.STATIC_VARS if v not in files]
    if missing:
        have = ", ".join(f"{k} ({posixpath.basename(p)})" for k, p in files.items()) or "none"
        raise InputError(
            f"static layers missing: {', '.join(missing)} (found: {have}); add <variable>.tif files for them or pass {{variable: path}}"
        )
    data: dict[str, tuple[tuple[str, str], npt.NDArray[Any], dict[str, Any]]] = {}
    for name in cv.STATIC_VARS:
        values, attrs, _ = _read_layer(name, files[name], grid, storage_options)
        if name in CLASS_NODATA:
            attrs["nodata"] = CLASS_NODATA[name]
        data[name] = ((cv.LAT, cv.LON), values, attrs)
    return xr.Dataset(
        data,
        coords=_coords(grid.lat, grid.lon, "1 km"),
        attrs={
            "title": "Static covariates on the 1 km grid",
            "crs": "EPSG:4326",
            "bbox": list(grid.bbox),
            "source_files": ", ".join(files[v] for v in cv.STATIC_VARS),
        },
    )


def _coords(lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64], what: str) -> dict[str, Any]:
    return {
        cv.LAT: (cv.LAT, lat, {"units": "degrees_north", "standard_name": "latitude", "long_name": f"latitude of the {what} cell centre"}),
        cv.LON: (cv.LON, lon, {"units": "degrees_east", "standard_name": "longitude", "long_name": f"longitude of the {what} cell centre"}),
    }


def grid_of(ds: xr.Dataset) -> GridSpec:
    """The fine grid whose cell centres are ``ds.lat`` / ``ds.lon`` (InputError if they are not)."""
    lat = np.asarray(ds[cv.LAT].values, dtype=np.float64)
    lon = np.asarray(ds[cv.LON].values, dtype=np.float64)
    if lat.size < 1 or lon.size < 1:
        raise InputError("static layers have no cells")
    h = 0.5 / cv.FINE_PER_DEGREE
    try:
        grid: GridSpec | None = GridSpec.from_bbox((lon[0] - h, lat[-1] - h, lon[-1] + h, lat[0] + h))
    except GridError:
        grid = None
    if (
        grid is None
        or grid.shape != (lat.size, lon.size)
        or not (np.allclose(grid.lat, lat, atol=1e-7) and np.allclose(grid.lon, lon, atol=1e-7))
    ):
        raise InputError(
            "static layers: lat/lon are not the cell centres of a north-up 30 arc-second grid; read them with read_static_rasters"
        )
    return grid


# ------------------------------------------------------------------ 0.1 degree aggregates
def _footprint_index(grid: GridSpec) -> npt.NDArray[np.int64]:
    """Flat coarse index of each fine cell in its coarse cell's footprint (centre +- 0.05 degree), -1 outside every one."""
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    half = 0.5 / cv.COARSE_PER_DEGREE + 1e-9
    in_r = np.abs(grid.lat - grid.coarse_lat[rows]) < half
    in_c = np.abs(grid.lon - grid.coarse_lon[cols]) < half
    idx = rows[:, None] * grid.coarse_shape[1] + cols[None, :]
    return np.where(in_r[:, None] & in_c[None, :], idx, -1)


def static_coarse(ds: xr.Dataset, grid: GridSpec | None = None) -> xr.Dataset:
    """0.1 degree aggregates of the static layers (mean over land fine cells, mode for classes; see the module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`read_static_rasters` (units as :data:`conventions.STATIC_VARS`).
    grid : GridSpec, optional
        The fine grid of ``ds`` (default: from its coordinates).

    Returns
    -------
    xarray.Dataset
        Dims ``(lat, lon)`` at ``grid.coarse_lat`` x ``grid.coarse_lon``
        (degrees): the continuous layers (float32, same units, NaN without
        land), landcover and climate_zone (uint8 codes), ``land_fraction``
        (float32, 0-1) and ``land`` (bool, land_fraction >= 0.5).
    """
    grid = grid or grid_of(ds)
    nr, nc = grid.coarse_shape
    n = nr * nc
    idx = _footprint_index(grid).ravel()
    lc = np.asarray(ds["landcover"].values).ravel()
    land = land_mask_from_landcover(lc)
    inside = idx >= 0
    sel = inside & land
    n_land = np.bincount(idx[sel], minlength=n)
    n_class = np.bincount(idx[inside & (lc != CLASS_NODATA["landcover"]) & (lc != 0)], minlength=n)
    n_water = np.bincount(idx[inside & (lc == cv.WATER_CLASS)], minlength=n)
    out: dict[str, Any] = {}
    dims = (cv.LAT, cv.LON)
    for name in cv.STATIC_VARS:
        values = np.asarray(ds[name].values).ravel()
        attrs = {k: v for k, v in ds[name].attrs.items() if k not in ("source_file", "resampling")}
        if name in CLASS_NODATA:
            mode = _mode(idx[sel], values[sel], n)
            if name == "landcover":
                mode = np.where(n_land > 0, mode, np.where(n_water > 0, cv.WATER_CLASS, CLASS_NODATA[name]))
            else:
                mode = np.where(n_land > 0, mode, CLASS_NODATA[name])
            attrs["cell_methods"] = "area: mode where land (0.1 degree cell)"
            out[name] = (dims, mode.astype(np.uint8).reshape(nr, nc), attrs)
        else:
            ok = sel & np.isfinite(values)
            total = np.bincount(idx[ok], weights=values[ok].astype(np.float64), minlength=n)
            count = np.bincount(idx[ok], minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            attrs["cell_methods"] = "area: mean where land (0.1 degree cell)"
            out[name] = (dims, mean.astype(np.float32).reshape(nr, nc), attrs)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n_class > 0, n_land / np.maximum(n_class, 1), 0.0)
    out["land_fraction"] = (
        dims,
        frac.astype(np.float32).reshape(nr, nc),
        {"units": "1", "long_name": "fraction of the 0.1 degree cell's 1 km cells that are land"},
    )
    out["land"] = (dims, (frac >= 0.5).reshape(nr, nc), {"long_name": "land (land_fraction >= 0.5)", "units": "1"})
    return xr.Dataset(
        out,
        coords=_coords(grid.coarse_lat, grid.coarse_lon, "0.1 degree"),
        attrs={
            "title": "Static covariates aggregated to the 0.1 degree (ERA5-Land) grid",
            "crs": "EPSG:4326",
            "bbox": list(grid.bbox),
            "aggregation": "mean of the 1 km land cells in each cell's footprint (centre +- 0.05 degree); mode for classes",
        },
    )


def _mode(idx: npt.NDArray[np.int64], codes: npt.NDArray[Any], n: int) -> npt.NDArray[np.int64]:
    """Most frequent code per group (ties: the smallest code); 0 where a group is empty."""
    classes = np.unique(codes)
    if not classes.size:
        return np.zeros(n, dtype=np.int64)
    counts = np.stack([np.bincount(idx[codes == c], minlength=n) for c in classes])
    best = classes[np.argmax(counts, axis=0)]
    return np.where(counts.sum(axis=0) > 0, best, 0).astype(np.int64)


# ------------------------------------------------------------------ the store
def _encoding(ds: xr.Dataset, chunk: int) -> dict[str, Any]:
    ny, nx = ds.sizes[cv.LAT], ds.sizes[cv.LON]
    chunks = (min(chunk, ny), min(chunk, nx))
    enc: dict[str, Any] = {}
    for name in ds.data_vars:
        if ds[name].dtype == np.float32:
            enc[name] = {"chunks": chunks, "_FillValue": np.float32(np.nan), "dtype": "float32"}
        else:
            enc[name] = {"chunks": chunks, "_FillValue": None}
    return enc


def _same_as_store(ds: xr.Dataset, store: Store, relpath: str) -> bool:
    if not zarr_exists(store, relpath):
        return False
    current = open_zarr(store, relpath)
    if not current.attrs.get(COMPLETE_ATTR) or set(current.data_vars) != set(ds.data_vars):
        return False
    for dim in (cv.LAT, cv.LON):
        if current.sizes[dim] != ds.sizes[dim] or not np.array_equal(current[dim].values, ds[dim].values):
            return False
    return all(
        current[name].dtype == ds[name].dtype
        and np.array_equal(current[name].values, ds[name].values, equal_nan=ds[name].dtype.kind == "f")
        for name in ds.data_vars
    )


def _write_group(ds: xr.Dataset, store: Store, relpath: str, chunk: int) -> None:
    """The whole group (metadata and data, ``complete`` false), then ``complete: true`` last.

    A static group is one 2-D field per variable written by one process, so
    its metadata and chunks go in one call; the ``complete`` attribute is
    what readers trust.
    """
    out = ds.copy()
    out.attrs = {**ds.attrs, COMPLETE_ATTR: False}
    write_zarr(out, store, relpath, mode="w", encoding=_encoding(ds, chunk))
    write_zarr(xr.Dataset(attrs={**ds.attrs, COMPLETE_ATTR: True}), store, relpath, mode="a")


def write_static(
    ds: xr.Dataset,
    store: Store,
    relpath: str = STATIC_RELPATH,
    *,
    coarse_relpath: str | None = None,
    grid: GridSpec | None = None,
    space_chunk: int = SPACE_CHUNK,
) -> StaticWriteReport:
    """Write the static layers, their ``land`` mask and their 0.1 degree aggregates.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`read_static_rasters`.
    store : Store
        Any store (local, ``memory://``, ``s3://``).
    relpath : str
        The 1 km group (dims ``lat, lon``), default ``covariates/static``.
    coarse_relpath : str, optional
        The 0.1 degree group (default ``<relpath>_coarse``, i.e.
        ``covariates/static_coarse``), see :func:`static_coarse`.
    grid : GridSpec, optional
        The fine grid (default: from the coordinates).
    space_chunk : int
        Cells per chunk along lat and lon at 1 km (the coarse group is one chunk).

    Returns
    -------
    StaticWriteReport

    Raises
    ------
    InputError
        A layer is missing or not on ``(lat, lon)``; nothing is written.
    """
    grid = grid or grid_of(ds)
    missing = [v for v in cv.STATIC_VARS if v not in ds.data_vars]
    if missing:
        raise InputError(f"static layers missing: {', '.join(missing)}; read all of them with read_static_rasters")
    for name in cv.STATIC_VARS:
        if ds[name].dims != (cv.LAT, cv.LON) or ds[name].shape != grid.shape:
            raise InputError(f"static layer {name!r} has dims {ds[name].dims} {ds[name].shape}; expected (lat, lon) {grid.shape}")
    if space_chunk < 1:
        raise InputError(f"space_chunk {space_chunk} must be at least 1 cell")
    coarse_relpath = coarse_relpath or f"{relpath.rstrip('/')}_coarse"
    fine = ds[list(cv.STATIC_VARS)].copy()
    for name in CLASS_VARS:
        fine[name] = fine[name].astype(np.uint8)
    for name in CONTINUOUS_VARS:
        fine[name] = fine[name].astype(np.float32)
    fine["land"] = (
        (cv.LAT, cv.LON),
        land_mask_from_landcover(fine["landcover"].values),
        {"long_name": "land (landcover is a class other than water 17 and no-data 0/255)", "units": "1"},
    )
    fine = fine.assign_coords(_coords(grid.lat, grid.lon, "1 km"))
    fine.attrs = {**{k: v for k, v in ds.attrs.items()}, "title": "Static covariates on the 1 km grid", "bbox": list(grid.bbox)}
    coarse = static_coarse(fine, grid)
    existed = zarr_exists(store, relpath) or zarr_exists(store, coarse_relpath)
    unchanged = _same_as_store(fine, store, relpath) and _same_as_store(coarse, store, coarse_relpath)
    if not unchanged:
        _write_group(fine, store, relpath, space_chunk)
        _write_group(coarse, store, coarse_relpath, max(coarse.sizes[cv.LAT], coarse.sizes[cv.LON]))
    return StaticWriteReport(
        layers=list(cv.STATIC_VARS),
        shape=grid.shape,
        coarse_shape=grid.coarse_shape,
        land_cells=int(fine["land"].values.sum()),
        coarse_land_cells=int(coarse["land"].values.sum()),
        unchanged=unchanged,
        replaced=existed and not unchanged,
        relpaths=(relpath, coarse_relpath),
        methods={name: str(ds[name].attrs.get("resampling", "")) for name in cv.STATIC_VARS},
    )


def _open_complete(store: Store, relpath: str) -> xr.Dataset:
    ds = open_zarr(store, relpath)
    if not ds.attrs.get(COMPLETE_ATTR):
        raise StoreError(
            f"store {store.url_of(relpath)}: the static layers are not completely written (an ingest was interrupted); "
            "run the static ingest again"
        )
    return ds


def open_static(store: Store, relpath: str = STATIC_RELPATH) -> xr.Dataset:
    """Open the 1 km static layers lazily (dims ``lat, lon``; units as :data:`conventions.STATIC_VARS`, plus bool ``land``)."""
    ds = _open_complete(store, relpath)
    return ds[[*cv.STATIC_VARS, "land"]]


def open_static_coarse(store: Store, relpath: str = STATIC_COARSE_RELPATH) -> xr.Dataset:
    """Open the 0.1 degree static aggregates lazily (see :func:`static_coarse`)."""
    ds = _open_complete(store, relpath)
    return ds[[*cv.STATIC_VARS, "land_fraction", "land"]]


def ingest_static(
    paths_or_dir: PathsOrDir,
    store: Store,
    grid: GridSpec,
    *,
    relpath: str = STATIC_RELPATH,
    coarse_relpath: str | None = None,
    storage_options: dict[str, Any] | None = None,
    space_chunk: int = SPACE_CHUNK,
) -> StaticWriteReport:
    """Read the static GeoTIFFs onto ``grid`` and write them (:func:`read_static_rasters` + :func:`write_static`).

    ``storage_options`` are for the input files; the store carries its own.
    Nothing is written when any input is bad.
    """
    ds = read_static_rasters(paths_or_dir, grid, storage_options=storage_options)
    return write_static(ds, store, relpath, coarse_relpath=coarse_relpath, grid=grid, space_chunk=space_chunk)
