"""Training-table extraction: rows/s of build_training_table, and feature cell-days/s of one inference tile.

Makes the synthetic world, ingests it (ERA5-Land, LAI, statics, stations
from the world's CSV table with the ISMN QC, matched targets; not timed),
then times :func:`smci_dask.training.build_training_table` (nearest and
bilinear) and :func:`smci_dask.features.features_for_tile` for one 32-day
block of the whole region. Prints one JSON line.

Usage: python benchmarks/bench_table.py [--regions tiny small]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from smci_dask.config import Config, RegionConfig, StoreConfig
from smci_dask.covariates import ingest_lai, ingest_static
from smci_dask.features import FEATURES, features_for_tile, open_feature_sources
from smci_dask.grid import grid_for
from smci_dask.insitu.qc import apply_qc
from smci_dask.io import Store
from smci_dask.pipeline.ingest import ingest_era5land
from smci_dask.pipeline.stations import ingest_stations, match_targets
from smci_dask.synthetic import make_world
from smci_dask.training import build_training_table


def _qc(hourly: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    column = next((c for c in ("saturation", "saturation_0_30cm") if c in stations.columns), None)
    saturation = stations.drop_duplicates("station_id").set_index("station_id")[column] if column else None
    return apply_qc(hourly, saturation=saturation)


def _ingest(region: str, root: str) -> tuple[Store, float]:
    world = Store.from_url(f"{root}/world")
    manifest = make_world(world, region=region)
    t0 = time.perf_counter()
    cfg = Config(region=RegionConfig(name=region), store=StoreConfig(root=f"{root}/stores"))
    store = Store.from_url(cfg.store.root)
    grid = grid_for(region)
    ingest_era5land(cfg, [world.join(p) for p in manifest["files"]["era5land"]], store=store)
    ingest_lai([world.join(p) for p in manifest["files"]["lai"]], store, grid)
    ingest_static([world.join(p) for p in manifest["files"]["static"]], store, grid)
    ingest_stations(cfg, world.join(manifest["files"]["station_csv"]), fmt="csv", store=store, qc=_qc, read_options={"network": "SYNTH"})
    match_targets(cfg, store)
    return store, time.perf_counter() - t0


def _bench(region: str) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store, ingest_s = _ingest(region, tmp)
        grid = grid_for(region)
        figures[f"{region}_ingest_s"] = {"value": round(ingest_s, 1), "unit": "s (not part of the table)"}
        for interpolation in ("nearest", "bilinear"):
            t0 = time.perf_counter()
            df = build_training_table(store, grid, interpolation=interpolation)
            sec = time.perf_counter() - t0
            figures[f"{region}_table_{interpolation}_rows_per_s"] = {"value": round(len(df) / sec), "unit": "rows/s"}
            figures[f"{region}_table_{interpolation}_s"] = {"value": round(sec, 2), "unit": f"s for {len(df)} rows"}
        sources = open_feature_sources(store)
        tile = grid.tiles(max(grid.shape))[0]
        days = pd.date_range(pd.Timestamp(df["time"].min()) + pd.Timedelta(days=60), periods=32)
        for interpolation in ("nearest", "bilinear"):
            t0 = time.perf_counter()
            block = features_for_tile(sources, grid, tile, days, interpolation=interpolation)
            sec = time.perf_counter() - t0
            figures[f"{region}_tile_{interpolation}_cell_days_per_s"] = {
                "value": round(block.values.shape[0] * block.values.shape[1] / sec),
                "unit": f"land cell-days/s ({len(FEATURES)} features, {block.values.shape[1]} cells x 32 days)",
            }
        figures[f"{region}_table_rows"] = {"value": int(len(df)), "unit": "rows"}
        figures[f"{region}_table_stations_cells"] = {"value": int(np.unique(df["cell_id"]).size), "unit": "station cells"}
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--regions", nargs="*", default=["tiny"])
    args = ap.parse_args()
    figures: dict[str, dict[str, Any]] = {}
    for region in args.regions:
        figures.update(_bench(region))
    figures["peak_rss_gib"] = {"value": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), "unit": "GiB"}
    print(json.dumps({"name": "table", "figures": figures}))


if __name__ == "__main__":
    main()
