"""`smci demo`: the synthetic world plus every stage that exists, on the configured cluster.

Each later stage adds itself to :data:`STAGES` here (wiring only; the stage
code lives in its own subpackage).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from smci_dask.config import Config
from smci_dask.io import store_from_config

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
        echo(f"[synth] writing the synthetic world '{region}' ({preset.description}) to {root.url_of(INPUTS)}")
        manifest = make_world(
            root.child(INPUTS),
            region=region,
            years=years,
            seed=cfg.synthetic.seed if seed is None else seed,
            progress=lambda m: echo(f"[synth]   {m}"),
        )
        timings["synth"] = time.perf_counter() - t0

    return _summary(root.url, manifest, timings)


def _summary(root_url: str, manifest: dict[str, Any], timings: dict[str, float]) -> str:
    lines = ["", "smci demo summary", "-----------------", f"store: {root_url}"]
    lines.append("data:")
    lines += [f"  {k:<24} {v}" for k, v in manifest.get("counts", {}).items()]
    lines.append("wall time per stage:")
    lines += [f"  {k:<24} {v:7.1f} s" for k, v in timings.items()]
    lines.append(f"  {'total':<24} {sum(timings.values()):7.1f} s")
    lines.append("stages not built yet: ingest, qc/targets, table, search, evaluate, predict, products, report")
    return "\n".join(lines)
