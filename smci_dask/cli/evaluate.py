"""`smci evaluate`: the year-to-year and station-to-station experiments and their report.

Registered on the ``smci`` group by :mod:`smci_dask.cli.main`; the wiring is in
:mod:`smci_dask.pipeline.evaluate`.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from smci_dask.cli.main import _State


@click.command("evaluate")
@click.option(
    "--experiment",
    type=click.Choice(["year", "station", "all"]),
    default="all",
    show_default=True,
    help="year: train on the earlier years, test on experiments.year.test_years (default the last year); "
    "station: a seeded 2/3 of the station cells train, 1/3 test (experiments.station.*); all: both.",
)
@click.option(
    "--run",
    default=None,
    help="Run name: models go to STORE/models/RUN/<experiment>, the report to STORE/reports/RUN "
    "[default: model.run, else the newest training run in the store, else a UTC timestamp].",
)
@click.option("--store", "store_url", default=None, help="Root URL of the stores (config store.root) [default: from the config].")
@click.option(
    "--reuse-params/--search",
    default=None,
    help="Reuse the final models' parameters (models/RUN/final) or search per experiment "
    "(config experiments.reuse_params) [default: search].",
)
@click.option(
    "--bootstrap", type=int, default=None, help="Bootstrap draws for the 95 % intervals (config evaluation.bootstrap) [default: 200]."
)
@click.option(
    "--cluster/--no-cluster",
    default=True,
    show_default=True,
    help="Run the searches and refits on the configured cluster (cluster.kind; default a local cluster), or in this process.",
)
@click.pass_obj
def evaluate_cmd(
    state: _State, experiment: str, run: str | None, store_url: str | None, reuse_params: bool | None, bootstrap: int | None, cluster: bool
) -> None:
    """Evaluate the method: train per experiment, predict the held-out rows, score, write STORE/reports/RUN.

    \b
    Needs STORE/training/table (smci table) and STORE/covariates/era5land.
    For each experiment the in-situ targets are re-matched to ERA5-Land with
    statistics of its training part only, every depth is trained through the
    machinery of `smci train`, and the test rows are scored against the
    matched targets (ubRMSE, RMSE, MAE, bias, R, R^2) and the raw in-situ
    series (ubRMSE, R): pooled with bootstrap 95 % intervals, as per-station
    medians, per depth, per climate zone and per year. ERA5-Land soil moisture
    of the matching layer is the baseline (its bias against the matched
    targets is ~0 by construction); extra gridded products listed in
    evaluation.products are sampled at the same cells and days and scored too.

    \b
    Writes STORE/reports/RUN/: evaluation.md (the report), metrics.csv and
    metrics.json (every score), stations.csv, importance.csv (permutation
    importance per feature and family), model_importance.csv (split/gain),
    predictions.parquet and the PNG figures. Prints the headline table.
    """
    from smci_dask.io import store_from_config
    from smci_dask.pipeline.evaluate import evaluate

    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store"] = {"root": store_url}
    if reuse_params is not None:
        overrides["experiments"] = {"reuse_params": "final" if reuse_params else "search"}
    if bootstrap is not None:
        overrides["evaluation"] = {"bootstrap": bootstrap}
    cfg = state.config(overrides or None)
    store = store_from_config(cfg)
    names = ["year", "station"] if experiment == "all" else [experiment]
    with ExitStack() as stack:
        client = None
        if cluster:
            from smci_dask.cluster import cluster_client

            client = stack.enter_context(cluster_client(cfg))
        evaluate(cfg, store, experiments=names, run=run, client=client, echo=click.echo)
