"""MODIS 8-day LAI: composites on the 1 km grid at their 8-day step, and daily LAI by linear interpolation.

Reading (:func:`read_lai_files`)
--------------------------------
8-day LAI rasters (MOD15A2H/MCD15A2H ``Lai_500m`` or alike) as GeoTIFF, in
any CRS: geographic (EPSG:4326) or MODIS sinusoidal, any pixel size; or as
simple NetCDF: a variable ``Lai_500m``/``Lai``/``lai``/``LAI`` on regular
1-D ``lat``/``lon`` (or ``latitude``/``longitude``) coordinates, or on
``y``/``x`` with a CF ``grid_mapping`` variable holding the CRS as WKT
(``crs_wkt``, as GDAL and rioxarray write it), optionally along a ``time``
dimension of composite start dates. MODIS HDF4 files
cannot be read (GDAL has no HDF4 driver here); convert them with
``gdal_translate HDF4_EOS:EOS_GRID:"<file>":MOD_Grid_MOD15A2H:Lai_500m out.tif``.

* **Composite date**: the start day of the 8-day window, from a MODIS-style
  name (``...A<YYYY><DDD>...``, e.g. ``MOD15A2H.A2019001.h26v05.061...``),
  else the ``RANGEBEGINNINGDATE`` tag, else (NetCDF) the ``time``
  coordinate. A name and a tag that disagree are an InputError. The date
  must be a MODIS composite start (day of year 1, 9, ..., 361).
* **Decoding**: raw values ``x`` become ``x * scale + offset`` m2 m-2 with
  the band scale/offset (GeoTIFF) or the ``scale_factor``/``add_offset``
  tags or attributes (default 1 and 0). Invalid: the nodata / ``_FillValue``
  value, values outside ``valid_range`` when given, and, for 8-bit data
  without a ``valid_range``, the MODIS special values 249-255 (249 unknown,
  250 urban, 251 permanent wetland, 252 snow/ice, 253 barren, 254 water,
  255 fill): all become NaN. A decoded value above 10 m2 m-2 (MODIS's
  maximum) or below 0 means a missing or wrong scale factor: InputError.
  Units, when tagged, must be m2 m-2 (``m^2/m^2`` etc.) or dimensionless.
* **Onto the grid**: an EPSG:4326 raster with 30 arc-second pixels on the
  grid's cell edges is cut, values copied exactly. Any other raster is
  reprojected with ``rasterio.warp.reproject`` (GDAL), decoded values with
  NaN as nodata. ``resampling="auto"`` (default) *averages* a source that is
  at least twice as fine as the 1 km cells by area (MODIS's 500 m product:
  about 3 pixels per cell in China) and takes the *nearest* pixel otherwise
  (1 km sinusoidal: a pixel per cell, no mixing of neighbouring values).
  ``"nearest"``, ``"average"`` or ``"bilinear"`` force a method.
* **Tiles**: several files with the same date (MODIS tiles) are mosaicked;
  where they overlap the first file in name order gives the value. The
  files of a date must together cover every cell of the region, else
  InputError (naming the date, the files and the missing cell count).
* **Precision**: values are rounded to the stored precision, 0.1 m2 m-2
  (MODIS's own), so what :func:`read_lai_files` returns is exactly what
  :func:`open_lai` gives back.

Reading is lazy: one dask task per composite date reads (only the window of
each file around the region) and reprojects; file errors surface when the
data are computed (:func:`write_lai` computes them), as InputError.

The store ``covariates/lai`` (:func:`write_lai`, :func:`open_lai`)
-------------------------------------------------------------------
Zarr, ``lai`` on dims ``(time8, lat, lon)``, stored as **uint8** with
``scale_factor`` 0.1 and ``_FillValue`` 255 (MODIS's encoding: 1 byte per
cell, 1.5 GB a year for China before compression), decoded to float32
m2 m-2 with NaN. ``time8`` is the MODIS calendar: the 46 composite start
dates of every year from the first year ingested on (extended by whole
years as later composites arrive), one composite per chunk along ``time8``
and ``space_chunk`` cells (default 1024: 1 MB chunks) along lat and lon. So a composite
is written whole and alone, composites may arrive in any order, and a
composite the store already holds is skipped (re-ingesting changes
nothing). The root attribute ``complete_composites`` (ISO start dates) is
updated only after the composites' chunks are written; :func:`open_lai`
selects those composites.

Daily LAI (:func:`lai_for_days`)
--------------------------------
SMCI1.0 interpolates the 8-day LAI linearly to days. A composite stands for
the *mid-point of its window*: days ``start .. start + L - 1`` with ``L = 8``,
or fewer for the last composite of a year (MODIS restarts on 1 January:
day of year 361 covers 5 days, 6 in leap years); its centre is
``start + (L - 1) / 2`` days (day 3.5 of an 8-day window). A day's value is
the linear interpolation between the composites whose centres bracket it;
before the first and after the last centre it is the nearest composite's.
Where one of the two composites is NaN at a cell (cloud, fill) the other
one's value is used; where both are NaN the day is NaN. Composite gaps in
the store are bridged the same way (interpolation between the nearest
available composites). The function is lazy and blockwise: on a
dask-backed ``lai`` it only adds index/weight operations per block; on a
NumPy-backed block (inside an inference task) it computes at once.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import Resampling

from smci_dask import conventions as cv
from smci_dask.covariates.era5land import units_match
from smci_dask.covariates.rasters import (
    RasterGeometry,
    choose_method,
    expand_paths,
    is_remote,
    open_raster,
    raster_to_grid,
    split_url,
)
from smci_dask.errors import InputError, StoreError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store, open_zarr, write_zarr, zarr_exists

LaiResampling = Literal["auto", "nearest", "average", "bilinear"]
LaiFormat = Literal["geotiff", "netcdf"]

#: Name of the LAI variable (files read and store).
LAI_VAR = "lai"
#: Store group of the 8-day LAI.
LAI_RELPATH = "covariates/lai"
#: Root attribute listing the composites the store holds completely (ISO start dates).
COMPLETE_ATTR = "complete_composites"
#: MODIS composite step, days, and composites per year (day of year 1, 9, ..., 361).
COMPOSITE_DAYS = 8
COMPOSITES_PER_YEAR = 46
#: Cells per chunk along lat and lon (one composite per chunk along time8): 1024 x 1024 uint8 = 1 MB. Chosen by
#: benchmarks/bench_stores.py: from S3, 512 x 512 chunks (256 KB) made maps 1.7x, station extraction 2.6x and
#: inference-tile reads 1.3x slower (more requests; see benchmarks/README.md). A multiple of the 512 tile.
SPACE_CHUNK = 1024
#: Largest valid LAI, m2 m-2 (MODIS valid range 0-100 x 0.1).
LAI_MAX = cv.LAI_VALID_MAX * cv.LAI_SCALE
#: First MODIS special value of 8-bit LAI (249-255 are classes or fill, never LAI).
LAI_SPECIAL_MIN = 249

GEOTIFF_SUFFIXES = (".tif", ".tiff")
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5")
_NC_VARS = ("Lai_500m", "Lai", "lai", "LAI")
_NC_LAT = ("lat", "latitude", "y")
_NC_LON = ("lon", "longitude", "x")
_DATE_IN_NAME = re.compile(r"(?:^|[._\-])A(\d{4})(\d{3})(?=[._\-]|$)")
_DATE_TAGS = ("RANGEBEGINNINGDATE", "RangeBeginningDate")
_DIMENSIONLESS = {"", "1", "-", "none", "dimensionless"}


# ------------------------------------------------------------------ the MODIS calendar
def composite_starts(year: int) -> pd.DatetimeIndex:
    """The 46 composite start dates of ``year`` (day of year 1, 9, ..., 361)."""
    first = pd.Timestamp(year=int(year), month=1, day=1)
    return pd.DatetimeIndex(first + pd.to_timedelta(np.arange(COMPOSITES_PER_YEAR) * COMPOSITE_DAYS, unit="D"))


def _check_start(date: pd.Timestamp, where: str) -> pd.Timestamp:
    d = pd.Timestamp(date)
    if d != d.normalize() or (d.day_of_year - 1) % COMPOSITE_DAYS != 0:
        raise InputError(
            f"{where}: {d:%Y-%m-%d} (day of year {d.day_of_year}) is not the start of a MODIS 8-day composite "
            "(day of year 1, 9, 17, ..., 361); give the composite's first day"
        )
    return d


def composite_window_days(starts: pd.DatetimeIndex) -> npt.NDArray[np.int64]:
    """Days each composite covers: 8, or 5/6 for the last one of a year (MODIS restarts on 1 January)."""
    starts = pd.DatetimeIndex(starts)
    next_year = pd.DatetimeIndex([pd.Timestamp(year=y + 1, month=1, day=1) for y in starts.year])
    return np.minimum(COMPOSITE_DAYS, (next_year - starts).days.to_numpy()).astype(np.int64)


def composite_centres(starts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Mid-point of each composite's window, ``start + (L - 1) / 2`` days (12:00 between days 3 and 4 of 8)."""
    starts = pd.DatetimeIndex(starts)
    half = (composite_window_days(starts) - 1) / 2.0
    return starts + pd.to_timedelta(half, unit="D")


