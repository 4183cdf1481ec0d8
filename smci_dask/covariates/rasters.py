"""Raster helpers shared by the covariate readers: file lists from paths/globs/URLs, opening, grid alignment, resampling.

Used by :mod:`smci_dask.covariates.static` and :mod:`smci_dask.covariates.lai`.
"""

from __future__ import annotations

import glob as _glob
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject, transform, transform_bounds

from smci_dask import conventions as cv
from smci_dask.errors import InputError, StoreError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store

PathsOrDir = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]]
LayerKind = Literal["continuous", "classes"]
Method = Literal["auto", "nearest", "bilinear", "average", "mode"]

_GLOB_CHARS = re.compile(r"[*?\[]")
_GEOGRAPHIC = CRS.from_epsg(4326)
#: A source with at least this many pixels per 1 km cell (by area) is "finer" and aggregated, not interpolated.
FINER_RATIO = 2.0
_ALIGN_TOL = 1e-6  # in fine cells


# ================================================================== files and URLs (shared with covariates.lai)
def is_remote(path: str) -> bool:
    """True for an fsspec URL other than ``file://`` (read through :class:`~smci_dask.io.Store`)."""
    return "://" in path and not path.startswith("file://")


def split_url(url: str, storage_options: dict[str, Any] | None) -> tuple[Store, str]:
    """(the store of a file's folder, the file's name)."""
    parent, _, base = url.rstrip("/").rpartition("/")
    return Store.from_url(parent or ".", storage_options), base


def expand_paths(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    storage_options: dict[str, Any] | None,
    suffixes: Sequence[str],
    what: str,
) -> list[str]:
    """Files named by ``paths``: files, folders (their files ending in ``suffixes``) and globs, local or any fsspec URL.

    Returns sorted, de-duplicated paths (local: absolute paths; remote: URLs).
    Raises InputError for a path that does not exist, a glob without matches
    or a folder without such files.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise InputError(f"no {what} file given; pass files, a folder or a glob")
    out: list[str] = []
    for item in items:
        text = os.fspath(item)
        if text.startswith("file://"):
            text = text.removeprefix("file://")
        if _GLOB_CHARS.search(text):
            out.extend(_glob_files(text, storage_options, what))
            continue
        if not is_remote(text):
            local = os.path.abspath(os.path.expanduser(text))
            if os.path.isdir(local):
                found = sorted(os.path.join(local, n) for n in os.listdir(local) if n.lower().endswith(tuple(suffixes)))
                if not found:
                    raise InputError(f"{what} folder {text}: holds no {'/'.join(suffixes)} file")
                out.extend(found)
            elif os.path.isfile(local):
                out.append(local)
            else:
                raise InputError(f"{what} file {text}: no such file or folder; check the path")
            continue
        folder = Store.from_url(text, storage_options)
        entries = [n for n in folder.ls() if n.lower().endswith(tuple(suffixes))]
        if entries:
            out.extend(folder.url_of(n) for n in entries)
            continue
        store, base = split_url(text, storage_options)
        if not store.exists(base):
            raise InputError(f"{what} file {text}: no such file or folder in the store; check the URL")
        out.append(text)
    return sorted(set(out))


def _glob_files(pattern: str, storage_options: dict[str, Any] | None, what: str) -> list[str]:
    if not is_remote(pattern):
        found = sorted(os.path.abspath(p) for p in _glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
    else:
        proto, rest = pattern.split("://", 1)
        parts = rest.split("/")
        k = next(i for i, p in enumerate(parts) if _GLOB_CHARS.search(p))
        store = Store.from_url(f"{proto}://{'/'.join(parts[:k])}", storage_options)
        found = [store.url_of(p) for p in store.glob("/".join(parts[k:]))]
    if not found:
        raise InputError(f"{what} files {pattern}: no file matches the glob; check the pattern")
    return found


@contextmanager
def open_raster(path: str, storage_options: dict[str, Any] | None, what: str) -> Iterator[rasterio.DatasetReader]:
    """Open a raster (local path or fsspec URL) with rasterio; InputError naming the file when it cannot be read."""
    try:
        if is_remote(path):
            store, base = split_url(path, storage_options)
            with store.open(base, "rb") as f, rasterio.open(f) as src:
                yield src
        else:
            with rasterio.open(path) as src:
                yield src
    except RasterioError as exc:
        raise InputError(
            f"{what} file {path}: cannot read it as a raster ({exc}); it may be truncated or corrupt: download it again"
        ) from None
    except StoreError as exc:
        raise InputError(f"{what} file {path}: {exc}") from None


# ================================================================== raster -> grid (shared with covariates.lai)
@dataclass(frozen=True)
class RasterGeometry:
    """Where a raster's pixels lie: CRS, affine transform (pixel corners), size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        xs = [t.c, t.c + t.a * self.width]
        ys = [t.f, t.f + t.e * self.height]
        return (min(xs), min(ys), max(xs), max(ys))


def _aligned_offset(geom: RasterGeometry, grid: GridSpec) -> tuple[int, int] | None:
    """(row, col) of the grid's first cell in a north-up EPSG:4326 raster with 30 arc-second pixels on the grid's edges."""
    t = geom.transform
    if geom.crs is None or geom.crs.to_epsg() != 4326:
        return None
    if abs(t.b) > 1e-12 or abs(t.d) > 1e-12:
        return None
    if abs(t.a * cv.FINE_PER_DEGREE - 1.0) > _ALIGN_TOL or abs(t.e * cv.FINE_PER_DEGREE + 1.0) > _ALIGN_TOL:
        return None
    col = grid.west - t.c * cv.FINE_PER_DEGREE
    row = t.f * cv.FINE_PER_DEGREE - grid.north
    if abs(col - round(col)) > 1e-4 or abs(row - round(row)) > 1e-4:
        return None
    return int(round(row)), int(round(col))


