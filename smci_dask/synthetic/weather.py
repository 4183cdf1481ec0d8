"""Synthetic daily weather on the coarse (ERA5-Land 0.1 degree) grid, and its hourly disaggregation.

The synthetic regions lie on the North China Plain by the Taihang mountains
(about 37 N): a monsoon climate with a wet summer (about 70 % of the
550 mm/yr falling June-September), dry cold winters (January means below
0 C) and hot summers. Every field is drawn from seeded random generators so
the same ``seed`` always gives the same weather.

Daily fields (:func:`make_weather`), dims ``(time, lat, lon)`` on the coarse grid:

``tp`` (mm/day)
    Wet/dry days from a spatially correlated, temporally persistent Gaussian
    field thresholded at a seasonal wet-day probability (6 % in winter, 44 %
    at the monsoon peak in late July); gamma-distributed amounts (shape 0.75)
    drawn through a second correlated field so storms are spatially
    coherent; an orographic factor ``1 + 0.35 * elevation_km``; a random
    factor per year (log-normal, sd 0.18) for wet and dry years.
``t2m`` (K)
    Seasonal cycle (annual mean 13 C, amplitude 14.5 K, coldest mid-January)
    minus 6.5 K/km lapse rate from elevation and 0.8 K per degree north of
    37 N, plus AR(1) synoptic anomalies (lag-1 correlation 0.75, sd 2.5 K in
    summer to 3.5 K in winter, mostly common to the region) and a cooling
    of up to 1.5 K on wet summer days.
``ssrd`` (MJ m-2 day-1)
    Top-of-atmosphere daily insolation (FAO-56 eq. 21) times an atmospheric
    transmissivity drawn per day (about 0.58 on dry days, the plain being hazy;
    0.15-0.5 on wet days, lower the heavier the rain).
``dtr`` (K)
    Diurnal temperature range from the transmissivity, 3 K overcast to 15 K
    clear (drives the hourly temperature cycle).
``pev`` (mm/day, positive)
    Priestley-Taylor potential evaporation (alpha 1.26) from net radiation
    (albedo 0.23, FAO-56 net long-wave loss) and ``t2m``; about 950-1000 mm/yr
    on the plain.

Hourly helpers (:func:`precip_hourly_weights`, :func:`radiation_hourly_weights`,
:func:`temperature_hourly_anomaly`, :func:`disaggregate_sum`,
:func:`disaggregate_mean`) split daily values into the 24 hours of a UTC day
such that the hourly values sum (fluxes) or average (states) back exactly,
up to float rounding, to the daily value.

:func:`make_precip_downscaler` / :func:`downscale_precip` bring daily coarse
precipitation to the 1 km grid with a fixed orographic multiplier whose mean
over each coarse cell's fine cells is 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from scipy import ndimage, special

from smci_dask import conventions as cv
from smci_dask.errors import GridError
from smci_dask.grid.spec import GridSpec
from smci_dask.synthetic.fields import component_rng

FloatArray = npt.NDArray[np.float64]

HOURS = 24
#: Target climatological precipitation on the plain (elevation ~0 m), mm/yr.
ANNUAL_PRECIP_MM = 550.0
#: Priestley-Taylor coefficient (dimensionless).
PT_ALPHA = 1.26
#: Dry-air lapse rate used for temperature, K per m.
LAPSE_RATE = 6.5e-3
#: Latent heat of vaporisation, MJ/kg.
LAMBDA = 2.45
#: Psychrometric constant at ~100 kPa, kPa/K.
GAMMA = 0.066
#: Solar constant, MJ m-2 min-1 (FAO-56).
GSC = 0.0820
#: Stefan-Boltzmann constant, MJ K-4 m-2 day-1.
SIGMA_SB = 4.903e-9
#: Days of weather generated before 1 January of the first year (the day before
#: the period: ERA5's first 00 UTC accumulation is the previous day's total).
LEAD_DAYS = 1


# ------------------------------------------------------------------ random fields
def smooth_noise(rng: np.random.Generator, n: int, shape: tuple[int, int], sigma: float) -> FloatArray:
    """``n`` independent, spatially correlated, unit-variance Gaussian fields.

    White noise on a grid padded by ``4 * sigma`` cells is smoothed with a
    Gaussian kernel of ``sigma`` cells and divided by the kernel's L2 norm, so
    every cell has variance 1 whatever the grid size.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Number of fields (e.g. days).
    shape : tuple of int
        (rows, cols) of each field.
    sigma : float
        Correlation length in cells (> 0).

    Returns
    -------
    ndarray, shape (n, rows, cols), float64, dimensionless
    """
    pad = int(np.ceil(4 * sigma))
    ny, nx = shape
    white = rng.standard_normal((n, ny + 2 * pad, nx + 2 * pad))
    out = ndimage.gaussian_filter(white, sigma=(0, sigma, sigma), mode="constant", truncate=4.0)
    delta = np.zeros((2 * pad + 1, 2 * pad + 1))
    delta[pad, pad] = 1.0
    norm = np.sqrt(np.sum(ndimage.gaussian_filter(delta, sigma=sigma, mode="constant", truncate=4.0) ** 2))
    return out[:, pad : pad + ny, pad : pad + nx] / norm


def ar1(innovations: FloatArray, phi: float) -> FloatArray:
    """Stationary unit-variance AR(1) along axis 0 from unit-variance innovations.

    ``x[0] = e[0]``, ``x[t] = phi * x[t-1] + sqrt(1 - phi**2) * e[t]``.

    Parameters
    ----------
    innovations : ndarray, shape (n, ...), dimensionless
    phi : float
        Lag-1 autocorrelation, 0 <= phi < 1 (for an e-folding time of ``tau``
        steps use ``exp(-1 / tau)``).

    Returns
    -------
    ndarray, same shape, dimensionless
    """
    x = np.empty_like(innovations, dtype=np.float64)
    c = np.sqrt(1.0 - phi * phi)
    x[0] = innovations[0]
    for t in range(1, innovations.shape[0]):
        x[t] = phi * x[t - 1] + c * innovations[t]
    return x


def _mixed_field(rng: np.random.Generator, n: int, shape: tuple[int, int], common: float, sigma: float, phi: float) -> FloatArray:
    """Unit-variance field: ``sqrt(common)`` regional AR(1) series + ``sqrt(1-common)`` smooth local noise."""
    reg = ar1(rng.standard_normal(n), phi)[:, None, None]
    loc = ar1(smooth_noise(rng, n, shape, sigma), phi)
    return np.sqrt(common) * reg + np.sqrt(1.0 - common) * loc


# ------------------------------------------------------------------ climate shapes
def monsoon_season(doy: npt.ArrayLike) -> FloatArray:
    """Monsoon intensity in [0, 1] (1 in late July, ~0 in winter); ``doy`` is the day of year (1-366)."""
    d = np.asarray(doy, dtype=np.float64)
    return ((1.0 + np.cos(2 * np.pi * (d - 205.0) / 365.25)) / 2.0) ** 1.5


def wet_day_probability(doy: npt.ArrayLike) -> FloatArray:
    """Probability that a day is wet (> 0 mm) by day of year (dimensionless)."""
    return 0.06 + 0.38 * monsoon_season(doy)


def _mean_wet_amount_shape(doy: npt.ArrayLike) -> FloatArray:
    """Unscaled mean amount on a wet day (relative units)."""
    return 2.5 + 13.0 * monsoon_season(doy)


def _wet_amount_scale() -> float:
    """Factor that makes the climatological annual precipitation ANNUAL_PRECIP_MM (mm/yr)."""
    doy = np.arange(1, 366)
    return ANNUAL_PRECIP_MM / float(np.sum(wet_day_probability(doy) * _mean_wet_amount_shape(doy)))


def toa_radiation(doy: npt.ArrayLike, lat_deg: npt.ArrayLike) -> FloatArray:
    """Daily extraterrestrial radiation Ra (MJ m-2 day-1), FAO-56 eqs. 21-25.

    Parameters
    ----------
    doy : array_like
        Day of year (1-366).
    lat_deg : array_like
        Latitude in degrees north (broadcast against ``doy``).
    """
    j = np.asarray(doy, dtype=np.float64)
    phi = np.deg2rad(np.asarray(lat_deg, dtype=np.float64))
    dr = 1.0 + 0.033 * np.cos(2 * np.pi * j / 365.0)
    decl = 0.409 * np.sin(2 * np.pi * j / 365.0 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    return 24 * 60 / np.pi * GSC * dr * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))


def saturation_vapour_pressure(t_c: npt.ArrayLike) -> FloatArray:
    """Saturation vapour pressure (kPa) at air temperature ``t_c`` (C), FAO-56 eq. 11."""
    t = np.asarray(t_c, dtype=np.float64)
    return 0.6108 * np.exp(17.27 * t / (t + 237.3))


def priestley_taylor(ssrd: npt.ArrayLike, t2m_k: npt.ArrayLike, ra: npt.ArrayLike, dtr: npt.ArrayLike) -> FloatArray:
    """Priestley-Taylor potential evaporation (mm/day, >= 0).

    Parameters
    ----------
    ssrd : array_like
        Daily downward short-wave radiation, MJ m-2 day-1.
    t2m_k : array_like
        Daily mean air temperature, K.
    ra : array_like
        Top-of-atmosphere radiation, MJ m-2 day-1 (for the clear-sky ratio).
    dtr : array_like
        Diurnal temperature range, K (dew point taken as the daily minimum).
    """
    t = np.asarray(t2m_k, dtype=np.float64) - 273.15
    rs = np.asarray(ssrd, dtype=np.float64)
    rso = 0.75 * np.asarray(ra, dtype=np.float64)
    ea = saturation_vapour_pressure(t - np.asarray(dtr) / 2.0)
    rel = np.clip(rs / np.maximum(rso, 1e-6), 0.3, 1.0)
    rnl = SIGMA_SB * (t + 273.15) ** 4 * (0.34 - 0.14 * np.sqrt(ea)) * (1.35 * rel - 0.35)
    rn = 0.77 * rs - rnl
    es = saturation_vapour_pressure(t)
    delta = 4098.0 * es / (t + 237.3) ** 2
    return np.maximum(PT_ALPHA * delta / (delta + GAMMA) * rn / LAMBDA, 0.0)


def diurnal_temperature_range(ssrd: npt.ArrayLike, ra: npt.ArrayLike) -> FloatArray:
    """Diurnal temperature range (K) from the day's transmissivity ``ssrd / ra``: 3 K overcast to 15 K clear."""
    tau = np.asarray(ssrd, dtype=np.float64) / np.maximum(np.asarray(ra, dtype=np.float64), 1e-6)
    return np.clip(3.0 + 24.0 * (tau - 0.25), 3.0, 15.0)


