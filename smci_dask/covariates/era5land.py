"""ERA5-Land hourly files -> daily 0.1 degree covariates (reading and daily aggregation).

Reading (:func:`open_era5land_hourly`)
--------------------------------------
Accepts what the Copernicus Climate Data Store (CDS) delivers, recognised by
the file's first bytes, not its name:

* NetCDF, older layout: dims ``time``, ``latitude``, ``longitude``, often
  packed as int16 with ``scale_factor``/``add_offset`` (decoded by xarray);
  around 2020-2023 sometimes with an ``expver`` *dimension* (1 = ERA5-Land,
  5 = its preliminary near-real-time release) where each hour has values in
  one ``expver`` slice and NaN in the other.
* NetCDF, current layout (the CDS's cfgrib-based converter): dim
  ``valid_time``, scalar coord ``number``, coord ``expver`` along
  ``valid_time`` (``'0001'``, ``'0005'``, possibly mixed).
* A zip of NetCDF files (the current CDS puts instantaneous and accumulated
  variables in separate files, ``...stepType-instant.nc`` and
  ``...stepType-accum.nc``, when a request mixes them).
* GRIB edition 1 or 2 (ERA5-Land's archive format), read with cfgrib. cfgrib
  indexes accumulations by reference ``time`` and ``step``; they are opened
  with ``time_dims=("valid_time",)``, which reshapes them to ``valid_time``
  keeping only the messages the file really holds (a ``time x step``
  hypercube would fill absent pairs with NaN, which cannot be told from sea
  cells).

Every file is normalised to dims ``(valid_time, latitude, longitude)``,
latitude descending (north first), longitude ascending, float64 coordinates
(float32 ones, as older files have, rounded to 1e-4 degree so that both
layouts give the same coordinates); ``number`` and
``expver`` are dropped (an ``expver`` dimension is first collapsed, taking
``expver`` 1 where it has a value and the next one where it does not).
Only the variables of :data:`conventions.ERA5_VARS` and the land-sea mask
``lsm`` are kept; a missing variable is simply absent. Units are checked
against :data:`conventions.ERA5_RAW_UNITS` (spelling variants such as
``m of water equivalent`` / ``m``, ``m**3 m**-3`` / ``m3/m3`` accepted).

Several files (e.g. one per month, or one per variable) are concatenated
along ``valid_time`` and sorted. A timestamp held by two files (or twice by
one) is dropped silently when the values are identical (NaN equal to NaN)
and is an :class:`~smci_dask.errors.InputError` naming both files and the
timestamp when they differ. All variables must cover the same timestamps.

Remote files (``s3://``, ``memory://``, any fsspec URL) are copied to a local
temporary folder through :class:`smci_dask.io.Store` (netCDF4 and ecCodes
need real files); it is removed when the dataset is closed or at exit.

Daily aggregation (:func:`daily_from_hourly`)
---------------------------------------------
ECMWF conventions, day ``D`` = 00 UTC of ``D`` to 00 UTC of ``D + 1``:

* state variables (``t2m``, ``swvl1-4``, ``stl1-4``, ``lai_hv``, ``lai_lv``):
  mean of the 24 hourly values 00..23 UTC of ``D``; all 24 are required.
* accumulated fluxes (``tp``, ``e``, ``pev``, ``ssrd``): ERA5-Land
  accumulates from 00 UTC, so the total of ``D`` is the value at 00 UTC of
  ``D + 1``; that value is required.
* a day the data touches but cannot complete (a missing hour, or the next
  00 UTC not in the data yet) is *held back*: returned in a list, not in the
  dataset. With monthly files the last day of a batch is held back until the
  next month's file arrives; the day before the first file starts is held
  back too when only its 00 UTC accumulation is in the data.

Units of the daily cube are in :data:`DAILY_UNITS`: ``tp``, ``e``, ``pev`` in
mm/day with evaporation positive (ECMWF counts downward fluxes positive, so
the files hold evaporation as negative numbers: the sign is turned, dew and
condensation become negative); ``ssrd`` in MJ m-2 day-1; ``t2m``, ``stl`` in
K; ``swvl`` in m3 m-3; LAI in m2 m-2. Each variable records ``units``,
``long_name``, ``cell_methods`` and a ``description`` of how it was made.

Region and land (:func:`subset_to_grid`, :func:`land_mask_from_era5`)
--------------------------------------------------------------------
The region's coarse cells are picked by their centres (within 1e-6 degree,
longitudes compared modulo 360) and take the grid's exact coordinates. Land
is ``lsm >= 0.5`` where the land-sea mask is present, else the cells whose
``swvl1`` is never NaN.

The daily cube (:func:`write_era5land_daily`, :func:`open_era5land_daily`)
-------------------------------------------------------------------------
Zarr, dims ``(time, lat, lon)``, a daily calendar from a fixed origin in
chunks of :data:`DAILY_TIME_CHUNK` days: created as a template, extended as
a template, filled by rewriting whole time chunks; the root attribute
``complete_days`` (date ranges) is updated last, so it never lists a day
whose chunks are not written. Days already listed are never written again.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store

FileFormat = Literal["netcdf", "grib", "zip"]

#: ERA5-Land land-sea mask (fraction of land, 0-1), kept when a file has it.
LSM = "lsm"
#: Hours per day; a day's state variables need all of them.
HOURS_PER_DAY = 24
#: Hours per dask chunk along ``valid_time`` when opening (one day, ~21 MB per variable for China).
TIME_CHUNK = 24
#: Coordinates match when they differ by at most this many degrees (plus float32 rounding).
COORD_TOL = 1e-6
#: float32 coordinates (older CDS files) are widened to float64 and rounded to this many decimals (ERA5-Land: 0.1 degree grid).
FLOAT32_COORD_DECIMALS = 4
#: File-name endings taken as GRIB when the first bytes do not say (e.g. a leading header).
GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb1", ".grb2")

_ONE_HOUR = pd.Timedelta(hours=1)
_ONE_DAY = pd.Timedelta(days=1)
#: Offsets of the 24 hours 00..23 UTC from the start of a day.
_DAY_HOURS = np.arange(HOURS_PER_DAY).astype("timedelta64[h]").astype("timedelta64[ns]")


# ------------------------------------------------------------------ daily rules
@dataclass(frozen=True)
class DailyRule:
    """How one ERA5-Land variable becomes a daily value.

    ``daily = factor * hourly`` at 00 UTC of the next day (``kind="accum"``)
    or ``factor * mean(hourly 00..23 UTC)`` (``kind="state"``).
    """

    kind: Literal["state", "accum"]
    factor: float
    units: str
    long_name: str
    cell_methods: str
    description: str


_STATE_METHOD = "time: mean (interval: 1 hour)"
_ACCUM_METHOD = "time: sum (interval: 1 day)"
_STATE_TEXT = "Mean of the 24 hourly ERA5-Land values from 00 to 23 UTC of the day (all 24 required); {units}."
_ACCUM_TEXT = (
    "Total from 00 UTC of the day to 00 UTC of the next day: ERA5-Land accumulates from 00 UTC, so it is the "
    "hourly file's value at 00 UTC of the next day; {conv}."
)
_EVAP_SIGN = (
    "sign turned so that evaporation is positive (ECMWF counts downward fluxes positive and stores evaporation as "
    "negative numbers); negative values are condensation or dew"
)


def _state(units: str, what: str) -> DailyRule:
    return DailyRule("state", 1.0, units, f"{what}, daily mean", _STATE_METHOD, _STATE_TEXT.format(units=units))


def _accum(factor: float, what: str, conv: str) -> DailyRule:
    units = "MJ m-2 day-1" if what.startswith("Surface") else "mm day-1"
    return DailyRule("accum", factor, units, f"{what}, daily total", _ACCUM_METHOD, _ACCUM_TEXT.format(conv=conv))


#: Daily rule of every ERA5-Land variable (output units in ``.units``).
DAILY_RULES: dict[str, DailyRule] = {
    "tp": _accum(1000.0, "Total precipitation", "converted from m to mm (x 1000)"),
    "e": _accum(-1000.0, "Total evaporation, positive upward", f"converted from m of water equivalent to mm (x 1000), {_EVAP_SIGN}"),
    "pev": _accum(-1000.0, "Potential evaporation, positive upward", f"converted from m to mm (x 1000), {_EVAP_SIGN}"),
    "ssrd": _accum(1e-6, "Surface short-wave (solar) radiation downwards", "converted from J m-2 to MJ m-2 (/ 1e6)"),
    **{name: _state("K", cv.ERA5_LONG_NAMES[name]) for name in ("t2m", "stl1", "stl2", "stl3", "stl4")},
    **{name: _state("m3 m-3", cv.ERA5_LONG_NAMES[name]) for name in ("swvl1", "swvl2", "swvl3", "swvl4")},
    **{name: _state("m2 m-2", cv.ERA5_LONG_NAMES[name]) for name in ("lai_hv", "lai_lv")},
}

#: Units of the daily cube's variables.
DAILY_UNITS: dict[str, str] = {name: rule.units for name, rule in DAILY_RULES.items()}


# ------------------------------------------------------------------ units
_UNIT_WORDS = {"metre": "m", "metres": "m", "meter": "m", "meters": "m", "kelvin": "k", "degk": "k", "joule": "j", "joules": "j"}
_UNIT_PHRASES = (" of water equivalent", " water equivalent", " of water")
_UNIT_TERM = re.compile(r"([a-z]+)(-?\d+)?")


def _unit_key(units: str) -> tuple[tuple[str, int], ...] | str:
    """A comparable form of a unit string: sorted (base, exponent) terms, or the cleaned string if unparsable.

    ``'m**3 m**-3'``, ``'m3 m-3'`` and ``'m3/m3'`` give the same key; so do
    ``'m of water equivalent'`` and ``'m'``, ``'J m**-2'`` and ``'J/m2'``.
    """
    s = units.strip().lower()
    for phrase in _UNIT_PHRASES:
        s = s.replace(phrase, "")
    s = s.replace("**", "").replace("^", "")
    num, _, den = s.partition("/")
    terms: list[tuple[str, int]] = []
    for part, sign in ((num, 1), (den, -1)):
        for tok in part.replace("*", " ").replace(".", " ").split():
            m = _UNIT_TERM.fullmatch(tok)
            if m is None:
                return s
            terms.append((_UNIT_WORDS.get(m[1], m[1]), int(m[2] or 1) * sign))
    return tuple(sorted(terms))


def units_match(found: str, expected: str) -> bool:
    """True when two unit strings name the same unit (spelling variants accepted).

    Parameters
    ----------
    found, expected : str
        Unit strings, e.g. ``'m of water equivalent'`` and ``'m'``.
    """
    return _unit_key(found) == _unit_key(expected)


def _check_units(ds: xr.Dataset, name: str) -> None:
    for var in ds.data_vars:
        expected = cv.ERA5_RAW_UNITS.get(str(var))
        if expected is None:
            continue
        found = ds[var].attrs.get("units")
        if found is None:
            raise InputError(
                f"ERA5-Land file {name}: variable {var!r} has no units attribute (expected {expected!r}); "
                "download the file from the Climate Data Store again"
            )
        if not units_match(str(found), expected):
            raise InputError(
                f"ERA5-Land file {name}: variable {var!r} has units {found!r}, expected {expected!r}; "
                "give ERA5-Land files as the Climate Data Store delivers them (no unit conversion)"
            )


# ------------------------------------------------------------------ local copies of remote files
_TEMP_DIRS: list[str] = []


@atexit.register
def _remove_temp_dirs() -> None:
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def _new_temp_dir() -> str:
    d = tempfile.mkdtemp(prefix="smci-era5land-")
    _TEMP_DIRS.append(d)
    return d


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local_path(path: str, storage_options: dict[str, Any] | None, temp: Callable[[], str]) -> Path:
    """A local file with the content of ``path`` (the file itself when it is local)."""
    if not _is_remote(path):
        p = Path(path.removeprefix("file://")).expanduser()
        if not p.is_file():
            raise InputError(f"ERA5-Land file {path}: no such file; check the path or the glob")
        return p
    parent, _, base = path.rstrip("/").rpartition("/")
    store = Store.from_url(parent, storage_options)
    if not store.exists(base):
        raise InputError(f"ERA5-Land file {path}: no such file in the store; check the URL")
    return store.get_file(base, Path(tempfile.mkdtemp(dir=temp())) / base)


def _sniff(path: Path, name: str) -> FileFormat:
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise InputError(f"ERA5-Land file {name}: the file is empty; download it again")
    if head[:4] == b"GRIB":
        return "grib"
    if head[:3] == b"CDF" or head == b"\x89HDF\r\n\x1a\n":
        return "netcdf"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if path.suffix.lower() in GRIB_SUFFIXES:
        return "grib"
    raise InputError(
        f"ERA5-Land file {name}: neither NetCDF, GRIB nor a zip of NetCDF files (it starts with {head!r}); "
        "the download may have failed: download it again"
    )


# ------------------------------------------------------------------ opening one file
def _open_netcdf(path: Path, name: str) -> xr.Dataset:
    try:
        return xr.open_dataset(path, engine="netcdf4", chunks={"time": TIME_CHUNK, cv.ERA5_TIME: TIME_CHUNK}, decode_timedelta=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear line
        raise InputError(
            f"ERA5-Land file {name}: cannot read it as NetCDF ({type(exc).__name__}: {exc}); "
            "it may be truncated or corrupt: download it again"
        ) from None


def _import_cfgrib() -> Any:
    # ecCodes' wheels (eckitlib) bundle their own PROJ; once they are loaded, a later `import pyproj`
    # binds to it, cannot find its database and crashes the interpreter at exit. Importing pyproj
    # first avoids that, as long as nothing loaded ecCodes earlier in the process.
    try:
        import pyproj  # noqa: F401
    except ImportError:  # pragma: no cover - pyproj is a dependency
        pass
    import cfgrib

    return cfgrib


def _grib_datasets(cfgrib: Any, path: Path, backend_kwargs: dict[str, Any]) -> list[xr.Dataset]:
    """``cfgrib.open_datasets`` with one scan of the file's messages instead of two.

    ``open_datasets`` lists the file's parameters from an index keyed on
    ``time``/``step`` and then opens each parameter from a second index keyed
    on our ``time_dims``: two scans of every message (ecCodes reads ~0.5-2 ms
    per message; an ERA5-Land month holds 744 hours x 15 parameters). Here the
    parameters are listed from the same index the per-parameter opens use
    (same keys, same ``indexpath``), so it is built once and read back from
    the index file after that; the per-parameter opens and the merge are
    cfgrib's own. Falls back to ``open_datasets`` if cfgrib's internals moved.
    """
    chunks = {cv.ERA5_TIME: TIME_CHUNK}
    try:
        from cfgrib import cfmessage, dataset, messages, xarray_store

        keys = dataset.compute_index_keys(backend_kwargs["time_dims"], {}, {"paramId": None})
        stream = messages.FileStream(str(path), errors="warn")
        index = dataset.open_fileindex(stream, backend_kwargs["indexpath"], keys, computed_keys=cfmessage.COMPUTED_KEYS)
        open_one, merge = xarray_store.raw_open_datasets, xarray_store.merge_datasets
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another cfgrib version
        return list(cfgrib.open_datasets(str(path), backend_kwargs=backend_kwargs, chunks=chunks))
    datasets = []
    for param_id in sorted(index["paramId"]):
        datasets += open_one(str(path), {**backend_kwargs, "filter_by_keys": {"paramId": param_id}}, chunks=chunks)
    by_level: dict[str, list[xr.Dataset]] = {}
    for ds in datasets:
        for da in ds.data_vars.values():
            by_level.setdefault(da.attrs.get("GRIB_typeOfLevel", "undef"), []).append(ds)
    return [m for level in sorted(by_level) for m in merge(by_level[level], join="exact", combine_attrs="identical")]


def _open_grib(path: Path, name: str, temp: Callable[[], str]) -> list[xr.Dataset]:
    cfgrib = _import_cfgrib()
    # cfgrib splits a file into hypercubes by reopening it; an index in our temporary folder (never next to
    # the input, which may be read-only) lets it scan the messages once instead of once per split
    index = str(Path(tempfile.mkdtemp(dir=temp())) / "{short_hash}.idx")
    backend_kwargs = {"indexpath": index, "time_dims": (cv.ERA5_TIME,), "squeeze": False}
    try:
        with warnings.catch_warnings():
            # cfgrib merges its hypercubes with xarray's defaults, which warn about a future change
            warnings.simplefilter("ignore", FutureWarning)
            parts = _grib_datasets(cfgrib, path, backend_kwargs)
    except Exception as exc:  # noqa: BLE001
        raise InputError(
            f"ERA5-Land file {name}: cannot read it as GRIB ({type(exc).__name__}: {exc}); "
            "it may be truncated or corrupt: download it again"
        ) from None
    if not parts:
        raise InputError(f"ERA5-Land file {name}: the GRIB file holds no messages; download it again")
    return list(parts)


def _open_zip(path: Path, name: str, temp: Callable[[], str]) -> list[tuple[str, xr.Dataset]]:
    out_dir = Path(tempfile.mkdtemp(dir=temp()))
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            if not members:
                raise InputError(f"ERA5-Land file {name}: the zip archive is empty; download it again")
            out = []
            for member in sorted(members):
                target = out_dir / Path(member).name
                target.write_bytes(zf.read(member))
                label = f"{name}:{member}"
                fmt = _sniff(target, label)
                if fmt == "zip":
                    raise InputError(f"ERA5-Land file {label}: a zip inside a zip is not supported; unpack the outer one")
                if fmt == "grib":
                    out.extend((label, d) for d in _open_grib(target, label, temp))
                else:
                    out.append((label, _open_netcdf(target, label)))
            return out
    except zipfile.BadZipFile as exc:
        raise InputError(f"ERA5-Land file {name}: corrupt zip archive ({exc}); download it again") from None


def _expver_rank(value: Any) -> tuple[int, str]:
    """Sort key of an expver value (1, '0001', b'0005'): its number, unparsable ones last."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.strip()
    return (int(text), text) if text.isdigit() else (1 << 30, text)


