"""Chunking of every covariate store, read from local disk and from an S3 server: MB/s and ratios.

The three stores a product run reads (DESIGN.md section 2), each written with
the real writer at two or three chunkings and read back with the real reader
(a fresh open per read, as a task would), from a local folder and from moto's
S3 server started here on 127.0.0.1 (a real HTTP server in this process; no
network):

* ``era5land``: the daily 0.1 degree cube (15 variables, float32), options
  ``t32/s64`` (the default ``DAILY_TIME_CHUNK`` x ``DAILY_SPACE_CHUNK``),
  ``t32/whole`` (the whole region per chunk), ``t128/s64``;
* ``lai``: the 8-day 1 km composites (uint8 x 0.1), one composite per chunk
  along time (each composite is written by its own task), options ``s256``,
  ``s512``, ``s1024`` cells along lat/lon (the default ``lai.SPACE_CHUNK``
  first: 1024 since this benchmark);
* ``static``: the 1 km static layers (7 float32, 2 uint8, the bool land
  mask), options ``s256``, ``s512``, ``s1024`` (the default
  ``static.SPACE_CHUNK``, 512, first).

Data of the right shapes are made directly (not the synthetic world, which
has no region larger than one 512 x 512 tile): a region of 1020 x 1536 fine
cells (8.5 x 12.8 degrees; 85 x 128 coarse cells), 128 days of ERA5-Land and
the 17 LAI composites that cover them; smooth fields plus noise, a NaN sea.

Reads, each over every variable of the store:

* ``daymap``: one day's map of the whole region (ERA5-Land: the day; LAI: the
  two composites the day interpolates between; static: every layer);
* ``stations``: every day at 500 random station cells (ERA5-Land: their coarse
  cells, all 128 days; LAI: all composites; static: the cells);
* ``inference``: one 32-day block x a 512 x 512 tile: its coarse ERA5-Land
  footprint (43 x 43 cells plus one for bilinear) over the block and the 27
  look-back days of tp_sum28, the LAI composites bracketing the block, the
  tile's statics.

Figures: median seconds per read over the rounds (each round visits every
option and backend, in an order rotated by one per round) and MB/s (bytes of
decoded values returned / seconds), write seconds, and ratios: ``ratio_to_default`` (same store,
backend and read; < 1 is faster than the current chunking for times, > 1 for
MB/s) and ``s3_over_local`` for every read. One JSON line per option as it
goes, then the ``run_all.py`` JSON on the last line.

Each option's store gets one untimed read first (it sets up the connection
pool). The S3 server runs in this process: its request handling competes with
the reads for the cores, so S3 figures are lower bounds for a real object
store's throughput but count requests faithfully.

Usage: ``python benchmarks/bench_stores.py [--repeats N] [--stores era5land lai static]``
(about 5 minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.covariates import lai as lai_module
from smci_dask.covariates import open_era5land_daily, open_lai, open_static, write_era5land_daily, write_lai, write_static
from smci_dask.covariates import static as static_module
from smci_dask.covariates.era5land import DAILY_RULES
from smci_dask.covariates.era5land_store import DAILY_SPACE_CHUNK, DAILY_TIME_CHUNK
from smci_dask.grid import GridSpec
from smci_dask.io import Store

#: The benchmark region: 1020 x 1536 fine cells, 85 x 128 coarse cells.
BBOX = (100.0, 30.0, 112.8, 38.5)
DAYS = 128
START = "2018-01-01"
STATIONS = 500
TILE = 512
BLOCK = 32
LOOKBACK = 27
#: Options per store; the first is the store's current default.
ERA5_OPTIONS: list[tuple[int, int | None]] = [(DAILY_TIME_CHUNK, DAILY_SPACE_CHUNK), (32, None), (128, 64)]
LAI_OPTIONS = [lai_module.SPACE_CHUNK, *[s for s in (256, 512, 1024) if s != lai_module.SPACE_CHUNK]]
STATIC_OPTIONS = [static_module.SPACE_CHUNK, *[s for s in (256, 512, 1024) if s != static_module.SPACE_CHUNK]]

Read = Callable[[Store], xr.Dataset]


# ------------------------------------------------------------------ data of the right shapes
def _smooth(rng: np.random.Generator, shape: tuple[int, int], k: int) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, shape[0]), np.linspace(0.0, 1.0, shape[1]), indexing="ij")
    return (1.0 + 0.3 * np.sin(3 * xx + k) * np.cos(2 * yy + k)).astype(np.float32) + 0.02 * rng.standard_normal(shape, dtype=np.float32)


def _sea(shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, shape[0]), np.linspace(0.0, 1.0, shape[1]), indexing="ij")
    return (xx + 0.6 * yy) > 1.3


def make_era5(grid: GridSpec, rng: np.random.Generator) -> xr.Dataset:
    shape = grid.coarse_shape
    sea = _sea(shape)
    times = pd.date_range(START, periods=DAYS, freq="D")
    ds = xr.Dataset(coords={cv.TIME: times, cv.LAT: grid.coarse_lat, cv.LON: grid.coarse_lon})
    for k, name in enumerate(cv.ERA5_VARS):
        values = _smooth(rng, shape, k)[None] + 0.05 * rng.standard_normal((DAYS, *shape), dtype=np.float32)
        values[:, sea] = np.nan
        ds[name] = ((cv.TIME, cv.LAT, cv.LON), values, {"units": DAILY_RULES[name].units})
    return ds


def make_lai(grid: GridSpec, rng: np.random.Generator) -> xr.Dataset:
    starts = pd.DatetimeIndex([pd.Timestamp(START) + pd.Timedelta(days=8 * k) for k in range(DAYS // 8 + 1)])
    sea = _sea(grid.shape)
    values = np.empty((len(starts), *grid.shape), dtype=np.float32)
    for k in range(len(starts)):
        v = np.clip(np.round(3.0 * _smooth(rng, grid.shape, k) + 0.3 * rng.random(grid.shape, dtype=np.float32), 1), 0.0, 10.0)
        v[sea] = np.nan
        values[k] = v
    lai = xr.DataArray(values, dims=(cv.TIME8, cv.LAT, cv.LON), attrs={"units": "m2 m-2", "long_name": "leaf area index"})
    return xr.Dataset({"lai": lai}, coords={cv.TIME8: starts, cv.LAT: grid.lat, cv.LON: grid.lon})


def make_static(grid: GridSpec, rng: np.random.Generator) -> xr.Dataset:
    sea = _sea(grid.shape)
    ranges = {"elevation": (0, 3000), "sand": (5, 80), "silt": (5, 60), "clay": (5, 50), "porosity": (0.3, 0.6)}
    ranges |= {"bulk_density": (1.0, 1.7), "rock_fragment": (0, 40)}
    ds = xr.Dataset(coords={cv.LAT: grid.lat, cv.LON: grid.lon})
    for k, (name, (lo, hi)) in enumerate(ranges.items()):
        v = lo + (hi - lo) * np.clip(_smooth(rng, grid.shape, k) - 0.6, 0.0, 1.0)
        v[sea] = np.nan
        ds[name] = ((cv.LAT, cv.LON), v.astype(np.float32), {"units": cv.STATIC_VARS[name]})
    landcover = rng.integers(1, 17, grid.shape, dtype=np.uint8)
    landcover[sea] = 17
    ds["landcover"] = ((cv.LAT, cv.LON), landcover, {"units": cv.STATIC_VARS["landcover"]})
    ds["climate_zone"] = ((cv.LAT, cv.LON), rng.integers(1, 31, grid.shape, dtype=np.uint8), {"units": cv.STATIC_VARS["climate_zone"]})
    return ds


# ------------------------------------------------------------------ the reads
def era5_reads(grid: GridSpec, rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> dict[str, Read]:
    crow, ccol = grid.fine_to_coarse_rows()[rows], grid.fine_to_coarse_cols()[cols]
    t0 = BLOCK * int(rng.integers(1, DAYS // BLOCK))  # a block with its look-back days inside the cube
    r0, c0 = (TILE * int(rng.integers(n // TILE)) for n in grid.shape)
    tr, tc = grid.fine_to_coarse_rows()[r0 : r0 + TILE], grid.fine_to_coarse_cols()[c0 : c0 + TILE]
    window = {
        cv.LAT: slice(int(tr.min()), min(int(tr.max()) + 2, grid.coarse_shape[0])),
        cv.LON: slice(int(tc.min()), min(int(tc.max()) + 2, grid.coarse_shape[1])),
    }
    day = int(rng.integers(DAYS))
    return {
        "daymap": lambda s: open_era5land_daily(s, "era5land").isel({cv.TIME: day}),
        "stations": lambda s: open_era5land_daily(s, "era5land").isel(
            {cv.LAT: xr.DataArray(crow, dims="cell"), cv.LON: xr.DataArray(ccol, dims="cell")}
        ),
        "inference": lambda s: open_era5land_daily(s, "era5land").isel({cv.TIME: slice(t0 - LOOKBACK, t0 + BLOCK), **window}),
    }


def lai_reads(grid: GridSpec, rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> dict[str, Read]:
    k = int(rng.integers(DAYS // 8 - 1))
    t0 = BLOCK * int(rng.integers(DAYS // BLOCK))
    first, last = max(t0 // 8 - 1, 0), min((t0 + BLOCK) // 8 + 1, DAYS // 8)  # composites bracketing the block
    r0, c0 = (TILE * int(rng.integers(n // TILE)) for n in grid.shape)
    return {
        "daymap": lambda s: open_lai(s, "lai").isel({cv.TIME8: [k, k + 1]}),
        "stations": lambda s: open_lai(s, "lai").isel({cv.LAT: xr.DataArray(rows, dims="cell"), cv.LON: xr.DataArray(cols, dims="cell")}),
        "inference": lambda s: open_lai(s, "lai").isel(
            {cv.TIME8: slice(first, last + 1), cv.LAT: slice(r0, r0 + TILE), cv.LON: slice(c0, c0 + TILE)}
        ),
    }


def static_reads(grid: GridSpec, rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> dict[str, Read]:
    r0, c0 = (TILE * int(rng.integers(n // TILE)) for n in grid.shape)
    return {
        "daymap": lambda s: open_static(s, "static"),
        "stations": lambda s: open_static(s, "static").isel(
            {cv.LAT: xr.DataArray(rows, dims="cell"), cv.LON: xr.DataArray(cols, dims="cell")}
        ),
        "inference": lambda s: open_static(s, "static").isel({cv.LAT: slice(r0, r0 + TILE), cv.LON: slice(c0, c0 + TILE)}),
    }


# ------------------------------------------------------------------ the S3 server
@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server on 127.0.0.1 with fake credentials (as tests/conftest.py ``s3_server``); yields storage options."""
    from moto.server import ThreadedMotoServer

    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {"endpoint_url": f"http://{host}:{port}"}
    finally:
        server.stop()


