"""`smci demo`: the synthetic world plus every stage that exists, on the configured cluster.

The demo writes the world, points the config's ``inputs`` at its files and
runs :func:`smci_dask.pipeline.run.run_pipeline`: a stage added to
``pipeline_stages()`` in ``pipeline/run.py`` is in the demo too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from smci_dask import __version__
from smci_dask.config import Config, InputsConfig, StationInputConfig
from smci_dask.io import Store, store_from_config

Echo = Callable[[str], None]

#: Sub-folder of store.root that receives the synthetic inputs.
INPUTS = "inputs"
#: The demo maps the last 90 days, in 64-cell tiles so that a small region still makes parallel tasks.
DEMO_INFERENCE = {"last_days": 90, "tile_size": 64}
#: How the demo's experiments get their parameters: the final models' (`experiments.reuse_params: final`), not a
#: search of their own per experiment and depth (the paper's way, `smci demo --experiment-params search`). The
#: searches were ~40 % of the small demo's evaluate stage; the experiments still train their own models.
DEMO_EXPERIMENT_PARAMS = "final"
#: The world's last monthly ERA5-Land files the demo leaves out of its run: the material of a first `smci refresh`.
HELD_BACK_MONTHS = 1


def run_demo(
    cfg: Config, *, region: str, seed: int | None = None, echo: Echo = print, experiment_params: str = DEMO_EXPERIMENT_PARAMS
) -> str:
    """Build the synthetic world below ``cfg.store.root``/inputs and run `smci run`'s stages on it.

    The world's files become the config's ``inputs``; the stages are
    :func:`smci_dask.pipeline.run.pipeline_stages` (add a new stage there, not
    here). A second demo on the same store keeps the world and skips every
    stage that is up to date. Returns a short text summary (counts, wall time
    per stage, paths). ``experiment_params``: ``experiments.reuse_params`` of
    the run (:func:`demo_config`).
    """
    from smci_dask.cluster import cluster_client, cluster_info, format_cluster_info
    from smci_dask.grid import get_region
    from smci_dask.pipeline.run import run_pipeline
    from smci_dask.synthetic import make_world

    root = store_from_config(cfg)
    root.check_reachable()
    timings: dict[str, float] = {}
    preset = get_region(region)
    years = cfg.years or preset.years

    with cluster_client(cfg) as client:
        echo("cluster:")
        echo(format_cluster_info(cluster_info(client)))

        t0 = time.perf_counter()
        seed = cfg.synthetic.seed if seed is None else seed
        inputs = root.child(INPUTS)
        manifest = _existing_world(inputs, region=region, years=years, seed=seed)
        if manifest is not None:
            echo(f"[synth] the synthetic world '{region}' in {inputs.url} is up to date (same region, years, seed): kept")
        else:
            _clear_derived(root, echo)
            echo(f"[synth] writing the synthetic world '{region}' ({preset.description}) to {inputs.url}")
            manifest = make_world(inputs, region=region, years=years, seed=seed, progress=lambda m: echo(f"[synth]   {m}"))
        timings["synth"] = time.perf_counter() - t0

        run_cfg = demo_config(cfg, region, inputs, experiment_params=experiment_params)
        outcomes = run_pipeline(run_cfg, echo=echo, client=client, truth=inputs)

    counts: dict[str, Any] = {}
    for o in outcomes:
        timings[o.name + ("" if o.status == "ran" else f" ({o.status})")] = o.seconds if o.status == "ran" else 0.0
        counts.update(o.result)
    held = held_back_era5land(inputs)
    if held:
        counts["held back for a refresh"] = " ".join(held)
        env = "" if region == cfg.region.name else f"SMCI__REGION__NAME={region} "
        counts["then try"] = f"{env}smci refresh --store {root.url} --era5land {held[0]}"
    return _summary(root.url, manifest, timings, counts)


def demo_config(cfg: Config, region: str, inputs: Store, *, experiment_params: str = DEMO_EXPERIMENT_PARAMS) -> Config:
    """``cfg`` as the demo runs it: the region, ``inputs`` pointing at the world in ``inputs``, the demo's inference settings.

    ``experiment_params``: ``experiments.reuse_params`` (default
    :data:`DEMO_EXPERIMENT_PARAMS`: the experiments reuse the final models'
    parameters; ``'search'``: each searches its own).

    A notebook that builds its config with this function on the demo's store
    finds every stage the demo ran up to date.
    """
    return cfg.model_copy(
        update={
            "region": cfg.region.model_copy(update={"name": region}),
            "inputs": demo_inputs(cfg, inputs),
            "inference": cfg.inference.model_copy(update=DEMO_INFERENCE),
            "experiments": cfg.experiments.model_copy(update={"reuse_params": experiment_params}),
        }
    )


def demo_inputs(cfg: Config, inputs: Store) -> InputsConfig:
    """The ``inputs`` settings that point `smci run` at the synthetic world in ``inputs``.

    ERA5-Land is every monthly file of the world but the last
    :data:`HELD_BACK_MONTHS` (:func:`held_back_era5land`): those are left for
    a refresh to bring in, as a new month from the CDS would be.
    """
    from smci_dask.synthetic.world import ISMN_DIR, LAI_DIR, STATIC_DIR

    held = set(held_back_era5land(inputs))
    return InputsConfig(
        era5land=[url for url in _era5land_files(inputs) if url not in held],
        static=[inputs.url_of(STATIC_DIR)],
        lai=[inputs.url_of(LAI_DIR) + "/*.tif"],
        stations=StationInputConfig(paths=[inputs.url_of(ISMN_DIR)], format="ismn"),
        storage_options=dict(cfg.store.storage_options),
    )


def _era5land_files(inputs: Store) -> list[str]:
    """URLs of the world's monthly ERA5-Land NetCDF files, oldest first (from its manifest; the folder's glob before a world exists)."""
    from smci_dask.synthetic import load_manifest
    from smci_dask.synthetic.world import ERA5_DIR, MANIFEST

    if not inputs.exists(MANIFEST):
        return [inputs.url_of(ERA5_DIR) + "/*.nc"]
    return [inputs.url_of(p) for p in sorted(load_manifest(inputs)["files"]["era5land"])]


def held_back_era5land(inputs: Store) -> list[str]:
    """The world's last :data:`HELD_BACK_MONTHS` ERA5-Land files, which the demo's run leaves out for `smci refresh`.

    After ``smci demo``, ``smci refresh --store STORE --era5land URL`` (or
    :func:`smci_dask.pipeline.refresh.refresh` with ``era5land=[URL]``)
    ingests that month and predicts its days, as a scheduled refresh would
    with a newly published month.
    """
    files = _era5land_files(inputs)
    return files[-HELD_BACK_MONTHS:] if len(files) > HELD_BACK_MONTHS and not files[0].endswith("*.nc") else []


def _clear_derived(root: Store, echo: Echo) -> None:
    """Remove every store derived from an earlier world (all of ``root`` but ``inputs/``) before a new world is written."""
    for name in root.ls():
        if name != INPUTS:
            echo(f"[synth] removing {root.url_of(name)} (made from an earlier world)")
            root.rm(name)


def _existing_world(inputs: Store, *, region: str, years: tuple[int, int], seed: int) -> dict[str, Any] | None:
    """The manifest of a complete world already in ``inputs`` with the same settings, else None.

    ``world.json`` is written last, so its presence means the world is whole.
    """
    from smci_dask.synthetic import load_manifest
    from smci_dask.synthetic.world import MANIFEST

    if not inputs.exists(MANIFEST):
        return None
    m = load_manifest(inputs)
    same = m.get("region") == region and m.get("years") == list(years) and m.get("seed") == seed and m.get("code_version") == __version__
    return m if same else None


def _summary(root_url: str, manifest: dict[str, Any], timings: dict[str, float], counts: dict[str, Any] | None = None) -> str:
    lines = ["", "smci demo summary", "-----------------", f"store: {root_url}"]
    lines.append("data:")
    lines += [f"  {k:<24} {v}" for k, v in {**manifest.get("counts", {}), **(counts or {})}.items()]
    lines.append("wall time per stage:")
    lines += [f"  {k:<24} {v:7.1f} s" for k, v in timings.items()]
    lines.append(f"  {'total':<24} {sum(timings.values()):7.1f} s")
    return "\n".join(lines)
