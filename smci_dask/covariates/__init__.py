"""Covariate readers and writers: ERA5-Land (daily 0.1 degree), MODIS LAI, static rasters.

ERA5-Land (:mod:`smci_dask.covariates.era5land`): hourly files as the
Climate Data Store delivers them -> :func:`open_era5land_hourly` ->
:func:`subset_to_grid` -> :func:`daily_from_hourly` (complete days, and the
days held back) -> :func:`write_era5land_daily` into the daily cube
``covariates/era5land`` (time, lat, lon), read with
:func:`open_era5land_daily`.
"""

from __future__ import annotations

from smci_dask.covariates.era5land import (
    DAILY_UNITS,
    daily_from_hourly,
    land_mask_from_era5,
    open_era5land_hourly,
    subset_to_grid,
)
from smci_dask.covariates.era5land_store import DailyWriteReport, complete_days, open_era5land_daily, write_era5land_daily

__all__ = [
    "DAILY_UNITS",
    "DailyWriteReport",
    "complete_days",
    "daily_from_hourly",
    "land_mask_from_era5",
    "open_era5land_daily",
    "open_era5land_hourly",
    "subset_to_grid",
    "write_era5land_daily",
]

# MODIS 8-day LAI (:mod:`smci_dask.covariates.lai`): files (GeoTIFF/NetCDF, geographic or sinusoidal) ->
# :func:`read_lai_files` -> :func:`write_lai` into ``covariates/lai`` (time8, lat, lon), uint8 x 0.1;
# :func:`open_lai`, and :func:`lai_for_days` for daily LAI. Static layers (:mod:`smci_dask.covariates.static`):
# GeoTIFFs -> :func:`read_static_rasters` -> :func:`write_static` into ``covariates/static`` (lat, lon) and
# their 0.1 degree aggregates ``covariates/static_coarse``. ``ingest_*`` take (paths, store, grid) for the CLI.
from smci_dask.covariates.lai import (  # noqa: E402
    LaiWriteReport,
    complete_composites,
    ingest_lai,
    lai_for_days,
    open_lai,
    read_lai_files,
    write_lai,
)
from smci_dask.covariates.static import (  # noqa: E402
    StaticWriteReport,
    ingest_static,
    open_static,
    open_static_coarse,
    read_static_rasters,
    static_coarse,
    write_static,
)

__all__ += [
    "LaiWriteReport",
    "StaticWriteReport",
    "complete_composites",
    "ingest_lai",
    "ingest_static",
    "lai_for_days",
    "open_lai",
    "open_static",
    "open_static_coarse",
    "read_lai_files",
    "read_static_rasters",
    "static_coarse",
    "write_lai",
    "write_static",
]
