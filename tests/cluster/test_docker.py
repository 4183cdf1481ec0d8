"""deploy/docker: the image recipe (read as text: there is no Docker engine here) and its entrypoint (run for real)."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
SECRETISH = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def of(kind: str) -> list[str]:
    return [rest for word, rest in instructions() if word == kind]


def test_image_is_built_from_environment_yml() -> None:
    copies = of("COPY")
    assert "environment.yml /tmp/environment.yml" in copies
    (install,) = [r for r in of("RUN") if "micromamba install" in r and "--file /tmp/environment.yml" in r]
    assert "--name base" in install  # into the activated environment, whatever environment.yml's name says
    assert of("FROM") == ["${MICROMAMBA_IMAGE}"] and any(a.startswith("MICROMAMBA_IMAGE=mambaorg/micromamba:") for a in of("ARG"))
    # the package goes in without dependencies: everything comes from environment.yml
    assert any("pip install --no-deps" in r for r in of("RUN"))


def test_runs_as_a_numeric_non_root_user() -> None:
    uid = next(a.split("=", 1)[1] for a in of("ARG") if a.startswith("SMCI_UID="))
    assert uid.isdigit() and int(uid) > 0
    last_user = of("USER")[-1]
    assert last_user == "${SMCI_UID}:${SMCI_UID}"
    assert any('useradd --uid "${SMCI_UID}"' in r for r in of("RUN"))


def test_no_credentials_baked_in() -> None:
    for kind in ("ENV", "ARG", "LABEL"):
        for rest in of(kind):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
            assert not any(SECRETISH.search(n) for n in names), f"{kind} {rest}: looks like a credential"
    for rest in of("COPY") + of("ADD"):
        assert not re.search(r"\.env\b|\.aws|\.kube|credentials|\.pem|id_rsa", rest), rest
    text = DOCKERFILE.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes (enough for this file's patterns)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or fnmatch.fnmatch(path, pat.replace("**/", "*/")):
            ignored = not negate
    return ignored


def test_dockerignore_sends_what_the_build_copies_and_nothing_secret() -> None:
    patterns = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    sources = [src for rest in of("COPY") if not rest.startswith("--from") for src in rest.split()[:-1] if not src.startswith("--")]
    assert sources
    for src in sources:
        assert not _ignored(src.rstrip("/"), patterns), f"{src} is copied but excluded from the build context"
    assert not _ignored("smci_dask/cluster/factory.py", patterns)
    for private in (".venv/bin/python", ".git/config", ".env", "smci-data/x.zarr", "tests/conftest.py", ".aws/credentials"):
        assert _ignored(private, patterns), f"{private} would be sent to the Docker daemon"


@pytest.fixture
def fake_programs(tmp_path: Path) -> dict[str, str]:
    """`smci`, `dask` and `jupyter` on PATH that print their name and arguments."""
    for name in ("smci", "dask", "jupyter"):
        path = tmp_path / name
        path.write_text(f'#!/bin/sh\necho "{name} $*"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        (["run"], "smci run"),
        (["--config", "/etc/smci/smci.yaml", "run", "--from", "table"], "smci --config /etc/smci/smci.yaml run --from table"),
        ([], "smci "),
        (["dask", "worker", "--name", "w-1"], "dask worker --name w-1"),  # deploy/kubernetes/daskcluster.yaml
        (["jupyter", "lab", "--ip=0.0.0.0"], "jupyter lab --ip=0.0.0.0"),  # deploy/kubernetes/jupyter.yaml
    ],
)
def test_entrypoint_dispatch(args: list[str], runs: str, fake_programs: dict[str, str]) -> None:
    out = subprocess.run(["sh", str(DOCKER / "entrypoint.sh"), *args], capture_output=True, text=True, env=fake_programs, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == runs + "\n"


def test_entrypoint_is_the_image_entrypoint() -> None:
    assert "deploy/docker/entrypoint.sh /usr/local/bin/smci-entrypoint" in of("COPY")
    (entrypoint,) = of("ENTRYPOINT")
    assert entrypoint == '["/usr/local/bin/_entrypoint.sh", "/usr/local/bin/smci-entrypoint"]'
