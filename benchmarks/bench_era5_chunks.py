"""Chunking of the daily ERA5-Land cube ``covariates/era5land``: write time, store size and the reads that matter.

Options: ``time_chunk`` in {8, 32, 128, 366} days x spatial chunks of the whole
region, 64 x 64 or 32 x 32 coarse cells, written with the real writer
(:func:`smci_dask.covariates.write_era5land_daily`) to a local folder and read
back with the real reader (:func:`smci_dask.covariates.open_era5land_daily`)
on dask's threaded scheduler. Two synthetic cubes, built in memory (15
variables, float32, smooth fields plus day-to-day noise, a sea area of NaN):

* ``medium``: the medium region, 30 x 30 coarse cells x 3 years (1096 days),
  59 MB; its 30 x 30 cells fit one 32 x 32 chunk, so only the time chunking
  differs there (all four time chunks);
* ``china``: the China coarse grid, 630 x 360 cells x 128 days, 1.7 GB, for
  the spatial chunking (time chunks 8, 32, 128: a 366-day chunk on a 128-day
  slab would be two thirds NaN padding, which says nothing).

Reads (each opens the store, as a task would):

* ``inference``: one 32-day block (aligned on 32 days) x the coarse footprint
  of a 512 x 512 fine tile (43 x 43 cells; tiles aligned on the fine grid),
  every variable: what every inference task reads;
* ``stations``: every day at 100 scattered cells, every variable: the
  training table's point extraction;
* ``daymap``: one day, the whole region, every variable: exports and maps.

Figures are mean seconds per read (and MB/s of the values returned), write
seconds, store MB, and each one's ratio to the same figure of the default
before this benchmark (``time_chunk=32``, whole region) in the same run, so
ratios < 1 are better for time and size. The defaults it led to are
``era5land_store.DAILY_TIME_CHUNK`` / ``DAILY_SPACE_CHUNK`` (printed as
``chosen``).
Local reads come mostly from the page cache: they measure decompression and
request counts, not the disk.

Usage: ``python benchmarks/bench_era5_chunks.py [--no-china] [--repeats N]``;
prints one JSON object on its last line (``run_all.py`` format).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates import open_era5land_daily, write_era5land_daily
from smci_dask.covariates.era5land import DAILY_RULES
from smci_dask.covariates.era5land_store import DAILY_SPACE_CHUNK, DAILY_TIME_CHUNK
from smci_dask.io import Store

TIME_CHUNKS = (8, 32, 128, 366)
SPACE_CHUNKS: tuple[int | None, ...] = (None, 64, 32)  # None: the whole region
CHINA_DAYS = 128
#: The ratios' reference: the default before this benchmark (32 days, the whole region).
BASELINE = (32, None)
INFERENCE_DAYS = 32
TILE_FINE = 512
STATIONS = 100
RELPATH = "covariates/era5land"


def make_cube(nlat: int, nlon: int, ndays: int, *, seed: int = 0, start: str = "2018-01-01") -> xr.Dataset:
    """A daily cube like the ERA5-Land one: every variable, float32, smooth in space, noisy day to day, NaN at sea."""
    rng = np.random.default_rng(seed)
    lat = np.round(54.0 - 0.1 * np.arange(nlat), 4)
    lon = np.round(73.0 + 0.1 * np.arange(nlon), 4)
    time_ = pd.date_range(start, periods=ndays, freq="D")
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, nlat), np.linspace(0.0, 1.0, nlon), indexing="ij")
    sea = (xx + 0.6 * yy) > 1.3
    season = np.sin(2 * np.pi * (time_.day_of_year.to_numpy() - 100) / 365.25).astype(np.float32)[:, None, None]
    data = {}
    for k, name in enumerate(cv.ERA5_VARS):
        base = (1.0 + 0.3 * np.sin(3 * xx + k) * np.cos(2 * yy + k)).astype(np.float32)
        values = base[None] * (1.0 + 0.2 * season) + 0.05 * rng.standard_normal((ndays, nlat, nlon), dtype=np.float32)
        values[:, sea] = np.nan
        rule = DAILY_RULES[name]
        data[name] = ((cv.TIME, cv.LAT, cv.LON), values, {"units": rule.units, "long_name": rule.long_name})
    return xr.Dataset(data, coords={cv.TIME: time_, cv.LAT: lat, cv.LON: lon})


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def read_patterns(cube: xr.Dataset, repeats: int, seed: int = 1) -> dict[str, list[Callable[[xr.Dataset], xr.Dataset]]]:
    """The reads, as selections of an opened cube; the same ones for every option."""
    rng = np.random.default_rng(seed)
    nt, nlat, nlon = cube.sizes[cv.TIME], cube.sizes[cv.LAT], cube.sizes[cv.LON]
    foot = int(np.ceil(TILE_FINE / cv.COARSE_FACTOR))  # 43 coarse cells
    tiles_r = sorted({min(int(k * TILE_FINE / cv.COARSE_FACTOR), max(nlat - foot, 0)) for k in range(int(np.ceil(nlat * 12 / 512)))})
    tiles_c = sorted({min(int(k * TILE_FINE / cv.COARSE_FACTOR), max(nlon - foot, 0)) for k in range(int(np.ceil(nlon * 12 / 512)))})
    blocks = max(nt // INFERENCE_DAYS, 1)
    patterns: dict[str, list[Callable[[xr.Dataset], xr.Dataset]]] = {"inference": [], "stations": [], "daymap": []}
    for _ in range(repeats):
        t0 = int(rng.integers(blocks)) * INFERENCE_DAYS
        r0, c0 = int(rng.choice(tiles_r)), int(rng.choice(tiles_c))
        patterns["inference"].append(
            lambda ds, t0=t0, r0=r0, c0=c0: ds.isel(
                {cv.TIME: slice(t0, t0 + INFERENCE_DAYS), cv.LAT: slice(r0, r0 + foot), cv.LON: slice(c0, c0 + foot)}
            )
        )
        day = int(rng.integers(nt))
        patterns["daymap"].append(lambda ds, day=day: ds.isel({cv.TIME: day}))
    for _ in range(max(1, repeats // 2)):  # heavy: every day of the cube
        rows = xr.DataArray(rng.integers(0, nlat, STATIONS), dims="cell")
        cols = xr.DataArray(rng.integers(0, nlon, STATIONS), dims="cell")
        patterns["stations"].append(lambda ds, rows=rows, cols=cols: ds.isel({cv.LAT: rows, cv.LON: cols}))
    return patterns


def bench_cube(name: str, cube: xr.Dataset, root: Path, repeats: int, options: list[tuple[int, int | None]]) -> dict[str, dict[str, float]]:
    patterns = read_patterns(cube, repeats)
    results: dict[str, dict[str, float]] = {}
    for time_chunk, space_chunk in options:
        label = f"t{time_chunk}/{'whole' if space_chunk is None else f's{space_chunk}'}"
        path = root / f"{name}-{time_chunk}-{space_chunk}"
        store = Store.from_url(path)
        write = partial(write_era5land_daily, cube, store, RELPATH, time_chunk=time_chunk, space_chunk=space_chunk)
        write_s, report = timed(write)
        assert len(report.written) == cube.sizes[cv.TIME]
        row = {"write_s": write_s, "size_mb": folder_mb(path)}
        for pattern, selections in patterns.items():
            seconds, megabytes = [], []
            for select in selections:
                dt, block = timed(lambda select=select, store=store: select(open_era5land_daily(store, RELPATH)).load())
                seconds.append(dt)
                megabytes.append(sum(v.nbytes for v in block.data_vars.values()) / 1e6)
            row[f"{pattern}_s"] = float(np.mean(seconds))
            row[f"{pattern}_mb_per_s"] = float(np.sum(megabytes) / np.sum(seconds))
        results[label] = row
        print(json.dumps({"cube": name, "option": label, **{k: round(v, 4) for k, v in row.items()}}), flush=True)
    return results


def figures_of(all_results: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    units = {"write_s": "s", "size_mb": "MB"} | {f"{p}_s": "s per read" for p in ("inference", "stations", "daymap")}
    units |= {f"{p}_mb_per_s": "MB/s of values read" for p in ("inference", "stations", "daymap")}
    default = f"t{BASELINE[0]}/whole"
    out: dict[str, dict[str, Any]] = {}
    for cube, rows in all_results.items():
        for label, row in rows.items():
            for key, value in row.items():
                base = rows[default][key]
                out[f"{cube} {label} {key}"] = {
                    "value": round(value, 4),
                    "unit": units[key],
                    "ratio_to_baseline": round(value / base, 3) if base else None,
                }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-china", action="store_true", help="skip the China slab (1.7 GB in memory, about 15 minutes on 2 cores)")
    ap.add_argument("--repeats", type=int, default=4, help="reads per pattern (stations: half as many)")
    ap.add_argument("--keep", default=None, help="write the stores below this folder and keep them (default: a temporary folder)")
    args = ap.parse_args()
    dask.config.set(scheduler="threads")
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="smci-bench-era5-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        medium = make_cube(30, 30, 1096)
        results["medium"] = bench_cube("medium", medium, root, args.repeats, [(t, None) for t in TIME_CHUNKS])  # 32 x 32 = whole here
        del medium
        if not args.no_china:
            china = make_cube(360, 630, CHINA_DAYS, seed=1)
            options = [(t, s) for s in SPACE_CHUNKS for t in TIME_CHUNKS if t <= CHINA_DAYS]
            results["china"] = bench_cube("china", china, root, args.repeats, options)
    print(
        json.dumps(
            {
                "name": "era5_chunks",
                "date": pd.Timestamp.now().strftime("%Y-%m-%d"),
                "cores": os.cpu_count(),
                "baseline": {"time_chunk": BASELINE[0], "space_chunk": "whole region"},
                "chosen": {"time_chunk": DAILY_TIME_CHUNK, "space_chunk": DAILY_SPACE_CHUNK},
                "figures": figures_of(results),
            }
        )
    )


if __name__ == "__main__":
    main()
