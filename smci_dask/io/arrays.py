"""Zarr 3 arrays on any store: open lazily, write whole, write templates and regions.

Products are written template first (full coordinates and metadata, no
data), then filled by region writes of whole chunks (xarray-beam's pattern).
Metadata is not consolidated: Zarr 3 has no standard consolidated metadata
yet, and unconsolidated stores never show stale metadata to a reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
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
    return FsspecStore.from_url(store.child(relpath).url, storage_options=zarr_fs_options(store) or None, read_only=read_only)


def zarr_fs_options(store: Store) -> dict[str, Any]:
    """The filesystem options of a remote store's Zarr arrays: :attr:`Store.fs_options`, tuned for small objects.

    On S3, ``max_concurrency`` is 1 unless the storage options set it: with
    more, s3fs sends a HEAD before every whole-object GET (to split large
    objects into concurrent ranged GETs), which for chunks of a few MB only
    doubles the requests of every read (``benchmarks/bench_s3_requests.py``:
    2 requests per chunk read -> 1, reads ~2x faster). Other filesystems
    (and s3fs's own uploads and downloads of whole files) keep their defaults.
    """
    opts = store.fs_options
    if store.protocol in ("s3", "s3a"):
        opts.setdefault("max_concurrency", 1)
    return opts


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


def write_zarr_blocks(
    store: Store, relpath: str, blocks: Iterable[tuple[str, tuple[slice, ...], np.ndarray]], *, attrs: dict[str, Any] | None = None
) -> int:
    """Write numpy blocks into existing arrays of the Zarr group at ``relpath``, opening the group once.

    For repeated region writes into a group made by :func:`write_zarr`
    (e.g. whole time chunks of every variable): ``to_zarr(region=...)``
    opens and lists the whole group for every call, which costs one round
    trip per array and call on an object store; here the group and each
    array are opened once. ``blocks`` may be a generator, so only one block
    needs to be in memory at a time. The arrays must hold raw values
    (no scale/offset encoding); a block is cast to its array's dtype.

    Parameters
    ----------
    store : Store
    relpath : str
        The Zarr group below ``store``.
    blocks : iterable of (name, region, values)
        Array name in the group, a tuple of slices (one per dimension) and
        the values of that region.
    attrs : dict, optional
        Attributes set on the group after every block is written (JSON
        values), e.g. the list of complete days a reader trusts; not set if
        a block fails.

    Returns
    -------
    int
        Number of blocks written.

    Raises
    ------
    StoreError
        The group or an array does not exist, a block does not fit its
        region, or the store cannot be written.
    """
    where = f"store {store.url}: cannot write Zarr {relpath!r}"
    try:
        group = zarr.open_group(zarr_store(store, relpath), mode="r+", zarr_format=3)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"{where}: {describe_error(exc)}; create it first (template write)") from None
    arrays: dict[str, Any] = {}
    count = 0
    for name, region, values in blocks:
        if name not in arrays:
            try:
                arrays[name] = group[name]
            except KeyError:
                raise StoreError(f"{where}: it holds no array {name!r}; write a template with every variable first") from None
        array = arrays[name]
        try:
            array[region] = np.asarray(values, dtype=array.dtype)
        except (ValueError, IndexError) as exc:
            raise StoreError(f"{where}: block for {name!r} at {region} does not fit the array of shape {array.shape} ({exc})") from None
        except Exception as exc:
            if is_store_failure(exc):
                raise StoreError(f"{where}: {describe_error(exc)}") from None
            raise
        count += 1
    if attrs:
        try:
            group.attrs.update(attrs)
        except Exception as exc:
            if is_store_failure(exc):
                raise StoreError(f"{where}: {describe_error(exc)}") from None
            raise
    return count


def resize_zarr_array(store: Store, relpath: str, name: str, length: int) -> tuple[int, ...]:
    """Set the first dimension of array ``name`` of the Zarr group at ``relpath`` to ``length``; returns the old shape.

    One metadata write (the array's ``zarr.json``); no chunk is written or
    deleted when the array grows: the new part reads as the fill value until
    it is written (:func:`write_zarr_blocks`).
    """
    where = f"store {store.url}: cannot resize {name!r} of Zarr {relpath!r}"
    try:
        array = zarr.open_group(zarr_store(store, relpath), mode="r+", zarr_format=3)[name]
        old = tuple(array.shape)
        array.resize((int(length), *old[1:]))
    except KeyError:
        raise StoreError(f"{where}: it holds no such array") from None
    except Exception as exc:
        if is_store_failure(exc):
            raise StoreError(f"{where}: {describe_error(exc)}") from None
        raise
    return old
