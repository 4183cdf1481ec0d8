"""Fixtures of the inference tests: a private copy of the tiny covariates with tiny fitted models of all 10 depths."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from smci_dask import conventions as cv
from smci_dask.config import Config, InferenceConfig, RegionConfig, StoreConfig
from smci_dask.features import FEATURE_NAMES
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store
from smci_dask.models.estimators import fit_member, make_ensemble
from smci_dask.models.store import fingerprint_table, save_model
from smci_dask.training import build_training_table

#: The run name of the fixture's models.
RUN = "t1"
#: Days every product test predicts (a few, inside the tiny world's 2019-2020).
DAYS = ("2020-03-01", "2020-03-06")


@dataclass(frozen=True)
class Trained:
    """A store root with the tiny covariates and ``models/t1/final/<depth>cm``; the table the models were fitted on."""

    root: Path
    store: Store
    grid: GridSpec
    table: pd.DataFrame
    world: Store

    run: str = RUN
    days: tuple[str, str] = DAYS

    def config(self, **inference: Any) -> Config:
        settings = {"tile_size": 32, "time_block": 4, **inference}
        return Config(region=RegionConfig(name="tiny"), store=StoreConfig(root=str(self.root)), inference=InferenceConfig(**settings))

    def bare_copy(self, dst: Path) -> Store:
        """A new store root at ``dst`` with the covariates only (no models)."""
        return copy_covariates(self.store, dst)

    def fit(self, run: str, table: pd.DataFrame) -> None:
        """Fit and save another run's tiny models into this store."""
        fit_tiny_models(self.store, table, run)


def copy_covariates(src: Store, dst: Path) -> Store:
    shutil.copytree(Path(src.join("covariates")), dst / "covariates")
    return Store.from_url(str(dst))


def fit_tiny_models(store: Store, table: pd.DataFrame, run: str = RUN) -> None:
    """One tiny LightGBM + XGBoost ensemble per depth (10 trees), saved as ``models/<run>/final/<depth>cm``."""
    hyper = {"max_features": 8, "min_samples_leaf": 5, "n_estimators": 10, "subsample": 0.632, "max_depth": None, "seed": 0}
    for depth in cv.DEPTHS_CM:
        part = table[(table["depth_cm"] == depth) & table["sm_matched"].notna()]
        X = part[list(FEATURE_NAMES)].to_numpy(np.float32)
        y = part["sm_matched"].to_numpy(np.float64)
        members = {m: fit_member(m, X, y, **hyper) for m in ("lightgbm", "xgboost")}
        ens = make_ensemble(members, FEATURE_NAMES)
        save_model(store, run, "final", depth, ens, training_fingerprint=fingerprint_table(X, y, FEATURE_NAMES))


@pytest.fixture(scope="session")
def trained(tiny_stores: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    src, info = tiny_stores
    root = tmp_path_factory.mktemp("inference-store")
    store = copy_covariates(src, root)
    days = pd.date_range("2020-02-01", "2020-04-30")  # a few months of targets fit tiny models fast
    table = build_training_table(src, info["grid"], days=days, block_days=45)
    fit_tiny_models(store, table)
    return Trained(root, store, info["grid"], table, info["world"])
