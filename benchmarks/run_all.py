"""Run every benchmark script in this folder and write one JSON with all figures.

Usage: python benchmarks/run_all.py [--out benchmarks/latest.json]

Each ``bench_*.py`` prints one JSON object on its last stdout line:
``{"name": ..., "figures": {name: {"value": v, "unit": u}}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Arguments for scripts whose own defaults are full scale (hours on 2 cores): the sizes benchmarks/README.md records.
SCRIPT_ARGS: dict[str, list[str]] = {
    "bench_model_size.py": [
        "--rows",
        "1000000",
        "--trees",
        "16",
        "--configs",
        "full,leaves_2048,samples_200k_leaves_2048,samples_100k,samples_50k",
    ],
    "bench_qc.py": ["--station-years", "1", "100"],
}
#: Further runs of a script with other arguments (after its default run).
EXTRA_RUNS: list[tuple[str, list[str]]] = [
    ("bench_models.py", ["--predict", "--rows", "50000"]),
    ("bench_models.py", ["--equivalence", "--region", "small"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "latest.json"), help="where to write the combined JSON")
    ap.add_argument("--only", nargs="*", default=None, help="names of bench_*.py scripts to run (default: all)")
    args = ap.parse_args()
    results = []
    runs = [(script, SCRIPT_ARGS.get(script.name, [])) for script in sorted(HERE.glob("bench_*.py"))]
    runs += [(HERE / name, extra) for name, extra in EXTRA_RUNS]
    for script, script_args in runs:
        if args.only and script.stem not in args.only and script.stem.removeprefix("bench_") not in args.only:
            continue
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), *script_args], capture_output=True, text=True, check=False)
        entry = {
            "script": " ".join([script.name, *script_args]),
            "returncode": proc.returncode,
            "wall_s": round(time.perf_counter() - t0, 2),
        }
        lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
        if proc.returncode == 0 and lines:
            entry.update(json.loads(lines[-1]))
        else:
            entry["stderr_tail"] = proc.stderr[-2000:]
        results.append(entry)
        print(json.dumps(entry), flush=True)
    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "benchmarks": results,
    }
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
