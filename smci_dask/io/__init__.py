"""The only place that touches fsspec, zarr and parquet: stores from URLs."""

from __future__ import annotations

from smci_dask.io.arrays import open_zarr, write_zarr, zarr_exists, zarr_store
from smci_dask.io.storage import Store, describe_error, store_failures, store_from_config
from smci_dask.io.tables import read_parquet, write_parquet

__all__ = [
    "Store",
    "describe_error",
    "open_zarr",
    "read_parquet",
    "store_failures",
    "store_from_config",
    "write_parquet",
    "write_zarr",
    "zarr_exists",
    "zarr_store",
]