# ------------------------------------------------------------------ timing
def bench_store(
    name: str, options: list[Any], write: Callable[[Store, Any], None], reads: dict[str, Read], roots: dict[str, Store], repeats: int
) -> dict[str, dict[str, float]]:
    """Write every option on every backend, then time the reads in rounds.

    Each round visits every (option, backend) in an order rotated by one, so
    drifts of the machine's load and any cost of a first visit spread over
    all options instead of falling on the one measured first. Figures: the
    median seconds per read and MB/s of decoded values at that median.
    """
    stores: dict[str, Store] = {}
    rows: dict[str, dict[str, float]] = {}
    for option in options:
        label = _label(name, option)
        for backend, root in roots.items():
            store = root.child(f"{name}-{label.replace('/', '-')}")
            t0 = time.perf_counter()
            write(store, option)
            rows[f"{label} {backend}"] = {"write_s": time.perf_counter() - t0}
            reads["inference"](store).load()  # untimed: the first read also sets up the connection pool
            stores[f"{label} {backend}"] = store
    keys = list(stores)
    seconds: dict[str, dict[str, list[float]]] = {key: {p: [] for p in reads} for key in keys}
    megabytes: dict[str, dict[str, float]] = {key: {} for key in keys}
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            for pattern, read in reads.items():
                t0 = time.perf_counter()
                block = read(stores[key]).load()
                seconds[key][pattern].append(time.perf_counter() - t0)
                megabytes[key][pattern] = sum(v.nbytes for v in block.data_vars.values()) / 1e6
    for key in keys:
        label, backend = key.split(" ")
        for pattern in reads:
            median = float(np.median(seconds[key][pattern]))
            rows[key][f"{pattern}_s"] = median
            rows[key][f"{pattern}_mb_per_s"] = megabytes[key][pattern] / median
        print(
            json.dumps({"store": name, "option": label, "backend": backend, **{k: round(v, 4) for k, v in rows[key].items()}}), flush=True
        )
    return rows