# ------------------------------------------------------------------ finding files and dates
@dataclass(frozen=True)
class LaiPiece:
    """One composite in one file: the file, its format, the composite date and (NetCDF) its time index."""

    path: str
    fmt: LaiFormat
    date: pd.Timestamp
    index: int | None = None


def _format(path: str) -> LaiFormat:
    low = path.lower()
    if low.endswith(GEOTIFF_SUFFIXES):
        return "geotiff"
    if low.endswith(NETCDF_SUFFIXES):
        return "netcdf"
    hint = ""
    if low.endswith(".hdf"):
        hint = (
            "; MODIS HDF4 cannot be read here: convert it with "
            'gdal_translate HDF4_EOS:EOS_GRID:"<file>":MOD_Grid_MOD15A2H:Lai_500m <file>.tif'
        )
    raise InputError(f"LAI file {path}: neither GeoTIFF ({', '.join(GEOTIFF_SUFFIXES)}) nor NetCDF ({', '.join(NETCDF_SUFFIXES)}){hint}")


def date_from_name(path: str) -> pd.Timestamp | None:
    """Composite start from a MODIS-style name (``A<YYYY><DDD>``), None if the name has none."""
    m = _DATE_IN_NAME.search(posixpath.basename(path.rstrip("/")))
    if m is None:
        return None
    year, doy = int(m[1]), int(m[2])
    if not 1 <= doy <= 366:
        raise InputError(f"LAI file {path}: day of year {doy} in its name is not a day; MODIS names hold A<year><day of year 001-366>")
    return pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(days=doy - 1)


def _date_from_tags(tags: dict[str, str], path: str) -> pd.Timestamp | None:
    for key in _DATE_TAGS:
        if key in tags:
            try:
                return pd.Timestamp(str(tags[key]).strip()).normalize()
            except ValueError:
                raise InputError(
                    f"LAI file {path}: tag {key}={tags[key]!r} is not a date; fix the tag or name the file like MODIS"
                ) from None
    return None


