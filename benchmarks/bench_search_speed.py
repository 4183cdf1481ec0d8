"""The paper's search, exhaustive with scikit-learn against ours (successive halving on RF-mode members): CPU time and best CV RMSE.

Reference (the published code's method): scikit-learn ``GridSearchCV`` on
``RandomForestRegressor`` (default bootstrap, ``n_estimators`` trees, one
thread), RMSE scoring, over the paper's Table 2 grid. Ours:
:func:`smci_dask.models.halving.search_halving` with the default members
(RF-mode LightGBM and XGBoost, scored as their mean), the same folds, the
same trees in the last round, run here without a cluster so that its CPU time
is measured in this process (on a cluster the same tasks spread over workers;
the CPU total is the same).

Data: the synthetic table of ``bench_model_size.py`` (25 correlated
features, soil-moisture-like signal, 0.02 m3/m3 noise), ``--rows`` rows,
random ``--folds``-fold CV (the paper's). CPU seconds are
``time.process_time()`` of this process (threads included; every fit is
single-threaded), so the figure does not depend on other jobs' load.

Grid: max_features ``--max-features`` (default 1, 7, 13, 19, 25: every 6th of
the paper's 1..25, to keep the reference within minutes) x min_samples_leaf
5, 10, 15, 20, 25.

Targets (issue "Speed"): ours within 1 % of the reference's best CV RMSE with
at least 5x less CPU.

Usage::

    python benchmarks/bench_search_speed.py                  # 6000 rows, 10 folds, 5 x 5 grid, 50 trees
    python benchmarks/bench_search_speed.py --rows 200000 --max-features 1-25 --trees 100   # the paper's size (days of CPU)
    python benchmarks/bench_search_speed.py --quick          # 1500 rows, 5 folds, 3 x 2 grid: a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model_size import make_synthetic_table  # noqa: E402

from smci_dask.models import make_folds  # noqa: E402
from smci_dask.models.halving import search_halving  # noqa: E402


def _int_list(text: str) -> list[int]:
    """``'1,5,9'`` or ``'1-25'`` or ``'1-25:4'`` (start-stop:step, inclusive)."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            rng, _, step = part.partition(":")
            a, b = (int(v) for v in rng.split("-"))
            out.extend(range(a, b + 1, int(step or 1)))
        elif part.strip():
            out.append(int(part))
    return out


def run_reference(X: np.ndarray, y: np.ndarray, folds: list[Any], grid: dict[str, list[int]], trees: int, seed: int = 0) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import GridSearchCV

    gs = GridSearchCV(
        RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=1),
        grid,
        scoring="neg_root_mean_squared_error",
        cv=folds,
        n_jobs=1,
        refit=False,
    )
    t0, w0 = time.process_time(), time.perf_counter()
    gs.fit(X, y)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    return {
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "best": {k.removeprefix("param_"): int(v) for k, v in gs.best_params_.items()},
        "best_cv_rmse": round(-float(gs.best_score_), 6),
        "fits": len(gs.cv_results_["params"]) * len(folds),
    }


def run_ours(X: np.ndarray, y: np.ndarray, folds: list[Any], grid: dict[str, list[int]], args: argparse.Namespace) -> dict[str, Any]:
    t0, w0 = time.process_time(), time.perf_counter()
    res = search_halving(
        X,
        y,
        folds,
        members=args.members,
        **grid,
        n_estimators=args.trees,
        subsample=0.632,
        max_depth=None,
        seed=args.seed,
        eta=args.eta,
        min_trees=args.min_trees,
        min_rows_fraction=args.min_rows_fraction,
        final_candidates=args.final_candidates,
        screen_members=args.screen_members or None,
    )
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    sel = res.table[res.table["member"] == res.selected_by].set_index(["max_features", "min_samples_leaf"])
    best_rmse = float(sel.loc[(res.best["max_features"], res.best["min_samples_leaf"]), "rmse_mean"])
    return {
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "best": res.best,
        "best_cv_rmse": round(best_rmse, 6),
        "selected_by": res.selected_by,
        "rounds": [
            {"candidates": r.n_candidates, "trees": r.n_estimators, "rows_fraction": round(r.rows_fraction, 3)} for r in res.schedule
        ],
        "tree_rows_cost_ratio": round(res.cost_ratio, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the table, the folds and both searches (0: the README's table)")
    ap.add_argument("--features", type=int, default=25)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--trees", type=int, default=50, help="trees per fit (ours: in the last round)")
    ap.add_argument("--max-features", default="1-25:6", help="e.g. '1-25' (the paper's), '1-25:4', '1,5,9'")
    ap.add_argument("--min-samples-leaf", default="5,10,15,20,25")
    ap.add_argument("--members", default="lightgbm,xgboost")
    ap.add_argument("--screen-members", default="lightgbm", help="members of the rounds before the last ('' = --members)")
    ap.add_argument("--eta", type=int, default=4, help="keep 1/eta per round (4: chosen on this table, README; 3 was 4.4x)")
    ap.add_argument("--min-trees", type=int, default=5)
    ap.add_argument("--min-rows-fraction", type=float, default=0.1)
    ap.add_argument("--final-candidates", type=int, default=1)
    ap.add_argument("--ours-only", action="store_true", help="skip the reference (compare with a recorded reference run)")
    ap.add_argument("--quick", action="store_true", help="1500 rows, 5 folds, 20 trees, max_features 1,13,25 x min_samples_leaf 5,20")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.folds, args.trees, args.max_features, args.min_samples_leaf = 1500, 5, 20, "1,13,25", "5,20"
    args.members = [m.strip() for m in args.members.split(",") if m.strip()]
    args.screen_members = [m.strip() for m in args.screen_members.split(",") if m.strip()]
    grid = {"max_features": _int_list(args.max_features), "min_samples_leaf": _int_list(args.min_samples_leaf)}
    X, y, _ = make_synthetic_table(args.rows, args.features, args.seed)
    folds = make_folds("random", len(y), args.folds, seed=args.seed)
    ours = run_ours(X, y, folds, grid, args)
    print(json.dumps({"progress": "ours", **ours}), flush=True)
    if args.ours_only:
        return
    ref = run_reference(X, y, folds, grid, args.trees, args.seed)
    print(json.dumps({"progress": "reference", **ref}), flush=True)
    figures = {
        "compute_ratio": {"value": round(ref["cpu_s"] / ours["cpu_s"], 2), "unit": "reference CPU s / ours (target >= 5)"},
        "best_rmse_ratio": {
            "value": round(ours["best_cv_rmse"] / ref["best_cv_rmse"], 4),
            "unit": "ours / reference best CV RMSE (target <= 1.01)",
        },
        "reference_cpu_s": {"value": ref["cpu_s"], "unit": "CPU s (scikit-learn GridSearchCV)"},
        "ours_cpu_s": {"value": ours["cpu_s"], "unit": "CPU s (successive halving, RF-mode members)"},
    }
    setup = {
        "rows": args.rows,
        "seed": args.seed,
        "features": args.features,
        "folds": args.folds,
        "trees": args.trees,
        "candidates": len(grid["max_features"]) * len(grid["min_samples_leaf"]),
        **grid,
        "members": args.members,
        "screen_members": args.screen_members,
        "eta": args.eta,
    }
    print(json.dumps({"name": "search_speed", "setup": setup, "reference": ref, "ours": ours, "figures": figures}))


if __name__ == "__main__":
    main()
