"""The synthetic world: every input in the real sources' formats, plus the truth.

:func:`make_world` writes, seeded, below one store:

==============================  ==============================================
``static/<var>.tif``            1 km GeoTIFFs (EPSG:4326): elevation (m),
                                landcover (IGBP), sand/silt/clay (%), porosity
                                (m3/m3), bulk_density (g/cm3), rock_fragment
                                (%), climate_zone (Koppen code)
``era5land/era5land_Y_M.nc``    hourly ERA5-Land as the CDS delivers it (and
                                ``.grib`` with ``grib=True``), 0.1 degree,
                                2 cells of margin around the region
``lai/MOD15A2H.AYYYYDDD...tif`` MODIS-like 8-day LAI at 1 km (uint8, x0.1,
                                fill 255); ``lai_sinusoidal/`` optionally
``stations/ismn/SYNTH/<id>/``   ISMN header+values files (sm, ts, ta, p)
``stations/stations.csv.gz``    the same observations as one long CSV table (gzip)
``stations/station_table.csv``  station metadata
``stations/faults.parquet``     every corrupted or removed hourly record with
                                its fault type and its clean value
``truth/sm_truth.zarr``         true daily soil moisture (time, depth, lat,
                                lon), m3/m3, NaN over water
``products/somo_like.nc``       an extra 0.25 degree, 3-layer product made from
                                the truth (:mod:`smci_dask.synthetic.products`)
``quicklook.png``               stations, land cover and the truth at a glance
``world.json``                  region, grid, years, seed, files and counts
==============================  ==============================================

The order follows the physics: statics -> weather -> 1 km water balance
(truth) -> ERA5-Land (coarse truth degraded) -> LAI -> stations (truth at the
stations' cells plus sensor errors and faults).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from smci_dask import __version__
from smci_dask import conventions as cv
from smci_dask.errors import ConfigError
from smci_dask.grid import GridSpec, get_region
from smci_dask.io import Store, open_zarr
from smci_dask.synthetic.era5 import make_era5_daily, write_era5_month_files
from smci_dask.synthetic.fields import component_rng
from smci_dask.synthetic.lai import make_lai, write_lai_files
from smci_dask.synthetic.products import SOMO_NAME, SOMO_PATH, make_somo_like, write_product
from smci_dask.synthetic.quicklook import render_quicklook
from smci_dask.synthetic.statics import make_statics, write_static_geotiffs
from smci_dask.synthetic.station_files import write_faults, write_ismn, write_station_csv, write_station_table
from smci_dask.synthetic.stations import make_station_series, place_stations
from smci_dask.synthetic.truth import write_truth
from smci_dask.synthetic.weather import (
    disaggregate_mean,
    disaggregate_sum,
    make_precip_downscaler,
    make_weather,
    precip_hourly_weights,
    temperature_hourly_anomaly,
)

Progress = Callable[[str], None]

#: Paths of the world's parts below its store.
STATIC_DIR = "static"
ERA5_DIR = "era5land"
LAI_DIR = "lai"
LAI_SINU_DIR = "lai_sinusoidal"
ISMN_DIR = "stations/ismn"
STATION_CSV = "stations/stations.csv.gz"
STATION_TABLE = "stations/station_table.csv"
FAULTS = "stations/faults.parquet"
TRUTH = "truth/sm_truth.zarr"
QUICKLOOK = "quicklook.png"
MANIFEST = "world.json"


def _coarse_mean(grid: GridSpec, fine: np.ndarray) -> np.ndarray:
    """Mean of a fine field over each coarse cell (NaN ignored)."""
    rows, cols = grid.fine_to_coarse_rows(), grid.fine_to_coarse_cols()
    idx = (rows[:, None] * grid.coarse_shape[1] + cols[None, :]).ravel()
    v = np.asarray(fine, dtype=np.float64).ravel()
    ok = np.isfinite(v)
    n = np.bincount(idx[ok], minlength=grid.coarse_shape[0] * grid.coarse_shape[1])
    s = np.bincount(idx[ok], weights=v[ok], minlength=n.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s / n).reshape(grid.coarse_shape)


def station_forcing(
    grid: GridSpec,
    stations: pd.DataFrame,
    weather: xr.Dataset,
    coarse_soil_temperature: xr.DataArray,
    precip_fine_fn: Callable[[np.ndarray], np.ndarray],
    days: pd.DatetimeIndex,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hourly soil temperature (10 cm), air temperature and precipitation at the stations.

    Air and soil temperature come from the station's coarse cell (daily means
    with a diurnal cycle; the soil's damped and 3 h late), precipitation from
    the 1 km downscaled daily field at the station's cell, split into hours.

    Returns
    -------
    soil_temperature, air_temperature : ndarray (hours, stations), deg C
    precipitation : ndarray (hours, stations), mm per hour
    """
    crow, ccol = grid.fine_to_coarse_rows()[stations["row"].to_numpy()], grid.fine_to_coarse_cols()[stations["col"].to_numpy()]
    w = weather.sel(time=days)
    t2m = w["t2m"].values[:, crow, ccol]  # (days, n) K
    dtr = w["dtr"].values[:, crow, ccol]
    lon = stations["lon"].to_numpy()
    anom = temperature_hourly_anomaly(dtr[:, None, :], lon)[:, :, 0, :]  # (days, 24, n)
    air = disaggregate_mean(t2m, anom) - 273.15
    soil_daily = coarse_soil_temperature.sel(time=days).values[:, crow, ccol]
    soil_anom = 0.3 * temperature_hourly_anomaly(dtr[:, None, :], lon, lag_hours=3.0)[:, :, 0, :]
    soil = disaggregate_mean(soil_daily, soil_anom) - 273.15
    tp = w["tp"].values
    rows, cols = stations["row"].to_numpy(), stations["col"].to_numpy()
    p_daily = np.stack([precip_fine_fn(tp[t])[rows, cols] for t in range(len(days))])
    weights = precip_hourly_weights(component_rng(seed, "stations", "precip-hours"), len(days), (1, len(stations)))[:, :, 0, :]
    precip = disaggregate_sum(p_daily, weights)
    n = len(stations)
    return soil.reshape(-1, n), air.reshape(-1, n), precip.reshape(-1, n)