def _geotiff_pieces(path: str, storage_options: dict[str, Any] | None) -> list[LaiPiece]:
    named = date_from_name(path)
    if named is not None and is_remote(path):  # the task checks the tags; no download just for the date
        return [LaiPiece(path, "geotiff", _check_start(named, f"LAI file {path}"))]
    with open_raster(path, storage_options, "LAI") as src:
        tagged = _date_from_tags({**src.tags(), **src.tags(1)}, path)
    if named is not None and tagged is not None and named != tagged:
        raise InputError(
            f"LAI file {path}: its name says composite {named:%Y-%m-%d}, its RANGEBEGINNINGDATE tag {tagged:%Y-%m-%d}; "
            "rename the file or fix the tag"
        )
    date = named if named is not None else tagged
    if date is None:
        raise InputError(
            f"LAI file {path}: no composite date: neither a MODIS-style name (...A<YYYY><DDD>...) nor a RANGEBEGINNINGDATE tag; "
            "rename it like MOD15A2H.A2019001.Lai_500m.tif"
        )
    return [LaiPiece(path, "geotiff", _check_start(date, f"LAI file {path}"))]


class _LocalCopy:
    """A local file with the content of ``path`` (the file itself when local); removed on close."""

    def __init__(self, path: str, storage_options: dict[str, Any] | None) -> None:
        self._tmp: str | None = None
        if not is_remote(path):
            self.path = path.removeprefix("file://")
            return
        store, base = split_url(path, storage_options)
        self._tmp = tempfile.mkdtemp(prefix="smci-lai-")
        try:
            self.path = str(store.get_file(base, os.path.join(self._tmp, base)))
        except StoreError as exc:
            self.close()
            raise InputError(f"LAI file {path}: {exc}") from None

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_netcdf(path: str, local: str) -> xr.Dataset:
    try:
        return xr.open_dataset(local, mask_and_scale=False, decode_times=True, decode_timedelta=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear line
        raise InputError(
            f"LAI file {path}: cannot read it as NetCDF ({type(exc).__name__}: {exc}); it may be truncated or corrupt: download it again"
        ) from None


def _nc_names(ds: xr.Dataset, path: str) -> tuple[str, str, str, str | None]:
    """(variable, lat dim, lon dim, time dim or None) of a NetCDF LAI file."""
    var = next((v for v in _NC_VARS if v in ds.data_vars), None)
    if var is None:
        raise InputError(
            f"LAI file {path}: no LAI variable (looked for {', '.join(_NC_VARS)}; it has {', '.join(map(str, ds.data_vars)) or 'none'}); "
            "rename the variable"
        )
    dims = ds[var].dims
    lat = next((d for d in _NC_LAT if d in dims), None)
    lon = next((d for d in _NC_LON if d in dims), None)
    if lat is None or lon is None:
        raise InputError(f"LAI file {path}: variable {var!r} has dims {dims}; expected (time,) lat, lon")
    rest = [d for d in dims if d not in (lat, lon)]
    if len(rest) > 1 or (rest and ds.sizes[rest[0]] > 1 and rest[0] != "time"):
        raise InputError(f"LAI file {path}: variable {var!r} has dims {dims}; expected (time,) lat, lon")
    return var, str(lat), str(lon), (str(rest[0]) if rest else None)


def _netcdf_pieces(path: str, storage_options: dict[str, Any] | None) -> list[LaiPiece]:
    with _LocalCopy(path, storage_options) as local:
        ds = _open_netcdf(path, local)
        try:
            var, _, _, tdim = _nc_names(ds, path)
            named = date_from_name(path)
            if tdim is not None and tdim in ds.coords and np.issubdtype(ds[tdim].dtype, np.datetime64):
                dates = [pd.Timestamp(t).normalize() for t in ds[tdim].values]
                if named is not None and len(dates) == 1 and dates[0] != named:
                    raise InputError(
                        f"LAI file {path}: its name says composite {named:%Y-%m-%d}, its time coordinate {dates[0]:%Y-%m-%d}; "
                        "rename the file or fix the time"
                    )
                return [LaiPiece(path, "netcdf", _check_start(d, f"LAI file {path} time step {i}"), i) for i, d in enumerate(dates)]
            if tdim is not None and ds.sizes[tdim] > 1:
                raise InputError(f"LAI file {path}: {ds.sizes[tdim]} time steps but no date-time {tdim!r} coordinate; give the start dates")
            tagged = _date_from_tags({**ds.attrs, **ds[var].attrs}, path)
            date = named if named is not None else tagged
            if date is None:
                raise InputError(
                    f"LAI file {path}: no composite date: no time coordinate, MODIS-style name or RANGEBEGINNINGDATE attribute"
                )
            return [LaiPiece(path, "netcdf", _check_start(date, f"LAI file {path}"), 0 if tdim else None)]
        finally:
            ds.close()


def find_lai_pieces(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    storage_options: dict[str, Any] | None = None,
) -> list[LaiPiece]:
    """Every composite of the LAI files named by ``paths`` (files, folders, globs; local or URLs), by date then file."""
    files = expand_paths(paths, storage_options, GEOTIFF_SUFFIXES + NETCDF_SUFFIXES, "LAI")
    pieces: list[LaiPiece] = []
    for path in files:
        fmt = _format(path)
        pieces.extend(_geotiff_pieces(path, storage_options) if fmt == "geotiff" else _netcdf_pieces(path, storage_options))
    return sorted(pieces, key=lambda p: (p.date, p.path, p.index or 0))


# ------------------------------------------------------------------ decoding and loading one composite
def _numbers(value: Any, what: str, path: str) -> npt.NDArray[np.float64]:
    """A tag or attribute as numbers ("0.1", "0, 100", 0.1, [0, 100])."""
    try:
        return np.ravel(np.asarray(value if not isinstance(value, str) else value.replace(",", " ").split(), dtype=np.float64))
    except (TypeError, ValueError):
        raise InputError(f"LAI file {path}: {what} {value!r} is not a number; fix the tag or attribute") from None


def _number(value: Any, default: float, what: str, path: str) -> float:
    arr = _numbers(value, what, path) if value is not None else np.array([])
    return float(arr[0]) if arr.size else default


def _valid_range(value: Any, path: str) -> tuple[float, float] | None:
    arr = _numbers(value, "valid_range", path) if value is not None else np.array([])
    return (float(arr[0]), float(arr[1])) if arr.size >= 2 else None


@dataclass(frozen=True)
class _Encoding:
    """How raw values become LAI (m2 m-2)."""

    scale: float
    offset: float
    nodata: float | None
    valid: tuple[float, float] | None
    special_8bit: bool

    def decode(self, raw: npt.NDArray[Any], path: str) -> npt.NDArray[np.float32]:
        bad = ~np.isfinite(raw) if np.issubdtype(raw.dtype, np.floating) else np.zeros(raw.shape, dtype=bool)
        if self.nodata is not None and np.isfinite(self.nodata):
            bad |= raw == self.nodata
        if self.valid is not None:
            with np.errstate(invalid="ignore"):
                bad |= (raw < self.valid[0]) | (raw > self.valid[1])
        elif self.special_8bit:
            bad |= raw >= LAI_SPECIAL_MIN
        values = raw.astype(np.float64) * self.scale + self.offset
        values[bad] = np.nan
        ok = values[~bad]
        if ok.size and (ok.max() > LAI_MAX + 1e-6 or ok.min() < -1e-6):
            raise InputError(
                f"LAI file {path}: values {ok.min():g}..{ok.max():g} m2 m-2 after scaling by {self.scale:g} lie outside MODIS's "
                f"0..{LAI_MAX:g}; the scale factor is missing or wrong (MOD15A2H Lai_500m: 0.1): set the band scale or a "
                "scale_factor tag"
            )
        return values.astype(np.float32)


def _check_units(units: str | None, path: str) -> None:
    if units is None or units.strip().lower() in _DIMENSIONLESS:
        return
    if not units_match(units, "m2 m-2"):
        raise InputError(
            f"LAI file {path}: units {units!r}, expected 'm2 m-2' (leaf area per ground area, MODIS 'm^2/m^2'); "
            "is it a LAI file? Fix the units tag if the values are LAI"
        )


def _load_geotiff(
    piece: LaiPiece, grid: GridSpec, resampling: LaiResampling, storage_options: dict[str, Any] | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    path = piece.path
    with open_raster(path, storage_options, "LAI") as src:
        if src.crs is None:
            raise InputError(f"LAI file {path}: has no CRS; MODIS sinusoidal or EPSG:4326 LAI carries one: download it again")
        tags = {**src.tags(), **src.tags(1)}
        tagged = _date_from_tags(tags, path)
        if tagged is not None and tagged != piece.date:
            raise InputError(
                f"LAI file {path}: its name says composite {piece.date:%Y-%m-%d}, its RANGEBEGINNINGDATE tag {tagged:%Y-%m-%d}; "
                "rename the file or fix the tag"
            )
        _check_units((src.units[0] if src.units and src.units[0] else None) or tags.get("units"), path)
        band_scale = float(src.scales[0]) if src.scales and src.scales[0] not in (None, 0.0) else 1.0
        band_offset = float(src.offsets[0]) if src.offsets and src.offsets[0] is not None else 0.0
        enc = _Encoding(
            scale=band_scale if band_scale != 1.0 else _number(tags.get("scale_factor"), 1.0, "scale_factor", path),
            offset=band_offset if band_offset != 0.0 else _number(tags.get("add_offset"), 0.0, "add_offset", path),
            nodata=src.nodata if src.nodata is not None else _number(tags.get("_FillValue"), np.nan, "_FillValue", path),
            valid=_valid_range(tags.get("valid_range"), path),
            special_8bit=src.dtypes[0] == "uint8",
        )
        geom = RasterGeometry(src.crs, src.transform, src.width, src.height)

        def read_window(r0: int, r1: int, c0: int, c1: int) -> npt.NDArray[Any]:
            from rasterio.windows import Window

            return src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))

        return _decode_to_grid(geom, read_window, grid, enc, path, resampling)


