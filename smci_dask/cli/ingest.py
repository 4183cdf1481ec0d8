"""`smci ingest <source>`: raw covariate files into the covariate stores below store.root.

Registered on the ``smci`` group by :mod:`smci_dask.cli.main`. The wiring is in
:mod:`smci_dask.pipeline.ingest`; this module only parses options and prints.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from smci_dask.cli.main import _State

#: Values of config region.name (custom needs region.bbox in the config).
REGION_CHOICES = ["tiny", "small", "medium", "china", "custom"]


@click.group("ingest")
def ingest_group() -> None:
    """Raw covariate files -> the covariate stores below store.root (covariates/...)."""


@ingest_group.command("era5land")
@click.argument("sources", nargs=-1, required=True, metavar="FILES_OR_GLOB...")
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Root URL of the stores (config store.root; path, s3://bucket/prefix, ...); the daily cube goes to "
    "STORE/covariates/era5land [default: store.root from the config, ./smci-data].",
)
@click.option(
    "--region",
    type=click.Choice(REGION_CHOICES),
    default=None,
    help="Region whose 0.1 degree cells are kept (config region.name) [default: region.name from the config, small].",
)
@click.option(
    "--cluster/--no-cluster",
    default=True,
    show_default=True,
    help="Run the months in parallel on the cluster of the config (cluster.kind; default a local cluster), "
    "or one after another in this process.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Report format on stdout.")
@click.pass_obj
def era5land_cmd(state: _State, sources: tuple[str, ...], store_url: str | None, region: str | None, cluster: bool, fmt: str) -> None:
    """Hourly ERA5-Land files -> the daily 0.1 degree cube STORE/covariates/era5land.

    \b
    FILES_OR_GLOB: files, folders (every *.nc, *.grib, *.grb, *.zip inside) or
    globs, local or URLs, e.g. 'era5/era5land_2020_*.nc' or
    's3://bucket/era5/*.nc' (quote globs). NetCDF as the Climate Data Store
    delivers it (time or valid_time layout), a CDS zip, or GRIB. URLs use
    store.storage_options (e.g. SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL).

    \b
    The cube (time, lat, lon), day D = 00 UTC of D to 00 UTC of D+1:
      tp, e, pev    mm/day (mm day-1): daily totals, the accumulation at
                    00 UTC of D+1; evaporation e, pev positive upward
      ssrd          MJ m-2 day-1: daily total of surface solar radiation
      t2m, stl1-4   K: mean of the 24 hourly values 00..23 UTC
      swvl1-4       m3/m3 (m3 m-3): mean of the 24 hourly values
      lai_hv/lai_lv m2 m-2: mean of the 24 hourly values
    and STORE/covariates/era5land/land, the land mask (lsm >= 0.5, or
    swvl1 never NaN), written once.

    \b
    Days already in the store are skipped: running again with the same files
    changes nothing. A day whose 00 UTC of D+1 has not arrived (the last day
    of the last file) is held back: its hours are kept and a later run that
    brings the next file writes it. Files may come in any order. Bad input
    (truncated or corrupt file, wrong units, missing variable or hours, region
    not covered) stops with one line naming the file and leaves the store as
    it was. One ingest per store at a time.

    Prints progress per file and per month on stderr, then the report
    (days written / skipped / held back with the reason, files with md5).
    """
    from smci_dask.pipeline.ingest import ingest_era5land

    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store"] = {"root": store_url}
    if region is not None:
        overrides["region"] = {"name": region}
    cfg = state.config(overrides or None)
    with ExitStack() as stack:
        if cluster:
            from smci_dask.cluster import cluster_client

            stack.enter_context(cluster_client(cfg))
        report = ingest_era5land(cfg, list(sources), progress=lambda message: click.echo(f"  {message}", err=True))
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.format())
