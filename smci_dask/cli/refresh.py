"""`smci refresh`: ingest what arrived, predict the days the product lacks, update the 9 km product, exports and the log.

Registered on the ``smci`` group by :mod:`smci_dask.cli.main`; the work is in
:mod:`smci_dask.pipeline.refresh`.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from smci_dask.cli.main import _State


@click.command("refresh")
@click.option("--store", "store_url", default=None, help="Root URL of the stores (config store.root) [default: from the config].")
@click.option(
    "--era5land",
    multiple=True,
    metavar="FILES",
    help="ERA5-Land files, folders or globs (repeatable) [default: config inputs.era5land].",
)
@click.option("--lai", multiple=True, metavar="FILES", help="LAI files, folders or globs (repeatable) [default: config inputs.lai].")
@click.option(
    "--recompute-revised/--report-revised",
    default=None,
    help="Recompute the days of input files whose md5 changed since they were ingested, or only report them "
    "[default: config refresh.recompute_revised, false].",
)
@click.option(
    "--backfill/--no-backfill",
    default=None,
    help="Also predict the covariate days before the product's first complete day (inside its time axis) "
    "[default: config refresh.backfill, false].",
)
@click.option("--run", default=None, help="Model run under STORE/models [default: the latest complete run].")
@click.option(
    "--wait",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Wait this long for another refresh of the store to finish before giving up with exit code 7 "
    "[default: config refresh.wait_seconds, 0].",
)
@click.option(
    "--cluster/--no-cluster",
    default=True,
    show_default=True,
    help="Run ingest scans and prediction tasks on the configured cluster, or in this process.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Report format on stdout.")
@click.pass_obj
def refresh_cmd(
    state: _State,
    store_url: str | None,
    era5land: tuple[str, ...],
    lai: tuple[str, ...],
    recompute_revised: bool | None,
    backfill: bool | None,
    run: str | None,
    wait: float | None,
    cluster: bool,
    fmt: str,
) -> None:
    """Bring the store up to date: new ERA5-Land / LAI days in, the product predicted for the days it lacks.

    \b
    Under a lease in the store (STORE/refresh/.lease; a second refresh waits
    --wait seconds or exits with code 7 naming the holder; a killed one's
    lease expires after refresh.lease_ttl_seconds):
      1. ingest the ERA5-Land and LAI files (only days the stores lack)
      2. report input files whose md5 changed (revised ERA5-Land files, LAI
         files of composites already held); recompute the days they feed
         with --recompute-revised; days whose interpolated LAI the new
         composites change are predicted again
      3. predict the covariate days the product does not hold yet (from its
         first complete day on; with --backfill from its axis's first day),
         all 10 depths, extending its time axis past its end when needed
         (no existing chunk rewritten)
      4. update the 9 km product and the NetCDF exports when the store has them
      5. write a log record STORE/refresh/log/<time>.json (inputs with md5,
         days added, model run, code version)
    Readers (smci_dask.open_product) see only complete days throughout. A
    refresh killed at any point is finished by the next one. Nothing new:
    says so, writes nothing, exits 0. Schedule it with cron, a systemd timer,
    a Kubernetes CronJob or scrontab (deploy/).
    """
    from smci_dask.io import store_failures, store_from_config
    from smci_dask.pipeline.refresh import refresh

    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store"] = {"root": store_url}
    cfg = state.config(overrides or None)
    store = store_from_config(cfg)
    store.check_reachable()
    with ExitStack() as stack:
        stack.enter_context(store_failures(store))  # a store that stops answering: one line saying to run again
        client = None
        if cluster:
            from smci_dask.cluster import cluster_client

            client = stack.enter_context(cluster_client(cfg))
        report = refresh(
            cfg,
            store,
            era5land=list(era5land) or None,
            lai=list(lai) or None,
            recompute_revised=recompute_revised,
            backfill=backfill,
            run=run,
            wait=wait,
            client=client,
            echo=lambda m: click.echo(m, err=True),
        )
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.summary())
