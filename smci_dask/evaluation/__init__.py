"""Evaluation: metrics, the year-to-year and station-to-station experiments, extra products, scores, importance, figures, reports.

Modules: :mod:`~smci_dask.evaluation.metrics` (the metrics, defined once),
:mod:`~smci_dask.evaluation.experiments` (splits and per-experiment matching),
:mod:`~smci_dask.evaluation.products` (extra gridded products at the station cells),
:mod:`~smci_dask.evaluation.scoring` (pooled, per-station, grouped scores with bootstrap intervals),
:mod:`~smci_dask.evaluation.importance`, :mod:`~smci_dask.evaluation.figures`,
:mod:`~smci_dask.evaluation.report`. The wiring is :mod:`smci_dask.pipeline.evaluate`.
"""

from __future__ import annotations

from smci_dask.evaluation.experiments import EXPERIMENTS, Split, era5_at_table, era5_baseline, rematch, station_split, year_split
from smci_dask.evaluation.metrics import METRIC_UNITS, METRICS, bias, mae, pearson_r, r2, rmse, scores, ubrmse
from smci_dask.evaluation.products import open_product, sample_product
from smci_dask.evaluation.scoring import score_predictions, station_scores

__all__ = [
    "EXPERIMENTS",
    "METRICS",
    "METRIC_UNITS",
    "Split",
    "bias",
    "era5_at_table",
    "era5_baseline",
    "mae",
    "open_product",
    "pearson_r",
    "r2",
    "rematch",
    "rmse",
    "sample_product",
    "score_predictions",
    "scores",
    "station_scores",
    "station_split",
    "ubrmse",
    "year_split",
]
