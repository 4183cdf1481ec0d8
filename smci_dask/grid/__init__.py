"""Grid spec, cell index <-> lat/lon, fine <-> coarse maps, tiles, land mask."""

from __future__ import annotations

from smci_dask.grid.landmask import count_land, fine_coarse_index, land_mask_from_landcover, nearest_valid_coarse
from smci_dask.grid.regions import REGIONS, RegionPreset, get_region, grid_for
from smci_dask.grid.spec import GridSpec, Tile

__all__ = [
    "REGIONS",
    "GridSpec",
    "RegionPreset",
    "Tile",
    "count_land",
    "fine_coarse_index",
    "get_region",
    "grid_for",
    "land_mask_from_landcover",
    "nearest_valid_coarse",
]
