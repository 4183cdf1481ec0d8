"""`smci demo`: the synthetic world plus every stage that exists, on the configured cluster.

Each later stage adds itself to :data:`STAGES` here (wiring only; the stage
code lives in its own subpackage).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from smci_dask import __version__
from smci_dask.config import Config
from smci_dask.io import Store, store_from_config

Echo = Callable[[str], None]

#: Sub-folder of store.root that receives the synthetic inputs.
INPUTS = "inputs"


def run_demo(cfg: Config, *, region: str, seed: int | None = None, echo: Echo = print) -> str:
    """Build the synthetic world below ``cfg.store.root``/inputs and run the existing stages.

    Returns a short text summary (counts, wall time per stage, paths).
    """
    from smci_dask.cluster import cluster_client, cluster_info, format_cluster_info
    from smci_dask.grid import get_region
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
        fresh = manifest is None
        if manifest is not None:
            echo(f"[synth] the synthetic world '{region}' in {inputs.url} is up to date (same region, years, seed): kept")
        else:
            echo(f"[synth] writing the synthetic world '{region}' ({preset.description}) to {inputs.url}")
            manifest = make_world(inputs, region=region, years=years, seed=seed, progress=lambda m: echo(f"[synth]   {m}"))
        timings["synth"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        counts = _ingest_era5land(cfg, root, inputs, echo, fresh=fresh)
        timings["ingest era5land"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        counts.update(_ingest_static_lai(root, inputs, region, echo))
        timings["ingest static+lai"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        counts.update(_ingest_stations(cfg, root, inputs, echo))
        timings["stations qc+targets"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        counts.update(_training_table(root, region, echo))
        timings["training table"] = time.perf_counter() - t0

    return _summary(root.url, manifest, timings, counts)


def _ingest_era5land(cfg: Config, root: Store, inputs: Store, echo: Echo, *, fresh: bool) -> dict[str, Any]:
    """The world's hourly ERA5-Land files -> STORE/covariates/era5land; the report's counts.

    A freshly written world replaces the cube of an earlier one (its days
    would otherwise be skipped as already present).
    """
    from smci_dask.pipeline.ingest import ERA5LAND_RELPATH, STATE_SUFFIX, ingest_era5land
    from smci_dask.synthetic.world import ERA5_DIR

    if fresh:
        root.rm(ERA5LAND_RELPATH)
        root.rm(ERA5LAND_RELPATH + STATE_SUFFIX)
    source = inputs.url_of(ERA5_DIR) + "/*.nc"
    echo(f"[ingest] ERA5-Land {source} -> {root.url_of(ERA5LAND_RELPATH)}")
    report = ingest_era5land(cfg, [source], store=root, progress=lambda m: echo(f"[ingest]   {m}"))
    for day, reason in sorted(report.held_back.items()):
        echo(f"[ingest]   held back {day:%Y-%m-%d}: {reason}")
    return {
        "era5land days written": len(report.written),
        "era5land days skipped": len(report.skipped),
        "era5land days held back": len(report.held_back),
    }


def _ingest_static_lai(root: Store, inputs: Store, region: str, echo: Echo) -> dict[str, Any]:
    """The world's static GeoTIFFs and LAI composites -> covariates/static(+_coarse) and covariates/lai."""
    from smci_dask.covariates import ingest_lai, ingest_static
    from smci_dask.grid import grid_for
    from smci_dask.synthetic.world import LAI_DIR, STATIC_DIR

    grid = grid_for(region)
    static = ingest_static(inputs.url_of(STATIC_DIR), root, grid)
    echo(f"[ingest] {static.summary()}")
    lai = ingest_lai(inputs.url_of(LAI_DIR) + "/*.tif", root, grid)
    echo(f"[ingest] {lai.summary()}")
    return {"lai composites stored": len(lai.written) + len(lai.skipped)}


def _ingest_stations(cfg: Config, root: Store, inputs: Store, echo: Echo) -> dict[str, Any]:
    """The world's ISMN files -> QC -> daily cell targets -> ERA5-Land matching (STORE/insitu)."""
    from smci_dask.pipeline.stations import ingest_stations, match_targets, qc_with_saturation
    from smci_dask.synthetic.world import ISMN_DIR

    report = ingest_stations(
        cfg, inputs.url_of(ISMN_DIR), fmt="ismn", store=root, qc=qc_with_saturation, progress=lambda m: echo(f"[stations] {m}")
    )
    echo("[stations] " + report.summary().replace("\n", "\n[stations] "))
    matched = match_targets(cfg, root)
    echo("[stations] " + matched.summary().replace("\n", "\n[stations] "))
    share = report.rows_kept / max(report.hourly_rows, 1)
    return {"sm hourly rows": report.hourly_rows, "QC share kept": f"{share:.1%}", "target cell-layer-days": report.cell_days}


def _training_table(root: Store, region: str, echo: Echo) -> dict[str, Any]:
    """Features at every station cell-day-depth with a target -> STORE/training/table."""
    from smci_dask.grid import grid_for
    from smci_dask.training import build_training_table, write_training_table

    table = build_training_table(root, grid_for(region))
    write_training_table(table, root)
    echo(f"[table] {len(table)} rows (cell-day-depths with a target) x {table.shape[1]} columns -> {root.url_of('training/table')}")
    return {"training rows": len(table)}


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
    lines.append("stages not built yet: model search, evaluation, inference, products, report")
    return "\n".join(lines)