def _decode_to_grid(
    geom: RasterGeometry, read_window: Any, grid: GridSpec, enc: Any, path: str, resampling: LaiResampling
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Decode one composite's raw values and bring them onto the 1 km grid (GeoTIFF and NetCDF alike)."""
    values, covered, _ = raster_to_grid(
        geom,
        read_window,
        grid,
        decode=lambda raw: enc.decode(raw, path),
        nodata=np.nan,
        dtype=np.float32,
        resampling=choose_method(geom, grid, "continuous", _method(resampling, geom, grid)),
    )
    return values, covered


def _method(resampling: LaiResampling, geom: RasterGeometry, grid: GridSpec) -> Any:
    if resampling == "auto":
        return "average" if choose_method(geom, grid, "continuous") == Resampling.average else "nearest"
    return resampling


def _load_netcdf(
    piece: LaiPiece, grid: GridSpec, resampling: LaiResampling, storage_options: dict[str, Any] | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    path = piece.path
    with _LocalCopy(path, storage_options) as local:
        ds = _open_netcdf(path, local)
        try:
            var, lat, lon, tdim = _nc_names(ds, path)
            da = ds[var]
            if tdim is not None:
                da = da.isel({tdim: piece.index or 0})
            da = da.transpose(lat, lon)
            attrs = da.attrs
            _check_units(attrs.get("units"), path)
            y = np.asarray(ds[lat].values, dtype=np.float64)
            x = np.asarray(ds[lon].values, dtype=np.float64)
            geom = _nc_geometry(ds, da, x, y, lat, path)
            flip = y.size > 1 and y[1] > y[0]
            raw_all = np.asarray(da.values)
            if flip:
                raw_all = raw_all[::-1]
            enc = _Encoding(
                scale=_number(attrs.get("scale_factor"), 1.0, "scale_factor", path),
                offset=_number(attrs.get("add_offset"), 0.0, "add_offset", path),
                nodata=_number(attrs.get("_FillValue", attrs.get("missing_value")), np.nan, "_FillValue", path),
                valid=_valid_range(attrs.get("valid_range"), path),
                special_8bit=raw_all.dtype == np.uint8,
            )
        finally:
            ds.close()

    def read_window(r0: int, r1: int, c0: int, c1: int) -> npt.NDArray[Any]:
        return raw_all[r0:r1, c0:c1]

    return _decode_to_grid(geom, read_window, grid, enc, path, resampling)


def _nc_geometry(
    ds: xr.Dataset, da: xr.DataArray, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], lat: str, path: str
) -> RasterGeometry:
    if x.size < 2 or y.size < 2:
        raise InputError(f"LAI file {path}: needs at least 2 x 2 cells to know its pixel size")
    dx, dy = np.diff(x), np.diff(np.sort(y)[::-1])
    if not (np.allclose(dx, dx[0], rtol=1e-6, atol=1e-9) and np.allclose(dy, dy[0], rtol=1e-6, atol=1e-9)):
        raise InputError(f"LAI file {path}: its coordinates are not evenly spaced; give a regular grid")
    crs = CRS.from_epsg(4326)
    if lat == "y":  # projected: the CF grid_mapping variable must carry the CRS as WKT (GDAL and rioxarray write it)
        name = da.attrs.get("grid_mapping") or da.encoding.get("grid_mapping")
        gm = ds[name].attrs if name is not None and name in ds.variables else {}
        wkt = gm.get("crs_wkt") or gm.get("spatial_ref")
        if not wkt:
            raise InputError(
                f"LAI file {path}: x/y coordinates without a grid_mapping variable holding the CRS as WKT (crs_wkt); "
                "add one, or give the file as GeoTIFF or on lat/lon"
            )
        try:
            crs = CRS.from_wkt(str(wkt))
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"LAI file {path}: its grid_mapping WKT is not a CRS ({exc}); fix the file") from None
    a, e = float(dx[0]), float(dy[0])
    north = float(np.max(y))
    transform = Affine(a, 0.0, float(x[0]) - a / 2.0, 0.0, e, north - e / 2.0)
    return RasterGeometry(crs, transform, int(x.size), int(y.size))


