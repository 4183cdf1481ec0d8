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
    return table.to_pandas()
