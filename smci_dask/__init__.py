"""smci_dask: daily 1 km multi-layer soil-moisture maps from in-situ stations (SMCI1.0 method) on Dask."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("smci-dask")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
