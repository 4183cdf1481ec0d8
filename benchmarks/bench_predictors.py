"""Predictors for one inference block: each library's own predict against compiled and converted forests.

One random-forest member of each library is fitted with
``smci_dask.models.estimators.fit_member`` (single-threaded; by default 50k
training rows of ``bench_model_size.make_synthetic_table``, 27 features, 100
trees, max_features 5, min_samples_leaf 20, subsample 0.632, fully grown):
LightGBM rf mode, XGBoost ``XGBRFRegressor`` and scikit-learn's
``RandomForestRegressor`` (the published method). Then one 512 x 512 block
(262,144 rows x 27 float32 features, what the feature function builds) is
predicted by every path, single-threaded, CPU seconds from
``time.process_time``, best of ``--repeat`` (3):

- native: LightGBM ``Booster.predict`` (float32), XGBoost ``inplace_predict``
  (float32; what ``predict_member`` uses) and ``predict`` on a ``DMatrix``
  built in the timed call, scikit-learn ``predict``;
- treelite (``treelite.frontend.from_lightgbm`` / ``from_xgboost``,
  ``treelite.sklearn.import_model``): its interpreter ``treelite.gtil.predict``,
  and the C code of ``tl2cgen.export_lib`` (gcc, -O3) loaded by
  ``tl2cgen.Predictor(nthread=1)``, built with ``parallel_comp`` (the trees
  split over ``--parallel-comp`` translation units) and, with
  ``--builds default,parallel``, also with tl2cgen's defaults (one C file: gcc
  takes minutes per model, so it is not in the default run);
  the models with float64 thresholds (LightGBM, scikit-learn) take float64
  input, so the timed call includes widening the block;
- lleaves (LLVM-compiled LightGBM) when it is importable: it needs llvmlite
  0.44, which pulls numpy and numba down through dask-ml, so it is in no extra
  of this project (install it by hand in a separate environment).

For every path: CPU s, x the fastest native path, largest absolute
difference to the library's own predictions (identical: <= 1e-6) and, for
compiled paths, the compile cost (wall seconds, and CPU seconds of the
compiler processes). The chosen path per library is the fastest identical one.

Needs the optional extra: ``pip install -e '.[bench]'`` (treelite, tl2cgen).
Prints one JSON line. The default run takes ~30 min on 2 cores, ~20 of them gcc
(benchmarks/README.md, "Predictors"); ``--quick`` is a small run (seconds) to check the script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model_size import make_synthetic_table  # noqa: E402

from smci_dask.models.estimators import fit_member, tree_leaves  # noqa: E402

try:
    import tl2cgen
    import treelite
    import treelite.gtil
    import treelite.sklearn
except ImportError as exc:  # the optional extra is not installed
    raise SystemExit(f"bench_predictors.py needs treelite and tl2cgen ({exc}): pip install -e '.[bench]'") from exc

MEMBERS = ("lightgbm", "xgboost", "sklearn")
IDENTICAL = 1e-6
BLOCK = 512 * 512


def _cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, np.ndarray]:
    """Best-of-``repeat`` CPU seconds of ``fn()`` and its result as a flat float64 array."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, np.asarray(out, dtype=np.float64).reshape(-1)


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _treelite_model(member: str, model: Any) -> Any:
    if member == "lightgbm":
        return treelite.frontend.from_lightgbm(model.booster_)
    if member == "xgboost":
        return treelite.frontend.from_xgboost(model.get_booster())
    return treelite.sklearn.import_model(model)


def _compile(tl_model: Any, libpath: Path, params: dict[str, Any], nthread: int) -> tuple[Any, float, float]:
    """Export ``tl_model`` to a shared library; ``(Predictor, wall s, compiler CPU s)``."""
    c0, t0 = _children_cpu(), time.perf_counter()
    tl2cgen.export_lib(tl_model, toolchain="gcc", libpath=str(libpath), params=params, nthread=nthread)
    predictor = tl2cgen.Predictor(str(libpath), nthread=1)
    return predictor, time.perf_counter() - t0, _children_cpu() - c0


