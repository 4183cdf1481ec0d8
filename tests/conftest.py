"""Shared fixtures: a real S3 API server on loopback and one store per backend.

- ``s3_server`` (session): moto's S3 server on 127.0.0.1 with fake
  credentials in the environment; ``s3_server.endpoint_url``.
- ``s3_store`` (function): a fresh bucket; ``(url, storage_options)``.
- ``tiny_world`` (session): the synthetic ``tiny`` world written once to a
  local folder, ``(store, manifest)``; every test that needs inputs reuses it.
- ``any_store`` (function, parametrised): a :class:`smci_dask.io.Store` on
  ``local``, ``memory`` and ``s3``, so one test runs the same code on all.

A test that uses ``s3_server`` or ``s3_store`` is marked ``s3`` automatically;
``any_store[s3]`` carries the mark too, so ``-m "not s3"`` never starts moto.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

# One OpenMP thread per task, as the pipeline runs its models (the machine has 2 cores; LightGBM and XGBoost
# each bundle an OpenMP runtime, and idle OpenMP pools in many Dask worker threads only oversubscribe them).
os.environ.setdefault("OMP_NUM_THREADS", "1")
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smci_dask.io import Store

#: Fake credentials for moto; real ones from the developer's machine must never be used.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # keep ~/.aws of the developer out of the tests
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_AWS_ENV_TO_DROP = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server: ``endpoint_url`` is ``http://127.0.0.1:<port>``."""

    endpoint_url: str

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options for s3fs; credentials come from the environment, not from here."""
        return {"endpoint_url": self.endpoint_url}

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess (e.g. the CLI) that should reach this server without storage options."""
        return {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL_S3": self.endpoint_url}


#: Test files that share the session's tiny demo (``tiny_demo``, built once per worker process that needs it).
DEMO_FILES = ("tests/integration/test_demo.py", "tests/notebooks/test_notebooks.py")


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark S3 tests ``s3``; put the demo's files first (``make test`` hands them to one worker before the rest)."""
    for item in items:
        if "s3_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)
    items.sort(key=lambda it: 0 if _file_of(it.nodeid) in DEMO_FILES else 1)  # stable: the order inside is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n N --dist loadfile``: the demo's files are one work unit, every other file one unit.

    A file per unit builds each module's fixtures once (as plain ``loadfile``);
    the two demo files in one unit build the tiny demo once. With
    ``--no-loadscope-reorder`` the units go out in collection order, so the
    demo (the longest unit) starts first and the other worker works through
    the files meanwhile. (xdist's ``loadgroup`` would do this with marks, but
    xdist 3.8 tags groups onto ``Item._nodeid``, which pytest 9 no longer
    reads.)
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class DemoFirst(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = _file_of(nodeid)
            return "demo" if path in DEMO_FILES else path

    return DemoFirst(config, log)


def start_moto_process() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in a process of its own on a free loopback port: ``(process, endpoint_url)``.

    Its own process, as a real server is: it does not share the test
    process's GIL with the code under test, and a test can pause it
    (SIGSTOP) without pausing itself. The caller passes the fake credentials
    of :data:`FAKE_AWS_ENV` to clients; the server needs none. Stop it with
    :func:`stop_moto_process`.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto's S3 server did not start on port {port} (exit code {proc.poll()})") from None
            time.sleep(0.1)


def stop_moto_process(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGCONT)  # a paused server (tests/refresh/test_faults.py) cannot terminate
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 API server on loopback for the whole session (a real HTTP server in its own process, no mocking)."""
    import moto.server  # noqa: F401  # a test dependency: missing it must fail, not skip

    with pytest.MonkeyPatch.context() as mp:
        for name in _AWS_ENV_TO_DROP:
            mp.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        proc, endpoint = start_moto_process()
        try:
            yield S3Server(endpoint_url=endpoint)
        finally:
            stop_moto_process(proc)
            _clear_s3fs_instances()


@pytest.fixture
def own_moto_server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A moto S3 server of this test alone: ``(process, endpoint_url)`` (e.g. to pause it with SIGSTOP); stopped afterwards."""
    proc, endpoint = start_moto_process()
    try:
        yield proc, endpoint
    finally:
        stop_moto_process(proc)


def _clear_s3fs_instances() -> None:
    """Drop cached s3fs instances, which point at this session's endpoint.

    zarr's FsspecStore makes its own ``asynchronous=True`` instance on zarr's
    event loop; s3fs never closes the HTTP session of such an instance, so
    close it here on that loop (else "Unclosed client session" at exit).
    """
    try:
        import s3fs
        from zarr.core.sync import sync
    except ImportError:
        return
    for fs in list(s3fs.S3FileSystem._cache.values()):
        client = getattr(fs, "_s3", None)
        if fs.asynchronous and client is not None:
            with contextlib.suppress(Exception):
                sync(client.__aexit__(None, None, None))
            fs._s3 = None
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_store(s3_server: S3Server) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh bucket for this test: ``("s3://smci-test-<hex>/root", storage_options)``; emptied afterwards."""
    import s3fs

    bucket = f"smci-test-{uuid.uuid4().hex[:20]}"
    opts = s3_server.storage_options
    fs = s3fs.S3FileSystem(**opts, use_listings_cache=False)
    fs.mkdir(bucket)
    yield f"s3://{bucket}/root", dict(opts)
    with contextlib.suppress(Exception):  # moto keeps objects in memory for the whole session
        fs.rm(bucket, recursive=True)


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same empty :class:`~smci_dask.io.Store` on a local folder, ``memory://`` and S3."""
    kind = request.param
    if kind == "local":
        yield Store.from_url(tmp_path / "store")
    elif kind == "memory":
        store = Store.from_url(f"memory://smci-test-{uuid.uuid4().hex}/root")
        try:
            yield store
        finally:
            root = "/" + store.path.strip("/").split("/", 1)[0]
            if store.fs.exists(root):
                store.fs.rm(root, recursive=True)
    else:
        url, opts = request.getfixturevalue("s3_store")
        yield Store.from_url(url, opts)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, Any]]:
    """The synthetic ``tiny`` world (2 years, 20 stations), written once per test session."""
    from smci_dask.synthetic import make_world

    store = Store.from_url(str(tmp_path_factory.mktemp("tiny-world")))
    manifest = make_world(store, region="tiny", seed=TEST_SEED)
    return store, manifest


