"""pyproject.toml and environment.yml list the same packages with the same bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: PyPI name -> conda-forge name, where they differ.
PYPI_TO_CONDA = {"xgboost-cpu": "py-xgboost-cpu", "xgboost": "py-xgboost-cpu", "eccodes": "python-eccodes", "netcdf4": "netcdf4"}
#: conda-only entries that come with a PyPI extra (moto[server] needs flask + flask-cors) or the toolchain.
CONDA_ONLY = {"python", "pip", "flask", "flask-cors"}


def _split(req: str) -> tuple[str, str]:
    req = req.split(";")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    out: dict[str, str] = {}
    for r in reqs:
        name, spec = _split(r)
        out[PYPI_TO_CONDA.get(name, name)] = spec
    return out


def _conda() -> dict[str, str]:
    data = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in data["dependencies"]:
        assert isinstance(dep, str), f"environment.yml: unexpected entry {dep!r} (no pip section: everything from conda-forge)"
        name, spec = _split(dep)
        if name not in CONDA_ONLY:
            out[name] = spec
    return out


def test_same_packages_and_bounds():
    py, conda = _pyproject(), _conda()
    assert sorted(py) == sorted(conda), (
        f"only in pyproject: {sorted(set(py) - set(conda))}; only in environment.yml: {sorted(set(conda) - set(py))}"
    )
    differ = {k: (py[k], conda[k]) for k in py if py[k] != conda[k]}
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_every_dependency_has_bounds():
    for name, spec in _pyproject().items():
        assert ">=" in spec and "<" in spec.replace("<=", ""), f"{name}: give a tested lower and an upper bound, got {spec!r}"


def test_conda_channel_is_conda_forge():
    data = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert data["channels"][0] == "conda-forge"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    # the system packages of the `cluster` tests first (apt-get; the tests themselves download nothing), then the README's command
    assert ci == ["bash deploy/slurm-local/install-packages.sh", "make test"]
    assert "make test" in readme and "make demo" in readme