def weather_times(years: tuple[int, int], lead_days: int = LEAD_DAYS) -> pd.DatetimeIndex:
    """Daily time axis: ``lead_days`` before 1 January of ``years[0]`` to 31 December of ``years[1]``."""
    start = pd.Timestamp(f"{years[0]}-01-01") - pd.Timedelta(days=lead_days)
    return pd.date_range(start, f"{years[1]}-12-31", freq="D")


# ------------------------------------------------------------------ daily weather
def make_weather(
    grid: GridSpec,
    years: tuple[int, int],
    seed: int,
    elevation_coarse: npt.ArrayLike,
    *,
    lead_days: int = LEAD_DAYS,
) -> xr.Dataset:
    """Daily synthetic weather on the coarse grid (see the module docstring for the model).

    Parameters
    ----------
    grid : GridSpec
        Region; the weather lives on ``grid.coarse_lat`` x ``grid.coarse_lon``.
    years : (int, int)
        First and last year (inclusive).
    seed : int
        World seed; the weather uses its own derived streams.
    elevation_coarse : array_like, shape ``grid.coarse_shape``
        Mean elevation of each coarse cell, m (NaN treated as 0 m).
    lead_days : int
        Days generated before 1 January of ``years[0]`` (default 1: ERA5-Land's
        00 UTC accumulation of the first day is the previous day's total).

    Returns
    -------
    xarray.Dataset
        Dims ``(time, lat, lon)``; variables ``tp`` (mm/day), ``t2m`` (K),
        ``ssrd`` (MJ m-2 day-1), ``pev`` (mm/day, positive), ``dtr`` (K,
        diurnal temperature range) and ``elevation`` (m, ``(lat, lon)``);
        attribute ``lead_days``.
    """
    ny, nx = grid.coarse_shape
    elev = np.nan_to_num(np.asarray(elevation_coarse, dtype=np.float64), nan=0.0)
    if elev.shape != (ny, nx):
        raise GridError(f"elevation_coarse has shape {elev.shape}, the grid's coarse shape is {(ny, nx)}: give one value per coarse cell")
    times = weather_times(years, lead_days)
    n = len(times)
    doy = np.asarray(times.day_of_year, dtype=np.float64)[:, None, None]
    lat2d = np.broadcast_to(grid.coarse_lat[:, None], (ny, nx))

    # -- precipitation: occurrence and amount from correlated fields
    rng = component_rng(seed, "weather", "precip")
    z_occ = _mixed_field(rng, n, (ny, nx), common=0.6, sigma=3.0, phi=0.5)
    wet = z_occ < special.ndtri(wet_day_probability(doy))
    z_amt = _mixed_field(rng, n, (ny, nx), common=0.5, sigma=2.0, phi=0.3)
    u = np.clip(special.ndtr(z_amt), 1e-9, 1 - 1e-9)
    shape_k = 0.75
    mean_amt = _wet_amount_scale() * _mean_wet_amount_shape(doy)
    amount = special.gammaincinv(shape_k, u) * mean_amt / shape_k
    year_index = np.asarray(times.year) - times.year[0]
    year_factor = np.exp(0.18 * rng.standard_normal(int(year_index.max()) + 1) - 0.5 * 0.18**2)[year_index][:, None, None]
    orography = 1.0 + 0.35 * np.maximum(elev, 0.0) / 1000.0
    tp = np.where(wet, amount, 0.0) * orography * year_factor

    # -- temperature
    rng = component_rng(seed, "weather", "t2m")
    season = -np.cos(2 * np.pi * (doy - 18.0) / 365.25)  # -1 mid-January, +1 mid-July
    anom_sd = 3.0 - 0.5 * season
    anom = _mixed_field(rng, n, (ny, nx), common=0.8, sigma=4.0, phi=0.75) * anom_sd
    t2m = 273.15 + 13.0 + 14.5 * season - LAPSE_RATE * elev - 0.8 * (lat2d - 37.0) + anom
    t2m = t2m - 1.5 * monsoon_season(doy) * np.minimum(tp / 10.0, 1.0)

    # -- radiation: transmissivity lower on wet days
    rng = component_rng(seed, "weather", "ssrd")
    ra = toa_radiation(doy, lat2d)
    tau_dry = np.clip(0.58 + 0.07 * _mixed_field(rng, n, (ny, nx), common=0.7, sigma=4.0, phi=0.4), 0.35, 0.75)
    tau_wet = np.clip(0.45 - 0.2 * np.minimum(tp / 30.0, 1.0) + 0.03 * rng.standard_normal((n, ny, nx)), 0.15, 0.5)
    tau = np.where(tp > 0.0, tau_wet, tau_dry)
    ssrd = ra * tau

    # -- potential evaporation
    dtr = diurnal_temperature_range(ssrd, ra)
    pev = priestley_taylor(ssrd, t2m, ra, dtr)

    dims = (cv.TIME, cv.LAT, cv.LON)
    coords = {cv.TIME: times, cv.LAT: grid.coarse_lat, cv.LON: grid.coarse_lon}
    ds = xr.Dataset(
        {
            "tp": (dims, tp, {"units": "mm day-1", "long_name": "daily precipitation"}),
            "t2m": (dims, t2m, {"units": "K", "long_name": "daily mean 2 m air temperature"}),
            "ssrd": (dims, ssrd, {"units": "MJ m-2 day-1", "long_name": "daily surface downward short-wave radiation"}),
            "pev": (dims, pev, {"units": "mm day-1", "long_name": "Priestley-Taylor potential evaporation (positive)"}),
            "dtr": (dims, dtr, {"units": "K", "long_name": "diurnal temperature range"}),
            "elevation": ((cv.LAT, cv.LON), elev, {"units": "m", "long_name": "coarse-cell mean elevation"}),
        },
        coords=coords,
        attrs={"lead_days": int(lead_days), "seed": int(seed), "description": "synthetic daily weather (smci_dask.synthetic.weather)"},
    )
    return ds


