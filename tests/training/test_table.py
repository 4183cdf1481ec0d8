"""The training table: one row per target, features equal to the feature function's, Parquet by depth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from smci_dask.features import FEATURE_NAMES, features_at_cells, open_feature_sources
from smci_dask.insitu.daily import load_cell_daily
from smci_dask.io import Store
from smci_dask.training import TABLE_COLUMNS, build_training_table, load_training_table, write_training_table


@pytest.fixture(scope="module")
def table(tiny_stores: tuple[Store, dict[str, Any]]) -> pd.DataFrame:
    store, info = tiny_stores
    return build_training_table(store, info["grid"], block_days=40)


def test_one_row_per_target_with_ids_and_targets(tiny_stores: tuple[Store, dict[str, Any]], table: pd.DataFrame) -> None:
    store, info = tiny_stores
    targets = load_cell_daily(store)
    assert len(table) == len(targets) > 1000
    assert tuple(table.columns) == TABLE_COLUMNS
    keys = ["row", "col", "depth_cm", "time"]
    assert not table.duplicated(keys).any()
    pd.testing.assert_frame_equal(
        table[keys].reset_index(drop=True), targets[keys].reset_index(drop=True), check_dtype=False, check_index_type=False
    )
    assert np.array_equal(table["sm_raw"].to_numpy(), targets["sm_raw"].to_numpy())
    assert np.array_equal(table["sm_matched"].to_numpy(), targets["sm_matched"].to_numpy(), equal_nan=True)
    assert (table["year"] == table["time"].dt.year).all() and set(table["year"]) == {2019, 2020}
    assert (table["cell_id"] == table["row"].astype(np.int64) * info["grid"].ncols + table["col"]).all()
    static = open_feature_sources(store).static.compute()
    assert np.array_equal(table["climate_zone"].to_numpy(), static["climate_zone"].values[table["row"], table["col"]])
    assert table[list(FEATURE_NAMES)].dtypes.eq(np.float32).all()
    # every feature is present except the precipitation sums in the first days of the record
    sums = ["tp_sum7", "tp_sum28"]
    assert table[[c for c in FEATURE_NAMES if c not in sums]].notna().all().all()
    early = table["time"] < pd.Timestamp("2019-01-28")
    assert table.loc[~early, sums].notna().all().all() and table.loc[early, "tp_sum28"].isna().all()


def test_features_equal_the_feature_function_for_sampled_rows(tiny_stores: tuple[Store, dict[str, Any]], table: pd.DataFrame) -> None:
    store, info = tiny_stores
    sources = open_feature_sources(store)
    sample = table.sample(25, random_state=1)
    for _, row in sample.iterrows():
        block = features_at_cells(sources, info["grid"], [row["row"]], [row["col"]], [row["time"]])
        assert np.array_equal(block.values[0, 0], row[list(FEATURE_NAMES)].to_numpy(dtype=np.float32), equal_nan=True)


def test_days_subset_and_block_size_do_not_change_values(tiny_stores: tuple[Store, dict[str, Any]], table: pd.DataFrame) -> None:
    store, info = tiny_stores
    days = pd.date_range("2020-02-20", "2020-03-10")
    part = build_training_table(store, info["grid"], days=days, block_days=3)
    want = table[table["time"].isin(days)].reset_index(drop=True)
    assert len(part) == len(want) > 0
    pd.testing.assert_frame_equal(part.astype({"station_ids": str}), want.astype({"station_ids": str}))


def test_parquet_partitioned_by_depth_round_trip(any_store: Store, table: pd.DataFrame) -> None:
    small = table[table["time"] < pd.Timestamp("2019-03-01")].reset_index(drop=True)
    write_training_table(small, any_store)
    depths = sorted(int(d) for d in small["depth_cm"].unique())
    assert len(depths) > 1
    assert {p.rstrip("/").rsplit("/", 1)[-1] for p in any_store.ls("training/table")} == {f"depth_cm={d}" for d in depths}
    back = load_training_table(any_store)
    pd.testing.assert_frame_equal(back.astype({"station_ids": str}), small.astype({"station_ids": str}))
    one = load_training_table(any_store, depths=[depths[0]])
    assert len(one) == int((small["depth_cm"] == depths[0]).sum()) and set(one["depth_cm"]) == {depths[0]}
    write_training_table(small[small["depth_cm"] == depths[0]], any_store)  # replacing leaves no stale depth
    assert set(load_training_table(any_store)["depth_cm"]) == {depths[0]}
