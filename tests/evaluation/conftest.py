"""Fixtures of the evaluation tests: a private store with the tiny covariates and a training table of three depths."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from smci_dask.config import Config, load_config
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store
from smci_dask.synthetic.products import product_config
from smci_dask.training import build_training_table, write_training_table

#: Depths of the fixture's table (shallow, middle, deep): enough to test per-depth logic, few enough to train fast.
DEPTHS = (10, 40, 100)


@dataclass(frozen=True)
class EvalStore:
    """A store root with ``covariates/`` of the tiny world and ``training/table`` (depths :data:`DEPTHS`)."""

    root: Path
    store: Store
    grid: GridSpec
    table: pd.DataFrame
    world: Store
    manifest: dict[str, Any]

    def config(self, **overrides: Any) -> Config:
        """Tiny, fast settings: one-candidate search with 2 folds, 20 trees, the synthetic product as an extra product."""
        base: dict[str, Any] = {
            "region": {"name": "tiny"},
            "store": {"root": str(self.root)},
            "model": {
                "n_estimators": 20,
                "search": {"profile": "demo", "max_features": [8], "min_samples_leaf": [20], "n_folds": 2, "cv_optimism": False},
            },
            "evaluation": {
                "bootstrap": 20,
                "importance_repeats": 1,
                "importance_rows": 1500,
                "products": {"somo_like": product_config(self.world)},
            },
        }
        for key, value in overrides.items():
            base[key] = {**base.get(key, {}), **value}
        return load_config(None, overrides=base)


@pytest.fixture(scope="session")
def eval_store(tiny_stores: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> EvalStore:
    src, info = tiny_stores
    root = tmp_path_factory.mktemp("eval-store")
    shutil.copytree(Path(src.join("covariates")), root / "covariates")
    store = Store.from_url(str(root))
    table = build_training_table(src, info["grid"], depths=list(DEPTHS), block_days=40)
    write_training_table(table, store)
    return EvalStore(root, store, info["grid"], table, info["world"], info["manifest"])
