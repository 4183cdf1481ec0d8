"""Model size at full scale: bytes per depth, fit time and holdout RMSE, fully grown against size-capped forests.

A full-scale depth has ~7 million training rows (1,789 stations x 4018 days).
This script generates a synthetic training table of that shape (``--rows``
training rows x 25 features, float32, plus ``--holdout`` rows scored after the
fit) with a learnable, soil-moisture-like signal: 6 hidden drivers, each
feature a noisy mix of them (covariates are correlated, as ERA5-Land's are),
the target a nonlinear function of the drivers (m3/m3, ~0.05 m3/m3 spread)
plus 0.02 m3/m3 noise. Then, for every configuration, it fits each member
(single-threaded, as in a Dask task) with the paper's best cell (max_features
1, min_samples_leaf 20) and prints, as one JSON line:

* bytes per member and per depth (the ensemble: the members' native model
  files summed), measured at ``--trees`` and scaled to ``--deploy-trees``
  (bytes grow linearly with trees: every tree is stored whole);
* fit seconds (CPU, per member), leaves per tree (mean), holdout RMSE of each
  member and of the ensemble (the members' mean) against the noisy holdout
  targets, and against the noiseless signal.

Configurations: ``full`` (rows per tree 0.632 of all rows, no cap: the
largest), ``samples_<k>`` (``max_samples``: at most k rows per tree),
``leaves_<k>`` (``max_leaves``) and combinations; see ``CONFIGS``.

Usage::

    python benchmarks/bench_model_size.py                       # 7M + 1M rows, 200 trees (hours on one core)
    python benchmarks/bench_model_size.py --rows 2000000 --trees 32   # what benchmarks/README.md records
    python benchmarks/bench_model_size.py --quick               # 200k rows, 8 trees: a smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import numpy as np

from smci_dask.models.estimators import fit_member, model_bytes, predict_member, tree_leaves

#: name -> size controls (``None``: no cap).
CONFIGS: dict[str, dict[str, int | None]] = {
    "full": {"max_samples": None, "max_leaves": None},
    "leaves_4096": {"max_samples": None, "max_leaves": 4096},
    "leaves_2048": {"max_samples": None, "max_leaves": 2048},
    "samples_200k_leaves_2048": {"max_samples": 200_000, "max_leaves": 2048},
    "samples_100k": {"max_samples": 100_000, "max_leaves": None},
    "samples_50k": {"max_samples": 50_000, "max_leaves": None},
}
N_DRIVERS = 6


def make_synthetic_table(n: int, n_features: int, seed: int, *, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` (n, n_features) float32, ``y`` and the noiseless signal (m3/m3), in 1M-row chunks to bound memory.

    Hidden drivers z ~ N(0, 1) (6 of them); feature j = z @ W[:, j] + 0.5 e
    (W fixed by the seed of the table's design, not of the rows); the target
    0.22 + 0.05 tanh(z0 + 0.5 z1) + 0.02 sin(2 z2) + 0.015 z3 z4 + 0.01 max(z5, 0) + noise.
    """
    design = np.random.default_rng(12345)
    W = design.normal(size=(N_DRIVERS, n_features)) * (design.random((N_DRIVERS, n_features)) < 0.5)
    W[np.arange(n_features) % N_DRIVERS, np.arange(n_features)] += 1.0  # every feature carries at least one driver
    rng = np.random.default_rng(seed)
    X = np.empty((n, n_features), dtype=np.float32)
    signal = np.empty(n, dtype=np.float64)
    step = 1_000_000
    for a in range(0, n, step):
        b = min(n, a + step)
        z = rng.normal(size=(b - a, N_DRIVERS))
        X[a:b] = z @ W + 0.5 * rng.normal(size=(b - a, n_features))
        signal[a:b] = (
            0.22
            + 0.05 * np.tanh(z[:, 0] + 0.5 * z[:, 1])
            + 0.02 * np.sin(2 * z[:, 2])
            + 0.015 * z[:, 3] * z[:, 4]
            + 0.01 * np.maximum(z[:, 5], 0)
        )
    y = signal + noise * rng.normal(size=n)
    return X, y, signal


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - b) ** 2)))


