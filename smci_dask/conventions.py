"""Names, depths, grid constants and fill values shared by every stage.

Nothing in the package types a dimension name, a variable name, a depth or a
fill value inline: it imports it from here.
"""

from __future__ import annotations

from typing import Final, Literal

# ---------------------------------------------------------------- dimensions
TIME: Final = "time"
LAT: Final = "lat"
LON: Final = "lon"
DEPTH: Final = "depth"
TIME8: Final = "time8"  # MODIS 8-day step

# ERA5-Land as the Climate Data Store delivers it (current layout)
ERA5_TIME: Final = "valid_time"
ERA5_LAT: Final = "latitude"
ERA5_LON: Final = "longitude"
ERA5_NUMBER: Final = "number"
ERA5_EXPVER: Final = "expver"

# ---------------------------------------------------------------- depths
#: Product layers: sensor-centre depths in cm (SMCI1.0: 10, 20, ..., 100 cm).
DEPTHS_CM: Final[tuple[int, ...]] = tuple(range(10, 101, 10))
#: Layer bounds in cm: layer ``d`` spans ``(d - 10, d]``.
DEPTH_BOUNDS_CM: Final[tuple[tuple[int, int], ...]] = tuple((d - 10, d) for d in DEPTHS_CM)

#: ERA5-Land soil layers (top, bottom) in cm.
ERA5_LAYERS_CM: Final[dict[int, tuple[int, int]]] = {1: (0, 7), 2: (7, 28), 3: (28, 100), 4: (100, 289)}

# ---------------------------------------------------------------- grid
#: Fine grid: 30 arc-seconds = 1/120 degree.
FINE_PER_DEGREE: Final = 120
#: Coarse grid: ERA5-Land 0.1 degree = 12 fine cells; its cell centres lie on multiples of 0.1 degree.
COARSE_FACTOR: Final = 12
COARSE_PER_DEGREE: Final = 10

#: SMCI1.0 / default region (west, south, east, north), degrees, cell edges.
CHINA_BBOX: Final = (73.0, 18.0, 136.0, 54.0)

# ---------------------------------------------------------------- variables
#: ERA5-Land short names as delivered (hourly files).
ERA5_STATE_VARS: Final = ("t2m", "swvl1", "swvl2", "swvl3", "swvl4", "stl1", "stl2", "stl3", "stl4", "lai_hv", "lai_lv")
ERA5_ACCUM_VARS: Final = ("tp", "e", "pev", "ssrd")
ERA5_VARS: Final = ERA5_ACCUM_VARS + ERA5_STATE_VARS

#: Units of the hourly ERA5-Land files (as the CDS delivers them).
ERA5_RAW_UNITS: Final[dict[str, str]] = {
    "tp": "m",
    "e": "m of water equivalent",
    "pev": "m",
    "ssrd": "J m**-2",
    "t2m": "K",
    "swvl1": "m**3 m**-3",
    "swvl2": "m**3 m**-3",
    "swvl3": "m**3 m**-3",
    "swvl4": "m**3 m**-3",
    "stl1": "K",
    "stl2": "K",
    "stl3": "K",
    "stl4": "K",
    "lai_hv": "m**2 m**-2",
    "lai_lv": "m**2 m**-2",
}

#: Long names of ERA5-Land variables (ECMWF parameter database).
ERA5_LONG_NAMES: Final[dict[str, str]] = {
    "tp": "Total precipitation",
    "e": "Evaporation",
    "pev": "Potential evaporation",
    "ssrd": "Surface short-wave (solar) radiation downwards",
    "t2m": "2 metre temperature",
    "swvl1": "Volumetric soil water layer 1",
    "swvl2": "Volumetric soil water layer 2",
    "swvl3": "Volumetric soil water layer 3",
    "swvl4": "Volumetric soil water layer 4",
    "stl1": "Soil temperature level 1",
    "stl2": "Soil temperature level 2",
    "stl3": "Soil temperature level 3",
    "stl4": "Soil temperature level 4",
    "lai_hv": "Leaf area index, high vegetation",
    "lai_lv": "Leaf area index, low vegetation",
}

#: ECMWF GRIB parameter ids.
ERA5_PARAM_IDS: Final[dict[str, int]] = {
    "tp": 228,
    "e": 182,
    "pev": 228251,
    "ssrd": 169,
    "t2m": 167,
    "swvl1": 39,
    "swvl2": 40,
    "swvl3": 41,
    "swvl4": 42,
    "stl1": 139,
    "stl2": 170,
    "stl3": 183,
    "stl4": 236,
    "lai_lv": 66,
    "lai_hv": 67,
}

#: Static 1 km layers (GeoTIFF inputs and covariates/static variables) and their units.
STATIC_VARS: Final[dict[str, str]] = {
    "elevation": "m",
    "landcover": "1",  # IGBP class (MODIS MCD12Q1 LC_Type1)
    "sand": "%",
    "silt": "%",
    "clay": "%",
    "porosity": "m3 m-3",
    "bulk_density": "g cm-3",
    "rock_fragment": "%",
    "climate_zone": "1",  # Koppen-Geiger class code
}

#: Long names of the static layers.
STATIC_LONG_NAMES: Final[dict[str, str]] = {
    "elevation": "Elevation above sea level",
    "landcover": "Land cover class (IGBP, MODIS MCD12Q1 LC_Type1)",
    "sand": "Sand fraction of the fine earth",
    "silt": "Silt fraction of the fine earth",
    "clay": "Clay fraction of the fine earth",
    "porosity": "Porosity (saturated volumetric water content)",
    "bulk_density": "Dry bulk density of the fine earth",
    "rock_fragment": "Volumetric fraction of coarse fragments (> 2 mm)",
    "climate_zone": "Koppen-Geiger climate class (Beck et al. 2018 codes)",
}

#: IGBP water class (MODIS LC_Type1): the land mask is landcover != WATER_CLASS.
WATER_CLASS: Final = 17

#: Koppen-Geiger class codes used by the climate-zone layer (Beck et al. 2018 numbering).
KOPPEN_CLASSES: Final[dict[int, str]] = {
    1: "Af",
    2: "Am",
    3: "Aw",
    4: "BWh",
    5: "BWk",
    6: "BSh",
    7: "BSk",
    8: "Csa",
    11: "Cwa",
    12: "Cwb",
    14: "Cfa",
    15: "Cfb",
    19: "Dsb",
    22: "Dwa",
    23: "Dwb",
    26: "Dfa",
    27: "Dfb",
    29: "ET",
}

#: Soil-moisture variable names.
SM: Final = "sm"  # m3/m3
SM_SPREAD: Final = "sm_spread"  # m3/m3, spread of the trees (inference.uncertainty)
SM_TRUTH: Final = "sm_truth"

# ---------------------------------------------------------------- products
#: SMCI1.0 distribution encoding: int16 in 0.001 m3/m3, fill -999.
PRODUCT_DTYPE: Final = "int16"
PRODUCT_SCALE: Final = 0.001
PRODUCT_FILL: Final = -999

#: MODIS LAI (MOD15A2H Lai_500m) encoding: uint8, scale 0.1, fill values 249-255.
LAI_DTYPE: Final = "uint8"
LAI_SCALE: Final = 0.1
LAI_FILL: Final = 255
LAI_VALID_MAX: Final = 100

# ---------------------------------------------------------------- options
Region = Literal["tiny", "small", "medium", "china"]
ClusterKind = Literal["local", "address", "slurm", "pbs", "kubernetes"]
Interpolation = Literal["nearest", "bilinear"]
