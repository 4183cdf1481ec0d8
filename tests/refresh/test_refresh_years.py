"""The issue's "Done when": two years ingested and predicted, a third year added by several refreshes, equal to a run from scratch.

The world is the synthetic ``tiny`` region written for 2019-2021 (the
session's ``tiny_world`` holds two years); the models are the session's
``tiny_trained`` run (same grid, same 26 features: nothing is retrained).

* **Incremental**: ERA5-Land and LAI of 2019-2020 ingested, the product
  (axis 2020) predicted for 2020-12-01..30; then four refreshes, one per
  quarter of 2021, each given that quarter's ERA5-Land month files and the
  LAI composites that start in it (so LAI arrives as late as ERA5-Land and
  the days that read an extrapolated composite are predicted again).
* **From scratch**: one ingest of the ERA5-Land months 2020-11..2021-12
  (the days the product reads, with the 28 days of precipitation history of
  its first day) and of all LAI composites, then one ``predict_product``
  over 2020-12-01..2021-12-30 on an axis 2020-2021.

Restriction, to keep the test near a minute: the product's days start late in
year 2 (2020-12-01), so the from-scratch side predicts 395 days, not three
years; year 3 is added whole. The last day of 2021 is never complete (its
accumulations wait for 2022's first hour), on either side.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from smci_dask.config import Config, InferenceConfig, RegionConfig, StoreConfig
from smci_dask.covariates import ingest_lai, ingest_static
from smci_dask.covariates.lai import date_from_name
from smci_dask.grid import grid_for
from smci_dask.inference import predict_product
from smci_dask.io import Store
from smci_dask.pipeline.ingest import ingest_era5land
from smci_dask.pipeline.refresh import refresh
from smci_dask.products.smci1km import complete_days, open_product, product_times

FIRST = pd.Timestamp("2020-12-01")
LAST = pd.Timestamp("2021-12-30")
QUARTERS = [(1, 3), (4, 6), (7, 9), (10, 12)]


def _quiet(_line: str) -> None:
    pass


def _config(root: Path, years: tuple[int, int]) -> Config:
    # one 64-cell tile covers the 60 x 60 grid: fewer, longer tasks (the values do not depend on the tiling)
    return Config(
        region=RegionConfig(name="tiny"),
        years=years,
        store=StoreConfig(root=str(root)),
        inference=InferenceConfig(tile_size=64, time_block=32),
    )


def _era5(files: list[str], year: int, months: range) -> list[str]:
    return [f for f in files for m in months if f.endswith(f"era5land_{year}_{m:02d}.nc")]


def _lai(files: list[str], first: str, last: str) -> list[str]:
    return [f for f in files if pd.Timestamp(first) <= date_from_name(f) <= pd.Timestamp(last)]


def _store(root: Path, trained: Store, world: Store, manifest: dict[str, Any]) -> Store:
    """A store with the world's statics and the session's trained models."""
    shutil.copytree(Path(trained.path) / "models", root / "models")
    store = Store.from_url(str(root))
    ingest_static([world.join(p) for p in manifest["files"]["static"]], store, grid_for("tiny"))
    return store


def _reader_check(store: Store, land: np.ndarray) -> pd.DatetimeIndex:
    ds = open_product(store, complete_only=True)
    assert np.isfinite(ds["sm"].values[..., land]).all(), "a day listed as complete has fill on land"
    days = pd.DatetimeIndex(ds.time.values)
    assert days[0] == FIRST and len(days) == (days[-1] - FIRST).days + 1  # one stretch from the first day
    return days


@pytest.mark.slow
def test_a_third_year_added_by_four_refreshes_equals_a_run_from_scratch(
    tiny_trained: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from smci_dask.synthetic import make_world

    trained, info = tiny_trained
    run = info["run"]
    tmp = tmp_path_factory.mktemp("refresh-years")
    world = Store.from_url(str(tmp / "world"))
    manifest = make_world(world, region="tiny", years=(2019, 2021))  # the default seed, as the session world
    era5 = sorted(world.join(p) for p in manifest["files"]["era5land"])
    lai = sorted(world.join(p) for p in manifest["files"]["lai"])
    grid = grid_for("tiny")

    # ---- from scratch
    ref_root = tmp / "scratch"
    ref = _store(ref_root, trained, world, manifest)
    ingest_era5land(_config(ref_root, (2020, 2021)), _era5(era5, 2020, range(11, 13)) + _era5(era5, 2021, range(1, 13)), store=ref)
    ingest_lai(lai, ref, grid)
    predict_product(_config(ref_root, (2020, 2021)), ref, start=FIRST, end=LAST, run=run, echo=_quiet)
    expected = open_product(ref, complete_only=True).load()
    assert list(expected.time.values) == list(pd.date_range(FIRST, LAST).values)
    land = np.isfinite(expected["sm"].isel(time=0, depth=0).values)

    # ---- two years, then a refresh per quarter of the third
    root = tmp / "incremental"
    store = _store(root, trained, world, manifest)
    ingest_era5land(_config(root, (2020, 2020)), _era5(era5, 2019, range(1, 13)) + _era5(era5, 2020, range(1, 13)), store=store)
    ingest_lai(_lai(lai, "2019-01-01", "2020-12-31"), store, grid)
    predict_product(_config(root, (2020, 2020)), store, start=FIRST, end="2020-12-30", run=run, echo=_quiet)
    assert product_times(store)[-1] == pd.Timestamp("2020-12-31")

    done = pd.date_range(FIRST, "2020-12-30")
    for k, (m0, m1) in enumerate(QUARTERS):
        quarter_end = pd.Timestamp(year=2021, month=m1, day=1) + pd.offsets.MonthEnd(0)
        report = refresh(
            _config(root, (2020, 2020)),
            store,
            era5land=_era5(era5, 2021, range(m0, m1 + 1)),
            lai=_lai(lai, f"2021-{m0:02d}-01", f"{quarter_end:%Y-%m-%d}"),
            echo=_quiet,
        )
        new = pd.date_range(done[-1] + pd.Timedelta(days=1), quarter_end - pd.Timedelta(days=1))  # the quarter's last day waits
        assert set(new) <= set(report.days_added) and set(report.days_added) - set(new) == set(report.lai_updated)
        assert report.extended_to == (pd.Timestamp("2021-12-31") if k == 0 else None)
        assert report.outside_axis[0] == pd.Timestamp("2019-01-01") and report.outside_axis[-1] == pd.Timestamp("2019-12-31")
        done = _reader_check(store, land)
        assert done[-1] == new[-1]

    got = open_product(store, complete_only=True).load()
    assert list(product_times(store)) == list(product_times(ref))  # the axis grew to 2020-2021, as if made so
    assert list(complete_days(store)) == list(complete_days(ref))
    np.testing.assert_array_equal(got["sm"].values, expected["sm"].values)
    assert got.attrs["model_run"] == expected.attrs["model_run"] == run