# ------------------------------------------------------------------ soil temperature
def soil_temperature_timescale(depth_cm: float) -> float:
    """Relaxation time (days) of soil temperature at ``depth_cm`` (cm) towards the air temperature."""
    return 1.0 + 0.35 * float(depth_cm)


def soil_temperature(t2m_daily: npt.ArrayLike, depth_cm: float, *, spinup_days: int = 365) -> FloatArray:
    """Daily soil temperature (K) at ``depth_cm``: air temperature damped and lagged with depth.

    A first-order relaxation ``Ts[t] = Ts[t-1] + (Ta[t] + offset - Ts[t-1]) / tau``
    with ``tau = 1 + 0.35 * depth_cm`` days (2 days at 3.5 cm, 69 days at 194 cm)
    and a warm offset ``1 - exp(-depth / 50 cm)`` K (soil is slightly warmer than
    the air on average). The filter is spun up by running the first
    ``spinup_days`` once before the start.

    Parameters
    ----------
    t2m_daily : array_like, shape (time, ...)
        Daily mean air temperature, K.
    depth_cm : float
        Depth of the layer centre, cm.
    spinup_days : int
        Days used for the spin-up.

    Returns
    -------
    ndarray, shape of ``t2m_daily``, K
    """
    ta = np.asarray(t2m_daily, dtype=np.float64)
    tau = soil_temperature_timescale(depth_cm)
    target = ta + (1.0 - np.exp(-float(depth_cm) / 50.0))
    state = target[: max(1, min(spinup_days, len(ta)))].mean(axis=0)
    for t in range(min(spinup_days, len(ta))):
        state = state + (target[t] - state) / tau
    out = np.empty_like(ta)
    for t in range(len(ta)):
        state = state + (target[t] - state) / tau
        out[t] = state
    return out


