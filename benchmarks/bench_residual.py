"""Direct vs residual target (``model.residual``): the whole 1 km map against the synthetic truth, per depth.

For each depth the two-member ensemble (LightGBM + XGBoost, RF mode, the
same hyper-parameters) is fitted on a demo store's training table twice: on
the matched target (``direct``, SMCI1.0) and on its departure from the
ERA5-Land layer of the depth (``residual``). Both predict every land cell of
the region for the last ``--days`` days the covariates hold, from the one
feature function, and are scored against the truth beside ERA5-Land brought
to 1 km (ubRMSE pooled over cells and days, m3/m3). The error is split into
its spatial part (the per-cell mean error over the days) and its temporal
part (the rest): with few stations a forest cannot reach values outside the
station cells' range, so the direct form flattens the map's spatial pattern.

Usage: python benchmarks/bench_residual.py [--store DEMO_STORE] [--region tiny] [--days 90] [--trees 20]
Without --store a `smci demo --region tiny` is run into a temporary folder first (~4 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _error_parts(est: np.ndarray, obs: np.ndarray) -> tuple[float, float, float]:
    """(ubRMSE, spatial part, temporal part) of ``est - obs`` (days x cells), NaN pairs skipped."""
    e = est - obs
    e = np.where(np.isfinite(e), e, np.nan)
    e = e - np.nanmean(e)
    per_cell = np.nanmean(e, axis=0)
    return float(np.sqrt(np.nanmean(e**2))), float(np.sqrt(np.nanmean(per_cell**2))), float(np.sqrt(np.nanmean((e - per_cell) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="a store made by `smci demo` (default: run one for --region into a temp folder)")
    ap.add_argument("--region", default="tiny")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--trees", type=int, default=20)
    ap.add_argument("--max-features", type=int, default=10)
    ap.add_argument("--min-samples-leaf", type=int, default=25)
    args = ap.parse_args()

    tmp = None
    root = args.store
    if root is None:
        tmp = tempfile.mkdtemp(prefix="bench-residual-")
        root = str(Path(tmp) / "store")
        cmd = [sys.executable, "-m", "smci_dask.cli.main", "demo", "--region", args.region, "--store", root]
        subprocess.run(cmd, check=True, capture_output=True)
    try:
        figures = run(root, args)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"name": "residual target vs direct: map against the truth", "region": args.region, "figures": figures}))


def run(root: str, args: argparse.Namespace) -> dict[str, dict[str, float | str]]:
    from smci_dask import conventions as cv
    from smci_dask.config import load_config
    from smci_dask.covariates.era5land_store import complete_days
    from smci_dask.features import FEATURE_NAMES
    from smci_dask.features.build import features_for_tile, open_feature_sources
    from smci_dask.grid import grid_for
    from smci_dask.io import Store, open_zarr
    from smci_dask.models import fit_member, make_ensemble
    from smci_dask.pipeline.ingest import ERA5LAND_RELPATH
    from smci_dask.pipeline.train import offset_column
    from smci_dask.training.table import load_training_table

    store = Store.from_url(root)
    grid = grid_for(args.region)
    cfg = load_config(None, overrides={"region": {"name": args.region}}, environ={})
    sources = open_feature_sources(store)
    days = complete_days(store, ERA5LAND_RELPATH)[-args.days :]
    block = features_for_tile(sources, grid, grid.tiles(max(grid.nrows, grid.ncols))[0], days)
    X_map = block.values.reshape(-1, block.values.shape[-1])
    truth = open_zarr(store.child("inputs"), "truth/sm_truth.zarr")[cv.SM_TRUTH].sel({cv.TIME: days})
    table = load_training_table(store)
    hyper = {
        "n_estimators": args.trees,
        "subsample": 0.632,
        "max_depth": None,
        "seed": 0,
        "max_features": args.max_features,
        "min_samples_leaf": args.min_samples_leaf,
    }
    figures: dict[str, dict[str, float | str]] = {}
    wins = {"direct": 0, "residual": 0}
    t_fit = {"direct": 0.0, "residual": 0.0}
    for depth in cv.DEPTHS_CM:
        off = offset_column(cfg, depth)
        sub = table[(table["depth_cm"].astype(int) == depth) & table["sm_matched"].notna() & table[FEATURE_NAMES[off]].notna()]
        X = sub[list(FEATURE_NAMES)].to_numpy(np.float32)
        y = sub["sm_matched"].to_numpy(np.float64)
        obs = np.asarray(truth.sel({cv.DEPTH: depth}).values, dtype=np.float64)[:, block.rows, block.cols]
        base = X_map[:, off].astype(np.float64).reshape(obs.shape)
        era = _error_parts(base, obs)
        figures[f"{depth} cm ERA5-Land ubRMSE"] = {"value": round(era[0], 5), "unit": "m3/m3"}
        for form, column in (("direct", None), ("residual", off)):
            t0 = time.perf_counter()
            ens = make_ensemble({m: fit_member(m, X, y, offset_column=column, **hyper) for m in ("lightgbm", "xgboost")}, FEATURE_NAMES)
            t_fit[form] += time.perf_counter() - t0
            est = ens.predict(X_map).reshape(obs.shape)
            ub, spatial, temporal = _error_parts(est, obs)
            figures[f"{depth} cm {form} ubRMSE"] = {"value": round(ub, 5), "unit": "m3/m3"}
            figures[f"{depth} cm {form} spatial / temporal part"] = {"value": f"{spatial:.5f} / {temporal:.5f}", "unit": "m3/m3"}
            wins[form] += int(ub < era[0])
    for form in wins:
        figures[f"depths where {form} beats ERA5-Land"] = {"value": wins[form], "unit": "of 10"}
        figures[f"{form} fit time, 10 depths"] = {"value": round(t_fit[form], 1), "unit": "s"}
    figures["days scored"] = {"value": f"{days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d}", "unit": ""}
    figures["land cells"] = {"value": int(X_map.shape[0] // len(days)), "unit": ""}
    return figures


if __name__ == "__main__":
    main()