def _quantise(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Round to the store's 0.1 m2 m-2 steps, exactly as the store decodes them (uint8 x 0.1 in float64, then float32)."""
    q = np.round(values.astype(np.float64) / cv.LAI_SCALE)
    out = (np.clip(q, 0, cv.LAI_VALID_MAX) * cv.LAI_SCALE).astype(np.float32)
    out[~np.isfinite(values)] = np.nan
    return out


def load_composite(
    pieces: Sequence[LaiPiece],
    grid: GridSpec,
    *,
    resampling: LaiResampling = "auto",
    storage_options: dict[str, Any] | None = None,
) -> npt.NDArray[np.float32]:
    """One composite on the grid (float32 m2 m-2, NaN invalid) from its files (tiles mosaicked, first file first)."""
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    covered = np.zeros(grid.shape, dtype=bool)
    for piece in pieces:
        load = _load_geotiff if piece.fmt == "geotiff" else _load_netcdf
        values, cov = load(piece, grid, resampling, storage_options)
        fill = np.isnan(out) & cov
        out[fill] = values[fill]
        covered |= cov
    if not covered.all():
        names = ", ".join(sorted({p.path for p in pieces}))
        raise InputError(
            f"LAI composite {pieces[0].date:%Y-%m-%d}: the files ({names}) cover only {int(covered.sum())} of {covered.size} 1 km cells "
            f"of the region {grid.bbox}; add the missing MODIS tiles or files that contain the region"
        )
    return _quantise(out)


def read_lai_files(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    grid: GridSpec,
    *,
    storage_options: dict[str, Any] | None = None,
    resampling: LaiResampling = "auto",
) -> xr.Dataset:
    """8-day LAI files on the 1 km grid, lazily (one dask task per composite; see the module docstring).

    Parameters
    ----------
    paths : path, URL, glob, folder, or a list of them
        GeoTIFF or NetCDF LAI files (local or any fsspec URL).
    grid : GridSpec
        The region's 1 km grid.
    storage_options : dict, optional
        fsspec options for remote files.
    resampling : {"auto", "nearest", "average", "bilinear"}
        How non-aligned rasters are brought to the grid (``auto``: average a
        source at least twice as fine as the grid, else nearest).

    Returns
    -------
    xarray.Dataset
        ``lai`` (float32, m2 m-2, NaN where invalid or water, 0.1 steps),
        dims ``(time8, lat, lon)``: ``time8`` the composite start dates
        (sorted), lat/lon the grid's centres (degrees); dask-backed, one chunk
        per composite. ``attrs["source_files"]`` lists the files.

    Raises
    ------
    InputError
        No file, an unreadable name/date, a date that is not a MODIS
        composite start (at once); an unreadable file, wrong units or scale,
        a region not covered (when computed).
    """
    import dask.array as dsa

    pieces = find_lai_pieces(paths, storage_options=storage_options)
    dates = pd.DatetimeIndex(sorted({p.date for p in pieces}))
    blocks = []
    for date in dates:
        these = tuple(p for p in pieces if p.date == date)
        task = dask.delayed(load_composite, pure=True)(these, grid, resampling=resampling, storage_options=storage_options)
        blocks.append(dsa.from_delayed(task, shape=grid.shape, dtype=np.float32)[None])
    data = dsa.concatenate(blocks, axis=0) if blocks else dsa.zeros((0, *grid.shape), dtype=np.float32)
    files = sorted({p.path for p in pieces})
    return xr.Dataset(
        {LAI_VAR: ((cv.TIME8, cv.LAT, cv.LON), data, _lai_attrs(resampling))},
        coords={
            cv.TIME8: (cv.TIME8, dates.values.astype("datetime64[ns]"), {"long_name": "start date of the MODIS 8-day composite"}),
            cv.LAT: (cv.LAT, grid.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            cv.LON: (cv.LON, grid.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": "MODIS 8-day leaf area index on the 1 km grid", "source_files": ", ".join(files), "n_files": len(files)},
    )


def _lai_attrs(resampling: str) -> dict[str, Any]:
    return {
        "units": "m2 m-2",
        "long_name": "Leaf area index, MODIS 8-day composite",
        "standard_name": "leaf_area_index",
        "description": (
            "MODIS 8-day LAI brought to the 1 km grid (aligned EPSG:4326 rasters copied; others reprojected, "
            f"resampling {resampling!r}); MODIS fill and class values 249-255 are NaN; 0.1 m2 m-2 precision"
        ),
    }


# ------------------------------------------------------------------ the store
@dataclass(frozen=True)
class LaiWriteReport:
    """What :func:`write_lai` (or :func:`ingest_lai`) did.

    ``written``: composites written by this call; ``skipped``: composites of
    the input the store already held (left as they were); ``created``:
    whether the store was created; ``files``: input files (ingest only).
    """

    written: list[pd.Timestamp]
    skipped: list[pd.Timestamp]
    created: bool
    relpath: str
    files: int = 0

    def summary(self) -> str:
        """One line for the CLI."""
        span = f" ({self.written[0]:%Y-%m-%d}..{self.written[-1]:%Y-%m-%d})" if self.written else ""
        src = f"{self.files} files, " if self.files else ""
        return (
            f"lai: {src}{len(self.written)} composites written{span}, {len(self.skipped)} already in the store"
            f"{' (store created)' if self.created else ''} -> {self.relpath}"
        )


def complete_composites(store: Store, relpath: str = LAI_RELPATH) -> pd.DatetimeIndex:
    """Start dates of the composites the store holds completely, sorted; empty if there is no store."""
    if not zarr_exists(store, relpath):
        return pd.DatetimeIndex([], dtype="datetime64[ns]", name=cv.TIME8)
    listed = open_zarr(store, relpath).attrs.get(COMPLETE_ATTR, [])
    return pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in listed), dtype="datetime64[ns]", name=cv.TIME8)


def set_complete_composites(store: Store, dates: pd.DatetimeIndex, relpath: str = LAI_RELPATH) -> None:
    """Rewrite the list of complete composites (e.g. without revised ones, so that the next ingest writes them again)."""
    attrs = dict(open_zarr(store, relpath).attrs)
    attrs[COMPLETE_ATTR] = [d.strftime("%Y-%m-%d") for d in pd.DatetimeIndex(dates).sort_values()]
    write_zarr(xr.Dataset(attrs=attrs), store, relpath, mode="a")


def open_lai(store: Store, relpath: str = LAI_RELPATH, *, complete_only: bool = True) -> xr.Dataset:
    """Open the 8-day LAI store lazily.

    Parameters
    ----------
    store : Store
    relpath : str
        Default ``covariates/lai``.
    complete_only : bool
        Keep only the composites listed as complete (the calendar also holds
        composites not ingested yet, as NaN).

    Returns
    -------
    xarray.Dataset
        ``lai`` (float32, m2 m-2, NaN where invalid), dims ``(time8, lat, lon)``.
    """
    ds = open_zarr(store, relpath)
    encoding = dict(ds[LAI_VAR].encoding)
    ds[LAI_VAR] = ds[LAI_VAR].astype(np.float32)  # decoded uint8 x 0.1 comes as float64
    ds[LAI_VAR].encoding = encoding
    if complete_only:
        listed = pd.DatetimeIndex([pd.Timestamp(d) for d in ds.attrs.get(COMPLETE_ATTR, [])], dtype="datetime64[ns]")
        ds = ds.sel({cv.TIME8: listed.sort_values()})
    return ds


def _calendar(first_year: int, last_year: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.concatenate([composite_starts(y).values for y in range(first_year, last_year + 1)]))


def _template(ds: xr.Dataset, times: pd.DatetimeIndex, chunks: tuple[int, int, int]) -> xr.Dataset:
    import dask.array as dsa

    shape = (len(times), ds.sizes[cv.LAT], ds.sizes[cv.LON])
    out = xr.Dataset(coords={cv.TIME8: (cv.TIME8, times.values.astype("datetime64[ns]"), dict(ds[cv.TIME8].attrs))})
    out[LAI_VAR] = ((cv.TIME8, cv.LAT, cv.LON), dsa.full(shape, np.nan, dtype=np.float32, chunks=chunks), dict(ds[LAI_VAR].attrs))
    return out


def _check_input(ds: xr.Dataset) -> pd.DatetimeIndex:
    if LAI_VAR not in ds.data_vars:
        raise InputError(f"LAI data have no {LAI_VAR!r} variable; read the files with read_lai_files")
    if ds[LAI_VAR].dims != (cv.TIME8, cv.LAT, cv.LON):
        raise InputError(f"LAI variable has dims {ds[LAI_VAR].dims}; expected {(cv.TIME8, cv.LAT, cv.LON)}")
    dates = pd.DatetimeIndex(ds[cv.TIME8].values)
    if dates.has_duplicates:
        raise InputError(f"LAI data: composite {dates[dates.duplicated()][0]:%Y-%m-%d} occurs twice; give each composite once")
    for d in dates:
        _check_start(d, "LAI data")
    return dates


def _check_like_store(ds: xr.Dataset, current: xr.Dataset, store: Store, relpath: str) -> None:
    for dim in (cv.LAT, cv.LON):
        a, b = np.asarray(ds[dim].values, dtype=np.float64), np.asarray(current[dim].values, dtype=np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=1e-7):
            raise InputError(
                f"store {store.url_of(relpath)}: the LAI data's {dim} ({a.size} cells, {a.min():g}..{a.max():g}) differ from the "
                f"store's ({b.size} cells, {b.min():g}..{b.max():g}); read the files on the store's grid"
            )


def _write_composite(values: npt.ArrayLike, store: Store, relpath: str, i: int) -> None:
    """Write one composite (float32 m2 m-2, the grid's shape) into calendar position ``i`` (all its chunks)."""
    block = np.asarray(values, dtype=np.float32)[None]
    # no time8 coordinate in the piece: the template holds it, and concurrent tasks must not rewrite its shared chunk
    piece = xr.Dataset({LAI_VAR: ((cv.TIME8, cv.LAT, cv.LON), block)})
    write_zarr(piece, store, relpath, mode="r+", region={cv.TIME8: slice(i, i + 1)})


def write_lai(
    ds: xr.Dataset,
    store: Store,
    relpath: str = LAI_RELPATH,
    *,
    first_year: int | None = None,
    space_chunk: int = SPACE_CHUNK,
) -> LaiWriteReport:
    """Write 8-day LAI composites into the store: template first, a composite at a time, the complete list last.

    Composites the store already lists are skipped; the rest are computed
    (reading their files) and written into their place on the MODIS
    calendar, in any order. The store is created on first use with the
    calendar of the first year of the data and extended by whole years as
    later composites arrive (as a template: coordinates, no data).

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`read_lai_files`: ``lai`` (m2 m-2) on ``(time8, lat, lon)``.
    store : Store
        Any store URL (local, ``memory://``, ``s3://``).
    relpath : str
        Default ``covariates/lai``.
    first_year : int, optional
        First year of the calendar when the store is created (default: the
        data's earliest year); ignored afterwards. Composites before the
        store's first year are refused (Zarr cannot prepend).
    space_chunk : int
        Cells per chunk along lat and lon when the store is created.

    Returns
    -------
    LaiWriteReport

    Raises
    ------
    InputError
        Dates that are not MODIS composite starts or lie before the store's
        first year, a grid that differs from the store's, or a file error
        while computing. A failure leaves the list of complete composites as
        it was.
    """
    dates = _check_input(ds)
    if space_chunk < 1:
        raise InputError(f"space_chunk {space_chunk} must be at least 1 cell")
    created = not zarr_exists(store, relpath)
    if created:
        stored = pd.DatetimeIndex([], dtype="datetime64[ns]")
        first_year = int(first_year) if first_year is not None else (int(dates.min().year) if len(dates) else 0)
        calendar = pd.DatetimeIndex([], dtype="datetime64[ns]")
        ny, nx = ds.sizes[cv.LAT], ds.sizes[cv.LON]
        chunks = (1, min(space_chunk, ny), min(space_chunk, nx))
        attrs: dict[str, Any] = {k: v for k, v in ds.attrs.items() if k not in ("source_files", "n_files")}
    else:
        current = open_zarr(store, relpath)
        _check_like_store(ds, current, store, relpath)
        calendar = pd.DatetimeIndex(current[cv.TIME8].values)
        first_year = int(calendar[0].year)
        stored = complete_composites(store, relpath)
        enc_chunks = current[LAI_VAR].encoding.get("chunks") or (1, current.sizes[cv.LAT], current.sizes[cv.LON])
        chunks = tuple(int(c) for c in enc_chunks)  # type: ignore[assignment]
        attrs = dict(current.attrs)
    if len(dates) and dates.min().year < first_year:
        raise InputError(
            f"store {store.url_of(relpath)}: its calendar starts in {first_year}, the data at {dates.min():%Y-%m-%d}; "
            "ingest into a new store whose first year is early enough (first_year), or ingest the earliest year first"
        )
    new = dates.difference(stored)
    skipped = dates.intersection(stored)
    if not len(new):
        return LaiWriteReport([], list(skipped), False, relpath)

    last_year = int(new.max().year)
    have_last = int(calendar[-1].year) if len(calendar) else first_year - 1
    if created or last_year > have_last:
        times = _calendar(have_last + 1, last_year)
        template = _template(ds, times, chunks)  # type: ignore[arg-type]
        if created:
            template = template.assign_coords({cv.LAT: ds[cv.LAT], cv.LON: ds[cv.LON]})
            template.attrs = {**attrs, COMPLETE_ATTR: []}
            encoding: dict[str, Any] = {
                LAI_VAR: {
                    "chunks": chunks,
                    "dtype": cv.LAI_DTYPE,
                    "scale_factor": cv.LAI_SCALE,
                    "add_offset": 0.0,
                    "_FillValue": cv.LAI_FILL,
                    "fill_value": cv.LAI_FILL,
                },
                cv.TIME8: {"units": f"days since {first_year}-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"},
            }
            write_zarr(template, store, relpath, mode="w-", encoding=encoding, compute=False)
        else:  # an append rewrites the root attributes: give it the current ones, complete list unchanged
            template.attrs = dict(attrs)
            write_zarr(template, store, relpath, mode="a", append_dim=cv.TIME8, compute=False)
        calendar = calendar.append(times) if len(calendar) else times

    # one task per composite computes it (reading its files) and writes its chunks, in parallel, on the workers
    positions = calendar.get_indexer(new)
    lai = ds[LAI_VAR]
    tasks = [
        dask.delayed(_write_composite, pure=False)(lai.sel({cv.TIME8: date}).data, store, relpath, int(i))
        for date, i in zip(new, positions, strict=True)
    ]
    dask.compute(*tasks)
    attrs[COMPLETE_ATTR] = [d.strftime("%Y-%m-%d") for d in stored.union(new).sort_values()]
    write_zarr(xr.Dataset(attrs=attrs), store, relpath, mode="a")
    return LaiWriteReport(list(new.sort_values()), list(skipped), created, relpath)


def ingest_lai(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    store: Store,
    grid: GridSpec,
    *,
    relpath: str = LAI_RELPATH,
    storage_options: dict[str, Any] | None = None,
    resampling: LaiResampling = "auto",
    first_year: int | None = None,
    space_chunk: int = SPACE_CHUNK,
) -> LaiWriteReport:
    """Read LAI files onto ``grid`` and write the new composites (:func:`read_lai_files` + :func:`write_lai`).

    ``storage_options`` are for the input files; the store carries its own.
    Composites the store already holds are not read at all.
    """
    ds = read_lai_files(paths, grid, storage_options=storage_options, resampling=resampling)
    report = write_lai(ds, store, relpath, first_year=first_year, space_chunk=space_chunk)
    return LaiWriteReport(report.written, report.skipped, report.created, relpath, files=int(ds.attrs.get("n_files", 0)))


# ------------------------------------------------------------------ daily LAI
def lai_weights(
    starts: pd.DatetimeIndex, days: pd.DatetimeIndex
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Interpolation ``(i0, i1, w)``: day ``k``'s LAI is ``(1 - w[k]) * lai[i0[k]] + w[k] * lai[i1[k]]``.

    ``starts`` are sorted composite start dates; composites stand at their
    window's mid-point (:func:`composite_centres`); beyond the first/last
    centre ``i0 == i1`` (the nearest composite).
    """
    if not len(starts):
        raise InputError("no LAI composite to interpolate from; ingest LAI first")
    epoch = np.datetime64("1970-01-01", "ns")
    day = np.timedelta64(1, "D")
    centres = (composite_centres(starts).values - epoch) / day
    t = (pd.DatetimeIndex(days).normalize().values - epoch) / day
    n = centres.size
    i1 = np.clip(np.searchsorted(centres, t, side="right"), 0, n - 1)
    i0 = np.clip(np.searchsorted(centres, t, side="right") - 1, 0, n - 1)
    span = centres[i1] - centres[i0]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(span > 0, (t - centres[i0]) / np.where(span > 0, span, 1.0), 0.0)
    return i0.astype(np.int64), i1.astype(np.int64), np.clip(w, 0.0, 1.0)


def lai_for_days(lai: xr.DataArray, days: pd.DatetimeIndex | Sequence[Any]) -> xr.DataArray:
    """Daily LAI by linear interpolation between the two nearest composites (SMCI1.0; see the module docstring).

    Parameters
    ----------
    lai : xarray.DataArray
        8-day LAI (m2 m-2) with dim ``time8`` (composite start dates) and any
        other dims (e.g. ``lat, lon`` of a block), NumPy- or dask-backed.
    days : DatetimeIndex or sequence of dates
        The days (their date part is used).

    Returns
    -------
    xarray.DataArray
        float32 m2 m-2, dims ``(time, <other dims of lai>)``, ``time`` = the
        days at 00:00. Lazy when ``lai`` is dask-backed.
    """
    if cv.TIME8 not in lai.dims:
        raise InputError(f"LAI has dims {lai.dims}; expected a {cv.TIME8!r} dimension of composite start dates")
    lai = lai.sortby(cv.TIME8)
    starts = pd.DatetimeIndex(lai[cv.TIME8].values)
    days = pd.DatetimeIndex(days).normalize()
    i0, i1, w = lai_weights(starts, days)
    used = np.unique(np.concatenate([i0, i1]))
    sub = lai.isel({cv.TIME8: used})
    pos = {int(k): j for j, k in enumerate(used)}
    j0 = np.array([pos[int(k)] for k in i0], dtype=np.int64)
    j1 = np.array([pos[int(k)] for k in i1], dtype=np.int64)
    time_coord = {cv.TIME: days.values.astype("datetime64[ns]")}

    def pick(j: npt.NDArray[np.int64]) -> xr.DataArray:
        out = sub.isel({cv.TIME8: xr.DataArray(j, dims=cv.TIME)}).drop_vars(cv.TIME8, errors="ignore")
        return out.assign_coords(time_coord).astype(np.float32)

    a, b = pick(j0), pick(j1)
    wt = xr.DataArray(w.astype(np.float32), dims=cv.TIME, coords=time_coord)
    mixed = a * (1 - wt) + b * wt
    out = xr.where(a.isnull(), b, xr.where(b.isnull(), a, mixed)).astype(np.float32)
    out = out.transpose(cv.TIME, *[d for d in lai.dims if d != cv.TIME8])
    out.name = LAI_VAR
    out.attrs = {
        "units": "m2 m-2",
        "long_name": "Leaf area index, daily (linear interpolation between MODIS 8-day composites)",
        "description": (
            "composites stand at the mid-point of their window (start + (L - 1) / 2 days, L = 8 or the days left in the year); "
            "nearest composite beyond the ends; where one of the two composites is NaN the other is used"
        ),
    }
    return out
