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


def _store_region_options(f: Any) -> Any:
    f = click.option(
        "--region",
        type=click.Choice(REGION_CHOICES),
        default=None,
        help="Region of the 1 km grid (config region.name) [default: region.name from the config, small].",
    )(f)
    return click.option(
        "--store",
        "store_url",
        default=None,
        help="Root URL of the stores (config store.root) [default: store.root from the config, ./smci-data].",
    )(f)


def _config_and_grid(state: _State, store_url: str | None, region: str | None) -> tuple[Any, Any, Any]:
    from smci_dask.grid import grid_for
    from smci_dask.io import store_from_config

    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store"] = {"root": store_url}
    if region is not None:
        overrides["region"] = {"name": region}
    cfg = state.config(overrides or None)
    return cfg, store_from_config(cfg), grid_for(cfg.region.name, cfg.region.bbox)


@ingest_group.command("lai")
@click.argument("sources", nargs=-1, required=True, metavar="FILES_OR_GLOB...")
@_store_region_options
@click.option(
    "--resampling",
    type=click.Choice(["auto", "nearest", "average"]),
    default="auto",
    show_default=True,
    help="How rasters not aligned with the 1 km grid are brought to it (auto: average when the source is finer).",
)
@click.pass_obj
def lai_cmd(state: _State, sources: tuple[str, ...], store_url: str | None, region: str | None, resampling: str) -> None:
    """MODIS-like 8-day LAI rasters -> STORE/covariates/lai (time8, lat, lon), 1 km.

    \b
    FILES_OR_GLOB: GeoTIFF or NetCDF files, folders or globs, local or URLs,
    geographic or in the MODIS sinusoidal projection, named like
    MOD15A2H.A2019001.Lai_500m.tif (the date is the composite's first day).
    Values in m2 m-2 after the file's scale factor (MODIS: 0.1); fill and
    special values (249-255) become missing. Composites already in the store
    are skipped; a bad file stops the run and leaves the store as it was.
    """
    from smci_dask.covariates import ingest_lai

    cfg, store, grid = _config_and_grid(state, store_url, region)
    report = ingest_lai(list(sources), store, grid, storage_options=cfg.store.storage_options or None, resampling=resampling)
    click.echo(report.summary())


@ingest_group.command("static")
@click.argument("sources", nargs=-1, required=True, metavar="FOLDER_OR_FILES...")
@_store_region_options
@click.pass_obj
def static_cmd(state: _State, sources: tuple[str, ...], store_url: str | None, region: str | None) -> None:
    """Static 1 km rasters -> STORE/covariates/static (lat, lon) and their 0.1 degree aggregates.

    \b
    FOLDER_OR_FILES: a folder or GeoTIFF files named by variable (or tagged
    'variable'): elevation (m), landcover (IGBP class), sand, silt, clay (%),
    porosity (m3 m-3), bulk_density (g cm-3), rock_fragment (%), climate_zone
    (Koppen code). Known alternative units are converted (e.g. porosity in %),
    others rejected naming the file. Also writes the land mask (landcover not
    water) and STORE/covariates/static_coarse (means over land cells, mode for
    classes). Re-running with identical layers writes nothing.
    """
    from smci_dask.covariates import ingest_static

    cfg, store, grid = _config_and_grid(state, store_url, region)
    paths: Any = sources[0] if len(sources) == 1 else list(sources)
    report = ingest_static(paths, store, grid, storage_options=cfg.store.storage_options or None)
    click.echo(report.summary())


@ingest_group.command("stations")
@click.argument("sources", nargs=-1, required=True, metavar="PATHS...")
@click.option("--format", "fmt", type=click.Choice(["ismn", "csv", "parquet"]), required=True, help="Input format.")
@_store_region_options
@click.option("--qc/--no-qc", default=True, show_default=True, help="Apply the ISMN automated checks (Dorigo et al. 2013).")
@click.option(
    "--match/--no-match",
    default=True,
    show_default=True,
    help="Then match the daily targets to ERA5-Land's mean and std (needs STORE/covariates/era5land).",
)
@click.option("--network", default=None, help="Network name for a CSV/Parquet table without a network column.")
@click.option(
    "--cluster/--no-cluster",
    default=False,
    show_default=True,
    help="Run the per-station tasks (QC, daily means) on the cluster of the config (cluster.kind), or on threads in this process.",
)
@click.pass_obj
def stations_cmd(
    state: _State,
    sources: tuple[str, ...],
    fmt: str,
    store_url: str | None,
    region: str | None,
    qc: bool,
    match: bool,
    network: str | None,
    cluster: bool,
) -> None:
    """Station soil moisture -> STORE/insitu (hourly observations, station table, daily cell targets, QC report).

    \b
    PATHS: ISMN files, folders or zip archives as the ISMN portal delivers
    them (header+values or CEOP), or a long CSV/Parquet table (station, lat,
    lon, depth, time, sm [m3/m3 or %], optional soil_temperature (deg C),
    precipitation (mm)).
    Steps, per station as a Dask task: QC (C01-C03, D01-D10; the flags of
    config insitu.bad_flags drop a reading) -> daily means of good hours
    (>= insitu.min_hours, 12; day boundary UTC or insitu.utc_offset_hours per
    network) -> gaps filled linearly from kept days within 5 days before or
    after, gaps over 10 days left empty (insitu.fill_max_distance_days,
    insitu.max_gap_days). Then stations averaged per 1 km cell and product
    layer (10-100 cm, insitu.layer_rule) -> STORE/insitu/daily (m3/m3);
    STORE/insitu/qc_report.csv and .png: readings raised per QC code and
    kept, per sensor and layer. With --match, sm_matched: each (cell, depth)
    series scaled to the mean and std of the ERA5-Land layer of config
    matching.layers.
    """
    from smci_dask.pipeline.stations import ingest_stations, match_targets, qc_with_saturation

    cfg, store, _ = _config_and_grid(state, store_url, region)
    read_options = {"network": network} if network else None
    paths: Any = sources[0] if len(sources) == 1 else list(sources)
    with ExitStack() as stack:
        if cluster:
            from smci_dask.cluster import cluster_client

            stack.enter_context(cluster_client(cfg))
        report = ingest_stations(
            cfg,
            paths,
            fmt=fmt,  # type: ignore[arg-type]
            store=store,
            qc=qc_with_saturation if qc else None,
            progress=lambda message: click.echo(f"  {message}", err=True),
            storage_options=cfg.store.storage_options or None,
            read_options=read_options,
        )
    click.echo(report.summary())
    if match:
        click.echo(match_targets(cfg, store).summary())
