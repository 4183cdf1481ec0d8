"""smci_dask: daily 1 km multi-layer soil-moisture maps from in-situ stations (SMCI1.0 method) on Dask."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

# The eccodes wheel (eckitlib) bundles its own PROJ under the same library name as pyproj's;
# if eccodes loads first, the interpreter crashes at exit. Loading pyproj first avoids it.
import pyproj  # noqa: F401

try:
    __version__ = version("smci-dask")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"


def open_product(url: str, *, resolution: str = "1km", storage_options: dict[str, Any] | None = None, all_days: bool = False) -> Any:
    """Open the soil-moisture product lazily, decoded to m3/m3, with only its complete days.

    ``url`` is the store root (``STORE``, as given to ``smci run --store``) or
    the product's own URL (``STORE/product/smci_1km``). Only days whose every
    chunk is written are returned, so it is safe to call while a refresh
    writes new days; ``all_days=True`` returns the whole time axis (days not
    written hold NaN). ``resolution``: ``"1km"`` or ``"9km"``.
    """
    from smci_dask.io import Store
    from smci_dask.products import open_product as _open

    relpath = {"1km": "product/smci_1km", "9km": "product/smci_9km"}.get(resolution)
    if relpath is None:
        from smci_dask.errors import ConfigError

        raise ConfigError(f"open_product: resolution must be '1km' or '9km', not {resolution!r}")
    text = str(url).rstrip("/")
    if text.endswith(relpath):
        text = text[: -len(relpath)].rstrip("/") or "."
    return _open(Store.from_url(text, storage_options), relpath, complete_only=not all_days)


__all__ = ["__version__", "open_product"]