def cells_per_source_pixel(geom: RasterGeometry, grid: GridSpec) -> float:
    """Source pixels per 1 km cell, by area, at the region's centre (> 1: the source is finer than the grid).

    The source pixel at the centre is mapped to longitude/latitude through
    its two edge vectors (a projection such as MODIS sinusoidal shears and
    stretches pixels far from its central meridian, so the raster's bounding
    box says nothing about its pixel size).
    """
    res = 1.0 / cv.FINE_PER_DEGREE
    w, s, e, n = grid.bbox
    lon_c, lat_c = (w + e) / 2.0, (s + n) / 2.0
    xs, ys = transform(_GEOGRAPHIC, geom.crs, [lon_c], [lat_c])
    col, row = ~geom.transform @ (xs[0], ys[0])
    pts = [(col, row), (col + 1.0, row), (col, row + 1.0)]
    px = [geom.transform @ p for p in pts]
    lons, lats = transform(geom.crs, _GEOGRAPHIC, [p[0] for p in px], [p[1] for p in px])
    u = (lons[1] - lons[0], lats[1] - lats[0])
    v = (lons[2] - lons[0], lats[2] - lats[0])
    area = abs(u[0] * v[1] - u[1] * v[0])
    return float(res * res / area) if area > 0 else 1.0


def choose_method(geom: RasterGeometry, grid: GridSpec, kind: LayerKind, method: Method = "auto") -> Resampling:
    """The GDAL resampling of a source onto the grid (see the module docstring)."""
    if method != "auto":
        return Resampling[method]
    finer = cells_per_source_pixel(geom, grid) >= FINER_RATIO
    if kind == "classes":
        return Resampling.mode if finer else Resampling.nearest
    return Resampling.average if finer else Resampling.bilinear


def _source_window(geom: RasterGeometry, grid: GridSpec, pad: int = 2) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1) of the source pixels around the region (plus ``pad``), None if they do not overlap."""
    left, bottom, right, top = transform_bounds(_GEOGRAPHIC, geom.crs, *grid.bbox, densify_pts=101)
    inv = ~geom.transform
    xs, ys = [], []
    for x, y in ((left, bottom), (left, top), (right, bottom), (right, top)):
        c, r = inv @ (x, y)
        xs.append(c)
        ys.append(r)
    c0 = max(int(np.floor(min(xs))) - pad, 0)
    c1 = min(int(np.ceil(max(xs))) + pad, geom.width)
    r0 = max(int(np.floor(min(ys))) - pad, 0)
    r1 = min(int(np.ceil(max(ys))) + pad, geom.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


WindowReader = Callable[[int, int, int, int], npt.NDArray[Any]]


def raster_to_grid(
    geom: RasterGeometry,
    read_window: WindowReader,
    grid: GridSpec,
    *,
    decode: Callable[[npt.NDArray[Any]], npt.NDArray[Any]],
    nodata: float,
    dtype: npt.DTypeLike,
    resampling: Resampling,
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_], str]:
    """A raster's values on the 1 km grid.

    Parameters
    ----------
    geom : RasterGeometry
    read_window : callable
        ``read_window(row0, row1, col0, col1)`` -> raw pixel values of that window.
    grid : GridSpec
    decode : callable
        Raw values -> values of ``dtype`` with ``nodata`` where invalid (NaN for floats).
    nodata : float
        No-data value of the decoded values and of the result.
    dtype : numpy dtype
    resampling : rasterio Resampling
        Used unless the raster is aligned with the grid (then values are copied).

    Returns
    -------
    values : ndarray, grid.shape, ``dtype``
    covered : ndarray of bool, grid.shape
        True on the cells that lie inside the raster.
    how : str
        ``"copied"`` or the resampling's name.
    """
    out = np.full(grid.shape, nodata, dtype=dtype)
    covered = np.zeros(grid.shape, dtype=bool)
    offset = _aligned_offset(geom, grid)
    if offset is not None:
        row, col = offset
        r0, r1 = max(row, 0), min(row + grid.nrows, geom.height)
        c0, c1 = max(col, 0), min(col + grid.ncols, geom.width)
        if r0 < r1 and c0 < c1:
            block = decode(read_window(r0, r1, c0, c1))
            out[r0 - row : r1 - row, c0 - col : c1 - col] = block
            covered[r0 - row : r1 - row, c0 - col : c1 - col] = True
        return out, covered, "copied"
    win = _source_window(geom, grid)
    if win is None:
        return out, covered, resampling.name
    r0, r1, c0, c1 = win
    src = decode(read_window(r0, r1, c0, c1))
    src_transform = geom.transform @ Affine.translation(c0, r0)
    dst_transform = Affine(*grid.transform)
    reproject(
        source=src,
        destination=out,
        src_transform=src_transform,
        src_crs=geom.crs,
        src_nodata=nodata,
        dst_transform=dst_transform,
        dst_crs=_GEOGRAPHIC,
        dst_nodata=nodata,
        resampling=resampling,
    )
    # footprint: the cells whose centre falls inside the source window that was read
    ones = np.ones(src.shape, dtype=np.uint8)
    foot = np.zeros(grid.shape, dtype=np.uint8)
    reproject(
        source=ones,
        destination=foot,
        src_transform=src_transform,
        src_crs=geom.crs,
        src_nodata=0,
        dst_transform=dst_transform,
        dst_crs=_GEOGRAPHIC,
        dst_nodata=0,
        resampling=Resampling.nearest,
    )
    # the window holds every source pixel near the region that exists, so a cell outside its footprint lies outside the raster
    return out, foot.astype(bool), resampling.name