# ------------------------------------------------------------------ hourly disaggregation
def precip_hourly_weights(rng: np.random.Generator, n_days: int, shape: tuple[int, int]) -> FloatArray:
    """Fractions of each day's precipitation falling in each UTC hour (sum to 1 per day and cell).

    Rain falls in one event per day lasting 2-8 hours with a triangular
    intensity profile; the start hour is shared by the region (one weather
    system) with per-cell offsets of up to 2 hours, wrapping within the UTC day.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_days : int
    shape : tuple of int
        (rows, cols).

    Returns
    -------
    ndarray, shape (n_days, 24, rows, cols), dimensionless
    """
    start = rng.integers(0, HOURS, size=(n_days, 1, 1)) + rng.integers(-2, 3, size=(n_days, *shape))
    dur = rng.integers(2, 9, size=(n_days, *shape)).astype(np.float64)
    h = np.arange(HOURS, dtype=np.float64)[None, :, None, None]
    k = (h - start[:, None]) % HOURS  # hours since the event began
    centre = (dur[:, None] - 1.0) / 2.0
    w = np.where(k < dur[:, None], 1.0 - np.abs(k - centre) / (dur[:, None] / 2.0 + 0.5), 0.0)
    return w / w.sum(axis=1, keepdims=True)


def _hour_angle(hours_utc: FloatArray, lon: FloatArray) -> FloatArray:
    """Solar hour angle (rad) at UTC hour(s) and longitude(s) in degrees (mean solar time)."""
    return np.pi / 12.0 * (hours_utc + lon / 15.0 - 12.0)


