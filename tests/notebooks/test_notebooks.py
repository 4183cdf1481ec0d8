"""The notebooks: committed without outputs, and each runs top to bottom against a local cluster.

They run against the session's ``smci demo --region tiny`` store (fixture
``tiny_demo``): the stages they call are then up to date and skip themselves,
so the test checks the notebooks' own code (the API calls, the plots) and
the demo's outputs. On a fresh store the same notebooks run every stage. The
notebooks read ``SMCI_NOTEBOOK_STORE`` and ``SMCI_NOTEBOOK_REGION`` from the
environment (defaults: ``./smci-notebooks``, ``tiny``).
"""

from __future__ import annotations

import json
import shutil
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
def test_notebook_runs_top_to_bottom(
    path: Path, tiny_demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = tiny_demo[0]
    if path.name.startswith("04"):  # the refresh writes: on a copy, so that the session's demo store stays as the demo left it
        store = tmp_path_factory.mktemp("nb04") / "store"
        shutil.copytree(tiny_demo[0], store)
    monkeypatch.setenv("SMCI_NOTEBOOK_STORE", str(store))
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
    if path.name.startswith("04"):
        # a real refresh happened: the demo's held-back month was ingested and its days predicted, and logged
        logs = sorted((store / "refresh" / "log").glob("*.json"))
        assert len(logs) == 1, logs
        record = json.loads(logs[0].read_text())
        assert record["days_added"] and "era5land_2020_12.nc" in json.dumps(record["inputs"])
