"""Inference task size: peak memory per task and land cell-days/s for tile sizes x days per task.

Each configuration runs one real inference task (:func:`smci_dask.inference.run_task`:
per-day features with the one feature function, 10 depths predicted, region
writes of the int16 product to a local Zarr store, completion marker) in a
fresh process, on a synthetic region large enough for the biggest tile. The
covariates are handed to the task in memory (``FeatureSources`` over NumPy
arrays; reading the stores is measured by ``bench_era5_chunks.py``); the
models are RF-mode LightGBM + XGBoost ensembles fitted on random rows with the
real 26 features and saved/loaded through the model store, loaded before the
task starts (as a worker's cache holds them).

Peak memory per task = the highest RSS sampled every 5 ms during the task
minus the RSS just before it (inputs and models already in memory); the
models' own RSS is reported beside it.

Projection: the whole-task rate (read, features, 10 depths predicted, write;
land cell-days per second on one core) turned into core-hours for the full
SMCI1.0 China product (:data:`CHINA_LAND_CELLS` x :data:`CHINA_DAYS`) and for
one new day of it. Prediction time grows with the trees (and their depth),
so the projection holds for the ``--trees`` measured; run it with the trees
the product will use. ``--uncertainty`` also writes ``sm_spread`` (the spread
of the trees) and reports its share. Prints one JSON line.

Usage: python benchmarks/bench_inference.py [--tiles 128 256 512] [--days 8 32] [--trees 20] [--uncertainty]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv

#: The synthetic region: 4.5 x 4.5 degrees = 540 x 540 cells (room for one 512 x 512 tile).
BBOX = (110.0, 30.0, 114.5, 34.5)
FIRST_DAY = pd.Timestamp("2020-03-01")
#: Land cells of the China 1 km grid (SMCI1.0's domain) and days of its 2010-2020 product.
CHINA_LAND_CELLS = 9_600_000
CHINA_DAYS = 4018


def _sources(grid: Any, days: pd.DatetimeIndex) -> Any:
    from smci_dask.features.build import ERA5_NEEDED, LOOKBACK_DAYS, STATIC_NEEDED, FeatureSources

    rng = np.random.default_rng(0)
    times = pd.date_range(days[0] - pd.Timedelta(days=LOOKBACK_DAYS), days[-1], freq="D")
    ny, nx = grid.coarse_shape
    era5 = xr.Dataset(
        {v: ((cv.TIME, cv.LAT, cv.LON), rng.random((len(times), ny, nx), dtype=np.float32)) for v in ERA5_NEEDED},
        coords={cv.TIME: times, cv.LAT: grid.coarse_lat, cv.LON: grid.coarse_lon},
    )
    starts = pd.date_range(times[0] - pd.Timedelta(days=8), days[-1] + pd.Timedelta(days=8), freq="8D")
    lai = xr.DataArray(
        rng.random((len(starts), *grid.shape), dtype=np.float32) * 5,
        dims=(cv.TIME8, cv.LAT, cv.LON),
        coords={cv.TIME8: starts, cv.LAT: grid.lat, cv.LON: grid.lon},
    )
    static = xr.Dataset(
        {v: ((cv.LAT, cv.LON), rng.random(grid.shape, dtype=np.float32) * 50) for v in STATIC_NEEDED},
        coords={cv.LAT: grid.lat, cv.LON: grid.lon},
    )
    static["landcover"] = ((cv.LAT, cv.LON), rng.integers(1, 17, grid.shape).astype(np.uint8))
    static["land"] = ((cv.LAT, cv.LON), rng.random(grid.shape) < 0.9)  # 90 % land
    return FeatureSources(era5, lai, static)


def _fit_models(store: Any, trees: int) -> None:
    from smci_dask.features import FEATURE_NAMES
    from smci_dask.models.estimators import fit_member, make_ensemble
    from smci_dask.models.store import save_model

    rng = np.random.default_rng(1)
    X = rng.random((20_000, len(FEATURE_NAMES)), dtype=np.float32)
    hyper = {"max_features": 8, "min_samples_leaf": 20, "n_estimators": trees, "subsample": 0.632, "max_depth": None, "seed": 0}
    for depth in cv.DEPTHS_CM:
        y = 0.1 + 0.3 * X[:, depth // 10] + 0.05 * np.sin(6 * X[:, 0]) + 0.02 * rng.standard_normal(len(X))
        members = {m: fit_member(m, X, y, **hyper) for m in ("lightgbm", "xgboost")}
        save_model(store, "bench", "final", depth, make_ensemble(members, FEATURE_NAMES), training_fingerprint="bench")


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _one(root: str, tile_size: int, n_days: int, uncertainty: bool, out: Any) -> None:
    """Run one task in this (fresh) process; put the figures on ``out``."""
    from smci_dask.grid.spec import GridSpec
    from smci_dask.inference.tasks import PredictTask, TaskContext, load_run_models, run_task
    from smci_dask.io import Store
    from smci_dask.models.store import load_card, model_checksum
    from smci_dask.products.smci1km import create_product

    store = Store.from_url(root)
    grid = GridSpec.from_bbox(BBOX)
    days = pd.date_range(FIRST_DAY, periods=n_days, freq="D")
    period = pd.date_range(FIRST_DAY, periods=64, freq="D")
    relpath = f"product/t{tile_size}_d{n_days}"
    create_product(store, relpath, grid, period, tile_size=tile_size, attrs={}, uncertainty=uncertainty)
    sources = _sources(grid, days)
    _ = sources.coarse_valid
    checksums = {d: model_checksum(load_card(store, "bench", "final", d)) for d in cv.DEPTHS_CM}
    rss0 = _rss()
    load_run_models(store, "bench", "final", checksums)  # a worker's cache: loaded once per run
    rss_models = _rss() - rss0
    ctx = TaskContext(store, relpath, grid, "bench", "final", checksums, period[0], uncertainty=uncertainty)
    task = PredictTask(0, grid.tiles(tile_size)[0], days)
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    result = run_task(ctx, task, sources=sources)
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    out.put(
        {
            "tile": tile_size,
            "days": n_days,
            "land_cells": result.land_cells,
            "cell_days_per_s": result.cell_days / wall,
            "task_peak_bytes": peak[0] - base,
            "models_bytes": rss_models,
            "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
            "wall_s": wall,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", nargs="*", type=int, default=[128, 256, 512])
    ap.add_argument("--days", nargs="*", type=int, default=[8, 32])
    ap.add_argument("--trees", type=int, default=20, help="trees per member (small: this measures memory and the task's parts)")
    ap.add_argument("--uncertainty", action="store_true", help="also write sm_spread (inference.uncertainty)")
    args = ap.parse_args()
    from smci_dask.io import Store

    figures: dict[str, dict[str, Any]] = {}
    rows = []
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        _fit_models(Store.from_url(tmp), args.trees)
        for tile in args.tiles:
            for n_days in args.days:
                q = ctx.Queue()
                p = ctx.Process(target=_one, args=(tmp, tile, n_days, args.uncertainty, q))
                p.start()
                r = q.get()
                p.join()
                rows.append(r)
                key = f"tile{tile}_days{n_days}"
                figures[f"{key}_task_peak_gib"] = {"value": round(r["task_peak_bytes"] / 2**30, 3), "unit": "GiB above the models"}
                figures[f"{key}_cell_days_per_s"] = {
                    "value": round(r["cell_days_per_s"]),
                    "unit": f"land cell-days/s x 10 depths, 1 core ({args.trees} trees x 2 members)",
                }
                total = sum(r["seconds"].values()) or 1.0
                rate = r["cell_days_per_s"]
                figures[f"{key}_core_hours_china"] = {
                    "value": round(CHINA_LAND_CELLS * CHINA_DAYS / rate / 3600),
                    "unit": f"core-hours, China 1 km product ({CHINA_LAND_CELLS:,} land cells x {CHINA_DAYS} days x 10 depths)",
                }
                figures[f"{key}_core_hours_one_day"] = {
                    "value": round(CHINA_LAND_CELLS / rate / 3600, 2),
                    "unit": "core-hours, one new day of the China product at this rate",
                }
                figures[f"{key}_share"] = {"value": {k: round(v / total, 3) for k, v in r["seconds"].items()}, "unit": "share of task time"}
        figures["models_gib"] = {
            "value": round(max(r["models_bytes"] for r in rows) / 2**30, 3),
            "unit": f"GiB, 10 depths x 2 members x {args.trees} trees",
        }
    figures["cores"] = {"value": os.cpu_count(), "unit": "cores (shared)"}
    figures["trees_per_member"] = {"value": args.trees, "unit": "trees (x 2 members x 10 depths)"}
    figures["uncertainty"] = {"value": bool(args.uncertainty), "unit": "sm_spread written too"}
    print(json.dumps({"name": "inference", "figures": figures, "runs": rows}))


if __name__ == "__main__":
    main()
