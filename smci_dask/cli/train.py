"""`smci train`: the per-depth model search and the final models, from the training table in the store.

Registered on the ``smci`` group by :mod:`smci_dask.cli.main`. The wiring is in
:mod:`smci_dask.pipeline.train`; this module only parses options and prints.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

from smci_dask import conventions as cv
from smci_dask.errors import ConfigError

if TYPE_CHECKING:
    from smci_dask.cli.main import _State


def _parse_depths(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        depths = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"--depths {value!r}: give depths in cm separated by commas, e.g. 10,20,30") from None
    bad = [d for d in depths if d not in cv.DEPTHS_CM]
    if bad or not depths:
        raise ConfigError(f"--depths {value!r}: {bad or 'none'} not product depths; use some of {','.join(map(str, cv.DEPTHS_CM))}")
    return depths


@click.command("train")
@click.option("--store", "store_url", default=None, help="Root URL of the stores (config store.root) [default: from the config].")
@click.option(
    "--run",
    "run",
    default=None,
    help="Run name: models go to STORE/models/RUN/final (config model.run) [default: the newest unfinished run with the same "
    "settings, which is resumed, else a new UTC timestamp].",
)
@click.option(
    "--depths", default=None, metavar="10,20,...", help="Depths (cm) to train, comma-separated [default: every depth in the table]."
)
@click.option(
    "--profile",
    default=None,
    help="Search profile (config model.search.profile): paper (Table 2 grid, 10 folds, 200 trees) or demo (a few cells, 3 folds, "
    "50 trees), or one of your own in model.profiles [default: paper].",
)
@click.option(
    "--cv",
    "cv_strategy",
    type=click.Choice(["grouped_station", "random", "grouped_year"]),
    default=None,
    help="CV strategy (config model.search.cv): no station cell on both sides, random k-fold (the paper's), or whole years "
    "[default: grouped_station].",
)
@click.option(
    "--engine",
    type=click.Choice(["tasks", "dask-ml"]),
    default=None,
    help="Search engine (config model.search.engine): one Dask task per candidate x fold x member, or dask-ml's "
    "GridSearchCV/RandomizedSearchCV [default: tasks].",
)
@click.option(
    "--n-iter", type=click.IntRange(min=1), default=None, help="Random search: this many grid cells, seeded (config model.search.n_iter)."
)
@click.option(
    "--cv-optimism/--no-cv-optimism",
    default=None,
    help="Also score the chosen cell with random k-fold and grouped-by-station CV (config model.search.cv_optimism) "
    "[default: from the profile].",
)
@click.option(
    "--cluster/--no-cluster",
    default=True,
    show_default=True,
    help="Run the fits on the cluster of the config (cluster.kind; default a local cluster), or one after another here.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Report format on stdout.")
@click.pass_obj
def train_cmd(
    state: _State,
    store_url: str | None,
    run: str | None,
    depths: str | None,
    profile: str | None,
    cv_strategy: str | None,
    engine: str | None,
    n_iter: int | None,
    cv_optimism: bool | None,
    cluster: bool,
    fmt: str,
) -> None:
    """Search the random-forest parameters per depth and fit the final models: STORE/training/table -> STORE/models/RUN/final.

    \b
    For each depth (10-100 cm): X = the 26 features, y = the ERA5-Land-matched
    target sm_matched (m3/m3); K-fold CV over max_features x min_samples_leaf
    (the profile's grid) for LightGBM and XGBoost in random-forest mode and
    their mean; the cell with the lowest ensemble RMSE is refitted on all rows.

    \b
    Writes per depth, below STORE/models/RUN/final/<depth>cm/:
      cv_table.csv     every cell x member: mean/std RMSE, ubRMSE, R (m3/m3), rank
      cv_folds.csv     the same per fold
      table2.png       ensemble RMSE over the grid, the chosen cell framed
      cv_optimism.csv  the chosen cell under random k-fold vs grouped by station
      params.json      the chosen max_features, min_samples_leaf
      lightgbm.txt, xgboost.ubj, card.json   the models and their card
    and STORE/models/RUN/run.json. Re-running with the same --run keeps the
    depths already trained on the same table with the same settings.
    Progress goes to stderr, the summary to stdout.
    """
    from smci_dask.io import store_from_config
    from smci_dask.pipeline.train import choose_run, train_final

    search: dict[str, Any] = {}
    for key, value in (("profile", profile), ("cv", cv_strategy), ("engine", engine), ("n_iter", n_iter), ("cv_optimism", cv_optimism)):
        if value is not None:
            search[key] = value
    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store"] = {"root": store_url}
    if search or run is not None:
        overrides["model"] = {"search": search, **({"run": run} if run is not None else {})}
    cfg = state.config(overrides or None)
    store = store_from_config(cfg)
    run_id = choose_run(store, cfg)
    wanted = _parse_depths(depths)
    say = lambda line: click.echo(line, err=True)  # noqa: E731 - progress to stderr
    with ExitStack() as stack:
        client = None
        if cluster:
            from smci_dask.cluster import cluster_client

            client = stack.enter_context(cluster_client(cfg))
        report = train_final(cfg, store, run=run_id, client=client, echo=say, depths=wanted)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.summary())