def radiation_hourly_weights(doy: npt.ArrayLike, lat: npt.ArrayLike, lon: npt.ArrayLike) -> FloatArray:
    """Fractions of the daily solar radiation received in each UTC hour (sum to 1).

    The weight of hour ``h`` (the interval ``[h, h+1)`` UTC) is the cosine of the
    solar zenith angle averaged over the hour (4 sub-steps), clipped at 0.

    Parameters
    ----------
    doy : array_like, shape (n_days,)
        Day of year.
    lat, lon : array_like, shape (rows,), (cols,)
        Cell-centre latitude and longitude, degrees.

    Returns
    -------
    ndarray, shape (n_days, 24, rows, cols), dimensionless
    """
    j = np.asarray(doy, dtype=np.float64)[:, None, None, None]
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))[None, None, :, None]
    lo = np.asarray(lon, dtype=np.float64)[None, None, None, :]
    decl = 0.409 * np.sin(2 * np.pi * j / 365.0 - 1.39)
    h = np.arange(HOURS, dtype=np.float64)[None, :, None, None]
    cz = np.zeros(np.broadcast_shapes(j.shape, h.shape, phi.shape, lo.shape))
    for sub in (0.125, 0.375, 0.625, 0.875):
        w = _hour_angle(h + sub, lo)
        cz += np.maximum(np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(w), 0.0)
    total = cz.sum(axis=1, keepdims=True)
    return np.where(total > 0, cz / np.where(total > 0, total, 1.0), 1.0 / HOURS)