def _collapse_expver(ds: xr.Dataset) -> xr.Dataset:
    """Collapse an ``expver`` dimension: per value, ``expver`` 1 (final) first, then 5 (preliminary)."""
    values = ds[cv.ERA5_EXPVER].values
    order = sorted(range(len(values)), key=lambda i: _expver_rank(values[i]))
    out = ds.isel({cv.ERA5_EXPVER: order[0]}, drop=True)
    for i in order[1:]:
        out = out.fillna(ds.isel({cv.ERA5_EXPVER: i}, drop=True))
    return out


def _normalise(ds: xr.Dataset, name: str) -> xr.Dataset:
    """One file's dataset -> dims (valid_time, latitude, longitude), lat descending, ERA5 variables (+ lsm) only."""
    if "time" in ds.dims and cv.ERA5_TIME not in ds.dims:
        ds = ds.drop_vars(cv.ERA5_TIME, errors="ignore").rename({"time": cv.ERA5_TIME})
    if cv.ERA5_TIME not in ds.dims and cv.ERA5_TIME in ds.coords and ds[cv.ERA5_TIME].ndim == 0:
        ds = ds.expand_dims(cv.ERA5_TIME)  # a single-step file read with squeezing
    if "step" in ds.dims or ("time" in ds.dims and cv.ERA5_TIME in ds.dims):
        raise InputError(
            f"ERA5-Land file {name}: has both reference-time and step dimensions; open GRIB files with "
            f"open_era5land_hourly, which reshapes them to {cv.ERA5_TIME!r}"
        )
    for dim in (cv.ERA5_LAT, cv.ERA5_LON):
        if dim not in ds.dims:
            raise InputError(f"ERA5-Land file {name}: no {dim!r} dimension (dims {sorted(map(str, ds.dims))}); is it ERA5-Land?")
    if cv.ERA5_EXPVER in ds.dims:
        ds = _collapse_expver(ds)
    keep = [v for v in ds.data_vars if str(v) in cv.ERA5_VARS or str(v) == LSM]
    ds = ds[keep]
    core = {cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON}
    for dim, size in list(ds.sizes.items()):
        if dim in core:
            continue
        if size != 1:
            raise InputError(
                f"ERA5-Land file {name}: unexpected dimension {dim!r} of size {size} "
                f"(ERA5-Land has one value per {cv.ERA5_TIME}, latitude and longitude); request a single {dim!r}"
            )
        ds = ds.isel({dim: 0}, drop=True)
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])
    if LSM in ds and cv.ERA5_TIME in ds[LSM].dims:
        ds[LSM] = ds[LSM].isel({cv.ERA5_TIME: 0}, drop=True)  # invariant field
    for var in ds.data_vars:
        if var != LSM and cv.ERA5_TIME not in ds[var].dims:
            raise InputError(f"ERA5-Land file {name}: variable {var!r} has no time dimension (dims {ds[var].dims})")
    if cv.ERA5_TIME in ds.dims and not np.issubdtype(ds[cv.ERA5_TIME].dtype, np.datetime64):
        raise InputError(f"ERA5-Land file {name}: {cv.ERA5_TIME!r} is not a date-time ({ds[cv.ERA5_TIME].dtype}); check its units")
    for dim in (cv.ERA5_LAT, cv.ERA5_LON):
        if ds[dim].dtype == np.float32:  # older CDS files: 40.1 is stored as 40.099998
            ds = ds.assign_coords({dim: (dim, np.round(ds[dim].values.astype(np.float64), FLOAT32_COORD_DECIMALS), ds[dim].attrs)})
    ds = _orient(ds, cv.ERA5_LAT, cv.ERA5_LON)
    _check_units(ds, name)
    ds = ds.transpose(*[d for d in (cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON) if d in ds.dims])
    return ds


