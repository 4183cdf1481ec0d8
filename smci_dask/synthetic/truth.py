"""The synthetic truth: daily soil moisture at 10 depths on the 1 km grid from a water balance.

Each land cell of the fine grid is a column of ten 100 mm layers (0-10,
10-20, ..., 90-100 cm; centres at ``conventions.DEPTHS_CM``) plus a snow
pack, stepped once a day (all land cells at once, vectorised). State:
volumetric water content ``theta[k]`` (m3/m3) and snow water equivalent
``swe`` (mm). Each day, in this order:

1. **Snow.** Precipitation ``P`` (mm) falls as snow when the 1 km air
   temperature is below 0 C; the pack melts at 3 mm/day per K above 0 C.
   Rain plus melt is the water input ``W``.
2. **Gravity drainage** (bottom layer first): a layer wetter than field
   capacity ``fc`` loses ``lam * (theta_k - fc) * 100 mm`` to the layer
   below (never more than that layer can hold); the bottom layer drains out
   of the column (``drainage``). ``lam = (0.15 + 0.55 * sand) * (1 +
   rock / 100)`` per day (sand as a fraction, rock in %): sandy, stony
   soils drain fast.
3. **Infiltration** at most the infiltration capacity ``Ki = 20 *
   10**(1.5 * sand)`` mm/day (sand as a fraction: 28 mm/day on clay to 630
   mm/day on sand; rain falls in a few hours, so this is an intensity limit),
   reduced on frozen soil (10 cm soil temperature ``Ts < 0 C``) by ``clip(1 +
   Ts / 2, 0.05, 1)``; the rest runs off. Infiltrated water enters layer 1;
   what exceeds its porosity ``phi`` moves on to layer 2 and so on (a
   wetting front within the day); what the whole column cannot hold below
   porosity runs off too (``runoff``).
4. **Evapotranspiration** (``aet``): demand ``kc * PET`` (``kc`` from land
   cover and the season) split over the layers by a root profile
   ``r_k`` (exponential with an e-folding depth by land cover), each part
   scaled by the soil-water stress factor ``clip((theta_k - wp) / (fc - wp),
   0, 1)`` between wilting point ``wp`` and field capacity (the top layer
   may dry to ``wp / 2`` by soil evaporation).
5. **Diffusion** between adjacent layers, ``0.04 * (theta_k -
   theta_{k+1}) * 100 mm`` per day (slow capillary smoothing, both ways).

Field capacity and wilting point follow Saxton & Rawls (2006, SSSAJ 70:
1569) from sand and clay (organic matter 1.5 %), bounded by the porosity
from the statics. Every flux is limited so that ``theta`` stays within
``[wp / 2, phi]``, and the water balance closes exactly per cell:
``d(storage) + d(swe) = P - runoff - aet - drainage``.

Before the period, the first ``spinup_days`` (one year) are run once from
``theta = wp + 0.6 (fc - wp)`` and the state carried over, so the truth starts
near equilibrium. Deeper layers are slower and smoother: they see rain only
through drainage of the layers above (or the wetting front of a large
storm) and lose little water to roots. On the small region the standard
deviation of day-to-day changes falls from about 0.03 m3/m3 at 10 cm to
0.002 at 100 cm, and that of the level from 0.06 to 0.03 m3/m3.

The run is deterministic: it draws no random numbers (the weather and the
statics carry the seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from scipy import sparse

from smci_dask import conventions as cv
from smci_dask.errors import GridError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store, write_zarr
from smci_dask.synthetic.weather import LAPSE_RATE, soil_temperature

FloatArray = npt.NDArray[np.float64]

#: Layer thickness, mm.
LAYER_MM = 100.0
N_LAYERS = len(cv.DEPTHS_CM)
#: Snow melt degree-day factor, mm/day/K.
DEGREE_DAY = 3.0
#: Inter-layer diffusion rate, 1/day.
DIFFUSION = 0.04
#: Default spin-up length, days.
SPINUP_DAYS = 365

SM_DESCRIPTION = (
    "Synthetic truth soil moisture from a daily 10-layer (100 mm each) water balance per 1 km cell: "
    "snow pack (melt 3 mm/day/K), gravity drainage above field capacity (bottom free drainage), "
    "infiltration limited by frozen soil and porosity (excess runs off), root-weighted evapotranspiration "
    "with soil-water stress between wilting point and field capacity, slow inter-layer diffusion; "
    "Saxton-Rawls (2006) field capacity and wilting point from sand and clay. See smci_dask.synthetic.truth."
)

# IGBP class -> (root e-folding depth cm, kc winter, kc peak, crop phenology)
_LANDCOVER_PARAMS: dict[int, tuple[float, float, float, bool]] = {
    1: (30.0, 0.6, 1.0, False),
    2: (35.0, 0.9, 1.0, False),
    3: (30.0, 0.4, 1.0, False),
    4: (35.0, 0.4, 1.0, False),
    5: (35.0, 0.5, 1.0, False),
    6: (25.0, 0.3, 0.8, False),
    7: (20.0, 0.3, 0.7, False),
    8: (30.0, 0.4, 0.9, False),
    9: (25.0, 0.35, 0.85, False),
    10: (15.0, 0.3, 0.85, False),
    11: (20.0, 0.8, 1.1, False),
    12: (20.0, 0.3, 1.1, True),
    13: (10.0, 0.2, 0.4, False),
    14: (20.0, 0.35, 1.0, True),
    15: (5.0, 0.1, 0.2, False),
    16: (5.0, 0.15, 0.3, False),
}
_DEFAULT_LANDCOVER = 10


# ------------------------------------------------------------------ soil and vegetation parameters
def saxton_rawls(sand_pct: npt.ArrayLike, clay_pct: npt.ArrayLike, organic_pct: float = 1.5) -> tuple[FloatArray, FloatArray]:
    """Field capacity (33 kPa) and wilting point (1500 kPa), m3/m3, from Saxton & Rawls (2006) eqs. 1-2.

    Parameters
    ----------
    sand_pct, clay_pct : array_like
        Sand and clay content, % (weight).
    organic_pct : float
        Organic matter, % (weight).

    Returns
    -------
    (field_capacity, wilting_point) : ndarrays, m3/m3
    """
    s = np.clip(np.asarray(sand_pct, dtype=np.float64), 0, 100) / 100.0
    c = np.clip(np.asarray(clay_pct, dtype=np.float64), 0, 100) / 100.0
    om = organic_pct
    t1500 = -0.024 * s + 0.487 * c + 0.006 * om + 0.005 * s * om - 0.013 * c * om + 0.068 * s * c + 0.031
    wp = t1500 + (0.14 * t1500 - 0.02)
    t33 = -0.251 * s + 0.195 * c + 0.011 * om + 0.006 * s * om - 0.027 * c * om + 0.452 * s * c + 0.299
    fc = t33 + (1.283 * t33**2 - 0.374 * t33 - 0.015)
    return fc, wp


def vegetation_season(doy: npt.ArrayLike, crop: npt.ArrayLike | bool = False) -> FloatArray:
    """Greenness in [0, 1] by day of year (dimensionless).

    Natural vegetation peaks in late July (Gaussian, 55 days wide); cropland
    follows the North China Plain double crop: winter wheat (peak end of April)
    then summer maize (peak mid-August).
    """
    d = np.asarray(doy, dtype=np.float64)
    natural = np.exp(-(((d - 205.0) / 55.0) ** 2))
    double = np.maximum(np.exp(-(((d - 120.0) / 30.0) ** 2)), np.exp(-(((d - 230.0) / 30.0) ** 2)))
    return np.where(np.asarray(crop, dtype=bool), double, natural)


@dataclass(frozen=True)
class SoilColumns:
    """Per-land-cell parameters of the water balance (1-D over the land cells, row-major order).

    Attributes
    ----------
    porosity, field_capacity, wilting_point : ndarray (n,), m3/m3
    theta_min : ndarray (10, n), m3/m3 -- lower limit per layer (``wp / 2`` in layer 1, ``wp`` below)
    drain_rate : ndarray (10, n), 1/day
    ksat : ndarray (n,), mm/day -- infiltration capacity of unfrozen soil (intensity limit)
    root_fraction : ndarray (10, n), dimensionless, sums to 1 over the layers
    kc_min, kc_max : ndarray (n,), dimensionless -- crop coefficient in winter and at peak season
    crop : ndarray (n,), bool -- double-crop phenology
    """

    porosity: FloatArray
    field_capacity: FloatArray
    wilting_point: FloatArray
    theta_min: FloatArray
    drain_rate: FloatArray
    ksat: FloatArray
    root_fraction: FloatArray
    kc_min: FloatArray
    kc_max: FloatArray
    crop: npt.NDArray[np.bool_]


def soil_columns(statics: xr.Dataset, land: npt.NDArray[np.bool_]) -> SoilColumns:
    """Water-balance parameters of the land cells from the static fields.

    Parameters
    ----------
    statics : xarray.Dataset
        ``sand``, ``clay`` (%), ``porosity`` (m3/m3), ``rock_fragment`` (%), ``landcover`` (IGBP), dims (lat, lon).
    land : ndarray of bool, shape (lat, lon)
        Land cells (the columns are taken in row-major order).
    """

    def get(name: str) -> FloatArray:
        return np.asarray(statics[name].values, dtype=np.float64)[land]

    sand, clay = get("sand"), get("clay")
    phi = np.clip(np.nan_to_num(get("porosity"), nan=0.45), 0.25, 0.7)
    rock = np.clip(np.nan_to_num(get("rock_fragment"), nan=0.0), 0.0, 90.0)
    fc, wp = saxton_rawls(np.nan_to_num(sand, nan=40.0), np.nan_to_num(clay, nan=20.0))
    fc = np.clip(fc, 0.08, 0.85 * phi)
    wp = np.clip(wp, 0.02, 0.6 * fc)
    drain = (0.15 + 0.55 * np.nan_to_num(sand, nan=40.0)[None] / 100.0) * (1.0 + rock[None] / 100.0) * np.ones((N_LAYERS, 1))
    ksat = 20.0 * 10.0 ** (1.5 * np.nan_to_num(sand, nan=40.0) / 100.0)
    theta_min = np.repeat(wp[None], N_LAYERS, axis=0)
    theta_min[0] = 0.5 * wp

    lc = np.asarray(statics["landcover"].values)[land].astype(np.int64)
    table = np.array([_LANDCOVER_PARAMS.get(c, _LANDCOVER_PARAMS[_DEFAULT_LANDCOVER]) for c in range(18)], dtype=np.float64)
    p = table[np.clip(lc, 0, 17)]
    zr = p[:, 0]
    bounds = np.array([b for b, _ in cv.DEPTH_BOUNDS_CM] + [cv.DEPTH_BOUNDS_CM[-1][1]], dtype=np.float64)[:, None]
    cum = 1.0 - np.exp(-bounds / zr[None])
    roots = np.diff(cum, axis=0)
    roots /= roots.sum(axis=0, keepdims=True)
    return SoilColumns(phi, fc, wp, theta_min, drain, ksat, roots, p[:, 1], p[:, 2], p[:, 3].astype(bool))


# ------------------------------------------------------------------ one day
@dataclass
class DayFluxes:
    """Fluxes of one day per land cell, mm/day: precipitation, runoff, actual ET, bottom drainage."""

    precip: FloatArray
    runoff: FloatArray
    aet: FloatArray
    drainage: FloatArray


def step_day(
    theta: FloatArray,
    swe: FloatArray,
    cols: SoilColumns,
    precip: FloatArray,
    t_air: FloatArray,
    t_soil: FloatArray,
    pet: FloatArray,
    kc: FloatArray,
) -> DayFluxes:
    """Advance the columns by one day in place (see the module docstring for the scheme).

    Parameters
    ----------
    theta : ndarray (10, n), m3/m3
        Layer water contents, updated in place.
    swe : ndarray (n,), mm
        Snow water equivalent, updated in place.
    cols : SoilColumns
    precip : ndarray (n,), mm/day
    t_air : ndarray (n,), C
        Daily mean air temperature.
    t_soil : ndarray (n,), C
        Daily mean soil temperature at 10 cm.
    pet : ndarray (n,), mm/day
        Potential evaporation.
    kc : ndarray (n,), dimensionless
        Crop coefficient of the day.

    Returns
    -------
    DayFluxes
    """
    dz = LAYER_MM
    phi, fc = cols.porosity, cols.field_capacity
    # 1. snow
    snow = np.where(t_air < 0.0, precip, 0.0)
    swe += snow
    melt = np.minimum(swe, DEGREE_DAY * np.maximum(t_air, 0.0))
    swe -= melt
    water = precip - snow + melt
    # 2. gravity drainage, bottom layer first so each layer has made room
    bottom = np.zeros_like(swe)
    for k in range(N_LAYERS - 1, -1, -1):
        d = cols.drain_rate[k] * np.maximum(theta[k] - fc, 0.0) * dz
        if k == N_LAYERS - 1:
            bottom = d
        else:
            d = np.minimum(d, np.maximum(phi - theta[k + 1], 0.0) * dz)
            theta[k + 1] += d / dz
        theta[k] -= d / dz
    # 3. infiltration: capacity (frozen soil), then layer 1 up to porosity, the excess moving on (wetting front)
    frozen = np.clip(1.0 + t_soil / 2.0, 0.05, 1.0)
    infil = np.minimum(water, cols.ksat * frozen)
    runoff = water - infil
    for k in range(N_LAYERS):
        take = np.minimum(infil, np.maximum(phi - theta[k], 0.0) * dz)
        theta[k] += take / dz
        infil = infil - take
    runoff = runoff + infil  # what the whole column cannot hold
    # 4. evapotranspiration with root profile and water stress
    beta = np.clip((theta - cols.wilting_point) / (fc - cols.wilting_point), 0.0, 1.0)
    beta[0] = np.clip((theta[0] - cols.theta_min[0]) / (fc - cols.theta_min[0]), 0.0, 1.0)
    et = np.minimum(pet * kc * cols.root_fraction * beta, np.maximum(theta - cols.theta_min, 0.0) * dz)
    theta -= et / dz
    # 5. slow diffusion between adjacent layers (explicit, rate < 0.5: a convex mix, stays in bounds)
    flux = DIFFUSION * (theta[:-1] - theta[1:])
    theta[:-1] -= flux
    theta[1:] += flux
    return DayFluxes(precip=precip, runoff=runoff, aet=et.sum(axis=0), drainage=bottom)


# ------------------------------------------------------------------ the run
@dataclass
class TruthSummary:
    """What the truth run returns besides the 1 km blocks.

    Attributes
    ----------
    coarse : xarray.Dataset
        On the coarse grid, over the weather's full time axis (lead day included):
        ``sm`` (time, depth, lat, lon) coarse-cell mean of the truth over its land
        fine cells, m3/m3 (NaN where a coarse cell has no land); ``aet`` (time, lat,
        lon) mean actual evapotranspiration, mm/day; ``soil_temperature`` (time,
        lat, lon) at 10 cm, K; ``land_fraction`` (lat, lon), dimensionless;
        ``porosity`` (lat, lon) mean over land, m3/m3.
    budget : xarray.Dataset
        On the fine grid (NaN over water), totals over the output period (mm):
        ``precip``, ``runoff``, ``aet``, ``drainage``, ``storage_change`` (soil),
        ``snow_change``; and ``sm_initial`` (depth, lat, lon), the state (m3/m3) at
        the end of the day before the period.
    times : pandas.DatetimeIndex
        Days of the truth product (the period, lead days excluded).
    """

    coarse: xr.Dataset
    budget: xr.Dataset
    times: pd.DatetimeIndex


def _land_mask(statics: xr.Dataset) -> npt.NDArray[np.bool_]:
    if "land" in statics:
        return np.asarray(statics["land"].values, dtype=bool)
    return np.asarray(statics["landcover"].values) != cv.WATER_CLASS


def truth_block_dataset(grid: GridSpec, times: pd.DatetimeIndex, values: Any) -> xr.Dataset:
    """A block of the truth product: ``sm_truth`` (time, depth, lat, lon) float32, m3/m3, NaN over water.

    ``values`` is a numpy or dask array of shape (time, 10, lat, lon).
    """
    coords = {cv.TIME: times, cv.DEPTH: np.asarray(cv.DEPTHS_CM, dtype=np.int64), cv.LAT: grid.lat, cv.LON: grid.lon}
    da = xr.DataArray(values, dims=(cv.TIME, cv.DEPTH, cv.LAT, cv.LON), coords=coords, name=cv.SM_TRUTH)
    da.attrs = {"units": "m3 m-3", "long_name": "synthetic truth volumetric soil moisture", "description": SM_DESCRIPTION}
    da[cv.DEPTH].attrs = {"units": "cm", "long_name": "layer centre depth (layer spans depth-10 to depth cm)"}
    ds = da.to_dataset()
    ds.attrs = {"title": "smci_dask synthetic truth soil moisture", "description": SM_DESCRIPTION}
    return ds


def run_truth(
    grid: GridSpec,
    statics: xr.Dataset,
    precip_fine_fn: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None,
    weather: xr.Dataset,
    *,
    write_block: Callable[[xr.Dataset], None] | None = None,
    time_block: int = 32,
    spinup_days: int = SPINUP_DAYS,
) -> TruthSummary:
    """Run the daily water balance over the weather's period, emitting the truth in time blocks.

    Parameters
    ----------
    grid : GridSpec
    statics : xarray.Dataset
        Static 1 km fields (dims lat, lon = ``grid.shape``): ``elevation`` (m),
        ``landcover`` (IGBP), ``sand``, ``clay`` (%), ``porosity`` (m3/m3),
        ``rock_fragment`` (%), ``land`` (bool; else landcover != 17).
    precip_fine_fn : callable or None
        Maps one day of coarse precipitation (coarse shape, mm/day) to 1 km
        (grid shape, mm/day), e.g. :func:`smci_dask.synthetic.weather.make_precip_downscaler`;
        None takes the nearest coarse value.
    weather : xarray.Dataset
        From :func:`smci_dask.synthetic.weather.make_weather` (``tp`` mm/day,
        ``t2m`` K, ``pev`` mm/day, ``elevation`` m; attribute ``lead_days``).
    write_block : callable, optional
        Called with each block (:func:`truth_block_dataset`, at most ``time_block``
        days, blocks aligned on the period's first day) in time order.
    time_block : int
        Days per block.
    spinup_days : int
        Days of the period's start run once before the period.

    Returns
    -------
    TruthSummary
    """
    land = _land_mask(statics)
    if land.shape != grid.shape:
        raise GridError(f"statics have shape {land.shape}, the grid's shape is {grid.shape}: build them on the same grid")
    cols = soil_columns(statics, land)
    n = cols.porosity.size
    lead = int(weather.attrs.get("lead_days", 0))
    all_times = pd.DatetimeIndex(weather[cv.TIME].values)
    out_times = all_times[lead:]
    nt = len(all_times)

    # fine <-> coarse maps over the land cells
    ncy, ncx = grid.coarse_shape
    rows, cols_c = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    cidx_full = rows[:, None] * ncx + cols_c[None, :]
    cidx = cidx_full[land]
    nc = ncy * ncx
    counts = np.bincount(cidx, minlength=nc).astype(np.float64)
    agg = sparse.csr_matrix((1.0 / np.maximum(counts[cidx], 1.0), (cidx, np.arange(n))), shape=(nc, n))
    no_land = counts == 0

    # drivers on the coarse grid, mapped to land cells
    tp_c = np.asarray(weather["tp"].values, dtype=np.float64)
    t2m_c = np.asarray(weather["t2m"].values, dtype=np.float64) - 273.15
    pev_c = np.asarray(weather["pev"].values, dtype=np.float64)
    elev_c = np.asarray(weather["elevation"].values, dtype=np.float64).ravel()
    elev_f = np.nan_to_num(np.asarray(statics["elevation"].values, dtype=np.float64)[land], nan=0.0)
    dt_lapse = -LAPSE_RATE * (elev_f - elev_c[cidx])  # K, fine minus coarse
    ts_c = soil_temperature(t2m_c, 10.0, spinup_days=spinup_days)
    doy = np.asarray(all_times.day_of_year)

    def drivers(t: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        p = precip_fine_fn(tp_c[t])[land] if precip_fine_fn is not None else tp_c[t].ravel()[cidx]
        ta = t2m_c[t].ravel()[cidx] + dt_lapse
        ts = ts_c[t].ravel()[cidx] + dt_lapse
        kc = cols.kc_min + (cols.kc_max - cols.kc_min) * vegetation_season(doy[t], cols.crop)
        return np.maximum(p, 0.0), ta, ts, pev_c[t].ravel()[cidx], kc

    theta = np.repeat((cols.wilting_point + 0.6 * (cols.field_capacity - cols.wilting_point))[None], N_LAYERS, axis=0)
    swe = np.zeros(n)
    for t in range(lead, min(lead + spinup_days, nt)):
        step_day(theta, swe, cols, *drivers(t))

    coarse_sm = np.empty((nt, N_LAYERS, nc))
    coarse_aet = np.empty((nt, nc))
    totals = {k: np.zeros(n) for k in ("precip", "runoff", "aet", "drainage")}
    sm_initial = swe_initial = None
    block = np.empty((time_block, N_LAYERS, n), dtype=np.float32)
    b0 = 0  # first output day of the current block
    for t in range(nt):
        if t == lead:
            sm_initial, swe_initial = theta.copy(), swe.copy()
        f = step_day(theta, swe, cols, *drivers(t))
        coarse_sm[t] = (agg @ theta.T).T
        coarse_aet[t] = agg @ f.aet
        if t < lead:
            continue
        for k in totals:
            totals[k] += getattr(f, k)
        i = t - lead
        block[i - b0] = theta
        if i - b0 + 1 == time_block or t == nt - 1:
            if write_block is not None:
                nb = i - b0 + 1
                full = np.full((nb, N_LAYERS, *grid.shape), np.nan, dtype=np.float32)
                full[:, :, land] = block[:nb]
                write_block(truth_block_dataset(grid, out_times[b0 : i + 1], full))
            b0 = i + 1

    coarse_sm[:, :, no_land] = np.nan
    coarse_aet[:, no_land] = np.nan
    ts_coarse = ts_c.reshape(nt, nc) + 273.15
    coarse = _coarse_dataset(grid, all_times, coarse_sm, coarse_aet, ts_coarse, counts, cidx_full, agg @ cols.porosity, no_land)
    if sm_initial is None:  # empty period
        sm_initial, swe_initial = theta.copy(), swe.copy()
    budget = _budget_dataset(grid, land, totals, theta, swe, sm_initial, swe_initial)
    return TruthSummary(coarse=coarse, budget=budget, times=out_times)


def _coarse_dataset(
    grid: GridSpec,
    times: pd.DatetimeIndex,
    sm: FloatArray,
    aet: FloatArray,
    ts: FloatArray,
    land_counts: FloatArray,
    cidx_full: npt.NDArray[np.int64],
    porosity: FloatArray,
    no_land: npt.NDArray[np.bool_],
) -> xr.Dataset:
    ncy, ncx = grid.coarse_shape
    nt = len(times)
    cells = np.bincount(cidx_full.ravel(), minlength=ncy * ncx).astype(np.float64)
    por = np.where(no_land, np.nan, porosity)
    coords = {cv.TIME: times, cv.DEPTH: np.asarray(cv.DEPTHS_CM, dtype=np.int64), cv.LAT: grid.coarse_lat, cv.LON: grid.coarse_lon}
    return xr.Dataset(
        {
            "sm": ((cv.TIME, cv.DEPTH, cv.LAT, cv.LON), sm.reshape(nt, N_LAYERS, ncy, ncx), {"units": "m3 m-3"}),
            "aet": ((cv.TIME, cv.LAT, cv.LON), aet.reshape(nt, ncy, ncx), {"units": "mm day-1"}),
            "soil_temperature": ((cv.TIME, cv.LAT, cv.LON), ts.reshape(nt, ncy, ncx), {"units": "K", "depth_cm": 10}),
            "land_fraction": ((cv.LAT, cv.LON), (land_counts / cells).reshape(ncy, ncx), {"units": "1"}),
            "porosity": ((cv.LAT, cv.LON), por.reshape(ncy, ncx), {"units": "m3 m-3"}),
        },
        coords=coords,
        attrs={"description": "coarse-cell means of the synthetic truth over land fine cells"},
    )


def _budget_dataset(
    grid: GridSpec,
    land: npt.NDArray[np.bool_],
    totals: dict[str, FloatArray],
    theta: FloatArray,
    swe: FloatArray,
    sm_initial: FloatArray,
    swe_initial: FloatArray,
) -> xr.Dataset:
    def fine(v: FloatArray) -> FloatArray:
        out = np.full(grid.shape, np.nan)
        out[land] = v
        return out

    init = np.full((N_LAYERS, *grid.shape), np.nan)
    init[:, land] = sm_initial
    data: dict[str, Any] = {k: ((cv.LAT, cv.LON), fine(v), {"units": "mm"}) for k, v in totals.items()}
    data["storage_change"] = ((cv.LAT, cv.LON), fine(((theta - sm_initial) * LAYER_MM).sum(axis=0)), {"units": "mm"})
    data["snow_change"] = ((cv.LAT, cv.LON), fine(swe - swe_initial), {"units": "mm"})
    data["sm_initial"] = ((cv.DEPTH, cv.LAT, cv.LON), init, {"units": "m3 m-3"})
    coords = {cv.DEPTH: np.asarray(cv.DEPTHS_CM, dtype=np.int64), cv.LAT: grid.lat, cv.LON: grid.lon}
    return xr.Dataset(data, coords=coords, attrs={"description": "water-balance totals over the truth period, mm"})


# ------------------------------------------------------------------ Zarr
def truth_chunks(grid: GridSpec, time_block: int = 32, spatial: int = 256) -> tuple[int, int, int, int]:
    """Zarr chunk shape (time, depth, lat, lon) of the truth product, clipped to the grid."""
    return (time_block, N_LAYERS, min(spatial, grid.nrows), min(spatial, grid.ncols))


def make_truth_template(grid: GridSpec, times: pd.DatetimeIndex, chunks: tuple[int, int, int, int]) -> xr.Dataset:
    """Lazy (dask) all-NaN truth Dataset with the full time axis: the Zarr template.

    Parameters
    ----------
    grid : GridSpec
    times : pandas.DatetimeIndex
        Days of the product.
    chunks : (int, int, int, int)
        Chunk shape (time, depth, lat, lon).
    """
    import dask.array as da

    shape = (len(times), N_LAYERS, *grid.shape)
    return truth_block_dataset(grid, times, da.full(shape, np.nan, dtype=np.float32, chunks=chunks))


def write_truth(
    store: Store,
    relpath: str,
    grid: GridSpec,
    statics: xr.Dataset,
    precip_fine_fn: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None,
    weather: xr.Dataset,
    *,
    time_block: int = 32,
    spatial_chunk: int = 256,
    spinup_days: int = SPINUP_DAYS,
) -> TruthSummary:
    """Run the truth and write it as Zarr: the template first (full time axis, no data), then one region per block.

    Memory stays bounded by one block of ``time_block`` days on the 1 km grid.

    Parameters
    ----------
    store : Store
        Destination store (any URL).
    relpath : str
        Zarr path below ``store`` (e.g. ``"truth/sm_truth.zarr"``).
    grid, statics, precip_fine_fn, weather, spinup_days
        As for :func:`run_truth`.
    time_block : int
        Days per block and per Zarr chunk (blocks therefore write whole chunks along time).
    spatial_chunk : int
        Chunk size in lat and lon, cells (clipped to the grid).

    Returns
    -------
    TruthSummary
    """
    lead = int(weather.attrs.get("lead_days", 0))
    times = pd.DatetimeIndex(weather[cv.TIME].values)[lead:]
    chunks = truth_chunks(grid, time_block, spatial_chunk)
    template = make_truth_template(grid, times, chunks)
    encoding = {
        cv.SM_TRUTH: {"chunks": chunks, "fill_value": np.float32(np.nan)},
        cv.TIME: {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"},
    }
    write_zarr(template, store, relpath, mode="w", encoding=encoding, compute=False)

    def write_block(block: xr.Dataset) -> None:
        i0 = int(times.get_loc(pd.Timestamp(block[cv.TIME].values[0])))
        region = {cv.TIME: slice(i0, i0 + block.sizes[cv.TIME])}
        write_zarr(block.drop_vars([cv.DEPTH, cv.LAT, cv.LON, cv.TIME]), store, relpath, mode="r+", region=region)

    return run_truth(grid, statics, precip_fine_fn, weather, write_block=write_block, time_block=time_block, spinup_days=spinup_days)
