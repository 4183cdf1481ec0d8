"""In-situ stations: readers (ISMN, long CSV/Parquet tables), depth layers, units, daily targets, matching.

Readers return a :class:`StationData` (long observations, stations, sensors,
issues); :func:`assign_layer` maps sensor depth ranges to the product layers.
:mod:`~smci_dask.insitu.qc` flags hourly soil moisture with the ISMN automated
checks of Dorigo et al. (2013) (:func:`apply_qc`, one ``flag_*`` per check);
:mod:`~smci_dask.insitu.qc_report` counts the flags per sensor and depth
(:func:`qc_report`, :func:`plot_qc_report`); :mod:`~smci_dask.insitu.qc_file`
checks one station's hourly CSV file (:func:`qc_file`, ``smci qc``).
:mod:`~smci_dask.insitu.daily` turns hourly soil moisture into daily values
per 1 km cell and layer (:func:`daily_means`, :func:`fill_gaps`,
:func:`to_cells`); :mod:`~smci_dask.insitu.matching` matches them to
ERA5-Land's mean and standard deviation (:func:`era5_at_cells`,
:func:`matching_stats`, :func:`apply_matching`).
"""

from __future__ import annotations

from smci_dask.insitu.daily import daily_means, fill_gaps, load_cell_daily, to_cells
from smci_dask.insitu.matching import apply_matching, era5_at_cells, era5_table, matching_stats
from smci_dask.insitu.qc import ALL_CHECKS, apply_qc
from smci_dask.insitu.qc_file import qc_file
from smci_dask.insitu.qc_report import plot_qc_report, qc_report
from smci_dask.insitu.readers import (
    OBSERVATION_COLUMNS,
    SENSOR_COLUMNS,
    STATION_COLUMNS,
    VARIABLE_UNITS,
    LayerRule,
    SmUnit,
    StationData,
    add_custom_metadata,
    assign_layer,
    to_m3m3,
)
from smci_dask.insitu.readers_ismn import ISMN_VARIABLES, read_custom_metadata, read_ismn
from smci_dask.insitu.readers_table import TABLE_COLUMNS, read_station_table

__all__ = [
    "ALL_CHECKS",
    "apply_qc",
    "ISMN_VARIABLES",
    "OBSERVATION_COLUMNS",
    "SENSOR_COLUMNS",
    "STATION_COLUMNS",
    "TABLE_COLUMNS",
    "VARIABLE_UNITS",
    "LayerRule",
    "SmUnit",
    "StationData",
    "add_custom_metadata",
    "apply_matching",
    "assign_layer",
    "daily_means",
    "era5_at_cells",
    "era5_table",
    "fill_gaps",
    "load_cell_daily",
    "matching_stats",
    "plot_qc_report",
    "qc_file",
    "qc_report",
    "read_custom_metadata",
    "read_ismn",
    "read_station_table",
    "to_cells",
    "to_m3m3",
]
