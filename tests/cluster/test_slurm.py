"""A real one-node SLURM: dask-jobqueue workers submitted by sbatch run pipeline stages.

The session fixture starts munged + slurmctld + slurmd on this machine with
deploy/slurm-local/start-slurm.sh (the packages come from .ci/run). When
SLURM cannot start, the tests fail with the script's reason: they are never
skipped. Two stages run through ``cluster: slurm`` and must give exactly what
a LocalCluster gives: the hyper-parameter search (one task per candidate x
fold x member) on a small synthetic table, and a 4-day prediction of the
tiny world's 1 km product (smci_dask.inference) with tiny fitted models.
The driver batch script (deploy/jobqueue/smci-driver.slurm) is submitted too.

The worker jobs use deploy/jobqueue/jobqueue.yaml with the sizes cut down
for this machine (1 core, 1 GiB, 5 min walltime) and the loopback interface
for the scheduler and the workers (one machine, and no default route here).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import dask_jobqueue  # noqa: F401  imported up front: its import merges its defaults into dask.config (see test_factory.py)
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from distributed import get_task_stream

from smci_dask import conventions as cv
from smci_dask.cluster import cluster_client, cluster_info
from smci_dask.config import Config, InferenceConfig, RegionConfig, StoreConfig, load_config
from smci_dask.features import FEATURE_NAMES
from smci_dask.inference import predict_product
from smci_dask.io import Store
from smci_dask.models.cv import random_kfold
from smci_dask.models.estimators import fit_member, make_ensemble
from smci_dask.models.search import SearchResult, search_hyperparameters
from smci_dask.models.store import fingerprint_table, save_model
from smci_dask.products.smci1km import open_product
from smci_dask.training import build_training_table

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
START_SLURM = REPO / "deploy" / "slurm-local" / "start-slurm.sh"
JOBQUEUE_YAML = REPO / "deploy" / "jobqueue" / "jobqueue.yaml"
#: seconds for start-slurm.sh (it waits up to SLURM_LOCAL_TIMEOUT for the node itself)
START_TIMEOUT = 120
#: seconds for the worker jobs to be scheduled and their workers to join
WORKER_TIMEOUT = 120
N_JOBS = 2


def _squeue(job_name: str) -> list[str]:
    """Ids of this user's queued or running jobs called ``job_name``."""
    out = subprocess.run(["squeue", "-h", "-n", job_name, "-o", "%i"], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.split()


@pytest.fixture(scope="session")
def local_slurm() -> dict[str, str]:
    """The one-node SLURM, started (or found running) by deploy/slurm-local/start-slurm.sh."""
    if shutil.which("sbatch") is None:
        pytest.fail("SLURM is not installed (no sbatch on PATH): run .ci/run, or apt-get install slurm-wlm munge")
    try:
        proc = subprocess.run(
            ["bash", str(START_SLURM)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            env={**os.environ, "SLURM_LOCAL_TIMEOUT": str(START_TIMEOUT - 30)},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{START_SLURM} did not finish within {START_TIMEOUT} s; its output so far:\n{exc.stdout or ''}{exc.stderr or ''}")
    if proc.returncode != 0:
        pytest.fail(f"cannot start the local SLURM ({START_SLURM} exited {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t %c %m"], capture_output=True, text=True, timeout=30, check=True)
    name, state, cpus, memory = node.stdout.split()[:4]
    return {"node": name, "state": state, "cpus": cpus, "memory_mb": memory, "start_output": proc.stdout}


def small_job_section(log_directory: Path, local_directory: Path) -> dict[str, Any]:
    """deploy/jobqueue/jobqueue.yaml's SLURM section cut down to this machine (its prologue kept)."""
    ours = yaml.safe_load(JOBQUEUE_YAML.read_text())["jobqueue"]["slurm"]
    ours.update(
        {
            "cores": 1,
            "memory": "1GiB",
            "processes": 1,
            "walltime": "00:05:00",
            "worker-extra-args": ["--lifetime", "4m", "--lifetime-stagger", "20s"],
            "interface": "lo",  # one machine: scheduler and workers on loopback
            "death-timeout": 60,  # workers of a killed test exit on their own
            "local-directory": str(local_directory),
            "log-directory": str(log_directory),
            "scheduler-options": {"dashboard_address": ":0"},
        }
    )
    return ours


def small_jobs(log_directory: Path, local_directory: Path) -> dict[str, Any]:
    """:func:`small_job_section` as dask config keys, without the prologue (the workers run this interpreter)."""
    ours = small_job_section(log_directory, local_directory)
    ours["job-script-prologue"] = []
    return {f"jobqueue.slurm.{key}": value for key, value in ours.items()}


def synthetic_table(n_rows: int = 240, n_features: int = 5, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A nonlinear target of a few features, plus noise: rows x features float32, target float64."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n_rows, n_features)).astype(np.float32)
    y = 0.1 + 0.25 * X[:, 0] * X[:, 1] + 0.1 * np.sin(6.0 * X[:, 2]) + rng.normal(0.0, 0.01, n_rows)
    return X, y


def run_search(client: Any, X: np.ndarray, y: np.ndarray) -> SearchResult:
    return search_hyperparameters(
        X,
        y,
        random_kfold(len(y), 3, seed=11),
        members=["lightgbm", "xgboost"],
        max_features=[2, 4],
        min_samples_leaf=[5, 10],
        n_estimators=15,
        subsample=0.8,
        max_depth=None,
        seed=5,
        client=client,
    )


#: the model run of :func:`tiny_models` and the days predicted through SLURM
RUN = "slurm-test"
PREDICT_DAYS = ("2020-03-02", "2020-03-05")


@pytest.fixture(scope="module")
def tiny_models(tiny_stores: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Store]:
    """A store with the tiny world's covariates and a tiny LightGBM + XGBoost ensemble per depth (run RUN)."""
    src, info = tiny_stores
    root = tmp_path_factory.mktemp("slurm-inference")
    shutil.copytree(Path(src.join("covariates")), root / "covariates")
    store = Store.from_url(str(root))
    table = build_training_table(src, info["grid"], days=pd.date_range("2020-03-01", "2020-03-14"), block_days=14)
    hyper = {"max_features": 6, "min_samples_leaf": 5, "n_estimators": 3, "subsample": 0.632, "max_depth": None, "seed": 1}
    for depth in cv.DEPTHS_CM:
        rows = table[(table["depth_cm"] == depth) & table["sm_matched"].notna()]
        X, y = rows[list(FEATURE_NAMES)].to_numpy(np.float32), rows["sm_matched"].to_numpy(np.float64)
        ensemble = make_ensemble({m: fit_member(m, X, y, **hyper) for m in ("lightgbm", "xgboost")}, FEATURE_NAMES)
        save_model(store, RUN, "final", depth, ensemble, training_fingerprint=fingerprint_table(X, y, FEATURE_NAMES))
    cfg = Config(region=RegionConfig(name="tiny"), store=StoreConfig(root=str(root)), inference=InferenceConfig(tile_size=32, time_block=2))
    return cfg, store


def run_prediction(client: Any, models: tuple[Config, Store], relpath: str) -> Any:
    cfg, store = models
    predict_product(cfg, store, start=PREDICT_DAYS[0], end=PREDICT_DAYS[1], run=RUN, client=client, echo=lambda line: None, relpath=relpath)
    return open_product(store, relpath).sel(time=slice(*PREDICT_DAYS)).load()


@pytest.fixture(scope="module")
def reference(tiny_models: tuple[Config, Store]) -> tuple[SearchResult, Any]:
    """The same search and prediction on a LocalCluster of 2 worker processes."""
    X, y = synthetic_table()
    cfg = load_config(overrides={"cluster": {"kind": "local", "local": {"n_workers": 2, "memory_limit": "1GiB"}}}, environ={})
    with cluster_client(cfg) as client:
        return run_search(client, X, y), run_prediction(client, tiny_models, "product/local-cluster")


@pytest.fixture
def slurm_client(local_slurm: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """A client on a SLURMCluster of N_JOBS sbatch jobs (one 1-thread worker each); closed and cancelled afterwards."""
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    settings = small_jobs(logs, tmp_path)
    cfg = load_config(
        overrides={"cluster": {"kind": "slurm", "jobqueue": {"jobs": N_JOBS}, "wait_for_workers_timeout": WORKER_TIMEOUT}},
        environ={},
    )
    with dask.config.set(settings):
        with cluster_client(cfg) as client:  # fails with a ClusterError naming squeue after WORKER_TIMEOUT
            try:
                client.wait_for_workers(N_JOBS, timeout=WORKER_TIMEOUT)
            except TimeoutError:
                pytest.fail(
                    f"only {len(client.scheduler_info()['workers'])} of {N_JOBS} SLURM worker(s) joined within {WORKER_TIMEOUT} s; "
                    f"squeue: {_squeue(settings['jobqueue.slurm.name'])}; logs: {sorted(p.name for p in logs.iterdir())}"
                )
            yield client
    # closing the cluster cancelled its jobs (scancel); SLURM forgets them a few seconds later
    deadline = time.monotonic() + 60
    while (left := _squeue(settings["jobqueue.slurm.name"])) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, f"worker jobs {left} still queued a minute after the cluster closed"


def _start_slurm(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["bash", str(START_SLURM), *args], capture_output=True, text=True, timeout=START_TIMEOUT)
    assert out.returncode == 0, f"start-slurm.sh {' '.join(args)} failed:\n{out.stdout}{out.stderr}"
    return out


def _node_state() -> str:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else f"(sinfo failed: {out.stderr.strip()})"


def test_local_slurm_start_is_idempotent_and_restarts(local_slurm: dict[str, str]) -> None:
    assert local_slurm["state"] in ("idle", "mix", "alloc")  # jobs of an interrupted earlier run may still be there
    assert int(local_slurm["cpus"]) == os.cpu_count()
    # a second start finds it running and changes nothing
    assert "already running" in _start_slurm().stdout
    # a dead slurmd (its pid file left behind) is noticed and the daemons restarted
    slurmd_pid = int(Path("/run/slurm-local/slurmd.pid").read_text())
    os.kill(slurmd_pid, signal.SIGKILL)
    restarted = _start_slurm().stdout
    assert "starting slurmd" in restarted and "is idle" in restarted, restarted
    assert int(Path("/run/slurm-local/slurmd.pid").read_text()) != slurmd_pid
    # stopped, then started afresh
    assert "stopped" in _start_slurm("--stop").stdout
    assert "sinfo failed" in _node_state()
    assert "is idle" in _start_slurm().stdout
    assert _node_state() == "idle"


def test_search_and_prediction_through_slurm_equal_local_cluster(
    slurm_client: Any, reference: tuple[SearchResult, Any], tiny_models: tuple[Config, Store]
) -> None:
    client = slurm_client
    info = cluster_info(client)
    assert info["cluster"] == "SLURMCluster"
    assert (info["n_workers"], info["total_threads"], info["total_memory"]) == (N_JOBS, N_JOBS, N_JOBS * 1024**3)

    # every worker is a process inside a running SLURM job of this cluster, started with the configured lifetime
    job_ids = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
    queued = set(_squeue("smci-worker"))
    assert len(set(job_ids.values())) == N_JOBS and set(job_ids.values()) <= queued, (job_ids, queued)
    script = client.cluster.job_script()
    assert "#SBATCH --mem=1G" in script and "--lifetime 4m --lifetime-stagger 20s" in script
    assert f"{sys.executable} -m distributed.cli.dask_worker" in script

    X, y = synthetic_table()
    with get_task_stream(client) as stream:
        result = run_search(client, X, y)
        product = run_prediction(client, tiny_models, "product/slurm")
    # every search task (2 x 2 candidates x 3 folds x 2 members) and every inference task ran on the SLURM workers
    ran = [t["worker"] for t in stream.data if str(t["key"]).startswith("smci-search-")]
    assert len(ran) == 24 and set(ran) <= set(job_ids)
    predicted = [t["worker"] for t in stream.data if not str(t["key"]).startswith("smci-search-")]
    assert predicted and set(predicted) <= set(job_ids)

    expected, expected_product = reference
    # the maps: identical values and attributes (but the creation time), and real ones
    xr.testing.assert_equal(product, expected_product)
    assert {k: v for k, v in product.attrs.items() if k != "history"} == {k: v for k, v in expected_product.attrs.items() if k != "history"}
    sm = product["sm"].values
    assert sm.shape[:2] == (4, len(cv.DEPTHS_CM)) and np.isfinite(sm).any()
    assert ((sm[np.isfinite(sm)] > 0) & (sm[np.isfinite(sm)] < 0.7)).all()  # volumetric soil moisture
    pd.testing.assert_frame_equal(result.folds, expected.folds)
    pd.testing.assert_frame_equal(result.table, expected.table)
    assert result.best == expected.best
    for member, oof in expected.oof.items():
        np.testing.assert_array_equal(result.oof[member], oof)
    # the table is a real search: 2 x 2 candidates x (2 members + ensemble), finite, better than predicting the mean
    assert len(result.table) == 12
    assert np.isfinite(result.table["rmse_mean"]).all()
    assert result.table["rmse_mean"].min() < float(np.std(y))


def _job_state(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    found = re.search(r"JobState=(\S+)", out.stdout)
    return found.group(1) if found else "GONE"


def test_driver_batch_script_runs_on_slurm(local_slurm: dict[str, str], tmp_path: Path) -> None:
    """deploy/README.md's `SMCI_COMMAND="cluster info" sbatch deploy/jobqueue/smci-driver.slurm`, for real.

    The driver job activates SMCI_VENV, reads the run config and DASK_CONFIG,
    submits a worker job itself (sbatch inside the job), and that worker job's
    prologue from jobqueue.yaml activates the same environment.
    """
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    dask_config = tmp_path / "jobqueue.yaml"
    dask_config.write_text(yaml.safe_dump({"jobqueue": {"slurm": small_job_section(logs, tmp_path)}}))
    run_config = tmp_path / "smci.yaml"
    run_config.write_text(yaml.safe_dump({"cluster": {"jobqueue": {"jobs": 1}, "wait_for_workers_timeout": WORKER_TIMEOUT}}))
    venv = Path(sys.executable).parent.parent
    assert (venv / "bin" / "activate").is_file(), f"the tests must run in a virtual environment, not {sys.executable}"
    env = {
        **os.environ,
        "SMCI_DIR": str(REPO),
        "SMCI_VENV": str(venv),
        "SMCI_RUN_CONFIG": str(run_config),
        "DASK_CONFIG": str(dask_config),
        "SMCI_COMMAND": "cluster info",
    }
    # the node has 2 CPUs: the driver takes 1 (command-line options override the script's #SBATCH lines)
    submit = subprocess.run(
        ["sbatch", "--parsable", "--cpus-per-task=1", "--mem=1G", "--time=00:05:00", f"--output={tmp_path}/driver-%j.out",
         str(REPO / "deploy" / "jobqueue" / "smci-driver.slurm")],
        capture_output=True, text=True, env=env, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip().split(";")[0]
    deadline = time.monotonic() + WORKER_TIMEOUT + 60
    while (state := _job_state(job_id)) in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") and time.monotonic() < deadline:
        time.sleep(1)
    output = (tmp_path / f"driver-{job_id}.out").read_text() if (tmp_path / f"driver-{job_id}.out").exists() else ""
    if state in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
        subprocess.run(["scancel", job_id], timeout=30)
        pytest.fail(f"driver job {job_id} still {state} after {WORKER_TIMEOUT + 60} s; its output:\n{output}")
    assert state == "COMPLETED", f"driver job {job_id} ended {state}:\n{output}"
    assert f"smci driver: job {job_id} on {local_slurm['node']}: smci cluster info" in output
    assert "Dask cluster (SLURMCluster)" in output
    assert "workers    1, 1 threads, 1.00 GiB memory" in output
    # the worker job wrote its log where the dask config said
    assert any(p.name.startswith("smci-worker-") for p in logs.iterdir()), sorted(p.name for p in logs.iterdir())
