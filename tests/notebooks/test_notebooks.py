"""The notebooks: committed without outputs, and each runs top to bottom against a local cluster.

They run against the session's ``smci demo --region tiny`` store (fixture
``tiny_demo``): the stages they call are then up to date and skip themselves,
so the test checks the notebooks' own code (the API calls, the plots) and
the demo's outputs. On a fresh store the same notebooks run every stage. The
notebooks read ``SMCI_NOTEBOOK_STORE`` and ``SMCI_NOTEBOOK_REGION`` from the
environment (defaults: ``./smci-notebooks``, ``tiny``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_the_four_notebooks() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"], NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {i} has outputs: strip them"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tiny_demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMCI_NOTEBOOK_STORE", str(tiny_demo[0]))
    monkeypatch.setenv("SMCI_NOTEBOOK_REGION", "tiny")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:  # the cell's source and traceback, not nbclient's internals
        pytest.fail(f"{path.name} failed:\n{exc}")
    # every code cell ran, in order
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
