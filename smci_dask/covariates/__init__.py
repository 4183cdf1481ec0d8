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
