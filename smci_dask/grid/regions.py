"""Named regions: the synthetic worlds (tiny, small, medium) and SMCI1.0's China.

The synthetic regions sit on the North China Plain by the Taihang mountains
(about 37 N), where winters freeze the topsoil: the frozen-soil QC checks
then have something to catch.
"""

from __future__ import annotations

from dataclasses import dataclass

from smci_dask import conventions as cv
from smci_dask.errors import ConfigError
from smci_dask.grid.spec import GridSpec


@dataclass(frozen=True)
class RegionPreset:
    """A named region with its default period and (synthetic) station count."""

    name: str
    bbox: tuple[float, float, float, float]
    years: tuple[int, int]
    n_stations: int
    description: str

    @property
    def grid(self) -> GridSpec:
        return GridSpec.from_bbox(self.bbox)


REGIONS: dict[str, RegionPreset] = {
    "tiny": RegionPreset("tiny", (115.0, 37.0, 115.5, 37.5), (2019, 2020), 20, "0.5 x 0.5 degree, 2 years, 20 stations: unit tests"),
    "small": RegionPreset(
        "small", (114.5, 36.5, 115.5, 37.5), (2018, 2020), 100, "1 x 1 degree, 3 years, ~100 stations: demo, integration tests"
    ),
    "medium": RegionPreset("medium", (113.0, 35.0, 116.0, 38.0), (2018, 2020), 400, "3 x 3 degree, 3 years, 400 stations: benchmarks"),
    "china": RegionPreset("china", cv.CHINA_BBOX, (2010, 2020), 1789, "SMCI1.0 domain, 73-136 E, 18-54 N, 2010-2020"),
}


def get_region(name: str) -> RegionPreset:
    """The preset called ``name``; ConfigError listing the known ones otherwise."""
    try:
        return REGIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown region {name!r}; known regions: {', '.join(REGIONS)} (or region.name: custom with region.bbox)"
        ) from None


def grid_for(region_name: str, bbox: tuple[float, float, float, float] | None = None) -> GridSpec:
    """Grid of a named region, or of ``bbox`` when the region is ``custom``."""
    if region_name == "custom":
        if bbox is None:
            raise ConfigError("region.name is 'custom' but region.bbox is not set: give [west, south, east, north]")
        return GridSpec.from_bbox(bbox)
    return get_region(region_name).grid