def make_world(
    store: Store,
    *,
    region: str = "tiny",
    years: tuple[int, int] | None = None,
    seed: int = 20220101,
    n_stations: int | None = None,
    grib: bool = False,
    sinusoidal: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the synthetic world of ``region`` below ``store``; returns the manifest.

    Parameters
    ----------
    store : Store
        Where to write (local, memory://, s3://...).
    region : {'tiny', 'small', 'medium'}
        Named synthetic region (:data:`smci_dask.grid.REGIONS`).
    years : (int, int), optional
        First and last year, inclusive; default the region's.
    seed : int
        World seed: the same seed writes the same world.
    n_stations : int, optional
        Number of stations; default the region's.
    grib, sinusoidal : bool
        Also write ERA5-Land as GRIB / LAI in the MODIS sinusoidal projection.
    progress : callable, optional
        Called with one line per step.
    """
    say = progress or (lambda _m: None)
    if region == "china":
        raise ConfigError("the synthetic world is for tiny, small and medium regions; 'china' is the real product's domain")
    preset = get_region(region)
    years = tuple(years) if years else preset.years  # type: ignore[assignment]
    if years[0] > years[1]:
        raise ConfigError(f"years {list(years)}: first year after last")
    n_stations = preset.n_stations if n_stations is None else int(n_stations)
    if n_stations < 1:
        raise ConfigError(f"--stations {n_stations}: need at least 1 station")
    grid = preset.grid
    timings: dict[str, float] = {}
    files: dict[str, list[str] | str] = {}

    def step(name: str) -> Callable[[], None]:
        t0 = time.perf_counter()
        return lambda: timings.__setitem__(name, round(time.perf_counter() - t0, 2))

    done = step("statics")
    statics = make_statics(grid, seed)
    files["static"] = write_static_geotiffs(statics, store, STATIC_DIR)
    done()
    land = np.asarray(statics["land"].values, dtype=bool)
    say(f"statics: {grid.shape[0]} x {grid.shape[1]} cells, {int(land.sum())} land; {len(files['static'])} GeoTIFFs")

    done = step("weather")
    elevation_fine = statics["elevation"].values
    weather = make_weather(grid, years, seed, _coarse_mean(grid, elevation_fine))
    precip_fine_fn = make_precip_downscaler(grid, elevation_fine, seed)
    done()

    done = step("truth")
    summary = write_truth(store, TRUTH, grid, statics, precip_fine_fn, weather)
    files["truth"] = TRUTH
    done()
    say(f"truth: {len(summary.times)} days x {len(cv.DEPTHS_CM)} depths on the 1 km grid -> {TRUTH}")

    done = step("era5land")
    era5_daily = make_era5_daily(grid, weather, summary, seed, statics=statics)
    files["era5land"] = write_era5_month_files(store, ERA5_DIR, era5_daily, seed)
    if grib:
        files["era5land_grib"] = write_era5_month_files(store, ERA5_DIR, era5_daily, seed, fmt="grib")
    done()
    say(f"era5land: {len(files['era5land'])} monthly hourly NetCDF files{' (+ GRIB)' if grib else ''}")

    done = step("lai")
    lai = make_lai(grid, statics, years, seed)
    files["lai"] = write_lai_files(lai, store, LAI_DIR)
    if sinusoidal:
        files["lai_sinusoidal"] = write_lai_files(lai, store, LAI_SINU_DIR, projection="sinusoidal")
    done()
    say(f"lai: {len(files['lai'])} 8-day composites")

    done = step("stations")
    stations = place_stations(grid, statics, n_stations, seed)
    truth = open_zarr(store, TRUTH)[cv.SM_TRUTH]
    rows = xr.DataArray(stations["row"].to_numpy(), dims="station")
    cols = xr.DataArray(stations["col"].to_numpy(), dims="station")
    truth_at = truth.isel(lat=rows, lon=cols).transpose(cv.TIME, cv.DEPTH, "station").values
    days = summary.times
    soil_t, air_t, precip = station_forcing(grid, stations, weather, summary.coarse["soil_temperature"], precip_fine_fn, days, seed)
    obs, faults = make_station_series(stations, truth_at, days, soil_t, air_t, precip, seed)
    files["ismn"] = f"{ISMN_DIR}/ ({len(write_ismn(obs, stations, store, ISMN_DIR))} files)"
    files["station_csv"] = write_station_csv(obs, stations, store, STATION_CSV)
    files["station_table"] = write_station_table(stations, store, STATION_TABLE)
    files["faults"] = write_faults(faults, store, FAULTS)
    done()
    say(f"stations: {len(stations)} stations, {len(obs)} hourly records, {len(faults)} faulty or missing records logged")

    done = step("products")
    files["products"] = {SOMO_NAME: write_product(make_somo_like(truth, grid, seed), store, SOMO_PATH)}
    done()
    say(f"products: {SOMO_NAME} (0.25 degree, 3 layers) -> {SOMO_PATH}")

    title = f"synthetic world '{region}' ({grid.bbox}), {days[0].date()} to {days[-1].date()}, seed {seed}"
    store.write_bytes(QUICKLOOK, render_quicklook(grid, statics, stations, truth, obs, title=title))
    files["quicklook"] = QUICKLOOK
    say(f"quick look: {store.url_of(QUICKLOOK)}")

    counts = {
        "fine cells": f"{grid.shape[0]} x {grid.shape[1]}",
        "land cells": int(land.sum()),
        "coarse cells": f"{grid.coarse_shape[0]} x {grid.coarse_shape[1]}",
        "days": len(days),
        "era5land files": len(files["era5land"]),
        "lai composites": len(files["lai"]),
        "stations": len(stations),
        "station cells": int(stations[["row", "col"]].drop_duplicates().shape[0]),
        "hourly records": len(obs),
        "faulty records": len(faults),
    }
    manifest = {
        "kind": "smci_dask synthetic world",
        "code_version": __version__,
        "region": region,
        "bbox": list(grid.bbox),
        "years": list(years),
        "seed": seed,
        "n_stations": n_stations,
        "first_day": str(days[0].date()),
        "last_day": str(days[-1].date()),
        "files": files,
        "counts": counts,
        "seconds": timings,
    }
    store.write_text(MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def load_manifest(store: Store) -> dict[str, Any]:
    """The ``world.json`` of a world written by :func:`make_world`."""
    return json.loads(store.read_text(MANIFEST))
