"""The 1 km product ``product/smci_1km``: template, encoding, region writes and completion records.

Layout
------
One Zarr (v3) group with the variable ``sm`` ``(time, depth, lat, lon)``:
volumetric soil moisture of the 10 product layers, stored as int16 in units
of 0.001 m3/m3 with fill -999, as SMCI1.0 distributes it
(:data:`~smci_dask.conventions.PRODUCT_DTYPE`, ``PRODUCT_SCALE``,
``PRODUCT_FILL``); CF attributes say so (``scale_factor`` 0.001, ``_FillValue``
-999, ``units`` m3 m-3), so xarray decodes it to m3/m3 with NaN for fill.
Coordinates carry CF bounds (``depth_bnds`` in cm, ``lat_bnds``, ``lon_bnds``)
and a ``crs`` grid-mapping variable (``latitude_longitude``, WGS 84). Root
attributes hold the provenance: model run and experiment, the model
checksum of every depth, the code version, the input stores, the region, and
``complete_days`` (ISO ranges of the days every tile holds).

With ``inference.uncertainty`` the product also holds ``sm_spread`` (same
dims, chunks and encoding): the spread of the forests' trees at that cell and
day (:meth:`smci_dask.models.Ensemble.predict_spread`), named in ``sm``'s
``ancillary_variables``. Whether a product has it is fixed when it is created.

Chunks and writes
-----------------
Chunks are ``(1 day, 10 depths, tile, tile)`` with ``tile`` the inference
tile size: a task of (time block x tile) writes whole chunks, a day is never
split across tasks, and a later run that adds days (a refresh) never
rewrites a chunk of a day already complete. On object stores each chunk is
one PUT, replaced whole; on local disk zarr writes chunk files in place, so a
crash can tear a chunk, which is why completion is recorded separately:

* the template (coordinates, metadata, no data) is created once with the
  full time axis of the configured period (:func:`create_product`);
* each task writes its regions (:func:`write_product_region`), then a small
  marker object ``product/smci_1km.tasks/b<block>_y<row>_x<col>_<first>_<last>``
  naming the days it completed (:func:`write_marker`); markers are listed
  with one LIST call (:func:`load_markers`), so a re-run skips finished
  (block, tile, day) work and redoes anything without a marker;
* ``complete_days`` in the root attributes is updated last
  (:func:`set_complete_days`), from the markers.

One writer (one ``smci predict``) per product at a time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates.era5land_store import day_ranges, ranges_to_days
from smci_dask.errors import InputError, StoreError
from smci_dask.grid.spec import GridSpec, Tile
from smci_dask.io import Store, open_zarr, write_zarr, zarr_exists
from smci_dask.io.arrays import resize_zarr_array, write_zarr_blocks

#: Where the 1 km product lives below the store root.
PRODUCT_1KM_RELPATH: Final = "product/smci_1km"
#: Suffix of the folder of completion markers beside a product.
MARKERS_SUFFIX: Final = ".tasks"
#: Root attribute listing the days every tile holds, as ``[[first, last], ...]`` ISO ranges.
COMPLETE_DAYS_ATTR: Final = "complete_days"
#: CF standard name of volumetric soil water content.
SM_STANDARD_NAME: Final = "volume_fraction_of_condensed_water_in_soil"
SM_LONG_NAME: Final = "Volumetric soil moisture of the layer (SMCI1.0 method, 1 km)"
SPREAD_LONG_NAME: Final = "Spread of the random forests' trees: weighted standard deviation of the per-tree soil moisture"
_MARKER_RE: Final = re.compile(r"^b(\d+)_y(\d+)_x(\d+)_(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})$")


# ================================================================== encoding
def quantise(sm: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Soil moisture (m3/m3, float) -> stored int16 codes in 0.001 m3/m3; NaN -> fill -999.

    ``code = rint(sm / 0.001)`` (round half to even) in float64, clipped to
    ``0 .. 32767`` (a random-forest prediction is a mean of training targets,
    so it never leaves the physical range; the clip only guards the type).
    """
    x = np.asarray(sm, dtype=np.float64)
    codes = np.rint(np.clip(x / cv.PRODUCT_SCALE, 0, np.iinfo(np.int16).max))
    return np.where(np.isfinite(x), codes, cv.PRODUCT_FILL).astype(np.int16)


