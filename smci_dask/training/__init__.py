"""The training table (:mod:`smci_dask.training.table`): targets at station cells with every feature."""

from __future__ import annotations

from smci_dask.training.table import (
    BLOCK_DAYS,
    ID_COLUMNS,
    TABLE_COLUMNS,
    TABLE_RELPATH,
    TARGET_COLUMNS,
    build_training_table,
    load_training_table,
    write_training_table,
)

__all__ = [
    "BLOCK_DAYS",
    "ID_COLUMNS",
    "TABLE_COLUMNS",
    "TABLE_RELPATH",
    "TARGET_COLUMNS",
    "build_training_table",
    "load_training_table",
    "write_training_table",
]
