"""The ``smci`` command: ``smci <stage> [<action>]``.

Every option mirrors a config key; errors print one line (``--debug`` for
the traceback) and exit non-zero.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

import click

from smci_dask import __version__
from smci_dask.config import Config, load_config
from smci_dask.errors import SmciError

REGION_NAMES = ["tiny", "small", "medium"]


class _State:
    def __init__(self, config_path: str | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug

    def config(self, overrides: dict[str, Any] | None = None) -> Config:
        return load_config(self.config_path, overrides=overrides)


class SmciGroup(click.Group):
    """A click group that turns SmciError into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SmciError as exc:
            debug = bool(ctx.obj.debug) if isinstance(ctx.obj, _State) else "--debug" in sys.argv
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=SmciGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="SMCI_CONFIG",
    help="YAML file overriding the packaged defaults (env: SMCI_CONFIG). SMCI__SECTION__KEY environment variables override both.",
)
@click.option("--debug", is_flag=True, help="Print the full traceback on errors.")
@click.version_option(__version__, prog_name="smci")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """smci: daily 1 km, 10-layer (10-100 cm) soil-moisture maps from in-situ
    stations with random-forest-mode LightGBM/XGBoost on Dask (SMCI1.0 method).

    \b
    Stages, in data-flow order:
      synth      write the synthetic world (inputs in real formats + truth)
      ingest     raw files -> stores: era5land, lai, static (covariates) and stations (QC, daily targets)
      table      the training table: features at every station cell-day-depth
      train      per-depth search (CV over max_features x min_samples_leaf) and the final models
      evaluate   year-to-year and station-to-station experiments, scores vs ERA5-Land, report
      predict    the final models over every land cell of the 1 km grid for a range of days -> product/smci_1km
      export     the product as NetCDF distribution files (one per day or year)
      run        the whole chain for a configuration, skipping what is done and up to date
      demo       synthetic world + `smci run` on it, on a local cluster
      config     show the effective settings
      cluster    start/connect the configured cluster and describe it

    Start with `smci demo --region tiny` (about two minutes) or `smci demo` (small region).
    """
    ctx.obj = _State(config_path, debug)


# ---------------------------------------------------------------- config
@cli.group("config")
def config_group() -> None:
    """Inspect the settings (packaged defaults + --config file + SMCI__* env)."""


@config_group.command("show")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True, help="Output format.")
@click.pass_obj
def config_show(state: _State, fmt: str) -> None:
    """Print the effective configuration; secrets in storage options are masked."""
    cfg = state.config()
    if fmt == "json":
        click.echo(json.dumps(cfg.to_dict(mask_secrets=True), indent=2))
    else:
        click.echo(cfg.to_yaml(), nl=False)


# ---------------------------------------------------------------- cluster
@cli.group("cluster")
def cluster_group() -> None:
    """The Dask cluster named by `cluster.kind` (local, address, slurm, pbs, kubernetes)."""


@cluster_group.command("info")
@click.option("--address", default=None, help="Connect to this scheduler instead (sets cluster.kind=address).")
@click.pass_obj
def cluster_info_cmd(state: _State, address: str | None) -> None:
    """Start or connect to the configured cluster and print workers, threads, memory and the dashboard link."""
    from smci_dask.cluster import cluster_client, cluster_info, format_cluster_info

    overrides = {"cluster": {"kind": "address", "address": address}} if address else None
    cfg = state.config(overrides)
    with cluster_client(cfg) as client:
        click.echo(format_cluster_info(cluster_info(client)))


# ---------------------------------------------------------------- synth
def _region_years(region: str, years: tuple[int, int] | None) -> tuple[int, int]:
    from smci_dask.grid import get_region

    return tuple(years) if years else get_region(region).years  # type: ignore[return-value]


