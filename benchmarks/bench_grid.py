"""Grid index maths at country scale: points/s for rowcol and cells/s for the fine->coarse maps.

Prints one JSON line. Figures are rates (higher is better) on the China grid.
"""

from __future__ import annotations

import json
import time

import numpy as np

from smci_dask.grid import GridSpec, fine_coarse_index


def _rate(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    grid = GridSpec.from_bbox((73.0, 18.0, 136.0, 54.0))
    rng = np.random.default_rng(0)
    n = 2_000_000
    lat = rng.uniform(18.0001, 54.0, n)
    lon = rng.uniform(73.0, 135.9999, n)
    valid = rng.random(grid.coarse_shape) > 0.3
    tile = grid.tiles(512)[100]
    figures = {
        "rowcol_points_per_s": {"value": round(_rate(lambda: grid.rowcol(lat, lon), n)), "unit": "points/s"},
        "fine_coarse_index_cells_per_s": {
            "value": round(_rate(lambda: fine_coarse_index(grid, valid, tile), tile.shape[0] * tile.shape[1])),
            "unit": "cells/s (512 x 512 tile, incl. nearest-land transform of the 630 x 360 coarse grid)",
        },
    }
    print(json.dumps({"name": "grid", "figures": figures}))


if __name__ == "__main__":
    main()