def _orient(ds: xr.Dataset, lat: str, lon: str) -> xr.Dataset:
    """Latitude descending (north first), longitude ascending."""
    la = ds[lat].values
    if la.size > 1 and not (np.diff(la) < 0).all():
        ds = ds.isel({lat: slice(None, None, -1)}) if (np.diff(la) > 0).all() else ds.sortby(lat, ascending=False)
    lo = ds[lon].values
    if lo.size > 1 and not (np.diff(lo) > 0).all():
        ds = ds.sortby(lon)
    return ds


def _open_file(
    path: str, storage_options: dict[str, Any] | None, temp: Callable[[], str], opened: list[xr.Dataset]
) -> list[tuple[str, xr.Dataset]]:
    """(label, normalised dataset) of every part of one file (a zip or GRIB can hold several).

    The datasets as opened are appended to ``opened`` (to be closed with the result).
    """
    local = _local_path(path, storage_options, temp)
    fmt = _sniff(local, path)
    if fmt == "netcdf":
        raw = [(path, _open_netcdf(local, path))]
    elif fmt == "grib":
        raw = [(path, d) for d in _open_grib(local, path, temp)]
    else:
        raw = _open_zip(local, path, temp)
    opened.extend(d for _, d in raw)
    parts = [(label, _normalise(d, label)) for label, d in raw]
    parts = [(label, d) for label, d in parts if d.data_vars]
    if not parts:
        raise InputError(
            f"ERA5-Land file {path}: holds none of the ERA5-Land variables {', '.join(cv.ERA5_VARS)} "
            f"(nor {LSM!r}); is it an ERA5-Land file?"
        )
    return parts


