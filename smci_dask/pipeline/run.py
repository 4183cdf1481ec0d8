"""`smci run`: the whole chain for a configuration, stage by stage, resumable.

The stages, in order (:data:`STAGE_NAMES`), each a thin call into its own
subpackage; what each depends on is listed in its ``inputs`` so that
:func:`smci_dask.pipeline.stages.run_stages` can skip it when nothing it
depends on changed:

``era5land``  hourly ERA5-Land files (``inputs.era5land``) -> ``covariates/era5land``
``static``    static rasters (``inputs.static``) -> ``covariates/static`` (+ 0.1 degree aggregates)
``lai``       MODIS LAI composites (``inputs.lai``) -> ``covariates/lai``
``stations``  station files (``inputs.stations``) -> QC -> daily cell targets -> ERA5-Land matching (``insitu/``)
``table``     features at every station cell-day-depth -> ``training/table``
``train``     per-depth search and final models -> ``models/<run>/final`` (:mod:`smci_dask.pipeline.train`)
``evaluate``  the year and station experiments, scored against in-situ data beside ERA5-Land -> ``reports/<run>``
``predict``   the final models over the 1 km grid for the last ``inference.last_days`` days -> ``product/smci_1km``

Later stages (training, evaluation, inference, products, report) are added to
:func:`pipeline_stages` as they land.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smci_dask.config import Config
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store
from smci_dask.pipeline.stages import Stage, StageOutcome, check_names, file_listing, run_stages

Echo = Callable[[str], None]


@dataclass
class RunContext:
    """What every stage gets: the settings, the store root, the grid, the cluster's client and a printer."""

    cfg: Config
    store: Store
    grid: GridSpec
    client: Any = None
    echo: Echo = print
    #: The synthetic world's store when the inputs are synthetic (the demo): maps are then scored against its truth.
    truth: Store | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def _listing(ctx: RunContext, sources: Sequence[str]) -> list[list[Any]]:
    inputs = Store.from_url(ctx.store.url, ctx.cfg.inputs.storage_options or ctx.cfg.store.storage_options)
    return file_listing(inputs, sources)


def _region(ctx: RunContext) -> dict[str, Any]:
    return {"region": ctx.cfg.region.model_dump(mode="json"), "years": ctx.cfg.years}


def _say(ctx: RunContext, tag: str) -> Callable[[str], None]:
    return lambda message: ctx.echo(f"[{tag}]   {message}")


def _need(sources: Sequence[str], key: str) -> None:
    from smci_dask.errors import ConfigError

    if not sources:
        raise ConfigError(f"{key} is empty: list the input files, folders or globs in your config (see `smci config show`)")


# --------------------------------------------------------------------------------------------- stages


