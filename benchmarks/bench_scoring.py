"""Bootstrap intervals of the evaluation: per-cell sums vs resampling the rows, on a predictions table.

Prints JSON: seconds (CPU) of ``score_predictions`` with each bootstrap
method, their ratio, and the largest difference between the intervals.
Default input: a synthetic predictions table of the small world's size
(92 station cells, 10 depths, 3 years: ~500 k rows, two experiments);
``--predictions PATH`` scores a real ``reports/<run>/predictions.parquet``.

    python benchmarks/bench_scoring.py [--predictions PATH] [--draws 200]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from unittest import mock

import numpy as np
import pandas as pd

from smci_dask.evaluation import scoring


def synthetic_predictions(cells: int = 92, days: int = 1095, seed: int = 0) -> pd.DataFrame:
    """Two experiments of ~half the cells each, 10 depths, ``days`` days; obs, estimate and baseline in m3/m3."""
    rng = np.random.default_rng(seed)
    parts = []
    for experiment, share in (("year", 1.0), ("station", 0.34)):
        ids = np.arange(int(cells * share))
        c, d, t = (a.ravel() for a in np.meshgrid(ids, np.arange(10, 101, 10), np.arange(days if experiment == "station" else 365)))
        obs = 0.25 + 0.05 * np.sin(t / 58.0 + c) + rng.normal(0, 0.03, c.size)
        parts.append(
            pd.DataFrame(
                {
                    "experiment": experiment,
                    "cell_id": c,
                    "depth_cm": d,
                    "time": pd.Timestamp("2018-01-01") + pd.to_timedelta(t, "D"),
                    "year": 2018 + t // 365,
                    "climate_zone": c % 5,
                    "obs_matched": obs,
                    "obs_raw": obs + rng.normal(0, 0.02, c.size) + (c % 3) * 0.03,
                    "smci": obs + rng.normal(0, 0.025, c.size),
                    "era5land": obs + rng.normal(0, 0.035, c.size),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", help="a reports/<run>/predictions.parquet; default: synthetic, small-world size")
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()
    pred = pd.read_parquet(args.predictions) if args.predictions else synthetic_predictions()
    estimates = [c for c in ("smci", "era5land") if c in pred.columns]

    def timed(rows: bool) -> tuple[float, pd.DataFrame]:
        real = scoring.bootstrap_intervals
        with mock.patch.object(scoring, "bootstrap_intervals", lambda *a, **k: real(*a, **{**k, "rows": rows})):
            t0 = time.process_time()
            out = scoring.score_predictions(pred, estimates, bootstrap=args.draws, seed=0)
            return time.process_time() - t0, out

    t_sums, sums = timed(False)
    t_rows, rows = timed(True)
    ci = [c for c in sums.columns if c.endswith(("_lo", "_hi"))]
    diff = float(np.nanmax(np.abs(sums[ci].to_numpy(float) - rows[ci].to_numpy(float))))
    print(
        json.dumps(
            {
                "benchmark": "bench_scoring",
                "rows": len(pred),
                "draws": args.draws,
                "cores": os.cpu_count(),
                "cpu_s_rows": round(t_rows, 2),
                "cpu_s_sums": round(t_sums, 2),
                "speedup": round(t_rows / t_sums, 1),
                "max_interval_difference": diff,
            }
        )
    )


if __name__ == "__main__":
    main()
