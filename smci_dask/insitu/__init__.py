"""In-situ stations: readers (ISMN, long CSV/Parquet tables), depth layers, units.

Readers return a :class:`StationData` (long observations, stations, sensors,
issues); :func:`assign_layer` maps sensor depth ranges to the product layers.
"""

from __future__ import annotations

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
    "assign_layer",
    "read_custom_metadata",
    "read_ismn",
    "read_station_table",
    "to_m3m3",
]
