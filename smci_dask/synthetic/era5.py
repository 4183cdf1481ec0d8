"""Synthetic ERA5-Land: daily fields from the weather and the truth, hourly monthly files as the CDS delivers them.

Two steps:

1. :func:`make_era5_daily` builds the daily ERA5-Land-like fields on the
   coarse grid, in the units of the hourly files (``conventions.ERA5_RAW_UNITS``):
   daily totals for the accumulations, daily means for the states.

   * ``tp`` (m), ``ssrd`` (J m-2), ``t2m`` (K) from the weather;
     ``pev`` (m, NEGATIVE) the weather's potential evaporation;
     ``e`` (m of water equivalent, NEGATIVE) the truth's coarse actual
     evapotranspiration (ECMWF's downward-positive convention: evaporation is
     an upward flux, hence negative).
   * ``swvl1..4`` (m3/m3): the coarse truth (mean of the 1 km truth over each
     coarse cell's land) brought to ERA5-Land's layers 0-7, 7-28, 28-100,
     100-289 cm as the depth-weighted mean of the truth layers overlapping each
     layer; layer 4 (below the truth's 100 cm) is the 90-100 cm layer smoothed
     further (exponential, 30-day time constant). Then degraded by a model error
     (:func:`degrade_soil_moisture`)::

         z_era = 0.8 * z_truth + 0.6 * z_err
         swvl  = clip(mean_truth + std_truth * z_era, 0.01, porosity)

     with ``z_truth`` the per-cell standardised series, ``z_err`` a smooth
     unit-variance error (AR(1) in time with a 25-day e-folding time, Gaussian
     correlated in space over 2 coarse cells, half shared by the four layers),
     made orthogonal to ``z_truth`` over the period, so that before clipping the
     daily correlation with the coarse truth is 0.8 and the per-cell long-term
     mean and standard deviation (over the period, lead days excluded) are the
     coarse truth's exactly: matching stations to ERA5-Land brings them back to
     the truth's scale, the assumption SMCI1.0 makes of ERA5-Land.
   * ``stl1..4`` (K): ``t2m`` damped and lagged with depth
     (:func:`smci_dask.synthetic.weather.soil_temperature` at the layer centres
     3.5, 17.5, 64, 194.5 cm).
   * ``lai_hv``, ``lai_lv`` (m2/m2): ERA5-Land's LAI is a climatology: the same
     seasonal cycle every year (natural vegetation peaking in late July, the
     low-vegetation cycle following the double crop where crops dominate).
   * Every field is NaN over coarse cells whose water fraction exceeds 0.5
     (ERA5-Land masks the sea so).

2. :func:`make_era5_hourly` / :func:`write_era5_month_files` disaggregate one
   month to hours and write it in the layout of the current CDS NetCDF files
   (the cfgrib-based converter): dims ``valid_time`` (hourly, 00 UTC of the first
   day to 23 UTC of the last), ``latitude`` (descending), ``longitude``; coords
   ``number`` (scalar 0) and ``expver`` (``"0001"`` along ``valid_time``);
   float32 variables with ECMWF short names and the GRIB_* attributes cfgrib
   writes; the coarse grid plus a margin of 2 cells on every side (as a CDS
   ``area`` request gives; margin values extend the fields by the nearest cell).
   Accumulations run from 00 UTC: the value at hour ``h`` (1-23) of day ``D`` is
   the accumulation from 00 UTC of ``D`` to ``h``, the value at 00 UTC of
   ``D + 1`` is the total of ``D``; the first step of a month file is thus the
   total of the last day of the previous month. ``fmt="grib"`` writes the same
   month as GRIB edition 1 (ERA5-Land's archive format): instantaneous fields at
   step 0, accumulations from the 00 UTC reference time with ``stepRange``
   ``0-h`` (``0-24`` for the 00 UTC value of the next day).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import ConfigError, InputError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store
from smci_dask.synthetic.truth import TruthSummary, vegetation_season
from smci_dask.synthetic.weather import (
    HOURS,
    ar1,
    component_rng,
    disaggregate_mean,
    disaggregate_sum,
    precip_hourly_weights,
    radiation_hourly_weights,
    smooth_noise,
    soil_temperature,
    temperature_hourly_anomaly,
)

FloatArray = npt.NDArray[np.float64]
Era5Format = Literal["netcdf", "grib"]

#: Coarse cells added on every side of the region in the files (a CDS "area" request's margin).
MARGIN = 2
#: Daily correlation of the degraded ERA5 soil moisture with the coarse truth.
ERA5_CORRELATION = 0.8
#: e-folding time of the ERA5 soil-moisture error, days.
ERROR_EFOLD_DAYS = 25.0
#: Spatial correlation length of the ERA5 soil-moisture error, coarse cells.
ERROR_SIGMA_CELLS = 2.0
#: Time constant of the extra smoothing giving layer 4 from the deepest truth layer, days.
LAYER4_SMOOTH_DAYS = 30.0
#: Coarse cells with a larger water fraction are NaN in ERA5-Land.
MAX_WATER_FRACTION = 0.5
#: Centre depths (cm) of ERA5-Land's soil layers, for soil temperature.
ERA5_LAYER_CENTRES_CM = {k: (a + b) / 2.0 for k, (a, b) in cv.ERA5_LAYERS_CM.items()}

#: ECMWF parameter ids (66 is lai_lv, 67 lai_hv).
PARAM_IDS: dict[str, int] = dict(cv.ERA5_PARAM_IDS)
#: GRIB short names (ecCodes) where they differ from the NetCDF variable names.
GRIB_SHORT_NAMES: dict[str, str] = {"t2m": "2t"}
#: GRIB parameter names as ecCodes reports them (the CDS converter copies them to long_name).
GRIB_NAMES: dict[str, str] = {**cv.ERA5_LONG_NAMES, "e": "Evaporation"}
CENTRE_DESCRIPTION = "European Centre for Medium-Range Weather Forecasts"
GRIB_MISSING = 3.40282346638529e38


# ------------------------------------------------------------------ daily fields
def era5_layer_weights() -> dict[int, FloatArray]:
    """Weights (overlap in cm, normalised) of the 10 truth layers in ERA5-Land layers 1-3.

    Returns
    -------
    dict
        ERA5 layer number -> ndarray (10,), dimensionless, summing to 1.
    """
    out: dict[int, FloatArray] = {}
    for layer in (1, 2, 3):
        top, bot = cv.ERA5_LAYERS_CM[layer]
        w = np.array([max(0.0, min(bot, b) - max(top, a)) for a, b in cv.DEPTH_BOUNDS_CM], dtype=np.float64)
        out[layer] = w / w.sum()
    return out


def _exp_smooth(x: FloatArray, tau: float, spinup: int) -> FloatArray:
    """First-order smoothing along axis 0 with time constant ``tau`` steps, spun up over the first ``spinup`` steps."""
    out = np.empty_like(x)
    n = max(1, min(spinup, len(x)))
    state = x[:n].mean(axis=0)  # NaN stays NaN (coarse cells without land)
    for t in range(min(spinup, len(x))):
        state = state + (x[t] - state) / tau
    for t in range(len(x)):
        state = state + (x[t] - state) / tau
        out[t] = state
    return out


def truth_era5_layers(coarse_sm: npt.ArrayLike, *, lead_days: int = 0) -> dict[int, FloatArray]:
    """The coarse truth on ERA5-Land's layers (the series ERA5's soil moisture is degraded from).

    Parameters
    ----------
    coarse_sm : array_like, shape (time, 10, lat, lon)
        Coarse-cell mean truth, m3/m3 (``TruthSummary.coarse["sm"]``).
    lead_days : int
        Days before the period (the layer-4 smoothing spins up over the period's first year).

    Returns
    -------
    dict
        ERA5 layer number (1-4) -> ndarray (time, lat, lon), m3/m3.
    """
    sm = np.asarray(coarse_sm, dtype=np.float64)
    out = {k: np.einsum("tdyx,d->tyx", sm, w) for k, w in era5_layer_weights().items()}
    deep = sm[:, -1]
    smooth = _exp_smooth(deep[lead_days:], LAYER4_SMOOTH_DAYS, 365)
    if lead_days:  # the lead days continue backwards from the smoothed start
        smooth = np.concatenate([np.repeat(smooth[:1], lead_days, axis=0), smooth])
    out[4] = smooth
    return out


def degrade_soil_moisture(
    truth: npt.ArrayLike,
    errors: npt.ArrayLike,
    period: npt.ArrayLike,
    porosity: npt.ArrayLike,
    *,
    correlation: float = ERA5_CORRELATION,
) -> FloatArray:
    """ERA5-like soil moisture from a coarse truth series and a smooth error (see the module docstring).

    Parameters
    ----------
    truth : array_like, shape (time, lat, lon)
        Coarse truth, m3/m3 (NaN where no land).
    errors : array_like, shape (time, lat, lon)
        Smooth unit-variance error field, dimensionless.
    period : array_like of bool, shape (time,)
        Days over which the mean and standard deviation are kept (the period, lead days excluded).
    porosity : array_like, shape (lat, lon)
        Upper bound, m3/m3.
    correlation : float
        Daily correlation with the truth before clipping (0.8).

    Returns
    -------
    ndarray, shape (time, lat, lon), m3/m3
    """
    x = np.asarray(truth, dtype=np.float64)
    err = np.asarray(errors, dtype=np.float64)
    p = np.asarray(period, dtype=bool)
    mean = x[p].mean(axis=0)
    std = x[p].std(axis=0)
    safe = np.where(std > 0, std, 1.0)
    zt = np.where(std > 0, (x - mean) / safe, 0.0)
    # error orthogonal to the truth over the period, then standardised
    proj = (err[p] * zt[p]).sum(axis=0) / np.maximum((zt[p] ** 2).sum(axis=0), 1e-12)
    ze = err - proj * zt
    ze = (ze - ze[p].mean(axis=0)) / np.maximum(ze[p].std(axis=0), 1e-12)
    z = correlation * zt + np.sqrt(1.0 - correlation**2) * ze
    out = mean + std * z
    return np.clip(out, 0.01, np.asarray(porosity, dtype=np.float64))


def _soil_moisture_errors(seed: int, n: int, shape: tuple[int, int]) -> dict[int, FloatArray]:
    """Unit-variance smooth errors for the four ERA5 layers (half shared between layers)."""
    rng = component_rng(seed, "era5", "swvl-error")
    phi = float(np.exp(-1.0 / ERROR_EFOLD_DAYS))
    common = ar1(smooth_noise(rng, n, shape, ERROR_SIGMA_CELLS), phi)
    return {k: np.sqrt(0.5) * common + np.sqrt(0.5) * ar1(smooth_noise(rng, n, shape, ERROR_SIGMA_CELLS), phi) for k in (1, 2, 3, 4)}


def _coarse_mean(grid: GridSpec, field: npt.ArrayLike) -> FloatArray:
    """Mean of a fine field over each coarse cell's fine cells (NaN ignored)."""
    v = np.asarray(field, dtype=np.float64)
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    idx = (rows[:, None] * grid.coarse_shape[1] + cols[None, :]).ravel()
    ok = np.isfinite(v.ravel())
    nc = grid.coarse_shape[0] * grid.coarse_shape[1]
    s = np.bincount(idx[ok], weights=v.ravel()[ok], minlength=nc)
    c = np.bincount(idx[ok], minlength=nc)
    with np.errstate(invalid="ignore"):
        return (s / c).reshape(grid.coarse_shape)


def _vegetation_fractions(grid: GridSpec, statics: xr.Dataset | None) -> tuple[FloatArray, FloatArray]:
    """Coarse fractions of high vegetation (forests, woody savanna) and of cropland (IGBP 12, 14)."""
    if statics is None or "landcover" not in statics:
        return np.full(grid.coarse_shape, 0.2), np.full(grid.coarse_shape, 0.6)
    lc = np.asarray(statics["landcover"].values)
    land = lc != cv.WATER_CLASS
    high = np.where(land, np.isin(lc, (1, 2, 3, 4, 5, 8)).astype(np.float64), np.nan)
    crop = np.where(land, np.isin(lc, (12, 14)).astype(np.float64), np.nan)
    return np.nan_to_num(_coarse_mean(grid, high), nan=0.0), np.nan_to_num(_coarse_mean(grid, crop), nan=0.0)


def make_era5_daily(
    grid: GridSpec,
    weather: xr.Dataset,
    truth: TruthSummary,
    seed: int,
    *,
    statics: xr.Dataset | None = None,
) -> xr.Dataset:
    """Daily ERA5-Land-like fields on the coarse grid (see the module docstring).

    Parameters
    ----------
    grid : GridSpec
    weather : xarray.Dataset
        From :func:`smci_dask.synthetic.weather.make_weather` (lead days included).
    truth : TruthSummary
        From :func:`smci_dask.synthetic.truth.run_truth` on the same weather.
    seed : int
        World seed (the model error has its own derived stream).
    statics : xarray.Dataset, optional
        1 km statics; their ``landcover`` sets the coarse high-vegetation and crop
        fractions that scale the LAI climatology.

    Returns
    -------
    xarray.Dataset
        Dims ``(time, lat, lon)`` on the weather's time axis; the 15 ERA5-Land
        variables as daily totals (``tp`` m, ``e`` m of water equivalent <= 0,
        ``pev`` m <= 0, ``ssrd`` J m-2) or daily means (``t2m``, ``stl1-4`` K,
        ``swvl1-4`` m3/m3, ``lai_hv``, ``lai_lv`` m2/m2), plus ``dtr`` (K, diurnal
        temperature range, used for the hourly cycle) and ``water_fraction``
        (lat, lon); attribute ``lead_days``.
    """
    lead = int(weather.attrs.get("lead_days", 0))
    times = pd.DatetimeIndex(weather[cv.TIME].values)
    nt = len(times)
    shape = grid.coarse_shape
    period = np.arange(nt) >= lead
    coarse = truth.coarse
    water = 1.0 - np.asarray(coarse["land_fraction"].values, dtype=np.float64)
    sea = water > MAX_WATER_FRACTION
    porosity = np.nan_to_num(np.asarray(coarse["porosity"].values, dtype=np.float64), nan=0.45)

    data: dict[str, FloatArray] = {}
    data["tp"] = np.asarray(weather["tp"].values) / 1000.0
    data["e"] = -np.nan_to_num(np.asarray(coarse["aet"].values, dtype=np.float64), nan=0.0) / 1000.0
    data["pev"] = -np.asarray(weather["pev"].values) / 1000.0
    data["ssrd"] = np.asarray(weather["ssrd"].values) * 1.0e6
    t2m = np.asarray(weather["t2m"].values, dtype=np.float64)
    data["t2m"] = t2m
    layers = truth_era5_layers(coarse["sm"].values, lead_days=lead)
    errors = _soil_moisture_errors(seed, nt, shape)
    for k in (1, 2, 3, 4):
        filled = np.where(np.isfinite(layers[k]), layers[k], 0.25)
        data[f"swvl{k}"] = degrade_soil_moisture(filled, errors[k], period, porosity)
    for k in (1, 2, 3, 4):
        data[f"stl{k}"] = soil_temperature(t2m, ERA5_LAYER_CENTRES_CM[k], spinup_days=365)
    high, crop = _vegetation_fractions(grid, statics)
    doy = np.asarray(times.day_of_year)[:, None, None]
    natural = vegetation_season(doy, False)
    double = vegetation_season(doy, True)
    data["lai_hv"] = (0.8 + 3.2 * natural) * (0.8 + 0.4 * high)
    data["lai_lv"] = 0.5 + 2.5 * (crop * double + (1.0 - crop) * natural)

    dims = (cv.TIME, cv.LAT, cv.LON)
    ds = xr.Dataset(coords={cv.TIME: times, cv.LAT: grid.coarse_lat, cv.LON: grid.coarse_lon})
    for name in cv.ERA5_VARS:
        v = np.where(sea[None], np.nan, np.broadcast_to(data[name], (nt, *shape)))
        ds[name] = (dims, v, {"units": cv.ERA5_RAW_UNITS[name], "long_name": GRIB_NAMES[name]})
    ds["dtr"] = (dims, np.where(sea[None], np.nan, np.asarray(weather["dtr"].values)), {"units": "K"})
    ds["water_fraction"] = ((cv.LAT, cv.LON), water, {"units": "1"})
    ds.attrs = {
        "lead_days": lead,
        "seed": int(seed),
        "description": "synthetic ERA5-Land daily fields: accumulations as daily totals, states as daily means",
    }
    return ds


# ------------------------------------------------------------------ hourly month
def _pad(a: FloatArray, margin: int) -> FloatArray:
    """Extend the last two axes by ``margin`` cells, repeating the nearest edge cell."""
    if margin == 0:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(margin, margin), (margin, margin)]
    return np.pad(a, pad, mode="edge")