def _tl2cgen_predict(predictor: Any, block32: np.ndarray) -> Callable[[], np.ndarray]:
    dtype = predictor.threshold_type  # float32 (XGBoost) or float64 (LightGBM, scikit-learn)

    def run() -> np.ndarray:
        data = block32 if dtype == "float32" else block32.astype(np.float64)
        return predictor.predict(tl2cgen.DMatrix(data, dtype=dtype))

    return run


def _lleaves_paths(model: Any, block32: np.ndarray, workdir: Path) -> tuple[Callable[[], np.ndarray] | None, float, str]:
    """lleaves' compiled LightGBM model if lleaves is importable: ``(predict, compile wall s, note)``."""
    try:
        import lleaves  # type: ignore[import-not-found]
    except ImportError:
        return None, float("nan"), "not installed"
    path = workdir / "lightgbm.txt"
    model.booster_.save_model(str(path))
    t0 = time.perf_counter()
    try:
        llvm_model = lleaves.Model(model_file=str(path))
        llvm_model.compile()
    except Exception as exc:  # e.g. llvmlite >= 0.45 dropped the pass manager lleaves 1.3 uses
        return None, float("nan"), f"installed but failed: {type(exc).__name__}: {exc}"
    wall = time.perf_counter() - t0
    return (lambda: llvm_model.predict(block32.astype(np.float64), n_jobs=1)), wall, f"lleaves {lleaves.__version__}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    X, y, _ = make_synthetic_table(args.rows, args.features, 0)
    block32 = make_synthetic_table(args.block_rows, args.features, 2)[0]
    hyper = {
        "max_features": 5,
        "min_samples_leaf": 20,
        "n_estimators": args.trees,
        "subsample": 0.632,
        "max_depth": None,
        "seed": 0,
    }
    models = {m: fit_member(m, X, y, n_jobs=1, **hyper) for m in MEMBERS}
    lgb_booster = models["lightgbm"].booster_
    xgb_booster = models["xgboost"].get_booster()
    xgb_booster.set_param({"nthread": 1})

    import xgboost as xgb

    # path -> (member, kind, callable); the first path of each member is the library's own reference
    paths: dict[str, tuple[str, str, Callable[[], Any]]] = {
        "lightgbm_booster_predict": ("lightgbm", "native", lambda: lgb_booster.predict(block32, num_threads=1)),
        "xgboost_inplace_predict": ("xgboost", "native", lambda: xgb_booster.inplace_predict(block32)),
        "xgboost_dmatrix_predict": ("xgboost", "native", lambda: xgb_booster.predict(xgb.DMatrix(block32, nthread=1))),
        "sklearn_predict": ("sklearn", "native", lambda: models["sklearn"].predict(block32)),
    }
    compile_cost: dict[str, tuple[float, float]] = {}
    notes: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench_predictors_"))
    try:
        all_builds = {"default": ("tl2cgen", {}), "parallel": ("tl2cgen_parallel", {"parallel_comp": args.parallel_comp})}
        builds = dict(all_builds[b] for b in args.builds.split(","))
        for member in MEMBERS:
            t0 = time.perf_counter()
            tl_model = _treelite_model(member, models[member])
            notes[f"{member}_treelite_import_s"] = f"{time.perf_counter() - t0:.2f}"
            paths[f"{member}_treelite_gtil"] = (
                member,
                "treelite",
                lambda tl_model=tl_model: treelite.gtil.predict(tl_model, block32, nthread=1),
            )
            for build, params in builds.items():
                predictor, wall, cpu = _compile(tl_model, workdir / f"{member}_{build}.so", params, args.compile_threads)
                compile_cost[f"{member}_{build}"] = (wall, cpu)
                paths[f"{member}_{build}"] = (member, "compiled", _tl2cgen_predict(predictor, block32))
        lleaves_fn, lleaves_wall, notes["lleaves"] = _lleaves_paths(models["lightgbm"], block32, workdir)
        if lleaves_fn is not None:
            paths["lightgbm_lleaves"] = ("lightgbm", "compiled", lleaves_fn)
            compile_cost["lightgbm_lleaves"] = (lleaves_wall, float("nan"))

        results: dict[str, dict[str, Any]] = {}
        reference: dict[str, np.ndarray] = {}
        for name, (member, kind, fn) in paths.items():
            sec, pred = _cpu(fn, args.repeat)
            reference.setdefault(member, pred)
            diff = float(np.max(np.abs(pred - reference[member])))
            results[name] = {"member": member, "kind": kind, "cpu_s": sec, "max_abs_diff": diff}
            print(f"{name:32s} {sec:8.3f} CPU s  max|diff| {diff:.2e}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    fastest_native = min(r["cpu_s"] for r in results.values() if r["kind"] == "native")
    figures: dict[str, dict[str, Any]] = {}
    for name, r in results.items():
        figures[f"{name}_s"] = {"value": round(r["cpu_s"], 3), "unit": "CPU s per 512x512 block (1 thread)"}
        figures[f"{name}_vs_fastest_native"] = {"value": round(r["cpu_s"] / fastest_native, 2), "unit": "x the fastest native path"}
        figures[f"{name}_max_abs_diff"] = {"value": float(f"{r['max_abs_diff']:.3g}"), "unit": "m3/m3 vs the library's own predict"}
        if name in compile_cost:
            wall, cpu = compile_cost[name]
            figures[f"{name}_compile_s"] = {"value": round(wall, 2), "unit": f"wall s (gcc -O3, {args.compile_threads} threads)"}
            if np.isfinite(cpu):
                figures[f"{name}_compile_cpu_s"] = {"value": round(cpu, 2), "unit": "CPU s of the compiler processes"}
    choice: dict[str, str] = {}
    for member in MEMBERS:
        same = {n: r for n, r in results.items() if r["member"] == member and r["max_abs_diff"] <= IDENTICAL}
        best = min(same, key=lambda n: same[n]["cpu_s"])
        choice[member] = best
        native = min(r["cpu_s"] for r in results.values() if r["member"] == member and r["kind"] == "native")
        figures[f"{member}_best_speedup_vs_own_native"] = {"value": round(native / same[best]["cpu_s"], 2), "unit": f"x ({best})"}
    for m in MEMBERS:
        figures[f"{m}_leaves_per_tree"] = {"value": round(float(tree_leaves(models[m]).mean())), "unit": "leaves"}
    setup = {
        "train_rows": args.rows,
        "features": args.features,
        "block_rows": args.block_rows,
        "trees": args.trees,
        "repeat": args.repeat,
        "builds": args.builds,
        "parallel_comp": args.parallel_comp,
        "compile_threads": args.compile_threads,
        "identical_below": IDENTICAL,
        "treelite": treelite.__version__,
        "tl2cgen": tl2cgen.__version__,
        **hyper,
        **notes,
    }
    return {"name": "predictors", "setup": setup, "figures": figures, "choice": choice}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000, help="training rows")
    ap.add_argument("--features", type=int, default=27)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--block-rows", type=int, default=BLOCK, help="rows predicted (512 x 512)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many predict calls")
    ap.add_argument("--parallel-comp", type=int, default=16, help="tl2cgen parallel_comp: translation units of the parallel build")
    ap.add_argument("--compile-threads", type=int, default=min(2, os.cpu_count() or 1), help="compiler processes at once")
    ap.add_argument(
        "--builds",
        default="parallel",
        help="tl2cgen builds, comma-separated: 'parallel' (parallel_comp) and/or 'default' (tl2cgen's defaults: one C file, "
        "~5 min of gcc per model at the default size)",
    )
    ap.add_argument("--quick", action="store_true", help="5k rows, 10 trees, 10k-row block: checks the script in seconds")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.trees, args.block_rows = 5_000, 10, 10_000
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
