"""Inference: the fitted models of all depths mapped over (block of days x tile) tasks of the 1 km grid."""

from __future__ import annotations

from smci_dask.inference.mapping import (
    FINAL_EXPERIMENT,
    PredictReport,
    last_covered_days,
    list_runs,
    plan_tasks,
    predict_product,
    product_period,
    resolve_run,
)
from smci_dask.inference.tasks import PredictTask, TaskContext, TaskResult, TileInputs, load_tile_inputs, run_task, tile_features

__all__ = [
    "FINAL_EXPERIMENT",
    "PredictReport",
    "PredictTask",
    "TaskContext",
    "TaskResult",
    "TileInputs",
    "last_covered_days",
    "list_runs",
    "load_tile_inputs",
    "plan_tasks",
    "predict_product",
    "product_period",
    "resolve_run",
    "run_task",
    "tile_features",
]