def _label(name: str, option: Any) -> str:
    if name == "era5land":
        time_chunk, space = option
        return f"t{time_chunk}/{'whole' if space is None else f's{space}'}"
    return f"s{option}"


def figures_of(name: str, rows: dict[str, dict[str, float]], default: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, row in rows.items():
        label, backend = key.split(" ")
        base = rows[f"{default} {backend}"]
        for fig, value in row.items():
            unit = "s" if fig == "write_s" else ("MB/s of decoded values" if fig.endswith("_mb_per_s") else "s per read")
            entry: dict[str, Any] = {
                "value": round(value, 4),
                "unit": unit,
                "ratio_to_default": round(value / base[fig], 3) if base[fig] else None,
            }
            if backend == "s3" and fig != "write_s":
                local = rows[f"{label} local"][fig]
                entry["s3_over_local"] = round(value / local, 3) if local else None
            out[f"{name} {label} {backend} {fig}"] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=4, help="rounds of reads (each reads every pattern of every option once)")
    ap.add_argument("--stores", nargs="*", default=["era5land", "lai", "static"], choices=["era5land", "lai", "static"])
    args = ap.parse_args()
    dask.config.set(scheduler="threads")
    grid = GridSpec.from_bbox(BBOX)
    rng = np.random.default_rng(2022)
    rows_, cols_ = rng.integers(0, grid.shape[0], STATIONS), rng.integers(0, grid.shape[1], STATIONS)
    t_start = time.perf_counter()
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="smci-bench-stores-") as tmp, s3_server() as options:
        import s3fs

        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(**options).mkdir(bucket)
        roots = {"local": Store.from_url(Path(tmp)), "s3": Store.from_url(f"s3://{bucket}/stores", options)}
        if "era5land" in args.stores:
            era5 = make_era5(grid, rng)

            def write_era5(store: Store, option: tuple[int, int | None]) -> None:
                write_era5land_daily(era5, store, "era5land", time_chunk=option[0], space_chunk=option[1])

            rows = bench_store("era5land", ERA5_OPTIONS, write_era5, era5_reads(grid, rng, rows_, cols_), roots, args.repeats)
            figures |= figures_of("era5land", rows, _label("era5land", ERA5_OPTIONS[0]))
            del era5
        if "lai" in args.stores:
            lai = make_lai(grid, rng)

            def write_lai_(store: Store, chunk: int) -> None:
                write_lai(lai, store, "lai", space_chunk=chunk)

            rows = bench_store("lai", LAI_OPTIONS, write_lai_, lai_reads(grid, rng, rows_, cols_), roots, args.repeats)
            figures |= figures_of("lai", rows, _label("lai", LAI_OPTIONS[0]))
            del lai
        if "static" in args.stores:
            static = make_static(grid, rng)

            def write_static_(store: Store, chunk: int) -> None:
                write_static(static, store, "static", grid=grid, space_chunk=chunk)

            rows = bench_store("static", STATIC_OPTIONS, write_static_, static_reads(grid, rng, rows_, cols_), roots, args.repeats)
            figures |= figures_of("static", rows, _label("static", STATIC_OPTIONS[0]))
    print(
        json.dumps(
            {
                "name": "stores",
                "date": pd.Timestamp.now().strftime("%Y-%m-%d"),
                "cores": os.cpu_count(),
                "region": {"bbox": list(BBOX), "fine": list(grid.shape), "coarse": list(grid.coarse_shape), "days": DAYS},
                "defaults": {
                    "era5land": _label("era5land", ERA5_OPTIONS[0]),
                    "lai": _label("lai", LAI_OPTIONS[0]),
                    "static": _label("static", STATIC_OPTIONS[0]),
                },
                "wall_s": round(time.perf_counter() - t_start, 1),
                "figures": figures,
            }
        )
    )


if __name__ == "__main__":
    main()