@cli.command("synth")
@click.option("--out", "out", required=True, help="URL of the folder to write the world into (path, s3://bucket/prefix, memory://...).")
@click.option(
    "--region", type=click.Choice(REGION_NAMES), default="tiny", show_default=True, help="Synthetic region (see `smci synth --help`)."
)
@click.option(
    "--years",
    nargs=2,
    type=int,
    default=None,
    help="First and last year, inclusive [default: the region's: tiny 2019-2020, small/medium 2018-2020].",
)
@click.option("--seed", type=int, default=None, help="Random seed [default: synthetic.seed from the config].")
@click.option("--stations", "n_stations", type=int, default=None, help="Number of stations [default: tiny 20, small 100, medium 400].")
@click.option("--grib/--no-grib", default=False, show_default=True, help="Also write the ERA5-Land files as GRIB.")
@click.option("--sinusoidal/--no-sinusoidal", default=False, show_default=True, help="Also write LAI in the MODIS sinusoidal projection.")
@click.pass_obj
def synth_cmd(
    state: _State,
    out: str,
    region: str,
    years: tuple[int, int] | None,
    seed: int | None,
    n_stations: int | None,
    grib: bool,
    sinusoidal: bool,
) -> None:
    """Write the synthetic world in the real sources' formats.

    \b
    Writes below OUT:
      era5land/   hourly ERA5-Land-like NetCDF, one file per month (CDS layout,
                  valid_time/latitude/longitude; tp, e, pev in m, ssrd in J m-2,
                  t2m/stl in K, swvl in m3 m-3), 0.1 degree grid
      lai/        MODIS-like 8-day LAI GeoTIFFs at 1 km (uint8, scale 0.1, fill 255)
      static/     1 km GeoTIFFs: elevation (m), landcover (IGBP), sand/silt/clay (%),
                  porosity (m3 m-3), bulk_density (g cm-3), rock_fragment (%), climate_zone
      stations/   ISMN header+values files, a CSV table, station metadata, fault log
      truth/      the true daily soil moisture at 10 depths on the 1 km grid (Zarr, m3 m-3)
      world.json  what was written, with the seed and the region

    \b
    Regions: tiny 0.5 x 0.5 deg (60 x 60 cells), 2 years, 20 stations: seconds;
             small 1 x 1 deg (120 x 120), 3 years, 100 stations: about a minute;
             medium 3 x 3 deg (360 x 360), 3 years, 400 stations: benchmarks.
    """
    from smci_dask.io import Store

    cfg = state.config()
    store = Store.from_url(out, cfg.store.storage_options if "://" in out and not out.startswith(("file://", "memory://")) else None)
    store.check_reachable()

    from smci_dask.synthetic import make_world

    t0 = time.perf_counter()
    manifest = make_world(
        store,
        region=region,
        years=_region_years(region, years),
        seed=cfg.synthetic.seed if seed is None else seed,
        n_stations=n_stations,
        grib=grib,
        sinusoidal=sinusoidal,
        progress=_echo_progress,
    )
    click.echo(f"synthetic world '{region}' written to {store.url} in {time.perf_counter() - t0:.1f} s")
    click.echo(_format_counts(manifest))


def _echo_progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


def _format_counts(manifest: dict[str, Any]) -> str:
    counts = manifest.get("counts", {})
    return "\n".join(f"  {k:<22} {v}" for k, v in counts.items())