def diurnal_shape(lon: npt.ArrayLike, *, lag_hours: float = 0.0) -> FloatArray:
    """Zero-mean diurnal temperature shape at the UTC hours 0..23 (dimensionless, range about -1..1).

    Minimum at dawn (06 local solar time), maximum at 15 local (+ ``lag_hours``):
    a half-cosine rise over 9 hours and a half-cosine fall over 15 hours. The 24
    values have mean exactly 0 (before rounding).

    Parameters
    ----------
    lon : array_like, shape (cols,)
        Longitude, degrees east (local solar time = UTC + lon / 15 hours).
    lag_hours : float
        Extra delay of the cycle, hours (soil lags the air).

    Returns
    -------
    ndarray, shape (24, cols)
    """
    lo = np.asarray(lon, dtype=np.float64)[None, :]
    h = np.arange(HOURS, dtype=np.float64)[:, None]
    local = (h + lo / 15.0 - lag_hours) % 24.0
    rise = (local >= 6.0) & (local < 15.0)
    f = np.where(rise, -np.cos(np.pi * (local - 6.0) / 9.0), np.cos(np.pi * ((local - 15.0) % 24.0) / 15.0))
    return f - f.mean(axis=0, keepdims=True)


def temperature_hourly_anomaly(dtr: npt.ArrayLike, lon: npt.ArrayLike, *, lag_hours: float = 0.0) -> FloatArray:
    """Hourly deviations (K) from the daily mean with a zero mean over the 24 UTC hours of each day.

    Parameters
    ----------
    dtr : array_like, shape (n_days, rows, cols)
        Diurnal temperature range, K.
    lon : array_like, shape (cols,)
        Longitude, degrees east.
    lag_hours : float
        Delay of the cycle, hours.

    Returns
    -------
    ndarray, shape (n_days, 24, rows, cols), K
    """
    shape = diurnal_shape(lon, lag_hours=lag_hours)[None, :, None, :]
    return np.asarray(dtr, dtype=np.float64)[:, None] / 2.0 * shape