#: The seed of the session's synthetic world.
TEST_SEED = 20220101


#: The tiny world's ERA5-Land files -> the daily cube (argv: store root, JSON list of files); run in its own process.
_ERA5_INGEST = """
import json, sys
from smci_dask.config import Config, RegionConfig, StoreConfig
from smci_dask.io import Store
from smci_dask.pipeline.ingest import ingest_era5land
root, files = sys.argv[1], json.loads(sys.argv[2])
ingest_era5land(Config(region=RegionConfig(name="tiny"), store=StoreConfig(root=root)), files, store=Store.from_url(root))
"""


@pytest.fixture(scope="session")
def tiny_stores(tiny_world: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, Any]]:
    """The tiny world's covariates and station targets ingested once: ``(store, info)``.

    The store holds ``covariates/era5land`` (every month), ``covariates/lai``,
    ``covariates/static``, and ``insitu/*`` from the ISMN files with QC and
    matched targets. ``info``: ``config`` (a :class:`~smci_dask.config.Config`
    for the store), ``grid``, ``world`` (the world's store) and ``manifest``.
    """
    import json
    import subprocess
    import sys

    from smci_dask.config import Config, RegionConfig, StoreConfig
    from smci_dask.covariates import ingest_lai, ingest_static
    from smci_dask.grid import grid_for
    from smci_dask.pipeline.stations import ingest_stations, match_targets, qc_with_saturation

    world, manifest = tiny_world
    root = tmp_path_factory.mktemp("tiny-stores")
    cfg = Config(region=RegionConfig(name="tiny"), store=StoreConfig(root=str(root)))
    store = Store.from_url(str(root))
    grid = grid_for("tiny")
    era5_files = [world.join(p) for p in manifest["files"]["era5land"]]

    # ERA5-Land runs in a second process beside the LAI and static ingest (CPU-bound Python: threads would not overlap);
    # the stations come after it, as in `smci run`: their QC reads ERA5-Land at the station cells (D03, D05)
    era5 = subprocess.Popen([sys.executable, "-c", _ERA5_INGEST, str(root), json.dumps(era5_files)], stderr=subprocess.PIPE, text=True)
    try:
        ingest_lai([world.join(p) for p in manifest["files"]["lai"]], store, grid)
        ingest_static([world.join(p) for p in manifest["files"]["static"]], store, grid)
    finally:
        _, err = era5.communicate()
    assert era5.returncode == 0, f"ERA5-Land ingest failed:\n{err}"
    ingest_stations(cfg, world.join("stations/ismn"), fmt="ismn", store=store, qc=qc_with_saturation)
    match_targets(cfg, store)
    return store, {"config": cfg, "grid": grid, "world": world, "manifest": manifest}