def _era5land(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.pipeline.ingest import ingest_era5land

    _need(ctx.cfg.inputs.era5land, "inputs.era5land")
    report = ingest_era5land(ctx.cfg, list(ctx.cfg.inputs.era5land), store=ctx.store, progress=_say(ctx, "era5land"))
    for day, reason in sorted(report.held_back.items()):
        ctx.echo(f"[era5land]   held back {day:%Y-%m-%d}: {reason}")
    return {"era5land days written": len(report.written), "era5land days held back": len(report.held_back)}


def _static(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.covariates import ingest_static

    _need(ctx.cfg.inputs.static, "inputs.static")
    sources = ctx.cfg.inputs.static
    where = sources[0] if len(sources) == 1 else list(sources)
    report = ingest_static(where, ctx.store, ctx.grid, storage_options=ctx.cfg.inputs.storage_options)
    ctx.echo(f"[static]   {report.summary()}")
    return {"static layers": len(report.layers), "land cells (1 km)": report.land_cells}


def _lai(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.covariates import ingest_lai

    _need(ctx.cfg.inputs.lai, "inputs.lai")
    report = ingest_lai(list(ctx.cfg.inputs.lai), ctx.store, ctx.grid, storage_options=ctx.cfg.inputs.storage_options)
    ctx.echo(f"[lai]   {report.summary()}")
    return {"lai composites stored": len(report.written) + len(report.skipped)}


def _stations(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.pipeline.stations import ingest_stations, match_targets, qc_with_saturation

    st = ctx.cfg.inputs.stations
    _need(st.paths, "inputs.stations.paths")
    report = ingest_stations(
        ctx.cfg,
        list(st.paths),
        fmt=st.format,
        store=ctx.store,
        qc=qc_with_saturation,
        progress=_say(ctx, "stations"),
        storage_options=ctx.cfg.inputs.storage_options,
    )
    ctx.echo("[stations]   " + report.summary().replace("\n", "\n[stations]   "))
    matched = match_targets(ctx.cfg, ctx.store)
    ctx.echo("[stations]   " + matched.summary().replace("\n", "\n[stations]   "))
    share = report.rows_kept / max(report.hourly_rows, 1)
    return {"sm hourly rows": report.hourly_rows, "QC share kept": round(share, 4), "target cell-layer-days": report.cell_days}


def _table(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.training import build_training_table, write_training_table

    table = build_training_table(ctx.store, ctx.grid, interpolation=ctx.cfg.inference.interpolation)
    write_training_table(table, ctx.store)
    ctx.echo(f"[table]   {len(table)} rows x {table.shape[1]} columns -> {ctx.store.url_of('training/table')}")
    return {"training rows": len(table)}


def _train(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.pipeline.train import choose_run, train_final

    run = choose_run(ctx.store, ctx.cfg)
    report = train_final(ctx.cfg, ctx.store, run=run, client=ctx.client, echo=ctx.echo)
    ctx.echo("[train]   " + report.summary().replace("\n", "\n[train]   "))
    out: dict[str, Any] = {"model run": run, "model search": f"profile {ctx.cfg.model.search.profile}, cv {ctx.cfg.model.search.cv}"}
    for d, r in sorted(report.depths.items()):
        rmse = ", ".join(f"{m} {v['rmse_mean']:.4f}" for m, v in r.cv.items())
        out[f"model {d} cm"] = f"max_features {r.params['max_features']}, min_samples_leaf {r.params['min_samples_leaf']}; CV RMSE {rmse}"
    return out


def _evaluate(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.evaluation.report import headline
    from smci_dask.pipeline.evaluate import evaluate

    report = evaluate(ctx.cfg, ctx.store, client=ctx.client, echo=_say(ctx, "evaluate"))
    ctx.echo("[evaluate]   " + report.summary().replace("\n", "\n[evaluate]   "))
    out: dict[str, Any] = {"evaluation report": report.report}
    for row in headline(report.scores).itertuples(index=False):
        out[f"{row.experiment} {row.depth}"] = (
            f"ubRMSE ours {row.ubrmse_smci:.4f} vs ERA5-Land {row.ubrmse_era5land:.4f}; R ours {row.r_smci:.3f} vs {row.r_era5land:.3f}"
        )
    return out


def _predict(ctx: RunContext) -> dict[str, Any]:
    from smci_dask.inference.mapping import resolve_run
    from smci_dask.inference.recent import predict_recent
    from smci_dask.io import open_zarr, zarr_exists
    from smci_dask.products import PRODUCT_1KM_RELPATH

    # new final models (the train stage ran again with other settings or data): the old product is out of date
    run = resolve_run(ctx.store, None, ctx.cfg.inference.experiment)
    if zarr_exists(ctx.store, PRODUCT_1KM_RELPATH):
        made_with = open_zarr(ctx.store, PRODUCT_1KM_RELPATH).attrs.get("model_run")
        if made_with != run:
            ctx.echo(f"[predict]   the product was made with model run {made_with!r}, the final models are now {run!r}: rebuilding it")
            ctx.store.rm("product")
    from smci_dask.products.smci9km import METHOD_ATTR, PRODUCT_9KM_RELPATH

    if zarr_exists(ctx.store, PRODUCT_9KM_RELPATH):  # inference.product_9km changed: the 9 km product is made again the new way
        have = open_zarr(ctx.store, PRODUCT_9KM_RELPATH).attrs.get(METHOD_ATTR, "mean_of_1km")
        if have != ctx.cfg.inference.product_9km:
            ctx.echo(
                f"[predict]   the 9 km product was made by {have!r}, the setting asks for {ctx.cfg.inference.product_9km!r}: rebuilding it"
            )
            ctx.store.rm(PRODUCT_9KM_RELPATH)
    return predict_recent(ctx.cfg, ctx.store, truth_store=ctx.truth, client=ctx.client, echo=_say(ctx, "predict"))


def _settings(ctx: RunContext, *sections: str) -> dict[str, Any]:
    data = ctx.cfg.to_dict(mask_secrets=True)
    return {s: data.get(s) for s in sections}


def pipeline_stages() -> list[Stage]:
    """The stages of `smci run`, in order (the demo runs the same list).

    A new stage goes here: ``Stage(name, doc, run(ctx) -> figures, inputs(ctx) -> fingerprint material)``.
    """
    return [
        Stage(
            "era5land",
            "hourly ERA5-Land -> daily cube",
            _era5land,
            lambda c: {**_region(c), "files": _listing(c, c.cfg.inputs.era5land)},
        ),
        Stage("static", "static rasters -> 1 km layers", _static, lambda c: {**_region(c), "files": _listing(c, c.cfg.inputs.static)}),
        Stage("lai", "MODIS LAI -> 1 km composites", _lai, lambda c: {**_region(c), "files": _listing(c, c.cfg.inputs.lai)}),
        Stage(
            "stations",
            "stations -> QC -> daily targets -> matching",
            _stations,
            lambda c: {
                **_region(c),
                "format": c.cfg.inputs.stations.format,
                "files": _listing(c, c.cfg.inputs.stations.paths),
                **_settings(c, "matching", "insitu"),
            },
        ),
        Stage("table", "training table", _table, lambda c: {"interpolation": c.cfg.inference.interpolation}),
        Stage("train", "per-depth search + final models", _train, lambda c: {"model": _settings(c, "model")["model"]}),
        Stage(
            "evaluate",
            "year-to-year and station-to-station experiments -> reports/<run>/evaluation.md",
            _evaluate,
            lambda c: _settings(c, "experiments", "evaluation", "model", "matching"),
        ),
        Stage(
            "predict",
            "final models over the 1 km grid -> product/smci_1km (+ 9 km mean, map figure)",
            _predict,
            lambda c: {**_settings(c, "inference"), "truth": c.truth.url if c.truth is not None else None},
        ),
    ]


#: The stage names, in order (for `--from` / `--only` and the docs).
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in pipeline_stages())


def run_pipeline(
    cfg: Config,
    *,
    start: str | None = None,
    only: Sequence[str] | None = None,
    force: bool = False,
    echo: Echo = print,
    client: Any = None,
    truth: Store | None = None,
) -> list[StageOutcome]:
    """Run the stages of :func:`pipeline_stages` for ``cfg`` on the configured cluster (or ``client``)."""
    from smci_dask.cluster import cluster_client, cluster_info, format_cluster_info
    from smci_dask.grid import grid_for
    from smci_dask.io import store_from_config

    stages = pipeline_stages()
    if only:
        check_names(stages, only, "--only")
    store = store_from_config(cfg)
    store.check_reachable()
    grid = grid_for(cfg.region.name, cfg.region.bbox)

    def go(c: Any) -> list[StageOutcome]:
        ctx = RunContext(cfg=cfg, store=store, grid=grid, client=c, echo=echo, truth=truth)
        return run_stages(stages, ctx, store, start=start, only=only, force=force, echo=echo)

    if client is not None:
        return go(client)
    with cluster_client(cfg) as c:
        echo("cluster:")
        echo(format_cluster_info(cluster_info(c)))
        return go(c)


def outcome_table(outcomes: Sequence[StageOutcome]) -> str:
    """One line per stage: status, seconds, its figures."""
    lines = []
    for o in outcomes:
        figures = ", ".join(f"{k} {v}" for k, v in o.result.items())
        lines.append(f"  {o.name:<10} {o.status:<13} {o.seconds:7.1f} s  {figures}")
    return "\n".join(lines)


def counts_of(outcomes: Sequence[StageOutcome]) -> Mapping[str, Any]:
    """Every stage's figures in one dict (later stages win on equal keys)."""
    out: dict[str, Any] = {}
    for o in outcomes:
        out.update(o.result)
    return out
