"""The synthetic world: the embedded default and the test fixture (DESIGN.md section 5)."""

from __future__ import annotations

from smci_dask.synthetic.world import load_manifest, make_world

__all__ = ["load_manifest", "make_world"]
