"""Parquet tables (pyarrow) on any store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from smci_dask.errors import StoreError
from smci_dask.io.storage import Store, describe_error


def write_parquet(
    df: pd.DataFrame,
    store: Store,
    relpath: str,
    *,
    partition_cols: Sequence[str] | None = None,
) -> None:
    """Write ``df`` as one Parquet file (atomic) or, with ``partition_cols``, a partitioned dataset."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    try:
        if partition_cols:
            store.makedirs(relpath)
            pq.write_to_dataset(
                table,
                root_path=store.join(relpath),
                partition_cols=list(partition_cols),
                filesystem=store.fs,
                existing_data_behavior="delete_matching",
            )
        else:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            store.write_bytes(relpath, sink.getvalue().to_pybytes())
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"store {store.url}: cannot write Parquet {relpath!r}: {describe_error(exc)}") from None


def read_parquet(
    store: Store,
    relpath: str,
    *,
    columns: Sequence[str] | None = None,
    filters: Any = None,
) -> pd.DataFrame:
    """Read a Parquet file or dataset below ``store`` into pandas."""
    if not store.exists(relpath):
        raise StoreError(f"store {store.url}: no Parquet table at {relpath!r}; run the stage that writes it first")
    try:
        table = pq.read_table(store.join(relpath), columns=list(columns) if columns else None, filters=filters, filesystem=store.fs)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"store {store.url}: cannot read Parquet {relpath!r}: {describe_error(exc)}") from None
    return _restore_pandas_layout(table.to_pandas(), table.schema.pandas_metadata, columns)


def _restore_pandas_layout(df: pd.DataFrame, meta: dict[str, Any] | None, columns: Sequence[str] | None) -> pd.DataFrame:
    """Give partition columns back their written dtype and place.

    A partitioned dataset keeps partition values only in folder names
    (``depth=10``); pyarrow reads them back as a categorical at the end of
    the frame. The pandas metadata saved with every file knows the written
    dtype and column order, so restore both (or the order of ``columns``).
    """
    if not meta:
        return df
    written = [c for c in meta.get("columns", []) if c.get("name") in df.columns]
    for col in written:
        name = col["name"]
        if col.get("pandas_type") != "categorical" and isinstance(df[name].dtype, pd.CategoricalDtype):
            try:
                df[name] = df[name].astype(col["numpy_type"])
            except (TypeError, ValueError):
                pass  # leave the categorical as it is rather than guess
    order = [c for c in columns if c in df.columns] if columns else [c["name"] for c in written]
    return df[order + [c for c in df.columns if c not in order]]