def disaggregate_sum(daily: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """Hourly amounts from daily totals: ``daily[:, None] * weights`` (weights sum to 1 over axis 1).

    Parameters
    ----------
    daily : array_like, shape (n_days, ...)
        Daily totals (any flux unit, e.g. mm/day).
    weights : array_like, shape (n_days, 24, ...)
        Hourly fractions.

    Returns
    -------
    ndarray, shape (n_days, 24, ...), the unit of ``daily`` per hour
    """
    return np.asarray(daily, dtype=np.float64)[:, None] * np.asarray(weights, dtype=np.float64)


def disaggregate_mean(daily: npt.ArrayLike, anomaly: npt.ArrayLike | None = None) -> FloatArray:
    """Hourly instantaneous values whose mean over the 24 UTC hours is the daily value.

    Parameters
    ----------
    daily : array_like, shape (n_days, ...)
        Daily means (any state unit, e.g. K).
    anomaly : array_like, shape (n_days, 24, ...), optional
        Zero-mean hourly deviations; None holds the value constant through the day.

    Returns
    -------
    ndarray, shape (n_days, 24, ...)
    """
    d = np.asarray(daily, dtype=np.float64)[:, None]
    if anomaly is None:
        return np.repeat(d, HOURS, axis=1)
    return d + np.asarray(anomaly, dtype=np.float64)


# ------------------------------------------------------------------ 1 km precipitation
def orographic_multiplier(grid: GridSpec, elevation_fine: npt.ArrayLike, seed: int) -> FloatArray:
    """Fixed 1 km precipitation multiplier (dimensionless), mean 1 over each coarse cell's fine cells.

    ``m = exp(0.5 * (z - zbar) / 1000) * exp(0.05 * n)`` with ``z`` the fine
    elevation (m), ``zbar`` its coarse-cell mean and ``n`` a seeded smooth
    unit-variance texture (5 km correlation), then divided by its coarse-cell
    mean. Higher ground within a coarse cell gets more rain (+65 % per km).

    Parameters
    ----------
    grid : GridSpec
    elevation_fine : array_like, shape ``grid.shape``
        Elevation, m (NaN treated as the coarse-cell mean).
    seed : int
        World seed.

    Returns
    -------
    ndarray, shape ``grid.shape``
    """
    z = np.asarray(elevation_fine, dtype=np.float64)
    if z.shape != grid.shape:
        raise GridError(f"elevation_fine has shape {z.shape}, the grid's shape is {grid.shape}: give the 1 km elevation of the region")
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    idx = (rows[:, None] * grid.coarse_shape[1] + cols[None, :]).ravel()
    nc = grid.coarse_shape[0] * grid.coarse_shape[1]

    def cmean(v: FloatArray) -> FloatArray:
        ok = np.isfinite(v.ravel())
        s = np.bincount(idx[ok], weights=v.ravel()[ok], minlength=nc)
        c = np.bincount(idx[ok], minlength=nc)
        return (s / np.maximum(c, 1))[idx].reshape(grid.shape)

    zbar = cmean(z)
    z = np.where(np.isfinite(z), z, zbar)
    texture = smooth_noise(component_rng(seed, "weather", "orography"), 1, grid.shape, 5.0)[0]
    m = np.exp(0.5 * (z - zbar) / 1000.0 + 0.05 * texture)
    return m / cmean(m)


def make_precip_downscaler(grid: GridSpec, elevation_fine: npt.ArrayLike, seed: int) -> Callable[[npt.ArrayLike], FloatArray]:
    """A function taking coarse daily precipitation to 1 km (see :func:`downscale_precip`).

    Returns
    -------
    callable
        ``f(tp_coarse)`` with ``tp_coarse`` of shape ``(..., *grid.coarse_shape)``
        in mm/day, returning shape ``(..., *grid.shape)`` in mm/day.
    """
    mult = orographic_multiplier(grid, elevation_fine, seed)
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()

    def downscale(tp_coarse: npt.ArrayLike) -> FloatArray:
        tp = np.asarray(tp_coarse, dtype=np.float64)
        return tp[..., rows[:, None], cols[None, :]] * mult

    return downscale


def downscale_precip(grid: GridSpec, tp_coarse_daily: npt.ArrayLike, elevation_fine: npt.ArrayLike, seed: int) -> FloatArray:
    """Daily 1 km precipitation: the nearest coarse value times the orographic multiplier.

    The multiplier (:func:`orographic_multiplier`) averages to 1 over each coarse
    cell's fine cells, so the fine mean of each coarse cell equals the coarse value.

    Parameters
    ----------
    grid : GridSpec
    tp_coarse_daily : array_like, shape (..., *grid.coarse_shape)
        Coarse daily precipitation, mm/day.
    elevation_fine : array_like, shape ``grid.shape``
        Elevation, m.
    seed : int
        World seed.

    Returns
    -------
    ndarray, shape (..., *grid.shape), mm/day
    """
    return make_precip_downscaler(grid, elevation_fine, seed)(tp_coarse_daily)