def _extend_coords(lat: npt.ArrayLike, lon: npt.ArrayLike, margin: int) -> tuple[FloatArray, FloatArray]:
    step = 1.0 / cv.COARSE_PER_DEGREE
    la, lo = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    lat_out = np.round(la[0] + step * (margin - np.arange(la.size + 2 * margin)), 10)
    lon_out = np.round(lo[0] + step * (np.arange(lo.size + 2 * margin) - margin), 10)
    return lat_out, lon_out


def era5_file_coords(grid: GridSpec, margin: int = MARGIN) -> tuple[FloatArray, FloatArray]:
    """Latitudes (descending) and longitudes of the files: the coarse grid plus ``margin`` cells, degrees."""
    return _extend_coords(grid.coarse_lat, grid.coarse_lon, margin)


def _var_attrs(name: str, lat: FloatArray, lon: FloatArray) -> dict[str, object]:
    """GRIB_* and CF attributes of one variable, as the CDS converter (cfgrib) writes them."""
    accum = name in cv.ERA5_ACCUM_VARS
    step = 1.0 / cv.COARSE_PER_DEGREE
    return {
        "GRIB_paramId": int(PARAM_IDS[name]),
        "GRIB_dataType": "fc" if accum else "an",
        "GRIB_numberOfPoints": int(lat.size * lon.size),
        "GRIB_typeOfLevel": "surface",
        "GRIB_stepUnits": 1,
        "GRIB_stepType": "accum" if accum else "instant",
        "GRIB_gridType": "regular_ll",
        "GRIB_uvRelativeToGrid": 0,
        "GRIB_NV": 0,
        "GRIB_Nx": int(lon.size),
        "GRIB_Ny": int(lat.size),
        "GRIB_cfName": "unknown",
        "GRIB_cfVarName": name,
        "GRIB_gridDefinitionDescription": "Latitude/Longitude Grid",
        "GRIB_iDirectionIncrementInDegrees": step,
        "GRIB_iScansNegatively": 0,
        "GRIB_jDirectionIncrementInDegrees": step,
        "GRIB_jPointsAreConsecutive": 0,
        "GRIB_jScansPositively": 0,
        "GRIB_latitudeOfFirstGridPointInDegrees": float(lat[0]),
        "GRIB_latitudeOfLastGridPointInDegrees": float(lat[-1]),
        "GRIB_longitudeOfFirstGridPointInDegrees": float(lon[0]),
        "GRIB_longitudeOfLastGridPointInDegrees": float(lon[-1]),
        "GRIB_missingValue": GRIB_MISSING,
        "GRIB_name": GRIB_NAMES[name],
        "GRIB_shortName": GRIB_SHORT_NAMES.get(name, name),
        "GRIB_totalNumber": 0,
        "GRIB_units": cv.ERA5_RAW_UNITS[name],
        "long_name": GRIB_NAMES[name],
        "units": cv.ERA5_RAW_UNITS[name],
        "standard_name": "unknown",
        "GRIB_surface": 0.0,
    }


