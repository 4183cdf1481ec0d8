"""`smci run`: the whole chain for a configuration, skipping what is done and up to date."""

from __future__ import annotations

import time
from typing import Any

import click

from smci_dask.pipeline.run import STAGE_NAMES


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@click.command("run")
@click.option("--store", "store_url", default=None, help="Root URL of every store (config store.root) [default: from the config].")
@click.option("--from", "start", type=click.Choice(STAGE_NAMES), default=None, help="Redo this stage and every later one.")
@click.option(
    "--only",
    default=None,
    metavar="STAGE[,STAGE]",
    help=f"Limit the run to these stages (of: {', '.join(STAGE_NAMES)}); with --force they run even when up to date.",
)
@click.option("--force", is_flag=True, help="Redo every selected stage, done or not.")
@click.pass_obj
def run_cmd(state: Any, store_url: str | None, start: str | None, only: str | None, force: bool) -> None:
    """Run the pipeline for the configured region, period and inputs (see `smci config show`).

    \b
    Stages, in order:
      era5land   inputs.era5land (hourly NetCDF/GRIB) -> STORE/covariates/era5land
      static     inputs.static (GeoTIFFs) -> STORE/covariates/static (+ 0.1 degree)
      lai        inputs.lai (MODIS 8-day) -> STORE/covariates/lai
      stations   inputs.stations -> QC -> daily cell targets -> ERA5-Land matching
      table      features at every station cell-day-depth -> STORE/training/table
      train      per-depth search (model.search.*) + final ensembles -> STORE/models/<run>/final
      evaluate   year-to-year and station-to-station experiments -> STORE/reports/<run>/evaluation.md
      predict    final models over the 1 km grid, last inference.last_days days (null: all)
                 -> STORE/product/smci_1km, its 9 km mean, a map figure

    Each stage records its completion with a fingerprint of its inputs
    (file names, sizes, modification stamps) and settings in
    STORE/pipeline/stages/<stage>.json; a re-run skips the stages whose
    fingerprint is unchanged and redoes a changed stage and all after it.
    A run killed in a stage redoes that stage next time (each stage's writes
    are idempotent).
    """
    from smci_dask.pipeline.run import outcome_table, run_pipeline

    cfg = state.config({"store": {"root": store_url}} if store_url else None)
    t0 = time.perf_counter()
    outcomes = run_pipeline(cfg, start=start, only=_split(only) or None, force=force, echo=click.echo)
    click.echo("")
    click.echo(f"smci run: {sum(o.status == 'ran' for o in outcomes)} stage(s) ran in {time.perf_counter() - t0:.1f} s")
    click.echo(outcome_table(outcomes))
