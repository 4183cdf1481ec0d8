"""deploy/jobqueue without a batch system: the driver scripts' wiring and the example run config.

The SLURM driver also runs for real on the one-node SLURM (test_slurm.py);
there is no PBS here, so the PBS driver runs as a plain script with a stand-in
``smci`` that prints what it was started with. The jobqueue.yaml job scripts
are checked in test_factory.py.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from smci_dask.config import load_config

REPO = Path(__file__).resolve().parents[2]
JOBQUEUE = REPO / "deploy" / "jobqueue"
DRIVERS = {"slurm": JOBQUEUE / "smci-driver.slurm", "pbs": JOBQUEUE / "smci-driver.pbs"}


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_driver_script_is_valid_bash(kind: str) -> None:
    out = subprocess.run(["bash", "-n", str(DRIVERS[kind])], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert os.access(DRIVERS[kind], os.X_OK)


def test_driver_directives() -> None:
    slurm = re.findall(r"^#SBATCH (\S+)$", DRIVERS["slurm"].read_text(), re.MULTILINE)
    assert {"--job-name=smci-driver", "--time=24:00:00", "--cpus-per-task=2", "--mem=8G"} <= set(slurm)
    pbs = re.findall(r"^#PBS (.+)$", DRIVERS["pbs"].read_text(), re.MULTILINE)
    assert {"-N smci-driver", "-l walltime=24:00:00", "-l select=1:ncpus=2:mem=8gb"} <= set(pbs)


@pytest.fixture
def stand_in(tmp_path: Path) -> dict[str, str]:
    """A venv folder whose activate puts a fake ``smci`` first on PATH; it prints its arguments and settings."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    smci = venv / "bin" / "smci"
    smci.write_text(
        '#!/bin/sh\necho "args: $*"\necho "SMCI_CONFIG=$SMCI_CONFIG"\necho "DASK_CONFIG=$DASK_CONFIG"\n'
        'echo "KIND=$SMCI__CLUSTER__KIND"\necho "PWD=$PWD"\n'
    )
    smci.chmod(smci.stat().st_mode | stat.S_IXUSR)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv / "bin"}:$PATH"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMCI", "DASK_CONFIG", "SLURM_", "PBS_"))}
    return {**env, "SMCI_VENV": str(venv), "HOME": str(tmp_path)}


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_driver_wiring(kind: str, stand_in: dict[str, str], tmp_path: Path) -> None:
    workdir = {"slurm": "SLURM_SUBMIT_DIR", "pbs": "PBS_O_WORKDIR"}[kind]
    env = {**stand_in, workdir: str(REPO)}
    out = subprocess.run(["bash", str(DRIVERS[kind])], capture_output=True, text=True, env=env, timeout=30, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("smci driver: job ? on ")
    assert lines[1:] == [
        "args: run",
        f"SMCI_CONFIG={REPO}/smci.yaml",
        f"DASK_CONFIG={REPO}/deploy/jobqueue/jobqueue.yaml",
        f"KIND={kind}",
        f"PWD={REPO}",
    ]
    # another command and config; the SLURM script passes its own arguments on
    env.update(SMCI_COMMAND="run --from table", SMCI_RUN_CONFIG="/site/run.yaml", DASK_CONFIG="/site/jobqueue.yaml")
    extra = ["--force"] if kind == "slurm" else []
    out = subprocess.run(["bash", str(DRIVERS[kind]), *extra], capture_output=True, text=True, env=env, timeout=30, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:4] == [
        "args: run --from table" + (" --force" if extra else ""),
        "SMCI_CONFIG=/site/run.yaml",
        "DASK_CONFIG=/site/jobqueue.yaml",
    ]


def test_hpc_run_config_is_valid_and_adaptive() -> None:
    cfg = load_config(JOBQUEUE / "smci-hpc.yaml", environ={})
    jq = cfg.cluster.jobqueue
    assert cfg.cluster.kind == "slurm"
    assert jq.adaptive and 1 <= jq.minimum_jobs < jq.maximum_jobs
    assert cfg.cluster.wait_for_workers_timeout >= 600


def _readme_commands(prefix: str) -> list[str]:
    text = (REPO / "deploy" / "README.md").read_text()
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefix)]


def test_readme_job_script_command(tmp_path: Path) -> None:
    """deploy/README.md's job-script check, run as written (from a folder where deploy/ is the repository's).

    Its PBS twin differs only in the class; test_factory.py checks PBSCluster's job script in-process.
    """
    commands = _readme_commands("DASK_CONFIG=deploy/jobqueue/jobqueue.yaml python -c")
    assert [c.replace("PBSCluster", "SLURMCluster") for c in commands[1:]] == commands[:1]
    command, directive = commands[0], "#SBATCH"
    (tmp_path / "deploy").symlink_to(REPO / "deploy")  # dask-jobqueue creates log-directory in the working folder
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DASK_CONFIG", None)
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    script = out.stdout
    assert script.startswith("#!/usr/bin/env bash") and f"{directive} " in script
    assert "--lifetime 55m --lifetime-stagger 4m" in script
    assert "--nthreads 4 --memory-limit 16.00GiB --nworkers 4" in script
    assert f"{Path(sys.executable).parent}/python -m distributed.cli.dask_worker" in script  # python: null -> the driver's
