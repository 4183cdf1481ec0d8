"""RF-mode LightGBM and XGBoost against scikit-learn's forest: fit + predict rows/s, same hyper-parameters.

A synthetic table of 100k rows x 27 features (nonlinear signal + noise),
single-threaded fits (as inside a Dask task), 100 trees, max_features 5,
min_samples_leaf 20, subsample 0.632, fully grown trees. Holdout RMSE on 20k
rows against the noiseless truth is printed beside the speed so a fast but
wrong model shows. Ratios are against scikit-learn measured in the same process.

Prints one JSON line. ``--rows/--trees/--n-jobs`` change the size.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from smci_dask.models import fit_member, predict_member


def make_table(n: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float64)
    truth = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.3 * np.tanh(X[:, 4] * X[:, 5]) + 0.2 * X[:, 6]
    return X, truth + 0.3 * rng.normal(size=n), truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=27)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args()
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
