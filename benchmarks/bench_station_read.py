"""ISMN reader (``smci_dask.insitu.read_ismn``): records read per second and the peak memory of one read.

The read runs in a fresh Python process so that its peak resident set size
(``ru_maxrss``) is the reader's own: the figure reported is that peak, and
the peak above the process's size after the imports (what the read itself
added). Also reported: the observations table's size (``memory_usage(deep=True)``)
per record, which stays near 39 bytes (time, value and both depths as 8-byte
numbers, seven one-byte categorical codes) when no per-record Python object
is kept.

Input: ``--path`` an ISMN folder, file or zip archive, e.g. the small demo
world's ``<store>/inputs/stations/ismn`` (100 stations, 46 M records); by
default the synthetic ``tiny`` world (20 stations) is written to a temporary
folder first.

Prints one JSON line. Usage: python benchmarks/bench_station_read.py [--path PATH] [--region tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

#: Run in the child process: import, note the size, read, report.
_CHILD = """
import json, resource, sys, time
from smci_dask.insitu import read_ismn
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
data = read_ismn(sys.argv[1])
seconds = time.perf_counter() - t0
obs = data.observations
print(json.dumps({
    "rows": len(obs), "seconds": seconds, "files": len(data.sensors), "stations": len(data.stations),
    "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "base_kb": base,
    "table_bytes": int(obs.memory_usage(deep=True).sum()),
}))
"""


def measure(path: str) -> dict[str, object]:
    """Read ``path`` in a child process; the figures as run_all.py collects them."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, path], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench_station_read: reading {path} failed:\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = max(int(r["rows"]), 1)
    return {
        "name": "station_read",
        "input": path,
        "stations": r["stations"],
        "files": r["files"],
        "figures": {
            "records": {"value": r["rows"], "unit": "records"},
            "read_s": {"value": round(r["seconds"], 2), "unit": "s"},
            "records_per_s": {"value": round(r["rows"] / r["seconds"]), "unit": "records/s"},
            "peak_rss": {"value": round(r["peak_kb"] / 1024), "unit": "MiB"},
            "peak_rss_above_imports": {"value": round((r["peak_kb"] - r["base_kb"]) / 1024), "unit": "MiB"},
            "peak_above_imports_per_record": {"value": round((r["peak_kb"] - r["base_kb"]) * 1024 / rows, 1), "unit": "bytes"},
            "table_per_record": {"value": round(r["table_bytes"] / rows, 1), "unit": "bytes"},
        },
        "cores": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default=None, help="ISMN folder, file or zip archive (default: a synthetic world's)")
    ap.add_argument("--region", default="tiny", help="synthetic world to write when no --path is given (default: tiny)")
    args = ap.parse_args()
    if args.path:
        print(json.dumps(measure(args.path)))
        return
    from smci_dask.io import Store
    from smci_dask.synthetic import make_world
    from smci_dask.synthetic.world import ISMN_DIR

    with tempfile.TemporaryDirectory(prefix="bench-station-read-") as tmp:
        t0 = time.perf_counter()
        make_world(Store.from_url(tmp), region=args.region)
        out = measure(os.path.join(tmp, ISMN_DIR))
        out["world_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
