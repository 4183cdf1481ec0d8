"""`smci demo` end to end: wall time per stage and in all, against the 15-minute target on this machine.

Runs ``smci demo --region REGION --store TMP`` in a subprocess (a fresh
store, so every stage runs), then a second time on the same store (every
stage up to date: the cost of a no-op re-run). Reads the per-stage times
from the stage records in ``TMP/pipeline/stages`` and prints one JSON line.

Usage: python benchmarks/bench_demo.py [--region small|tiny] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 15 * 60


def _run(region: str, store: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "smci_dask.cli.main", "demo", "--region", region, "--store", str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"smci demo failed with exit code {proc.returncode}")
    return wall, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--region", default="small", choices=["tiny", "small"])
    ap.add_argument("--keep", default=None, help="store folder to use and keep (default: a temporary folder, removed)")
    args = ap.parse_args()
    store = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-demo-"))
    try:
        first, _ = _run(args.region, store)
        stages = {}
        for record in sorted((store / "pipeline" / "stages").glob("*.json")):
            data = json.loads(record.read_text())
            stages[f"stage {data['stage']}"] = {"value": data["seconds"], "unit": "s"}
        second, _ = _run(args.region, store)
    finally:
        if not args.keep:
            shutil.rmtree(store, ignore_errors=True)
    figures = {
        "demo wall time (fresh store)": {"value": round(first, 1), "unit": "s"},
        "demo wall time / 15 min target": {"value": round(first / TARGET_S, 3), "unit": "ratio"},
        "demo re-run wall time (all stages up to date)": {"value": round(second, 1), "unit": "s"},
        **stages,
    }
    print(json.dumps({"name": "demo", "region": args.region, "cores": os.cpu_count(), "figures": figures}))


if __name__ == "__main__":
    main()
