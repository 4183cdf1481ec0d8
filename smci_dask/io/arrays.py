"""Zarr 3 arrays on any store: open lazily, write whole, write templates and regions.

Products are written template first (full coordinates and metadata, no
data), then filled by region writes of whole chunks (xarray-beam's pattern).
Metadata is not consolidated: Zarr 3 has no standard consolidated metadata
yet, and unconsolidated stores never show stale metadata to a reader.
"""

from __future__ import annotations

from typing import Any, Literal

import xarray as xr
import zarr
from zarr.storage import FsspecStore, LocalStore

from smci_dask.errors import SmciError, StoreError
from smci_dask.io.storage import Store, describe_error, is_store_failure


def zarr_store(store: Store, relpath: str = "", *, read_only: bool = False) -> zarr.abc.store.Store:
    """A zarr-python 3 store object for ``relpath`` below ``store``."""
    path = store.join(relpath)
    if store.is_local:
        return LocalStore(path, read_only=read_only)
    return FsspecStore.from_url(store.child(relpath).url, storage_options=store.fs_options or None, read_only=read_only)


def zarr_exists(store: Store, relpath: str) -> bool:
    """True if a Zarr group or array lives at ``relpath``."""
    return store.exists(relpath, "zarr.json")


def open_zarr(store: Store, relpath: str, **kwargs: Any) -> xr.Dataset:
    """Open the Zarr dataset at ``relpath`` lazily (dask arrays)."""
    if not zarr_exists(store, relpath):
        raise StoreError(f"store {store.url}: no Zarr dataset at {relpath!r}; run the stage that writes it first")
    kwargs.setdefault("consolidated", False)
    try:
        return xr.open_zarr(zarr_store(store, relpath, read_only=True), **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"store {store.url}: cannot open Zarr {relpath!r}: {describe_error(exc)}") from None


def write_zarr(
    ds: xr.Dataset,
    store: Store,
    relpath: str,
    *,
    mode: Literal["w", "w-", "a", "r+"] = "w",
    encoding: dict[str, Any] | None = None,
    region: dict[str, slice] | Literal["auto"] | None = None,
    compute: bool = True,
    append_dim: str | None = None,
) -> Any:
    """Write ``ds`` (whole, as a template with ``compute=False``, or into ``region``)."""
    kwargs: dict[str, Any] = {"mode": mode, "consolidated": False, "compute": compute}
    if encoding is not None:
        kwargs["encoding"] = encoding
    if region is not None:
        kwargs["region"] = region
    if append_dim is not None:
        kwargs["append_dim"] = append_dim
    try:
        return ds.to_zarr(zarr_store(store, relpath), zarr_format=3, **kwargs)
    except SmciError:
        raise
    except Exception as exc:
        # Only failures of the store itself become a StoreError; an error raised while computing
        # the data (inside a dask task) keeps its own type and message.
        if is_store_failure(exc):
            raise StoreError(f"store {store.url}: cannot write Zarr {relpath!r}: {describe_error(exc)}") from None
        raise