# ------------------------------------------------------------------ combining files
def _describe_grid(lat: npt.NDArray[Any], lon: npt.NDArray[Any]) -> str:
    return f"{lat.size} x {lon.size} cells, lat {lat.max():g}..{lat.min():g} N, lon {lon.min():g}..{lon.max():g} E"


def _same_coords(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    single = np.float32 in (a.dtype, b.dtype)  # float32 coordinates are rounded to ~4e-6 degree near 90
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=COORD_TOL + (1e-5 if single else 0.0)))


def _time_label(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def _dedupe(var: str, pieces: list[tuple[str, xr.DataArray]]) -> list[xr.DataArray]:
    """Drop repeated timestamps of one variable (identical values) or raise InputError (different values).

    A timestamp's first holder (in the order of ``pieces``) keeps it; the
    repeated slices are read once per pair of pieces.
    """
    owner: dict[pd.Timestamp, tuple[int, int]] = {}
    kept: list[xr.DataArray] = []
    for k, (label, da) in enumerate(pieces):
        times = pd.DatetimeIndex(da[cv.ERA5_TIME].values)
        repeats: dict[int, list[tuple[int, int]]] = {}  # earlier piece -> [(its position, position here)]
        for i, ts in enumerate(times):
            first = owner.get(ts)
            if first is None:
                owner[ts] = (k, i)
            else:
                repeats.setdefault(first[0], []).append((first[1], i))
        for other_k, pairs in repeats.items():
            other_label, other = pieces[other_k]
            js, is_ = (list(x) for x in zip(*pairs, strict=True))
            a, b = dask.compute(other.isel({cv.ERA5_TIME: js}).data, da.isel({cv.ERA5_TIME: is_}).data)
            a, b = np.asarray(a), np.asarray(b)
            same = np.array([np.array_equal(a[n], b[n], equal_nan=True) for n in range(len(pairs))])
            if not same.all():
                n = int(np.flatnonzero(~same)[0])
                diff = np.abs(a[n] - b[n])
                largest = f"largest difference {np.nanmax(diff):g}" if np.isfinite(diff).any() else "NaN in one, values in the other"
                where = f"file {label} (twice)" if other_label == label else f"files {other_label} and {label}"
                raise InputError(
                    f"ERA5-Land {where}: both hold {var!r} at {_time_label(times[is_[n]])} with different values "
                    f"({largest}); remove the outdated file (e.g. a preliminary download) and ingest again"
                )
        dropped = sorted(i for pairs in repeats.values() for _, i in pairs)
        if not dropped:
            kept.append(da)
        elif len(dropped) < len(times):
            kept.append(da.isel({cv.ERA5_TIME: np.setdiff1d(np.arange(len(times)), dropped)}))
    return kept


def _first_time(piece: tuple[str, xr.DataArray]) -> pd.Timestamp:
    times = piece[1][cv.ERA5_TIME].values
    return pd.Timestamp(times.min()) if times.size else pd.Timestamp.max


def _combine(parts: list[tuple[str, xr.Dataset]]) -> xr.Dataset:
    """Concatenate normalised datasets along valid_time, per variable; checks grids, duplicates, shared times."""
    ref_label, ref = parts[0]
    lat = ref[cv.ERA5_LAT].values
    lon = ref[cv.ERA5_LON].values
    for label, ds in parts[1:]:
        if not (_same_coords(ds[cv.ERA5_LAT].values, lat) and _same_coords(ds[cv.ERA5_LON].values, lon)):
            raise InputError(
                f"ERA5-Land file {label}: its grid ({_describe_grid(ds[cv.ERA5_LAT].values, ds[cv.ERA5_LON].values)}) "
                f"differs from that of {ref_label} ({_describe_grid(lat, lon)}); request the same area for every file"
            )
    by_var: dict[str, list[tuple[str, xr.DataArray]]] = {}
    lsm: xr.DataArray | None = None
    for label, ds in parts:
        ds = ds.assign_coords({cv.ERA5_LAT: ref[cv.ERA5_LAT], cv.ERA5_LON: ref[cv.ERA5_LON]})
        for var in ds.data_vars:
            if var == LSM:
                lsm = ds[LSM] if lsm is None else lsm
            else:
                by_var.setdefault(str(var), []).append((label, ds[var]))
    arrays: dict[str, xr.DataArray] = {}
    for var in [v for v in cv.ERA5_VARS if v in by_var]:
        pieces = sorted(by_var[var], key=_first_time)
        kept = _dedupe(var, pieces)
        da = kept[0] if len(kept) == 1 else xr.concat(kept, dim=cv.ERA5_TIME, coords="minimal", compat="override", join="exact")
        if not da.indexes[cv.ERA5_TIME].is_monotonic_increasing:
            da = da.sortby(cv.ERA5_TIME)
        arrays[var] = da
    if not arrays and lsm is None:
        raise InputError(
            f"ERA5-Land files {', '.join(label for label, _ in parts)}: none of the ERA5-Land variables "
            f"{', '.join(cv.ERA5_VARS)} found; are these ERA5-Land files?"
        )
    _check_shared_times(arrays)
    out = xr.Dataset(arrays)
    if lsm is not None:
        out[LSM] = lsm
    out[cv.ERA5_LAT].attrs = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"}
    out[cv.ERA5_LON].attrs = {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"}
    return out


def _check_shared_times(arrays: dict[str, xr.DataArray]) -> None:
    if len(arrays) < 2:
        return
    names = list(arrays)
    ref = arrays[names[0]].indexes[cv.ERA5_TIME]
    for var in names[1:]:
        idx = arrays[var].indexes[cv.ERA5_TIME]
        if idx.equals(ref):
            continue
        only_ref, only_var = ref.difference(idx), idx.difference(ref)
        detail = []
        if len(only_ref):
            detail.append(f"{len(only_ref)} hour(s) with {names[0]!r} but not {var!r} (first {_time_label(only_ref[0])})")
        if len(only_var):
            detail.append(f"{len(only_var)} hour(s) with {var!r} but not {names[0]!r} (first {_time_label(only_var[0])})")
        raise InputError(
            "ERA5-Land files: the variables do not cover the same hours: "
            + "; ".join(detail)
            + ". Give every variable's file for the same period (a file may be missing)"
        )


def open_era5land_hourly(paths: Sequence[str | os.PathLike[str]], *, storage_options: dict[str, Any] | None = None) -> xr.Dataset:
    """Open hourly ERA5-Land files (NetCDF in both CDS layouts, a CDS zip of NetCDF, or GRIB) lazily as one dataset.

    Parameters
    ----------
    paths : sequence of str or PathLike
        Local paths or fsspec URLs (``s3://bucket/era5land_2020_01.nc``), in any
        order; e.g. one file per month or per variable.
    storage_options : dict, optional
        fsspec options for remote URLs (endpoint, credentials).

    Returns
    -------
    xarray.Dataset
        Dims ``(valid_time, latitude, longitude)``, hourly, sorted by time;
        latitude descending (degrees_north), longitude ascending
        (degrees_east); dask arrays chunked by 24 hours. Variables: those of
        ``conventions.ERA5_VARS`` present in the files, in their raw units
        (``conventions.ERA5_RAW_UNITS``: tp, pev in m; e in m of water
        equivalent; ssrd in J m-2, accumulated from 00 UTC; t2m, stl in K;
        swvl in m3 m-3; LAI in m2 m-2), and ``lsm`` (land fraction, 0-1, dims
        latitude, longitude) when present. ``attrs["source_files"]`` lists the
        files.

    Raises
    ------
    InputError
        A file is missing, empty, corrupt or not ERA5-Land; a variable has
        the wrong units; the files' grids differ; a timestamp is held twice
        with different values (naming both files and the timestamp); the
        variables do not cover the same hours.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    names = [os.fspath(p) for p in paths]
    if not names:
        raise InputError("no ERA5-Land file given; pass at least one NetCDF or GRIB file")
    temp_dir: list[str] = []

    def temp() -> str:
        if not temp_dir:
            temp_dir.append(_new_temp_dir())
        return temp_dir[0]

    opened: list[xr.Dataset] = []

    def close() -> None:
        for d in opened:
            d.close()
        for d in temp_dir:
            shutil.rmtree(d, ignore_errors=True)

    try:
        parts: list[tuple[str, xr.Dataset]] = []
        for name in names:
            parts.extend(_open_file(name, storage_options, temp, opened))
        out = _combine(parts)
    except BaseException:
        close()
        raise
    out.attrs = {
        "source": "ERA5-Land hourly data (Copernicus Climate Change Service)",
        "source_files": ", ".join(names),
    }
    out.set_close(close)
    return out


# ------------------------------------------------------------------ daily aggregation
def _spatial_dims(ds: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    if cv.ERA5_LAT in ds.dims and cv.ERA5_LON in ds.dims:
        return cv.ERA5_LAT, cv.ERA5_LON
    if cv.LAT in ds.dims and cv.LON in ds.dims:
        return cv.LAT, cv.LON
    raise InputError(
        f"ERA5-Land data: no ({cv.ERA5_LAT}, {cv.ERA5_LON}) or ({cv.LAT}, {cv.LON}) dimensions (dims {sorted(map(str, ds.dims))})"
    )


def _complete_days(times: pd.DatetimeIndex, has_state: bool, has_accum: bool) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """(complete days, held-back days) among the days the timestamps touch."""
    touched = []
    if has_state:
        touched.append(times.normalize())
    if has_accum:
        touched.append((times - _ONE_HOUR).normalize())  # the 00 UTC value closes the previous day
    days = pd.DatetimeIndex(np.unique(np.concatenate([t.values for t in touched])))
    ok = np.ones(len(days), dtype=bool)
    if has_state:
        hours = days.values[:, None] + _DAY_HOURS[None, :]
        ok &= np.isin(hours, times.values).all(axis=1)
    if has_accum:
        ok &= (days + _ONE_DAY).isin(times)
    return days[ok], days[~ok]


def daily_from_hourly(ds: xr.Dataset) -> tuple[xr.Dataset, list[pd.Timestamp]]:
    """Daily ERA5-Land covariates from hourly data, ECMWF conventions (see the module docstring).

    Lazy: nothing is computed; only the time coordinate is read.

    Parameters
    ----------
    ds : xarray.Dataset
        Hourly data as :func:`open_era5land_hourly` returns it: dims
        ``(valid_time, latitude, longitude)`` (``time`` for ``valid_time`` and
        ``lat``/``lon`` are accepted too), raw units (tp, pev in m; e in m of
        water equivalent; ssrd in J m-2 accumulated from 00 UTC; t2m, stl in K;
        swvl in m3 m-3; LAI in m2 m-2). Other variables (``lsm``) are ignored.

    Returns
    -------
    daily : xarray.Dataset
        Dims ``(time, lat, lon)``, time at 00:00 of each complete day, lat
        descending, float32: tp, e, pev in mm day-1 (evaporation positive);
        ssrd in MJ m-2 day-1; t2m, stl1-4 in K; swvl1-4 in m3 m-3; lai_hv,
        lai_lv in m2 m-2. Each variable has ``units``, ``long_name``,
        ``cell_methods`` and ``description``.
    held_back : list of pandas.Timestamp
        Days (00:00) the data touches but cannot complete: a state variable
        lacks one of the 24 hours, or an accumulation lacks the 00 UTC value
        of the next day. They are not in ``daily``.

    Raises
    ------
    InputError
        No ERA5-Land variable; timestamps repeated or not on the hour.
    """
    if cv.ERA5_TIME not in ds.dims and "time" in ds.dims:
        ds = ds.rename({"time": cv.ERA5_TIME})
    if cv.ERA5_TIME not in ds.dims:
        raise InputError(f"ERA5-Land data: no {cv.ERA5_TIME!r} dimension (dims {sorted(map(str, ds.dims))})")
    lat, lon = _spatial_dims(ds)
    ds = _orient(ds, lat, lon)
    state = [v for v in cv.ERA5_STATE_VARS if v in ds.data_vars]
    accum = [v for v in cv.ERA5_ACCUM_VARS if v in ds.data_vars]
    if not state and not accum:
        raise InputError(f"ERA5-Land data: none of the variables {', '.join(cv.ERA5_VARS)} found; nothing to aggregate")
    times = pd.DatetimeIndex(ds[cv.ERA5_TIME].values)
    if times.has_duplicates:
        twice = _time_label(times[times.duplicated()][0])
        raise InputError(f"ERA5-Land data: timestamp {twice} occurs twice; open the files with open_era5land_hourly")
    if not times.is_monotonic_increasing:
        ds = ds.sortby(cv.ERA5_TIME)
        times = pd.DatetimeIndex(ds[cv.ERA5_TIME].values)
    off = times[times != times.floor("h")]
    if len(off):
        raise InputError(f"ERA5-Land data: timestamp {off[0]} is not on the hour; hourly data are expected")

    complete, held = _complete_days(times, bool(state), bool(accum)) if len(times) else (pd.DatetimeIndex([]), pd.DatetimeIndex([]))
    dims = (cv.TIME, cv.LAT, cv.LON)
    out: dict[str, xr.DataArray] = {}
    if state:
        hours = complete.values[:, None] + _DAY_HOURS[None, :]
        idx = times.get_indexer(hours.ravel())
        for var in state:
            out[var] = _daily_var(_daily_mean(ds[var].isel({cv.ERA5_TIME: idx}), lat, lon), var, complete, lat, lon, dims)
    if accum:
        idx = times.get_indexer(complete + _ONE_DAY)
        for var in accum:
            out[var] = _daily_var(ds[var].isel({cv.ERA5_TIME: idx}).astype(np.float64), var, complete, lat, lon, dims)
    daily = xr.Dataset({v: out[v] for v in cv.ERA5_VARS if v in out})
    daily[cv.TIME].attrs = {"long_name": "day (00 UTC to 00 UTC of the next day)", "standard_name": "time"}
    daily[cv.LAT].attrs = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude of the 0.1 degree cell centre"}
    daily[cv.LON].attrs = {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude of the 0.1 degree cell centre"}
    daily.attrs = {
        "title": "ERA5-Land daily covariates (0.1 degree)",
        "source": "ERA5-Land hourly data (Copernicus Climate Change Service), aggregated to days by smci_dask",
        "conventions_note": "days run from 00 UTC to 00 UTC; accumulations are the next day's 00 UTC value",
    }
    if "source_files" in ds.attrs:
        daily.attrs["source_files"] = ds.attrs["source_files"]
    return daily, [pd.Timestamp(d) for d in held]


def _daily_mean(hourly: xr.DataArray, lat: str, lon: str) -> xr.DataArray:
    """Mean of consecutive blocks of 24 hours (float64, NaN if any hour is NaN), lazily for dask arrays."""
    hourly = hourly.transpose(cv.ERA5_TIME, lat, lon)
    data = hourly.data
    ndays = hourly.sizes[cv.ERA5_TIME] // HOURS_PER_DAY
    if hasattr(data, "rechunk"):  # dask: one day per chunk so the reshape stays blockwise
        data = data.rechunk({0: HOURS_PER_DAY})
    shape = (ndays, HOURS_PER_DAY, hourly.sizes[lat], hourly.sizes[lon])
    mean = data.astype(np.float64).reshape(shape).mean(axis=1)
    return xr.DataArray(mean, dims=(cv.ERA5_TIME, lat, lon), coords={lat: hourly[lat], lon: hourly[lon]})


def _daily_var(values: xr.DataArray, var: str, days: pd.DatetimeIndex, lat: str, lon: str, dims: tuple[str, str, str]) -> xr.DataArray:
    rule = DAILY_RULES[var]
    data = (values * rule.factor) if rule.factor != 1.0 else values
    data = data.astype(np.float32).transpose(cv.ERA5_TIME, lat, lon)
    return xr.DataArray(
        data.data,
        dims=dims,
        coords={cv.TIME: days.values.astype("datetime64[ns]"), cv.LAT: values[lat].values, cv.LON: values[lon].values},
        name=var,
        attrs={"units": rule.units, "long_name": rule.long_name, "cell_methods": rule.cell_methods, "description": rule.description},
    )


# ------------------------------------------------------------------ region and land mask
def _match(values: npt.NDArray[Any], targets: npt.NDArray[np.float64], *, periodic: bool) -> npt.NDArray[np.int64]:
    """Index in ``values`` of each target within COORD_TOL (plus float32 rounding), -1 where none."""
    vals = np.asarray(values, dtype=np.float64)
    tol = COORD_TOL + (np.spacing(np.abs(values.astype(np.float32))).astype(np.float64) if values.dtype == np.float32 else 0.0)
    tol = np.broadcast_to(tol, vals.shape)
    if periodic and targets.size:
        centre = (targets.min() + targets.max()) / 2.0
        vals = (vals - centre + 180.0) % 360.0 + centre - 180.0
    if vals.size == 0:
        return np.full(targets.shape, -1, dtype=np.int64)
    order = np.argsort(vals, kind="stable")
    sv = vals[order]
    pos = np.searchsorted(sv, targets)
    lo = np.clip(pos - 1, 0, sv.size - 1)
    hi = np.clip(pos, 0, sv.size - 1)
    best = np.where(np.abs(sv[lo] - targets) <= np.abs(sv[hi] - targets), lo, hi)
    idx = order[best]
    ok = np.abs(vals[idx] - targets) <= tol[idx]
    return np.where(ok, idx, -1).astype(np.int64)


def subset_to_grid(ds: xr.Dataset, grid: GridSpec) -> xr.Dataset:
    """Exactly the region's coarse (0.1 degree) cells, coordinates set to the grid's.

    Parameters
    ----------
    ds : xarray.Dataset
        ERA5-Land data with dims ``latitude``/``longitude`` (hourly) or
        ``lat``/``lon`` (daily); coordinates in degrees, longitudes in
        -180..180 or 0..360.
    grid : GridSpec
        The region; its coarse cells are ``grid.coarse_lat`` (descending) x
        ``grid.coarse_lon``.

    Returns
    -------
    xarray.Dataset
        ``ds`` at the coarse cells, same dim names, latitude descending,
        coordinates equal to ``grid.coarse_lat``/``grid.coarse_lon`` (degrees).

    Raises
    ------
    InputError
        The data do not cover the region or their cell centres are not the
        region's (within 1e-6 degree); the message names the file and the
        missing bounds.
    """
    lat, lon = _spatial_dims(ds)
    want_lat = np.asarray(grid.coarse_lat, dtype=np.float64)
    want_lon = np.asarray(grid.coarse_lon, dtype=np.float64)
    ilat = _match(ds[lat].values, want_lat, periodic=False)
    ilon = _match(ds[lon].values, want_lon, periodic=True)
    if (ilat < 0).any() or (ilon < 0).any():
        raise InputError(_coverage_message(ds, lat, lon, want_lat, want_lon, ilat, ilon, grid))
    out = ds.isel({lat: ilat, lon: ilon})
    return out.assign_coords({lat: (lat, want_lat, ds[lat].attrs), lon: (lon, want_lon, ds[lon].attrs)})


def _coverage_message(
    ds: xr.Dataset,
    lat: str,
    lon: str,
    want_lat: npt.NDArray[np.float64],
    want_lon: npt.NDArray[np.float64],
    ilat: npt.NDArray[np.int64],
    ilon: npt.NDArray[np.int64],
    grid: GridSpec,
) -> str:
    source = ds.attrs.get("source_files") or "the ERA5-Land data"
    la = np.asarray(ds[lat].values, dtype=np.float64)
    lo = np.asarray(ds[lon].values, dtype=np.float64)
    have = f"lat {la.min():g}..{la.max():g} N, lon {lo.min():g}..{lo.max():g} E" if la.size and lo.size else "no cells"
    need = f"lat {want_lat.min():g}..{want_lat.max():g} N, lon {want_lon.min():g}..{want_lon.max():g} E"
    missing: list[str] = []
    bad_lat, bad_lon = want_lat[ilat < 0], want_lon[ilon < 0]
    if bad_lat.size:
        north = bad_lat[bad_lat > (la.max() if la.size else -np.inf)]
        south = bad_lat[bad_lat < (la.min() if la.size else np.inf)]
        if north.size:
            missing.append(f"north: lat {north.min():g}..{north.max():g} N")
        if south.size:
            missing.append(f"south: lat {south.min():g}..{south.max():g} N")
        inside = bad_lat.size - north.size - south.size
        if inside:
            missing.append(f"{inside} latitude(s) inside the file's extent that are not its cell centres (e.g. {bad_lat[0]:g} N)")
    if bad_lon.size:
        lo_wrapped = lo if lo.size == 0 else (lo - want_lon.mean() + 180.0) % 360.0 + want_lon.mean() - 180.0
        west = bad_lon[bad_lon < (lo_wrapped.min() if lo.size else np.inf)]
        east = bad_lon[bad_lon > (lo_wrapped.max() if lo.size else -np.inf)]
        if west.size:
            missing.append(f"west: lon {west.min():g}..{west.max():g} E")
        if east.size:
            missing.append(f"east: lon {east.min():g}..{east.max():g} E")
        inside = bad_lon.size - west.size - east.size
        if inside:
            missing.append(f"{inside} longitude(s) inside the file's extent that are not its cell centres (e.g. {bad_lon[0]:g} E)")
    return (
        f"ERA5-Land {source}: does not cover the region {grid.bbox} on its 0.1 degree cell centres: "
        f"the data hold {have}, the region needs {need}; missing {'; '.join(missing)}. "
        "Download ERA5-Land for an area that contains the region (CDS 'area': north, west, south, east)"
    )


def land_mask_from_era5(ds: xr.Dataset) -> xr.DataArray:
    """Land mask of the ERA5-Land cells: ``lsm >= 0.5`` if ``lsm`` is present, else swvl1 never NaN.

    Parameters
    ----------
    ds : xarray.Dataset
        Hourly (``valid_time``, ``latitude``, ``longitude``) or daily
        (``time``, ``lat``, ``lon``) ERA5-Land data with ``lsm`` (land
        fraction, 0-1) or ``swvl1`` (m3 m-3; NaN over the sea).

    Returns
    -------
    xarray.DataArray
        bool, dims ``(lat, lon)`` (conventions' names whatever the input's),
        True over land; computed (not lazy).

    Raises
    ------
    InputError
        Neither ``lsm`` nor ``swvl1`` is in ``ds``.
    """
    lat, lon = _spatial_dims(ds)
    if LSM in ds.data_vars:
        frac = ds[LSM]
        for dim in (cv.ERA5_TIME, cv.TIME):
            if dim in frac.dims:
                frac = frac.isel({dim: 0}, drop=True)  # invariant field
        mask = frac >= 0.5
        how = "ERA5-Land land-sea mask lsm >= 0.5"
    elif "swvl1" in ds.data_vars:
        sm = ds["swvl1"]
        tdims = [d for d in (cv.ERA5_TIME, cv.TIME) if d in sm.dims]
        mask = sm.notnull().all(tdims) if tdims else sm.notnull()
        how = "ERA5-Land swvl1 not NaN at any time step"
    else:
        raise InputError("ERA5-Land data: neither 'lsm' nor 'swvl1' present; cannot tell land from sea, include one of them")
    mask = mask.drop_vars([c for c in mask.coords if c not in (lat, lon)]).transpose(lat, lon)
    mask = mask.rename({lat: cv.LAT, lon: cv.LON}).compute()
    mask.name = "land"
    mask.attrs = {"long_name": "land (True) or sea (False)", "description": how}
    return mask