# ---------------------------------------------------------------- table
@cli.command("table")
@click.option("--store", "store_url", default=None, help="Root URL of the stores (config store.root) [default: from the config].")
@click.option(
    "--region", type=click.Choice(["tiny", "small", "medium", "china", "custom"]), default=None, help="Region (config region.name)."
)
@click.option(
    "--interpolation",
    type=click.Choice(["nearest", "bilinear"]),
    default=None,
    help="How coarse ERA5-Land reaches the 1 km cells (config inference.interpolation) [default: nearest].",
)
@click.pass_obj
def table_cmd(state: _State, store_url: str | None, region: str | None, interpolation: str | None) -> None:
    """Training table: every feature at each station cell-day-depth with a target -> STORE/training/table.

    \b
    Needs STORE/covariates/{era5land,lai,static} (smci ingest ...) and
    STORE/insitu/daily (smci ingest stations). One row per (1 km cell, depth,
    day) with sm_raw and sm_matched (m3/m3), the cell and station ids, year,
    climate zone and the 26 features of smci_dask.features.FEATURES (ERA5-Land
    in its daily units: mm/day, K, m3/m3, MJ m-2 day-1; LAI m2 m-2; statics).
    Written as Parquet partitioned by depth_cm; replaces an earlier table.
    """
    from smci_dask.grid import grid_for
    from smci_dask.io import store_from_config
    from smci_dask.training import build_training_table, write_training_table

    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store"] = {"root": store_url}
    if region is not None:
        overrides["region"] = {"name": region}
    if interpolation is not None:
        overrides["inference"] = {"interpolation": interpolation}
    cfg = state.config(overrides or None)
    store = store_from_config(cfg)
    t0 = time.perf_counter()
    table = build_training_table(store, grid_for(cfg.region.name, cfg.region.bbox), interpolation=cfg.inference.interpolation)
    write_training_table(table, store)
    per_depth = table.groupby("depth_cm").size()
    click.echo(f"training table: {len(table)} rows in {time.perf_counter() - t0:.1f} s -> {store.url_of('training/table')}")
    click.echo("rows per depth (cm): " + ", ".join(f"{int(d)}: {n}" for d, n in per_depth.items()))


# ---------------------------------------------------------------- demo
@cli.command("demo")
@click.option(
    "--region", type=click.Choice(["tiny", "small"]), default="small", show_default=True, help="Synthetic region to build and process."
)
@click.option("--store", "store_url", default="./smci-demo", show_default=True, help="Root URL of every store (config store.root).")
@click.option("--seed", type=int, default=None, help="Random seed [default: synthetic.seed].")
@click.option(
    "--profile",
    default="demo",
    show_default=True,
    help="Model search profile of the train stage (config model.search.profile): demo (a few grid cells, 3 folds) or paper.",
)
@click.option(
    "--experiment-params",
    type=click.Choice(["final", "search"]),
    default="final",
    show_default=True,
    help="Parameters of the year and station experiments (config experiments.reuse_params): final reuses the final "
    "models' chosen parameters (faster); search runs each experiment's own search per depth, as the paper did.",
)
@click.pass_obj
def demo_cmd(state: _State, region: str, store_url: str, seed: int | None, profile: str, experiment_params: str) -> None:
    """Build the synthetic world and run every pipeline stage that exists so far on a local cluster.

    The world goes to STORE/inputs, every stage's store below STORE. Prints
    what each stage did and how long it took.
    """
    from smci_dask.pipeline.demo import run_demo

    cfg = state.config({"store": {"root": store_url}, "region": {"name": region}, "model": {"search": {"profile": profile}}})
    summary = run_demo(cfg, region=region, seed=seed, echo=click.echo, experiment_params=experiment_params)
    click.echo(summary)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="smci")


from smci_dask.cli.ingest import ingest_group  # noqa: E402 - registered after the group exists

cli.add_command(ingest_group)

from smci_dask.cli.run import run_cmd  # noqa: E402

cli.add_command(run_cmd)

from smci_dask.cli.evaluate import evaluate_cmd  # noqa: E402

cli.add_command(evaluate_cmd)

from smci_dask.cli.predict import diagnose_group, export_group, predict_cmd  # noqa: E402

cli.add_command(predict_cmd)
cli.add_command(export_group)
cli.add_command(diagnose_group)

from smci_dask.cli.train import train_cmd  # noqa: E402

cli.add_command(train_cmd)

from smci_dask.cli.qc import qc_cmd  # noqa: E402

cli.add_command(qc_cmd)

from smci_dask.cli.refresh import refresh_cmd  # noqa: E402

cli.add_command(refresh_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
