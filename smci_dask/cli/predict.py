"""`smci predict`: the fitted models of all 10 depths over the 1 km grid for a range of days -> product/smci_1km.

Registered on the ``smci`` group by :mod:`smci_dask.cli.main`; the work is in
:mod:`smci_dask.inference`.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from smci_dask.cli.main import _State


def _bbox(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    parts = [p for p in value.replace(" ", "").split(",") if p]
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not W,S,E,N (four numbers in degrees, e.g. 115.0,37.0,115.25,37.25)") from None
    if not (w < e and s < n):
        raise click.BadParameter(f"{value!r}: need west < east and south < north")
    return (w, s, e, n)


@click.command("predict")
@click.option("--start", required=True, metavar="DATE", help="First day to predict (YYYY-MM-DD).")
@click.option("--end", required=True, metavar="DATE", help="Last day to predict, inclusive (YYYY-MM-DD).")
@click.option(
    "--bbox",
    default=None,
    callback=_bbox,
    metavar="W,S,E,N",
    help="Only the product tiles (inference.tile_size cells) this box in degrees touches, each predicted whole [default: the region].",
)
@click.option(
    "--run",
    default=None,
    help="Model run under STORE/models (its 'final' models of all 10 depths) [default: the latest complete run].",
)
@click.option("--store", "store_url", default=None, help="Root URL of the stores (config store.root) [default: from the config].")
@click.option(
    "--region",
    type=click.Choice(["tiny", "small", "medium", "china", "custom"]),
    default=None,
    help="Region of the 1 km grid (config region.name) [default: from the config].",
)
@click.option(
    "--tile-size", type=int, default=None, help="Tile edge, 1 km cells, used when the product is created (config inference.tile_size)."
)
@click.option("--time-block", type=int, default=None, help="Days per task (config inference.time_block).")
@click.option(
    "--uncertainty/--no-uncertainty",
    default=None,
    help="Also write sm_spread, the spread of the trees (config inference.uncertainty; fixed when the product is created; "
    "a task takes ~3x as long: the trees one by one cost twice the prediction) [default: from the config].",
)
@click.option(
    "--cluster/--no-cluster",
    default=True,
    show_default=True,
    help="Run the tasks on the configured cluster (cluster.kind; default a local cluster), or one after another in this process.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Report format on stdout.")
@click.pass_obj
def predict_cmd(
    state: _State,
    start: str,
    end: str,
    bbox: tuple[float, float, float, float] | None,
    run: str | None,
    store_url: str | None,
    region: str | None,
    tile_size: int | None,
    time_block: int | None,
    uncertainty: bool | None,
    cluster: bool,
    fmt: str,
) -> None:
    """Daily 1 km soil moisture at 10 depths (10-100 cm) for START..END -> STORE/product/smci_1km.

    \b
    Needs STORE/covariates/{era5land,lai,static} (smci ingest ...) holding the
    days, and fitted models STORE/models/RUN/final/<depth>cm (smci train).
    Tasks of (time block x tile) run in parallel; each reads its covariates
    once, builds features a day at a time with the feature function of
    training, predicts every land cell at every depth and writes whole chunks.

    \b
    The product (Zarr, created once with the full time axis of the period):
      sm (time, depth, lat, lon)  int16 in 0.001 m3/m3, fill -999 (SMCI1.0),
                                  CF attributes: scale_factor, units m3 m-3,
                                  depth/lat/lon bounds, grid mapping crs
      sm_spread (same)            with --uncertainty: the weighted standard
                                  deviation of every tree's prediction (all
                                  members' trees pooled; not a calibrated error)
      attributes                  model run and checksums, code version,
                                  inputs, complete_days
    Re-running skips the chunks already written (a killed run resumes where
    it stopped); one `smci predict` per product at a time. Progress per task
    on stderr.
    """
    from smci_dask.inference import predict_product
    from smci_dask.io import store_from_config

    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store"] = {"root": store_url}
    if region is not None:
        overrides["region"] = {"name": region}
    inference = {k: v for k, v in (("tile_size", tile_size), ("time_block", time_block), ("uncertainty", uncertainty)) if v is not None}
    if inference:
        overrides["inference"] = inference
    cfg = state.config(overrides or None)
    store = store_from_config(cfg)
    store.check_reachable()
    with ExitStack() as stack:
        client = None
        if cluster:
            from smci_dask.cluster import cluster_client

            client = stack.enter_context(cluster_client(cfg))
        report = predict_product(
            cfg, store, start=start, end=end, bbox=bbox, run=run, client=client, echo=lambda m: click.echo(m, err=True)
        )
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "product": report.product,
                    "run": report.run,
                    "tasks_run": report.tasks_run,
                    "tasks_skipped": report.tasks_skipped,
                    "land_cell_days": report.land_cell_days,
                    "seconds": round(report.seconds, 3),
                    "task_seconds": {k: round(v, 3) for k, v in report.part_seconds.items()},
                    "complete_days": report.complete_days,
                },
                indent=2,
            )
        )
    else:
        click.echo(report.summary())


@click.group("export")
def export_group() -> None:
    """Distribution files of the products (SMCI1.0 layout)."""


@export_group.command("netcdf")
@click.option(
    "--product",
    type=click.Choice(["1km", "9km"]),
    default="1km",
    show_default=True,
    help="Which product: STORE/product/smci_1km or STORE/product/smci_9km (0.1 degree).",
)
@click.option("--period", type=click.Choice(["day", "year"]), default="day", show_default=True, help="One file per day or per year.")
@click.option("--start", required=True, metavar="DATE", help="First day (YYYY-MM-DD); must be complete in the product.")
@click.option("--end", required=True, metavar="DATE", help="Last day, inclusive (YYYY-MM-DD).")
@click.option("--store", "store_url", default=None, help="Root URL of the stores (config store.root) [default: from the config].")
@click.option(
    "--out",
    "out_url",
    default=None,
    help="Folder URL for the files [default: STORE/exports/smci_1km or smci_9km]; any store URL (path, s3://...).",
)
@click.pass_obj
def export_netcdf_cmd(state: _State, product: str, period: str, start: str, end: str, store_url: str | None, out_url: str | None) -> None:
    """NetCDF files of STORE/product/smci_<1km|9km>: SMCI_<1km|9km>_<YYYYMMDD>.nc or SMCI_<1km|9km>_<YYYY>.nc.

    \b
    Each file: sm (time, depth, lat, lon), int16 in 0.001 m3/m3 (scale_factor
    0.001), fill -999 (and sm_spread where the product has it), zlib-compressed, with the product's CF attributes
    (units, standard_name, long_name, depth/lat/lon bounds, crs grid mapping)
    and provenance; readable by xarray and netCDF4. Only days the product
    lists as complete are exported. A file is replaced whole.
    """
    from smci_dask.io import Store, store_from_config
    from smci_dask.products.export import EXPORT_RELPATH, export_netcdf
    from smci_dask.products.smci1km import PRODUCT_1KM_RELPATH
    from smci_dask.products.smci9km import PRODUCT_9KM_RELPATH

    cfg = state.config({"store": {"root": store_url}} if store_url is not None else None)
    store = store_from_config(cfg)
    out = Store.from_url(out_url, cfg.store.storage_options or None) if out_url is not None else None
    relpath = PRODUCT_1KM_RELPATH if product == "1km" else PRODUCT_9KM_RELPATH
    default_out = EXPORT_RELPATH if product == "1km" else EXPORT_RELPATH.replace("smci_1km", "smci_9km")
    urls = export_netcdf(
        store,
        start=start,
        end=end,
        period=period,
        relpath=relpath,
        out=out,
        out_relpath="" if out is not None else default_out,
        echo=click.echo,
        label=product,
    )
    click.echo(f"{len(urls)} file(s) written")


@click.group("diagnose")
def diagnose_group() -> None:
    """Diagnostics of the products (maps and tables a scientist checks a product with)."""


@diagnose_group.command("partial-corr")
@click.option("--depth", type=click.IntRange(10, 100), default=10, show_default=True, help="Product depth (cm).")
@click.option(
    "--period",
    type=click.Choice(["year", "month", "day"]),
    default="year",
    show_default=True,
    help="Periods the series are aggregated to (the paper: years; the synthetic worlds' 2-3 years need months).",
)
@click.option("--start", default=None, metavar="DATE", help="First day [default: the product's first complete day].")
@click.option("--end", default=None, metavar="DATE", help="Last day, inclusive [default: the product's last complete day].")
@click.option("--store", "store_url", default=None, help="Root URL of the stores (config store.root) [default: from the config].")
@click.pass_obj
def partial_corr_cmd(state: _State, depth: int, period: str, start: str | None, end: str | None, store_url: str | None) -> None:
    """Partial correlation per cell of soil moisture with precipitation, air temperature and radiation (SMCI1.0 Fig. 10).

    \b
    For our 1 km product and for ERA5-Land (its layer of the depth,
    matching.layers), each driver given the other two, over whole periods of
    the complete days of STORE/product/smci_1km. Writes
    STORE/reports/diagnostics/partial_corr_<depth>cm_<period>.nc (the maps) and .png
    (two rows: ours, ERA5-Land; one map per driver) and prints the median per map.
    """
    import tempfile
    import warnings
    from pathlib import Path

    import numpy as np

    from smci_dask.grid import grid_for
    from smci_dask.io import store_from_config
    from smci_dask.products.partial_corr import DRIVERS, partial_correlation_maps, render_partial_correlation

    cfg = state.config({"store": {"root": store_url}} if store_url is not None else None)
    store = store_from_config(cfg)
    grid = grid_for(cfg.region.name, cfg.region.bbox)
    layer = int(cfg.matching.layers[depth])
    freq = {"year": "YS", "month": "MS", "day": None}[period]
    maps = partial_correlation_maps(store, grid, depth_cm=depth, layer=layer, freq=freq, start=start, end=end)
    name = f"reports/diagnostics/partial_corr_{depth}cm_{period}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "maps.nc"
        maps.to_netcdf(local)
        store.put_file(local, f"{name}.nc")
    store.write_bytes(f"{name}.png", render_partial_correlation(maps))
    span = f"{maps.attrs['first_day']}..{maps.attrs['last_day']}"
    click.echo(f"partial correlation at {depth} cm over {maps.attrs['periods']} {period} period(s), {span}")
    for v, (_, label) in DRIVERS.items():
        with warnings.catch_warnings():  # a map without any value (a dry spell's precipitation) has no median: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            ours, era = (float(np.nanmedian(maps[f"{k}_{v}"].values)) for k in ("smci", "era5land"))
        click.echo(f"  with {label:16s} median ours {ours:+.2f}  ERA5-Land (layer {layer}) {era:+.2f}")
    click.echo(f"-> {store.url_of(name + '.nc')}, {store.url_of(name + '.png')}")