def run_config(
    name: str,
    size: dict[str, int | None],
    X: np.ndarray,
    y: np.ndarray,
    Xh: np.ndarray,
    yh: np.ndarray,
    sh: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    hyper = {
        "max_features": args.max_features,
        "min_samples_leaf": args.min_samples_leaf,
        "n_estimators": args.trees,
        "subsample": 0.632,
        "max_depth": None,
        "seed": 0,
        **size,
    }
    out: dict[str, Any] = {"config": name, **{k: v for k, v in size.items()}}
    preds = []
    total_bytes = 0
    scale = args.deploy_trees / args.trees
    for member in args.members:
        t0 = time.process_time()
        model = fit_member(member, X, y, **hyper)
        fit_s = time.process_time() - t0
        t0 = time.process_time()
        p = predict_member(model, Xh)
        predict_s = time.process_time() - t0
        nbytes = len(model_bytes(model))
        leaves = tree_leaves(model)
        total_bytes += nbytes
        preds.append(p)
        out[member] = {
            "fit_cpu_s": round(fit_s, 1),
            "predict_cpu_s": round(predict_s, 1),
            "leaves_per_tree": round(float(leaves.mean())),
            "bytes_per_tree": round(nbytes / len(leaves)),
            "mb_deploy": round(nbytes * scale / 1e6, 1),
            "rmse": round(_rmse(p, yh), 5),
            "rmse_signal": round(_rmse(p, sh), 5),
        }
        print(json.dumps({"progress": name, "member": member, **out[member]}), flush=True)
    ens = np.mean(preds, axis=0)
    out["ensemble"] = {
        "mb_deploy": round(total_bytes * scale / 1e6, 1),
        "fit_cpu_s": round(sum(out[m]["fit_cpu_s"] for m in args.members), 1),
        "rmse": round(_rmse(ens, yh), 5),
        "rmse_signal": round(_rmse(ens, sh), 5),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=7_000_000, help="training rows (full scale: 7 million)")
    ap.add_argument("--holdout", type=int, default=1_000_000, help="held-out rows scored after the fit")
    ap.add_argument("--features", type=int, default=25)
    ap.add_argument("--trees", type=int, default=200, help="trees fitted per member")
    ap.add_argument("--deploy-trees", type=int, default=200, help="trees per member in the shipped model (bytes are scaled to it)")
    ap.add_argument("--max-features", type=int, default=1)
    ap.add_argument("--min-samples-leaf", type=int, default=20)
    ap.add_argument("--members", default="lightgbm,xgboost")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    ap.add_argument("--quick", action="store_true", help="200k + 100k rows, 8 trees, three configurations")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.holdout, args.trees, args.configs = 200_000, 100_000, 8, "full,samples_50k,leaves_4096"
    args.members = [m.strip() for m in args.members.split(",") if m.strip()]
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    t0 = time.perf_counter()
    X, y, _ = make_synthetic_table(args.rows, args.features, 0)
    Xh, yh, sh = make_synthetic_table(args.holdout, args.features, 1)
    gen_s = time.perf_counter() - t0
    results = [run_config(n, CONFIGS[n], X, y, Xh, yh, sh, args) for n in names]
    largest = results[0]["ensemble"]["rmse"]
    figures: dict[str, dict[str, Any]] = {}
    for r in results:
        e = r["ensemble"]
        figures[f"{r['config']}_ensemble_mb"] = {"value": e["mb_deploy"], "unit": f"MB per depth ({args.deploy_trees} trees per member)"}
        figures[f"{r['config']}_rmse_vs_largest"] = {
            "value": round(e["rmse"] / largest, 4),
            "unit": "holdout RMSE ratio to the first config",
        }
        figures[f"{r['config']}_fit_cpu_s"] = {"value": e["fit_cpu_s"], "unit": f"CPU s, all members, {args.trees} trees"}
    setup = {
        "rows": args.rows,
        "holdout": args.holdout,
        "features": args.features,
        "trees": args.trees,
        "deploy_trees": args.deploy_trees,
        "max_features": args.max_features,
        "min_samples_leaf": args.min_samples_leaf,
        "members": args.members,
        "generate_s": round(gen_s, 1),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "target_sd": round(float(np.std(yh)), 4),
    }
    print(json.dumps({"name": "model_size", "setup": setup, "configs": results, "figures": figures}))


if __name__ == "__main__":
    main()
