"""RF-mode LightGBM and XGBoost against scikit-learn's forest: fit + predict rows/s, same hyper-parameters.

A synthetic table of 100k rows x 27 features (nonlinear signal + noise),
single-threaded fits (as inside a Dask task), 100 trees, max_features 5,
min_samples_leaf 20, subsample 0.632, fully grown trees. Holdout RMSE on 20k
rows against the noiseless truth is printed beside the speed so a fast but
wrong model shows. Ratios are against scikit-learn measured in the same process.

Prints one JSON line. ``--rows/--trees/--n-jobs`` change the size.

``--predict``: predict speed for one inference block, a 512 x 512 tile x 1 day
(262,144 rows x ``--features``), single-threaded, with the models above:
scikit-learn against LightGBM (``Booster.predict``, float64 and float32
input) and XGBoost (``inplace_predict`` with float64 and float32 input, and
the scikit-learn API's ``predict``).

``--equivalence``: the issue's 5 % check on the synthetic ``small`` world
(built and ingested here, minutes): depth 10 cm, 5-fold CV grouped by
station cell, 100 trees, max_features 1, min_samples_leaf 20; CV RMSE of each
member and its ratio to scikit-learn's (tests/models/test_rf_equivalence.py
runs the same check on the tiny world).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from smci_dask.models import fit_member, predict_member
from smci_dask.models.estimators import model_bytes, tree_leaves


def make_table(n: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float64)
    truth = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.3 * np.tanh(X[:, 4] * X[:, 5]) + 0.2 * X[:, 6]
    return X, truth + 0.3 * rng.normal(size=n), truth


def _cpu(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    """Best-of-``repeat`` CPU seconds of ``fn()`` and its last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def bench_predict(args: argparse.Namespace) -> dict[str, Any]:
    """Single-threaded predict CPU time of one 512 x 512 x 26 block, per member and input path."""
    X, y, _ = make_table(args.rows, args.features, 0)
    block = make_table(512 * 512, args.features, 2)[0]
    block32 = block.astype(np.float32)
    hyper = {"max_features": 5, "min_samples_leaf": 20, "n_estimators": args.trees, "subsample": 0.632, "max_depth": None, "seed": 0}
    models = {m: fit_member(m, X, y, **hyper) for m in ("sklearn", "lightgbm", "xgboost")}
    lgb_booster = models["lightgbm"].booster_
    xgb_booster = models["xgboost"].get_booster()
    xgb_booster.set_param({"nthread": 1})
    paths = {
        "sklearn": lambda: models["sklearn"].predict(block),
        "sklearn_float32": lambda: models["sklearn"].predict(block32),
        "lightgbm": lambda: lgb_booster.predict(block, num_threads=1),
        "lightgbm_float32": lambda: lgb_booster.predict(block32, num_threads=1),
        "xgboost_sklearn_api": lambda: models["xgboost"].predict(block),
        "xgboost_inplace": lambda: xgb_booster.inplace_predict(block),
        "xgboost_inplace_float32": lambda: xgb_booster.inplace_predict(block32),
        "predict_member_lightgbm": lambda: predict_member(models["lightgbm"], block),
        "predict_member_xgboost": lambda: predict_member(models["xgboost"], block),
    }
    figures: dict[str, dict[str, Any]] = {}
    ref = None
    for name, fn in paths.items():
        sec, _ = _cpu(fn)
        ref = sec if name == "sklearn" else ref
        figures[f"predict_{name}_s"] = {"value": round(sec, 3), "unit": "CPU s per 512x512 block (1 thread)"}
        figures[f"predict_{name}_vs_sklearn"] = {"value": round(sec / ref, 2), "unit": "x sklearn's time (lower is faster)"}
    for m, model in models.items():
        figures[f"{m}_leaves_per_tree"] = {"value": round(float(tree_leaves(model).mean())), "unit": "leaves"}
        figures[f"{m}_model_mb"] = {"value": round(len(model_bytes(model)) / 1e6, 2), "unit": "MB (native format; sklearn: pickle)"}
    setup = {"train_rows": args.rows, "features": args.features, "block_rows": 512 * 512, "trees": args.trees, **hyper}
    return {"name": "models_predict", "setup": setup, "figures": figures}


