"""The whole 1 km map against the synthetic truth, beside the ERA5-like coarse field brought to 1 km.

Only the synthetic world knows the truth at every cell
(``truth/sm_truth.zarr`` of the world, :mod:`smci_dask.synthetic.truth`), so
only there can a product be scored everywhere rather than at stations. For
each depth, over every land cell and every day asked for (where both hold a
value), :func:`map_scores` computes the metrics of
:mod:`smci_dask.evaluation.metrics` (ubRMSE, RMSE, bias in m3/m3; R) of

* ``smci_1km``: the product decoded to m3/m3 (so its 0.001 quantisation is included);
* ``era5land``: ERA5-Land's volumetric soil water of the layer the depth is
  matched to (``matching.layers``: swvl2 for 10-30 cm, swvl3 below by
  default) brought to 1 km by the nearest coarse cell with the coast rule
  (:func:`smci_dask.grid.fine_coarse_index`), the baseline of the paper.

Values are pooled over cells and days (one number per depth and source).
The arrays of one depth are held in memory: meant for the synthetic regions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from smci_dask import conventions as cv
from smci_dask.evaluation.metrics import scores
from smci_dask.features.build import open_feature_sources
from smci_dask.grid.landmask import fine_coarse_index
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store, open_zarr
from smci_dask.products.smci1km import PRODUCT_1KM_RELPATH, open_product

#: Where the synthetic world keeps its truth.
TRUTH_RELPATH = "truth/sm_truth.zarr"
#: Metrics reported per depth and source.
MAP_METRICS: tuple[str, ...] = ("ubrmse", "r", "rmse", "bias")


def map_scores(
    store: Store,
    truth_store: Store,
    grid: GridSpec,
    days: Sequence[Any] | pd.DatetimeIndex,
    *,
    layers: Mapping[int, int],
    relpath: str = PRODUCT_1KM_RELPATH,
    truth_relpath: str = TRUTH_RELPATH,
    depths: Sequence[int] = cv.DEPTHS_CM,
) -> pd.DataFrame:
    """Scores of the product and of ERA5-Land against the truth, per depth, over all land cells and ``days``.

    Parameters
    ----------
    store : Store
        Store root with the product and ``covariates/era5land``.
    truth_store : Store
        The synthetic world (``truth/sm_truth.zarr`` below it).
    grid : GridSpec
        The region.
    days : sequence of dates
        Days to score (predicted days).
    layers : mapping
        Depth (cm) -> ERA5-Land layer (1-4) of the baseline (config ``matching.layers``).

    Returns
    -------
    pandas.DataFrame
        One row per (depth_cm, source) with ``n`` (cell-days) and :data:`MAP_METRICS`
        (ubrmse, rmse, bias in m3/m3; r dimensionless).
    """
    days = pd.DatetimeIndex(days).normalize()
    product = open_product(store, relpath)[cv.SM].sel({cv.TIME: days})
    truth = open_zarr(truth_store, truth_relpath)[cv.SM_TRUTH].sel({cv.TIME: days})
    sources = open_feature_sources(store)
    land = np.asarray(sources.static["land"].values, dtype=bool)
    rr, cc = fine_coarse_index(grid, sources.coarse_valid)
    rows: list[dict[str, Any]] = []
    for depth in depths:
        obs = np.asarray(truth.sel({cv.DEPTH: depth}).values, dtype=np.float64)[:, land]
        est = np.asarray(product.sel({cv.DEPTH: depth}).values, dtype=np.float64)[:, land]
        swvl = np.asarray(sources.era5[f"swvl{int(layers[int(depth)])}"].sel({cv.TIME: days}).values, dtype=np.float64)
        base = swvl[:, rr, cc][:, land]
        for source, values in (("smci_1km", est), ("era5land", base)):
            figures = scores(values, obs, names=list(MAP_METRICS))
            rows.append({"depth_cm": int(depth), "source": source, **figures})
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype(np.int64)
    return out
