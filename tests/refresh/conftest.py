"""Fixtures of the refresh tests: a product of the last days of 2019, and the same days plus January 2020 made from scratch.

The base store is a copy of the session's ``tiny_trained`` store whose
ERA5-Land cube lists only 2019 as complete (its January 2020 chunks are
rewritten by the refresh's ingest), with a product (``years`` 2019, so its
time axis ends on 2019-12-31) predicted for 2019-12-24..31 and its 9 km
aggregate. The reference is a from-scratch product over 2019-2020 made from
the untouched cube for 2019-12-24..2020-01-30: the days one refresh with the
January 2020 file must add (31 January waits for February's first hour).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_dask.config import Config, InferenceConfig, RegionConfig, StoreConfig
from smci_dask.inference import predict_product
from smci_dask.io import Store
from smci_dask.pipeline.ingest import ERA5LAND_RELPATH
from smci_dask.products.smci1km import open_product, set_complete_days
from smci_dask.products.smci9km import PRODUCT_9KM_RELPATH, aggregate_9km

FIRST = "2019-12-24"
#: The last day a refresh with the January 2020 file completes.
LAST = "2020-01-30"


def config(root: Path | str, years: tuple[int, int] = (2019, 2019)) -> Config:
    return Config(
        region=RegionConfig(name="tiny"),
        years=years,
        store=StoreConfig(root=str(root)),
        inference=InferenceConfig(tile_size=32, time_block=16),
    )


@dataclass(frozen=True)
class Base:
    """The base store (copy it before writing), the reference products, the world's January 2020 file and the run."""

    root: Path
    reference: xr.Dataset
    reference_9km: xr.Dataset
    january: str
    run: str
    first: str = FIRST
    last: str = LAST
    lai_dir: str = ""

    def lai(self, first: str, last: str) -> list[str]:
        """The world's LAI files (MODIS names) of the composites starting ``first .. last``."""
        from smci_dask.covariates.lai import date_from_name

        files = sorted(str(p) for p in Path(self.lai_dir).glob("*.tif"))
        return [f for f in files if pd.Timestamp(first) <= date_from_name(f) <= pd.Timestamp(last)]

    @staticmethod
    def config(root: Path | str, years: tuple[int, int] = (2019, 2019)) -> Config:
        return config(root, years)

    def land(self) -> np.ndarray:
        """Land cells: where the reference product has a value on its first day (every land cell has one)."""
        return np.isfinite(self.reference["sm"].isel(time=0, depth=0).values)

    def copy(self, dst: Path) -> Path:
        shutil.copytree(self.root, dst)
        return dst


def _quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="session")
def refresh_base(
    tiny_trained: tuple[Store, dict[str, Any]], tiny_world: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Base:
    from smci_dask.grid import grid_for

    src, info = tiny_trained
    grid = grid_for("tiny")
    run = info["run"]

    ref_root = tmp_path_factory.mktemp("refresh-reference") / "store"
    shutil.copytree(Path(src.path), ref_root)
    ref = Store.from_url(str(ref_root))
    predict_product(config(ref_root, (2019, 2020)), ref, start=FIRST, end=LAST, run=run, echo=_quiet)
    aggregate_9km(ref, grid, start=FIRST, end=LAST, echo=_quiet)

    root = tmp_path_factory.mktemp("refresh-base") / "store"
    shutil.copytree(Path(src.path), root, ignore=shutil.ignore_patterns("product"))
    store = Store.from_url(str(root))
    set_complete_days(store, ERA5LAND_RELPATH, pd.date_range("2019-01-01", "2019-12-31"))
    predict_product(config(root), store, start=FIRST, end="2019-12-31", run=run, echo=_quiet)
    aggregate_9km(store, grid, start=FIRST, end="2019-12-31", echo=_quiet)

    world, manifest = tiny_world
    january = next(world.join(p) for p in manifest["files"]["era5land"] if p.endswith("era5land_2020_01.nc"))
    return Base(
        root=root,
        reference=open_product(ref, complete_only=True).load(),
        reference_9km=open_product(ref, PRODUCT_9KM_RELPATH, complete_only=True).load(),
        january=january,
        run=run,
        lai_dir=world.join("lai"),
    )