def dequantise(codes: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Stored codes -> m3/m3 (float32), fill -> NaN; writing these values stores exactly ``codes`` again."""
    c = np.asarray(codes)
    return np.where(c == cv.PRODUCT_FILL, np.float32(np.nan), (c * cv.PRODUCT_SCALE).astype(np.float32))


def _sm_encoding(chunks: tuple[int, int, int, int]) -> dict[str, Any]:
    return {
        "dtype": cv.PRODUCT_DTYPE,
        "scale_factor": cv.PRODUCT_SCALE,
        "_FillValue": np.int16(cv.PRODUCT_FILL),
        "fill_value": np.int16(cv.PRODUCT_FILL),  # the Zarr array's own fill: chunks never written read as -999
        "chunks": chunks,
    }


def product_chunks(grid: GridSpec, tile_size: int) -> tuple[int, int, int, int]:
    """Zarr chunk shape ``(time, depth, lat, lon)``: one day, all depths, one tile (clipped to the grid)."""
    return (1, len(cv.DEPTHS_CM), min(tile_size, grid.nrows), min(tile_size, grid.ncols))


# ================================================================== template
def _bounds(centres: npt.NDArray[np.float64], half: float) -> npt.NDArray[np.float64]:
    return np.stack([centres - half, centres + half], axis=1)


def _crs_attrs() -> dict[str, Any]:
    from pyproj import CRS

    wgs84 = CRS.from_epsg(4326)
    return {
        "grid_mapping_name": "latitude_longitude",
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
        "longitude_of_prime_meridian": 0.0,
        "crs_wkt": wgs84.to_wkt(),
        "spatial_ref": wgs84.to_wkt(),
        "epsg_code": "EPSG:4326",
    }


def make_product_template(
    grid: GridSpec, times: pd.DatetimeIndex, *, tile_size: int, attrs: Mapping[str, Any], uncertainty: bool = False
) -> xr.Dataset:
    """Lazy all-fill product Dataset with full coordinates and CF metadata (the Zarr template, never computed).

    Parameters
    ----------
    grid : GridSpec
        The region's 1 km grid.
    times : pandas.DatetimeIndex
        Every day of the product's period.
    tile_size : int
        Spatial chunk edge, 1 km cells (the inference tile).
    attrs : mapping
        Root attributes (provenance), merged over the CF basics.
    uncertainty : bool
        Also hold ``sm_spread`` (the spread of the trees).
    """
    import dask.array as dsa

    chunks = product_chunks(grid, tile_size)
    shape = (len(times), len(cv.DEPTHS_CM), *grid.shape)
    data = dsa.full(shape, np.nan, dtype=np.float32, chunks=(max(len(times), 1), shape[1], *chunks[2:]))
    depth = np.asarray(cv.DEPTHS_CM, dtype=np.int32)
    half = grid.res / 2
    ds = xr.Dataset(
        {cv.SM: ((cv.TIME, cv.DEPTH, cv.LAT, cv.LON), data)},
        coords={
            cv.TIME: times.values.astype("datetime64[ns]"),
            cv.DEPTH: depth,
            cv.LAT: grid.lat,
            cv.LON: grid.lon,
            "depth_bnds": ((cv.DEPTH, "nv"), np.asarray(cv.DEPTH_BOUNDS_CM, dtype=np.int32)),
            "lat_bnds": ((cv.LAT, "nv"), _bounds(grid.lat, half)),
            "lon_bnds": ((cv.LON, "nv"), _bounds(grid.lon, half)),
            "crs": ((), np.int32(0), _crs_attrs()),
        },
    )
    ds[cv.SM].attrs = {
        "long_name": SM_LONG_NAME,
        "standard_name": SM_STANDARD_NAME,
        "units": "m3 m-3",
        "grid_mapping": "crs",
        "valid_min": 0.0,
        "valid_max": 1.0,
        "comment": "stored as int16 in 0.001 m3 m-3 (scale_factor 0.001), fill -999, as SMCI1.0",
    }
    if uncertainty:
        ds[cv.SM_SPREAD] = ds[cv.SM].copy()
        ds[cv.SM].attrs["ancillary_variables"] = cv.SM_SPREAD
        ds[cv.SM_SPREAD].attrs = {
            "long_name": SPREAD_LONG_NAME,
            "units": "m3 m-3",
            "grid_mapping": "crs",
            "valid_min": 0.0,
            "valid_max": 1.0,
            "comment": (
                "standard deviation of every tree's own prediction, the trees of all ensemble members pooled and weighted "
                "so that their mean is sm; how much the trees disagree, not a calibrated error; int16 in 0.001 m3 m-3, fill -999"
            ),
        }
    ds[cv.TIME].attrs = {"standard_name": "time", "long_name": "day (daily mean)", "axis": "T"}
    ds[cv.DEPTH].attrs = {
        "standard_name": "depth",
        "long_name": "depth of the layer's bottom below the surface (layer spans depth - 10 cm to depth)",
        "units": "cm",
        "positive": "down",
        "axis": "Z",
        "bounds": "depth_bnds",
    }
    ds[cv.LAT].attrs = {"standard_name": "latitude", "long_name": "latitude of the cell centre", "units": "degrees_north", "axis": "Y"}
    ds[cv.LAT].attrs["bounds"] = "lat_bnds"
    ds[cv.LON].attrs = {"standard_name": "longitude", "long_name": "longitude of the cell centre", "units": "degrees_east", "axis": "X"}
    ds[cv.LON].attrs["bounds"] = "lon_bnds"
    ds["depth_bnds"].attrs = {"units": "cm", "long_name": "layer top and bottom"}
    ds.attrs = {
        "Conventions": "CF-1.10",
        "title": "SMCI-style daily 1 km soil moisture, 10 layers (10-100 cm)",
        "references": "Li, Shangguan et al. (2022), ESSD 14, 5267-5286, doi:10.5194/essd-14-5267-2022 (SMCI1.0)",
        "geospatial_bbox": list(grid.bbox),
        COMPLETE_DAYS_ATTR: [],
        **dict(attrs),
    }
    return ds


def create_product(
    store: Store,
    relpath: str,
    grid: GridSpec,
    times: pd.DatetimeIndex,
    *,
    tile_size: int,
    attrs: Mapping[str, Any],
    uncertainty: bool | None = False,
) -> xr.Dataset:
    """Create the product template once; return the opened product (existing or new).

    An existing product must have the same grid and time axis; its provenance
    keys ``model_run`` and ``model_checksums`` must equal ``attrs``' (a product
    never mixes two model runs), and it must hold ``sm_spread`` exactly when
    ``uncertainty`` is true (``None``: whatever it holds). Raises
    :class:`InputError` naming the fix.
    """
    if zarr_exists(store, relpath):
        ds = open_zarr(store, relpath, mask_and_scale=False)
        _check_same(ds, store, relpath, grid, times, attrs)
        has = cv.SM_SPREAD in ds.data_vars
        if uncertainty is not None and has != bool(uncertainty):
            raise InputError(
                f"product {store.url_of(relpath)} was created {'with' if has else 'without'} {cv.SM_SPREAD} (inference.uncertainty "
                f"{str(has).lower()}); set inference.uncertainty back to {str(has).lower()}, or remove {store.url_of(relpath)} "
                f"(and its {MARKERS_SUFFIX} folder) to make it again, or write to another store"
            )
        return ds
    template = make_product_template(grid, times, tile_size=tile_size, attrs=attrs, uncertainty=bool(uncertainty))
    encoding = {
        **{name: _sm_encoding(product_chunks(grid, tile_size)) for name in template.data_vars},
        cv.TIME: {"units": f"days since {times[0]:%Y-%m-%d}", "calendar": "proleptic_gregorian", "dtype": "int32"},
    }
    write_zarr(template, store, relpath, mode="w-", encoding=encoding, compute=False)
    return open_zarr(store, relpath, mask_and_scale=False)


def extend_time_axis(store: Store, relpath: str, times: pd.DatetimeIndex) -> bool:
    """Lengthen the product's time axis to ``times`` (which must start with the current axis); True if it grew.

    No chunk of an existing day is rewritten, the root attributes (and so
    ``complete_days``) are not touched, and the new days read as fill until a
    refresh writes and lists them. Three writes, in this order, so that every
    moment in between opens with :func:`open_product` showing the same days
    and complete days as before (see ``ARCHITECTURE.md``, product
    consistency):

    1. the ``time`` array grows (its ``zarr.json``): it is now longer than
       ``sm``, and :func:`open_product` reads the first ``len(sm)`` days;
    2. the new time values are written (new chunks of ``time`` only);
    3. every array along ``time`` (``sm``) grows (its ``zarr.json``): the
       axis is whole again, its new days all fill.

    A crash in between leaves ``time`` longer than ``sm``, which a re-run
    finishes (each step is idempotent); an axis already at least as long as
    ``times`` is left alone.
    """
    current = _open(store, relpath, mask_and_scale=False)
    have = pd.DatetimeIndex(current[cv.TIME].values)
    if len(times) <= len(have):
        if not (times == have[: len(times)]).all():
            raise InputError(
                f"product {store.url_of(relpath)}: its time axis does not start like {times[0]:%Y-%m-%d}; write to another store"
            )
        return False
    if not (times[: len(have)] == have).all():
        raise InputError(
            f"product {store.url_of(relpath)} covers {have[0]:%Y-%m-%d}..{have[-1]:%Y-%m-%d}, which is not the start of "
            f"{times[0]:%Y-%m-%d}..{times[-1]:%Y-%m-%d}; write to another store"
        )
    units = str(current[cv.TIME].encoding.get("units", ""))
    if not units.startswith("days since"):
        raise InputError(f"product {store.url_of(relpath)}: its time axis is not encoded in days; cannot extend it")
    origin = pd.Timestamp(units.removeprefix("days since").strip()).tz_localize(None)
    new = times[len(have) :]
    raw = ((new - origin) // pd.Timedelta(days=1)).to_numpy()
    along = [name for name, var in current.data_vars.items() if cv.TIME in var.dims]
    resize_zarr_array(store, relpath, cv.TIME, len(times))
    write_zarr_blocks(store, relpath, [(cv.TIME, (slice(len(have), len(times)),), raw)])
    for name in along:
        resize_zarr_array(store, relpath, name, len(times))
    return True


def _check_same(ds: xr.Dataset, store: Store, relpath: str, grid: GridSpec, times: pd.DatetimeIndex, attrs: Mapping[str, Any]) -> None:
    where = f"product {store.url_of(relpath)}"
    have = pd.DatetimeIndex(ds[cv.TIME].values)
    if len(have) != len(times) or not (have == times).all():
        raise InputError(
            f"{where} covers {have[0]:%Y-%m-%d}..{have[-1]:%Y-%m-%d} ({len(have)} days), the configured period "
            f"{times[0]:%Y-%m-%d}..{times[-1]:%Y-%m-%d}; set `years` back or write to another store"
        )
    if ds.sizes[cv.LAT] != grid.nrows or ds.sizes[cv.LON] != grid.ncols or not np.allclose(ds[cv.LAT].values, grid.lat):
        raise InputError(f"{where} is on another grid than region {grid.bbox}; set the region back or write to another store")
    same_run = "model_run" in attrs and ds.attrs.get("model_run") == attrs["model_run"]
    if same_run and ds.attrs.get("model_checksums") != attrs.get("model_checksums"):
        raise InputError(
            f"{where} was made with the models of run {attrs['model_run']!r} as they were before they were re-trained; "
            f"remove {store.url_of(relpath)} (and its {MARKERS_SUFFIX} folder) to predict with the new ones, or write to another store"
        )
    for key in ("model_run", "model_checksums"):
        if key in attrs and ds.attrs.get(key) != attrs[key]:
            raise InputError(
                f"{where} was made with models of run {ds.attrs.get('model_run')!r}; this run uses {attrs.get('model_run')!r}. "
                f"Predict with --run {ds.attrs.get('model_run')} or remove {store.url_of(relpath)} (and its {MARKERS_SUFFIX} folder) first"
            )


def product_tile_size(ds: xr.Dataset) -> int:
    """The spatial chunk edge of an opened product (its tasks' tile size)."""
    chunks = ds[cv.SM].encoding.get("chunks") or ds[cv.SM].encoding.get("preferred_chunks")
    if isinstance(chunks, Mapping):
        return int(chunks[cv.LAT])
    return int(chunks[2])


# ================================================================== region writes
def write_product_region(
    store: Store,
    relpath: str,
    values: npt.NDArray[np.float32],
    *,
    t0: int,
    tile: Tile,
    spread: npt.NDArray[np.float32] | None = None,
) -> None:
    """Write ``values`` (days, depth, tile rows, tile cols), m3/m3 with NaN, at day index ``t0`` and ``tile``.

    Values should come from :func:`dequantise` so that the stored codes are
    exactly :func:`quantise` of the prediction. Chunk aligned: the region is
    whole days x all depths x one tile. ``spread``: ``sm_spread`` of the same
    region (same shape and encoding), for a product created with it.
    """
    dims = (cv.TIME, cv.DEPTH, cv.LAT, cv.LON)
    piece = xr.Dataset({cv.SM: (dims, values)})
    if spread is not None:
        piece[cv.SM_SPREAD] = (dims, spread)
    region = {
        cv.TIME: slice(t0, t0 + values.shape[0]),
        cv.DEPTH: slice(0, values.shape[1]),
        cv.LAT: tile.rows,
        cv.LON: tile.cols,
    }
    write_zarr(piece, store, relpath, mode="r+", region=region)


# ================================================================== completion markers
@dataclass(frozen=True)
class Marker:
    """A completion record: task (time ``block``, tile ``index``) wrote days ``first .. last``."""

    block: int
    index: tuple[int, int]
    first: pd.Timestamp
    last: pd.Timestamp

    @property
    def name(self) -> str:
        return f"b{self.block:05d}_y{self.index[0]:04d}_x{self.index[1]:04d}_{self.first:%Y-%m-%d}_{self.last:%Y-%m-%d}"

    @property
    def days(self) -> pd.DatetimeIndex:
        return pd.date_range(self.first, self.last, freq="D")


def markers_relpath(relpath: str) -> str:
    return relpath.rstrip("/") + MARKERS_SUFFIX


def write_marker(store: Store, relpath: str, marker: Marker, info: Mapping[str, Any] | None = None) -> None:
    """Record that ``marker``'s days are written (after the region writes: an atomic small object)."""
    import json

    store.write_text(f"{markers_relpath(relpath)}/{marker.name}", json.dumps(dict(info or {}), default=str))


def load_markers(store: Store, relpath: str) -> dict[tuple[int, tuple[int, int]], pd.DatetimeIndex]:
    """Days recorded as complete per (time block, tile index), from one listing of the marker folder."""
    done: dict[tuple[int, tuple[int, int]], list[pd.DatetimeIndex]] = defaultdict(list)
    for name in store.ls(markers_relpath(relpath)):
        m = _MARKER_RE.match(name)
        if m is None:
            continue  # a temporary file of an interrupted local write, or a stranger
        key = (int(m.group(1)), (int(m.group(2)), int(m.group(3))))
        done[key].append(pd.date_range(m.group(4), m.group(5), freq="D"))
    return {k: pd.DatetimeIndex(np.unique(np.concatenate([d.values for d in v]))) for k, v in done.items()}


def complete_days(store: Store, relpath: str = PRODUCT_1KM_RELPATH) -> pd.DatetimeIndex:
    """The days the product lists as complete (every tile written); empty if there is no product."""
    if not zarr_exists(store, relpath):
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    return ranges_to_days(_open(store, relpath, mask_and_scale=False).attrs.get(COMPLETE_DAYS_ATTR, []))


def set_complete_days(store: Store, relpath: str, days: pd.DatetimeIndex) -> None:
    """Rewrite the root attributes with ``complete_days`` = ``days`` (after their chunks and markers are written)."""
    attrs = dict(_open(store, relpath, mask_and_scale=False).attrs)
    attrs[COMPLETE_DAYS_ATTR] = day_ranges(days)
    write_zarr(xr.Dataset(attrs=attrs), store, relpath, mode="a")


def _open(store: Store, relpath: str, **kwargs: Any) -> xr.Dataset:
    """Open a product lazily; in the middle of :func:`extend_time_axis` (``time`` longer than ``sm``), the first ``len(sm)`` days.

    Plain xarray refuses that moment ("conflicting sizes"); the arrays
    along ``time`` still hold the axis as it was, so that is what is shown.
    Any other failure is raised as it came.
    """
    try:
        return open_zarr(store, relpath, **kwargs)
    except StoreError as error:
        try:
            data = open_zarr(store, relpath, drop_variables=[cv.TIME], **kwargs)
            along = [name for name, var in data.data_vars.items() if cv.TIME in var.dims]
            axis = open_zarr(store, relpath, drop_variables=along, **kwargs)[cv.TIME]
        except StoreError:
            raise error from None
        n = data.sizes.get(cv.TIME, 0)
        if not along or axis.size < n:
            raise error from None
        # axis.size == n: the extension finished between the two looks; the axis and the arrays agree again
        return data.assign_coords({cv.TIME: axis.isel({cv.TIME: slice(0, n)})})


def product_times(store: Store, relpath: str = PRODUCT_1KM_RELPATH) -> pd.DatetimeIndex:
    """The product's time axis (every day it has room for, complete or not)."""
    return pd.DatetimeIndex(_open(store, relpath, mask_and_scale=False)[cv.TIME].values)


def open_product(store: Store, relpath: str = PRODUCT_1KM_RELPATH, *, complete_only: bool = False) -> xr.Dataset:
    """Open the product lazily, decoded to m3/m3 (NaN where no value); ``complete_only`` keeps the complete days.

    Safe while a refresh writes: the complete days move only after their
    chunks are written, and an axis extension in progress shows the axis as
    it was (:func:`extend_time_axis`).
    """
    ds = _open(store, relpath)
    if complete_only:
        ds = ds.sel({cv.TIME: ranges_to_days(ds.attrs.get(COMPLETE_DAYS_ATTR, []))})
    return ds