def make_era5_hourly(era5_daily: xr.Dataset, year: int, month: int, seed: int, *, margin: int = MARGIN) -> xr.Dataset:
    """One month of hourly ERA5-Land in the current CDS NetCDF layout (see the module docstring).

    Parameters
    ----------
    era5_daily : xarray.Dataset
        From :func:`make_era5_daily`; must hold the day before the month.
    year, month : int
        The month.
    seed : int
        World seed (the hourly profiles of the month use their own derived stream).
    margin : int
        Coarse cells added on every side (nearest-cell values).

    Returns
    -------
    xarray.Dataset
        Dims ``(valid_time, latitude, longitude)``, float32 variables in the units
        of ``conventions.ERA5_RAW_UNITS``, accumulations from 00 UTC.
    """
    first = pd.Timestamp(year=year, month=month, day=1)
    days = pd.date_range(first, first + pd.offsets.MonthEnd(0), freq="D")
    prev = first - pd.Timedelta(days=1)
    daily_times = pd.DatetimeIndex(era5_daily[cv.TIME].values)
    if prev not in daily_times or days[-1] not in daily_times:
        raise InputError(
            f"era5_daily covers {daily_times[0].date()}..{daily_times[-1].date()}; month {year}-{month:02d} "
            f"needs {prev.date()}..{days[-1].date()} (the day before for the 00 UTC accumulation): "
            "build the weather with lead_days >= 1 or pick months inside the period"
        )
    sub = era5_daily.sel({cv.TIME: pd.date_range(prev, days[-1], freq="D")})
    nd = len(days)
    lat, lon = _extend_coords(era5_daily[cv.LAT].values, era5_daily[cv.LON].values, margin)
    shape = (lat.size, lon.size)

    def daily(name: str) -> FloatArray:
        return _pad(np.asarray(sub[name].values, dtype=np.float64), margin)

    rng = component_rng(seed, "era5", "hourly", year, month)
    doy = np.asarray(days.day_of_year)
    w_rad = radiation_hourly_weights(doy, lat, lon)
    w_tp = precip_hourly_weights(rng, nd, shape)
    dtr = np.nan_to_num(daily("dtr")[1:], nan=8.0)

    hourly: dict[str, FloatArray] = {}
    for name in cv.ERA5_ACCUM_VARS:
        d = daily(name)  # (nd + 1, ny, nx): the previous day first
        inc = disaggregate_sum(d[1:], w_tp if name == "tp" else w_rad)
        acc = np.cumsum(inc, axis=1)  # acc[:, h] = accumulation from 00 UTC to h + 1
        out = np.empty_like(acc)
        out[:, 0] = d[:-1]  # 00 UTC of day D: total of day D - 1
        out[:, 1:] = acc[:, :-1]
        hourly[name] = out
    for name in cv.ERA5_STATE_VARS:
        d = daily(name)[1:]
        if name == "t2m":
            hourly[name] = disaggregate_mean(d, temperature_hourly_anomaly(dtr, lon))
        elif name == "stl1":
            hourly[name] = disaggregate_mean(d, temperature_hourly_anomaly(0.3 * dtr, lon, lag_hours=2.0))
        else:
            hourly[name] = disaggregate_mean(d)

    valid_time = pd.date_range(first, periods=nd * HOURS, freq="h")
    dims = (cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON)
    ds = xr.Dataset(
        coords={
            cv.ERA5_NUMBER: ((), np.int64(0), {"long_name": "ensemble member numerical id", "units": "1", "standard_name": "realization"}),
            cv.ERA5_TIME: (cv.ERA5_TIME, valid_time, {"long_name": "time", "standard_name": "time"}),
            cv.ERA5_LAT: (
                cv.ERA5_LAT,
                lat,
                {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "stored_direction": "decreasing"},
            ),
            cv.ERA5_LON: (cv.ERA5_LON, lon, {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"}),
            cv.ERA5_EXPVER: (cv.ERA5_TIME, np.array(["0001"] * valid_time.size, dtype=object)),
        }
    )
    for name in cv.ERA5_VARS:
        v = hourly[name].reshape(nd * HOURS, *shape).astype(np.float32)
        ds[name] = (dims, v, _var_attrs(name, lat, lon))
    ds.attrs = {
        "GRIB_centre": "ecmf",
        "GRIB_centreDescription": CENTRE_DESCRIPTION,
        "GRIB_subCentre": 0,
        "Conventions": "CF-1.7",
        "institution": CENTRE_DESCRIPTION,
        "history": "synthetic ERA5-Land (smci_dask.synthetic.era5) in the layout of the CDS GRIB to netCDF converter (cfgrib)",
    }
    return ds


# ------------------------------------------------------------------ files
def era5_file_name(year: int, month: int, fmt: Era5Format = "netcdf") -> str:
    """File name of one month, as named here: ``era5land_YYYY_MM.nc`` (``.grib`` for GRIB)."""
    return f"era5land_{year:04d}_{month:02d}.{'nc' if fmt == 'netcdf' else 'grib'}"


def _netcdf_encoding(ds: xr.Dataset, complevel: int = 2) -> dict[str, dict[str, object]]:
    """zlib level ``complevel``; chunks of whole fields, one day (24 steps) per chunk on small grids.

    One step per chunk makes the HDF5 chunk overhead dominate on regional grids
    (a 9 x 9 field is 324 bytes): a day per chunk makes the files 3-4 times
    smaller and 7 times faster to write. Chunks are kept below about 1 M values.
    """
    ny, nx = ds.sizes[cv.ERA5_LAT], ds.sizes[cv.ERA5_LON]
    tc = int(max(1, min(HOURS, 2**20 // (ny * nx), ds.sizes[cv.ERA5_TIME])))
    enc: dict[str, dict[str, object]] = {
        name: {"zlib": True, "complevel": complevel, "chunksizes": (tc, ny, nx), "_FillValue": np.float32(np.nan), "dtype": "float32"}
        for name in ds.data_vars
    }
    enc[cv.ERA5_TIME] = {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}
    enc[cv.ERA5_LAT] = {"_FillValue": np.nan}
    enc[cv.ERA5_LON] = {"_FillValue": np.nan}
    return enc


def write_era5_netcdf(ds: xr.Dataset, path: str | Path) -> None:
    """Write an hourly month (:func:`make_era5_hourly`) to a local NetCDF-4 file (zlib level 2, chunks of whole fields)."""
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=_netcdf_encoding(ds))


def _import_eccodes() -> ModuleType:
    """Import ecCodes after pyproj.

    The ``eckitlib`` wheel that ``eccodes`` loads bundles its own PROJ library
    under the soname pyproj's wheel uses; if ecCodes loads first, pyproj binds to
    that copy and the interpreter crashes at exit. Loading pyproj first avoids it.
    """
    try:
        import pyproj  # noqa: F401
    except ImportError:  # pragma: no cover - pyproj is a dependency
        pass
    import eccodes

    return eccodes


def write_era5_grib(ds: xr.Dataset, path: str | Path, *, bits_per_value: int = 24) -> None:
    """Write an hourly month (:func:`make_era5_hourly`) to a local GRIB edition 1 file with ecCodes.

    Instantaneous fields: reference time = valid time, step 0. Accumulations
    (``stepType`` accum): reference time 00 UTC of the accumulation's day,
    ``stepRange`` ``0-h``; the 00 UTC value of day ``D`` is ``0-24`` from day
    ``D - 1``. NaN is encoded as missing (bitmap). Messages are ordered by
    valid time, then variable; values are packed with ``bits_per_value`` bits.
    Read it back with ``xr.open_dataset(path, engine="cfgrib",
    backend_kwargs={"time_dims": ["valid_time"]})`` (or filter by ``stepType``).

    Parameters
    ----------
    ds : xarray.Dataset
        Hourly month in the CDS layout.
    path : str or Path
        Local output file.
    bits_per_value : int
        Packing precision (ERA5 uses 16; 24 keeps the synthetic values closer).
    """
    ec = _import_eccodes()
    lat = np.asarray(ds[cv.ERA5_LAT].values)
    lon = np.asarray(ds[cv.ERA5_LON].values)
    times = pd.DatetimeIndex(ds[cv.ERA5_TIME].values)
    step = 1.0 / cv.COARSE_PER_DEGREE
    bases = {}
    for name in cv.ERA5_VARS:
        h = ec.codes_grib_new_from_samples("regular_ll_sfc_grib1")
        ec.codes_set(h, "centre", "ecmf")
        ec.codes_set(h, "Ni", lon.size)
        ec.codes_set(h, "Nj", lat.size)
        ec.codes_set(h, "latitudeOfFirstGridPointInDegrees", float(lat[0]))
        ec.codes_set(h, "latitudeOfLastGridPointInDegrees", float(lat[-1]))
        ec.codes_set(h, "longitudeOfFirstGridPointInDegrees", float(lon[0]))
        ec.codes_set(h, "longitudeOfLastGridPointInDegrees", float(lon[-1]))
        ec.codes_set(h, "iDirectionIncrementInDegrees", step)
        ec.codes_set(h, "jDirectionIncrementInDegrees", step)
        ec.codes_set(h, "jScansPositively", 0)
        ec.codes_set(h, "type", "fc" if name in cv.ERA5_ACCUM_VARS else "an")
        ec.codes_set(h, "stepType", "accum" if name in cv.ERA5_ACCUM_VARS else "instant")
        ec.codes_set(h, "paramId", PARAM_IDS[name])
        ec.codes_set(h, "missingValue", 9999.0)
        ec.codes_set(h, "bitsPerValue", bits_per_value)
        bases[name] = h
    arrays = {name: np.asarray(ds[name].values, dtype=np.float64) for name in cv.ERA5_VARS}
    try:
        with open(path, "wb") as fout:
            for ti, vt in enumerate(times):
                for name in cv.ERA5_VARS:
                    h = bases[name]  # one handle per variable, re-keyed for every step
                    if name in cv.ERA5_ACCUM_VARS:
                        ref = vt.normalize() - pd.Timedelta(days=1) if vt.hour == 0 else vt.normalize()
                        ec.codes_set(h, "dataDate", int(ref.strftime("%Y%m%d")))
                        ec.codes_set(h, "dataTime", 0)
                        ec.codes_set(h, "startStep", 0)
                        ec.codes_set(h, "endStep", 24 if vt.hour == 0 else vt.hour)
                    else:
                        ec.codes_set(h, "dataDate", int(vt.strftime("%Y%m%d")))
                        ec.codes_set(h, "dataTime", vt.hour * 100)
                        ec.codes_set(h, "step", 0)
                    vals = arrays[name][ti].ravel()
                    missing = ~np.isfinite(vals)
                    ec.codes_set(h, "bitmapPresent", 1 if missing.any() else 0)
                    ec.codes_set_values(h, np.where(missing, 9999.0, vals))
                    ec.codes_write(h, fout)
    finally:
        for h in bases.values():
            ec.codes_release(h)


def _months(times: pd.DatetimeIndex) -> list[tuple[int, int]]:
    return sorted({(int(t.year), int(t.month)) for t in times})


def write_era5_month_files(
    store: Store,
    relpath_dir: str,
    era5_daily: xr.Dataset,
    seed: int,
    *,
    fmt: Era5Format = "netcdf",
    margin: int = MARGIN,
    months: Iterable[tuple[int, int]] | None = None,
) -> list[str]:
    """Write one hourly file per month (``era5land_YYYY_MM.nc`` or ``.grib``) below ``relpath_dir``.

    Each file is written to a local temporary file and copied into the store with
    :meth:`Store.put_file`, so any store URL works.

    Parameters
    ----------
    store : Store
    relpath_dir : str
        Folder below ``store`` (e.g. ``"raw/era5land"``).
    era5_daily : xarray.Dataset
        From :func:`make_era5_daily`.
    seed : int
        World seed.
    fmt : {"netcdf", "grib"}
        NetCDF-4 as the CDS delivers it today, or GRIB edition 1.
    margin : int
        Coarse cells added on every side.
    months : iterable of (year, month), optional
        Months to write; default every month of the period (lead days excluded).

    Returns
    -------
    list of str
        Paths of the files relative to ``store``, in time order.
    """
    if fmt not in ("netcdf", "grib"):
        raise ConfigError(f"ERA5-Land file format {fmt!r} is not known: use 'netcdf' or 'grib'")
    lead = int(era5_daily.attrs.get("lead_days", 0))
    todo: Sequence[tuple[int, int]] = list(months) if months is not None else _months(pd.DatetimeIndex(era5_daily[cv.TIME].values)[lead:])
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="smci-era5-") as tmp:
        for year, month in todo:
            ds = make_era5_hourly(era5_daily, year, month, seed, margin=margin)
            name = era5_file_name(year, month, fmt)
            local = Path(tmp) / name
            if fmt == "netcdf":
                write_era5_netcdf(ds, local)
            else:
                write_era5_grib(ds, local)
            rel = f"{relpath_dir.strip('/')}/{name}" if relpath_dir.strip("/") else name
            store.put_file(local, rel)
            local.unlink()
            written.append(rel)
    return written