def bench_equivalence(args: argparse.Namespace) -> dict[str, Any]:
    """The 5 % check on the small world (see the module docstring)."""
    import tempfile

    from bench_table import _ingest

    from smci_dask.features import FEATURE_NAMES
    from smci_dask.grid import grid_for
    from smci_dask.models import make_folds, search_hyperparameters
    from smci_dask.training import build_training_table

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store, _ = _ingest(args.region, tmp)
        df = build_training_table(store, grid_for(args.region), depths=[10])
        build_s = time.perf_counter() - t0
    df = df[np.isfinite(df["sm_matched"])].reset_index(drop=True)
    X = df[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    y = df["sm_matched"].to_numpy(dtype=np.float64)
    folds = make_folds("grouped", len(df), 5, seed=0, groups=df["cell_id"].to_numpy())
    t0 = time.process_time()
    res = search_hyperparameters(
        X,
        y,
        folds,
        members=["sklearn", "lightgbm", "xgboost"],
        max_features=[1],
        min_samples_leaf=[20],
        n_estimators=100,
        subsample=0.632,
        max_depth=None,
        seed=0,
    )
    cpu = time.process_time() - t0
    rmse = res.table.set_index("member")["rmse_mean"]
    figures: dict[str, dict[str, Any]] = {}
    for m in ("sklearn", "lightgbm", "xgboost"):
        figures[f"{args.region}_d10_{m}_cv_rmse"] = {"value": round(float(rmse[m]), 5), "unit": "m3/m3, 5-fold grouped CV"}
    for m in ("lightgbm", "xgboost"):
        figures[f"{args.region}_d10_{m}_rmse_ratio_vs_sklearn"] = {
            "value": round(float(rmse[m] / rmse["sklearn"]), 4),
            "unit": "target <= 1.05",
        }
    setup = {
        "region": args.region,
        "rows": len(df),
        "cells": int(df["cell_id"].nunique()),
        "world_and_table_s": round(build_s, 1),
        "cv_cpu_s": round(cpu, 1),
    }
    return {"name": "models_equivalence", "setup": setup, "figures": figures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=27)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--predict", action="store_true", help="predict speed of one 512 x 512 x 26 block instead")
    ap.add_argument("--equivalence", action="store_true", help="the 5 %% check on a synthetic world instead (minutes)")
    ap.add_argument("--region", default="small", help="world of --equivalence")
    args = ap.parse_args()
    if args.predict:
        print(json.dumps(bench_predict(args)))
        return
    if args.equivalence:
        print(json.dumps(bench_equivalence(args)))
        return
    X, y, _ = make_table(args.rows, args.features, 0)
    Xt, _, truth = make_table(20_000, args.features, 1)
    hyper = {"max_features": 5, "min_samples_leaf": 20, "n_estimators": args.trees, "subsample": 0.632, "max_depth": None, "seed": 0}
    figures: dict[str, dict[str, object]] = {}
    raw: dict[str, dict[str, float]] = {}
    for member in ("sklearn", "lightgbm", "xgboost"):
        t0 = time.perf_counter()
        model = fit_member(member, X, y, n_jobs=args.n_jobs, **hyper)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = predict_member(model, Xt)
        predict_s = time.perf_counter() - t0
        rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
        raw[member] = {"fit_s": fit_s, "predict_s": predict_s, "rmse": rmse}
        figures[f"{member}_fit_rows_per_s"] = {"value": round(args.rows / fit_s), "unit": "training rows/s (1 thread)"}
        figures[f"{member}_predict_rows_per_s"] = {"value": round(len(Xt) / predict_s), "unit": "rows/s (1 thread)"}
        figures[f"{member}_holdout_rmse"] = {"value": round(rmse, 4), "unit": "vs noiseless truth (noise sd 0.3)"}
    ref = raw["sklearn"]
    for member in ("lightgbm", "xgboost"):
        figures[f"{member}_fit_speedup_vs_sklearn"] = {
            "value": round(ref["fit_s"] / raw[member]["fit_s"], 2),
            "unit": "x (higher is faster)",
        }
        figures[f"{member}_predict_speedup_vs_sklearn"] = {"value": round(ref["predict_s"] / raw[member]["predict_s"], 2), "unit": "x"}
        figures[f"{member}_rmse_ratio_vs_sklearn"] = {"value": round(raw[member]["rmse"] / ref["rmse"], 3), "unit": "ratio (< 1 is better)"}
    setup = {"rows": args.rows, "features": args.features, "n_jobs": args.n_jobs, **hyper}
    print(json.dumps({"name": "models", "setup": setup, "figures": figures}))


if __name__ == "__main__":
    main()
