"""Dorigo et al. (2013) quality control (``smci_dask.insitu.qc.apply_qc``): hourly soil-moisture rows checked per second.

A station-year is one CMA-like station (10 soil-moisture sensors, 10-100 cm,
with soil temperature at each depth, air temperature and precipitation) over
8760 hours: 87,600 soil-moisture rows. The series come from the synthetic
station model (``smci_dask.synthetic.stations.make_station_series``: sensor
error, gaps, spikes, breaks, plateaus, frozen soil) on a simple seasonal
truth. Two inputs are timed, each with every check C01-D10:

* ``long``: the readers' long table (one row per record and variable), as the
  station ingest passes it: the checks plus the joins of air temperature,
  precipitation and the soil temperature of the nearest depth;
* ``wide``: one row per sensor-hour with its ancillary columns already beside it.

Prints one JSON line. Usage: python benchmarks/bench_qc.py [--station-years 1 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd

from smci_dask import conventions as cv
from smci_dask.insitu.qc import apply_qc
from smci_dask.synthetic.stations import make_station_series

HOURS_PER_YEAR = 8760
SEED = 5


def synthetic_stations(n: int, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wide sensor-hour table, station table) of ``n`` CMA-like stations over one year (365 days)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2019-01-01", periods=HOURS_PER_YEAR // 24, freq="D")
    nd, nh = len(days), HOURS_PER_YEAR
    stations = pd.DataFrame(
        {
            "station": [f"B{i:05d}" for i in range(n)],
            "lon": rng.uniform(100, 120, n),
            "depths": [list(cv.DEPTHS_CM)] * n,
            "saturation": rng.uniform(0.4, 0.5, n),
        }
    )
    t = np.arange(nd)[:, None, None]
    depth = np.asarray(cv.DEPTHS_CM)[None, :, None]
    level = rng.uniform(0.15, 0.3, (1, 1, n))
    truth = level + 0.08 * np.exp(-depth / 50.0) * np.sin(2 * np.pi * (t / 365.0 + rng.uniform(0, 1, (1, 1, n))))
    h = np.arange(nh)[:, None]
    season = 12.0 - 14.0 * np.cos(2 * np.pi * h / nh)
    soil_t = season + 3.0 * np.sin(2 * np.pi * (h % 24 - 2) / 24) + rng.normal(0, 0.3, (nh, n))
    air_t = season + 6.0 * np.sin(2 * np.pi * (h % 24 - 2) / 24) + rng.normal(0, 1.0, (nh, n))
    rain = np.where(rng.random((nh, n)) < 0.03, np.round(rng.exponential(1.5, (nh, n)), 1), 0.0)
    obs, _ = make_station_series(stations, truth, days, soil_t, air_t, rain, seed)
    return obs, stations


def as_long(obs: pd.DataFrame) -> pd.DataFrame:
    """The readers' long table: sm and ts per depth, ta and p once per station hour."""
    station = "BENCH/" + obs["station"].astype(str)
    depth = obs["depth_cm"].to_numpy(dtype=np.float64) / 100.0
    per_depth = [
        pd.DataFrame({"station_id": station, "time": obs["time"], "variable": var, "value": obs[col]}).assign(
            depth_from_m=depth, depth_to_m=depth
        )
        for var, col in (("sm", "sm"), ("ts", "soil_temperature"))
    ]
    first = obs.drop_duplicates(["station", "time"])
    once = [
        pd.DataFrame({"station_id": "BENCH/" + first["station"].astype(str), "time": first["time"], "variable": var})
        .assign(depth_from_m=d, depth_to_m=d)
        .assign(value=first[col].to_numpy(dtype=np.float64))
        for var, col, d in (("ta", "air_temperature", -2.0), ("p", "precipitation", 0.0))
    ]
    long = pd.concat(per_depth + once, ignore_index=True)
    long["station_id"] = long["station_id"].astype("category")
    long["variable"] = long["variable"].astype("category")
    long["sensor"] = pd.Categorical(np.full(len(long), "probe"))
    return long


def as_wide(obs: pd.DataFrame) -> pd.DataFrame:
    depth = obs["depth_cm"].to_numpy(dtype=np.float64) / 100.0
    return pd.DataFrame(
        {
            "station_id": ("BENCH/" + obs["station"].astype(str)).astype("category"),
            "depth_from_m": depth,
            "depth_to_m": depth,
            "time": obs["time"],
            "sm": obs["sm"],
            "soil_temperature": obs["soil_temperature"],
            "air_temperature": obs["air_temperature"],
            "precipitation": obs["precipitation"],
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--station-years", nargs="*", type=int, default=[1, 100])
    args = ap.parse_args()
    figures: dict[str, dict[str, object]] = {}
    for n in args.station_years:
        t0 = time.perf_counter()
        obs, stations = synthetic_stations(n)
        saturation = pd.Series(stations["saturation"].to_numpy(), index="BENCH/" + stations["station"])
        made = time.perf_counter() - t0
        sm_rows = len(obs)
        for name, frame in (("long", as_long(obs)), ("wide", as_wide(obs))):
            t0 = time.perf_counter()
            out = apply_qc(frame, saturation=saturation)
            seconds = time.perf_counter() - t0
            assert len(out) == sm_rows
            figures[f"{name}_{n}_station_years_rows_per_s"] = {"value": round(sm_rows / seconds), "unit": "rows/s"}
            figures[f"{name}_{n}_station_years_s"] = {"value": round(seconds, 2), "unit": "s"}
            figures[f"{name}_{n}_station_years_flagged_share"] = {"value": round(float((~out["qc_good"]).mean()), 4), "unit": "1"}
            del out
        figures[f"{n}_station_years_sm_rows"] = {"value": sm_rows, "unit": "rows"}
        figures[f"{n}_station_years_synthesis_s"] = {"value": round(made, 2), "unit": "s"}
    figures["max_rss_mb"] = {"value": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "unit": "MB"}
    print(json.dumps({"name": "qc", "figures": figures}))


if __name__ == "__main__":
    main()
