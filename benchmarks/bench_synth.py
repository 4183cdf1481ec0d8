"""Synthetic-world generation: seconds per part and throughput for the tiny and small regions.

Prints one JSON line. Usage: python benchmarks/bench_synth.py [--regions tiny small]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import numpy as np

from smci_dask import conventions as cv
from smci_dask.grid import get_region
from smci_dask.io import Store
from smci_dask.synthetic import make_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--regions", nargs="*", default=["tiny", "small"])
    args = ap.parse_args()
    figures: dict[str, dict[str, object]] = {}
    for region in args.regions:
        grid = get_region(region).grid
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            m = make_world(Store.from_url(tmp), region=region)
            total = time.perf_counter() - t0
        days = m["counts"]["days"]
        land = m["counts"]["land cells"]
        sec = m["seconds"]
        figures[f"{region}_total_s"] = {"value": round(total, 2), "unit": "s"}
        for part, s in sec.items():
            figures[f"{region}_{part}_s"] = {"value": s, "unit": "s"}
        figures[f"{region}_truth_rate"] = {
            "value": round(land * days * len(cv.DEPTHS_CM) / max(sec["truth"], 1e-9)),
            "unit": "land cell-day-depths/s (water balance + Zarr write)",
        }
        figures[f"{region}_station_rate"] = {
            "value": round(m["counts"]["hourly records"] / max(sec["stations"], 1e-9)),
            "unit": "hourly records/s (series + ISMN + CSV)",
        }
        figures[f"{region}_cells"] = {"value": int(np.prod(grid.shape)), "unit": "fine cells"}
    figures["peak_rss_gib"] = {"value": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), "unit": "GiB"}
    print(json.dumps({"name": "synth", "figures": figures}))


if __name__ == "__main__":
    main()