#: The search profile of the session's trained run: a 2 x 2 grid, 2 folds, 10 trees (seconds per depth).
TINY_PROFILE = {
    "n_estimators": 10,
    "search": {"max_features": [4, 12], "min_samples_leaf": [20, 60], "n_folds": 2, "cv_optimism": False},
}


@pytest.fixture(scope="session")
def tiny_trained(tiny_stores: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, Any]]:
    """A copy of ``tiny_stores`` with the training table and one trained run of all 10 depths: ``(store, info)``.

    Trained once per session by :func:`smci_dask.pipeline.train.train_final`
    (experiment ``final``) with the ``tiny`` search profile (:data:`TINY_PROFILE`:
    grouped-by-station 2-fold CV over max_features 4, 12 x min_samples_leaf
    20, 60; 10 trees; LightGBM + XGBoost) on a one-worker in-process cluster.
    ``info``: ``run`` (run id), ``experiment`` (``'final'``), ``config`` (the
    :class:`~smci_dask.config.Config` used, store root = this store),
    ``table`` (the training table as written to ``training/table``),
    ``report`` (the :class:`~smci_dask.pipeline.train.TrainReport`) and
    ``grid``. Treat the store as read-only; write elsewhere.
    """
    import shutil

    from distributed import Client, LocalCluster

    from smci_dask.config import load_config
    from smci_dask.pipeline.train import train_final
    from smci_dask.training import build_training_table, write_training_table

    source, base = tiny_stores
    root = tmp_path_factory.mktemp("tiny-trained") / "store"
    shutil.copytree(source.path, root)
    store = Store.from_url(str(root))
    table = build_training_table(store, base["grid"])
    write_training_table(table, store)
    cfg = load_config(
        overrides={
            "region": {"name": "tiny"},
            "store": {"root": str(root)},
            "model": {"run": "tiny-run", "profiles": {"tiny": TINY_PROFILE}, "search": {"profile": "tiny"}},
        },
        environ={},
    )
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        report = train_final(cfg, store, run="tiny-run", client=client, echo=lambda _line: None)
    return store, {"run": "tiny-run", "experiment": "final", "config": cfg, "table": table, "report": report, "grid": base["grid"]}


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`smci demo --region tiny` run once per session: ``(store folder, the command's output)``.

    Every stage of `smci run` ran in it (world, ingest, QC, table, training,
    evaluation, product). The integration tests check it; the notebooks run
    against it (their stages are then up to date). Treat it as read-only.
    """
    from click.testing import CliRunner

    from smci_dask.cli.main import cli

    store = tmp_path_factory.mktemp("tiny-demo") / "store"
    # the default local cluster: 2 worker processes (in-process threaded workers running LightGBM/XGBoost
    # once segfaulted here while the cluster closed)
    res = CliRunner().invoke(cli, ["demo", "--region", "tiny", "--store", str(store)])
    assert res.exit_code == 0, res.output
    return store, res.output
