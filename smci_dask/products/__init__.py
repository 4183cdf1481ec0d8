"""Products: the 1 km product (template, encoding, region writes, completion records), its 9 km mean, NetCDF exports."""

from __future__ import annotations

from smci_dask.products.export import export_netcdf
from smci_dask.products.smci1km import (
    COMPLETE_DAYS_ATTR,
    PRODUCT_1KM_RELPATH,
    Marker,
    complete_days,
    create_product,
    dequantise,
    load_markers,
    make_product_template,
    open_product,
    product_chunks,
    quantise,
    set_complete_days,
    write_marker,
    write_product_region,
)
from smci_dask.products.smci9km import PRODUCT_9KM_RELPATH, aggregate_9km

__all__ = [
    "COMPLETE_DAYS_ATTR",
    "PRODUCT_1KM_RELPATH",
    "PRODUCT_9KM_RELPATH",
    "Marker",
    "aggregate_9km",
    "complete_days",
    "create_product",
    "dequantise",
    "export_netcdf",
    "load_markers",
    "make_product_template",
    "open_product",
    "product_chunks",
    "quantise",
    "set_complete_days",
    "write_marker",
    "write_product_region",
]
