"""smci_dask: daily 1 km multi-layer soil-moisture maps from in-situ stations (SMCI1.0 method) on Dask."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# The eccodes wheel (eckitlib) bundles its own PROJ under the same library name as pyproj's;
# if eccodes loads first, the interpreter crashes at exit. Loading pyproj first avoids it.
import pyproj  # noqa: F401

try:
    __version__ = version("smci-dask")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
