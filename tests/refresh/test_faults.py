"""Faults during `smci refresh` that no checkpoint stages: a real SIGKILL, a dead worker, a store that stops answering.

Each starts from a copy of ``refresh_base`` (a product of 2019-12-24..31;
the refresh brings the January 2020 ERA5-Land file) and ends with the
product (1 km and 9 km) equal, value for value, to ``refresh_base.reference``,
made from scratch. A reader polls the product meanwhile: every day it is
told is complete has a value on every land cell.

- SIGKILL: the moment comes from a seeded generator (``SMCI_TEST_KILL_SEED``
  overrides the seed, to explore others): after the k-th prediction task
  reported by the process, or (k = 0) a random delay after its lease appears.
- A Dask worker process killed while it runs a prediction task: the
  scheduler runs the task again elsewhere.
- The S3 server (moto in its own process) stopped with SIGSTOP and resumed
  with SIGCONT: a short pause is waited out; a long one with short timeouts
  ends `smci refresh` with one line naming the store and saying to run it
  again, and the re-run finishes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from distributed.diagnostics.plugin import WorkerPlugin

from smci_dask.io import Store
from smci_dask.io.lease import acquire_lease
from smci_dask.pipeline.refresh import LEASE_RELPATH, refresh
from smci_dask.products.smci1km import open_product
from smci_dask.products.smci9km import PRODUCT_9KM_RELPATH

FIRST = "2019-12-24"
LAST = "2020-01-30"
#: Prediction tasks of the refresh (12: 30 new days in blocks of 16 days x the tiny world's tiles).
N_TASKS = 12
#: The seed of the SIGKILL moment; another seed explores another moment.
KILL_SEED = int(os.environ.get("SMCI_TEST_KILL_SEED", "20261124"))
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _quiet(_line: str) -> None:
    pass


def _assert_equals_reference(store: Store, base: Any) -> None:
    got = open_product(store, complete_only=True).load()
    assert list(got.time.values) == list(base.reference.time.values)
    np.testing.assert_array_equal(got["sm"].values, base.reference["sm"].values)
    got9 = open_product(store, PRODUCT_9KM_RELPATH, complete_only=True).load()
    assert list(got9.time.values) == list(base.reference_9km.time.values)
    np.testing.assert_array_equal(got9["sm"].values, base.reference_9km["sm"].values)


def _reader_check(store: Store, base: Any) -> pd.DatetimeIndex:
    """One look by a reader: the complete days are reference days from the first on, each with a value on every land cell."""
    ds = open_product(store, complete_only=True)
    days = pd.DatetimeIndex(ds.time.values)
    assert days[0] == pd.Timestamp(FIRST) and days.isin(base.reference.time.values).all(), days
    values = ds["sm"].values
    assert np.isfinite(values[..., base.land()]).all(), "a day listed as complete has fill on land"
    return days


class Reader:
    """A reader polling the product in a thread until stopped; keeps the largest set of complete days seen and the first error."""

    def __init__(self, store: Store, base: Any) -> None:
        self.store, self.base = store, base
        self.looks = 0
        self.most: pd.DatetimeIndex = pd.DatetimeIndex([])
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="product-reader", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                days = _reader_check(self.store, self.base)
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.error = exc
                return
            self.looks += 1
            if len(days) > len(self.most):
                self.most = days
            self._stop.wait(0.05)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def check(self) -> None:
        assert self.error is None, f"the reader failed: {self.error!r}"
        assert self.looks > 0


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMCI", "AWS_"))}
    return {**env, "SMCI__REGION__NAME": "tiny", **extra}


# ---------------------------------------------------------------- a real SIGKILL
def test_refresh_killed_at_a_random_moment_is_finished_by_the_next_one(refresh_base: Any, tmp_path: Path) -> None:
    rng = random.Random(KILL_SEED)
    after_tasks = rng.randrange(0, N_TASKS)  # 0: while ingesting (after the lease appears), else after that many tasks
    delay = rng.uniform(0.0, 2.0) if after_tasks == 0 else rng.uniform(0.0, 0.3)
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    lease_dir = root / LEASE_RELPATH
    env = _cli_env(SMCI__REFRESH__LEASE_TTL_SECONDS="3")  # the dead process's lease expires 3 s after its last renewal
    args = [sys.executable, "-m", "smci_dask.cli", "refresh", "--store", str(root), "--no-cluster", "--era5land", refresh_base.january]

    lines: list[str] = []
    with Reader(store, refresh_base) as reader:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            if after_tasks == 0:
                while not any(lease_dir.glob("*.json")) and proc.poll() is None:
                    time.sleep(0.01)
            else:
                for line in proc.stderr:
                    lines.append(line)
                    if line.startswith(f"[predict] {after_tasks}/{N_TASKS} "):
                        break
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    reader.check()
    assert proc.returncode == -signal.SIGKILL, f"the refresh ended before the kill (k={after_tasks}, delay={delay:.2f}):\n{''.join(lines)}"
    assert list(reader.most) == list(pd.date_range(FIRST, "2019-12-31"))  # killed before the new days were listed

    # the killed holder's lease is still there; the next refresh waits for it to expire, then finishes the job
    report = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], wait=60, echo=_quiet)
    assert list(report.days_added) == list(pd.date_range("2020-01-01", LAST))
    _assert_equals_reference(store, refresh_base)


# ---------------------------------------------------------------- a worker killed during prediction
class KillOnFirstPredictTask(WorkerPlugin):
    """A worker plugin: the first worker to start a prediction task records its pid in ``flag`` and SIGKILLs itself.

    Deterministic (not a race with the driver's progress): the kill happens
    as the task starts executing, whatever the machine's load. ``flag`` is
    created exclusively, so exactly one worker dies, once.
    """

    name = "kill-on-first-predict-task"

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def transition(self, key: Any, start: str, finish: str, **_kwargs: Any) -> None:
        if finish != "executing" or not str(key).startswith("predict-"):
            return
        try:
            fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_during_prediction_does_not_change_the_result(refresh_base: Any, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    flag = tmp_path / "killed.pid"
    tasks: list[Any] = []

    def hook(name: str, *details: Any) -> None:
        if name == "predict-task":
            tasks.append(details[0])
            _reader_check(store, refresh_base)

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="2GiB") as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(KillOnFirstPredictTask(str(flag)))
        report = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], client=client, echo=_quiet, checkpoint=hook)
        alive = set(client.run(os.getpid).values())
    assert flag.exists(), "no worker started a prediction task"
    killed = int(flag.read_text())
    assert killed not in alive  # the nanny started a new worker process in its place
    assert len(tasks) >= 1 and len({t.tile for t in tasks}) >= 1
    assert list(report.days_added) == list(pd.date_range("2020-01-01", LAST))
    _assert_equals_reference(store, refresh_base)


# ---------------------------------------------------------------- a store that stops answering
@dataclass
class PausableS3:
    """moto's S3 server in its own process: SIGSTOP pauses it (connections hang), SIGCONT resumes it with its data."""

    process: subprocess.Popen[bytes]
    endpoint_url: str

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def pausable_s3(monkeypatch: pytest.MonkeyPatch, own_moto_server: tuple[subprocess.Popen[bytes], str]) -> Iterator[PausableS3]:
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    server = PausableS3(*own_moto_server)
    try:
        yield server
    finally:
        server.resume()
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


def _s3_copy_of_base(base: Any, server: PausableS3, options: dict[str, Any]) -> tuple[str, Store]:
    import s3fs

    bucket = f"smci-faults-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=server.endpoint_url, skip_instance_cache=True).mkdir(bucket)
    url = f"s3://{bucket}/root"
    store = Store.from_url(url, {"endpoint_url": server.endpoint_url, **options})
    for part in ("covariates", "models", "product"):
        store.fs.put(str(base.root / part), store.join(part), recursive=True)
    return url, store


@pytest.mark.s3
def test_refresh_waits_out_a_short_pause_of_the_store(refresh_base: Any, pausable_s3: PausableS3) -> None:
    url, store = _s3_copy_of_base(refresh_base, pausable_s3, {})
    resumed = threading.Event()
    tasks: list[str] = []

    def hook(name: str, *_details: Any) -> None:
        if name == "predict-task":
            tasks.append(name)
            if len(tasks) == 2:  # the server stops answering for 3 s (less than the read timeout): requests just wait
                pausable_s3.pause()
                threading.Timer(3.0, lambda: (pausable_s3.resume(), resumed.set())).start()

    report = refresh(refresh_base.config(url), store, era5land=[refresh_base.january], echo=_quiet, checkpoint=hook)
    assert resumed.wait(10) and len(tasks) == N_TASKS
    assert list(report.days_added) == list(pd.date_range("2020-01-01", LAST))
    _reader_check(store, refresh_base)
    _assert_equals_reference(store, refresh_base)


@pytest.mark.s3
def test_refresh_stops_with_a_clear_message_when_the_store_stays_away_and_the_rerun_finishes(
    refresh_base: Any, pausable_s3: PausableS3, tmp_path: Path
) -> None:
    # short timeouts and one attempt per request (s3fs still retries 5 times): a dead store is noticed in seconds
    short = {"config_kwargs": {"connect_timeout": 2, "read_timeout": 2, "retries": {"total_max_attempts": 1}}}
    url, store = _s3_copy_of_base(refresh_base, pausable_s3, {})
    config = tmp_path / "smci.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "region": {"name": "tiny"},
                "years": [2019, 2019],
                "store": {"root": url, "storage_options": {"endpoint_url": pausable_s3.endpoint_url, **short}},
                "inference": {"tile_size": 32, "time_block": 16},
                "refresh": {"lease_ttl_seconds": 3},
            }
        )
    )
    args = [sys.executable, "-m", "smci_dask.cli", "--config", str(config), "refresh", "--no-cluster", "--era5land", refresh_base.january]
    proc = subprocess.Popen(args, env=_cli_env(**FAKE_AWS_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    paused = False
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith(f"[predict] 2/{N_TASKS} "):
                pausable_s3.pause()
                paused = True
                break
        try:
            _, rest = proc.communicate(timeout=240)  # bounded: it gives up, it does not hang
        except subprocess.TimeoutExpired:
            pytest.fail("smci refresh hung with the store paused:\n" + "".join(lines))
        lines.append(rest)
    finally:
        pausable_s3.resume()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert paused, "the refresh ended before its second prediction task:\n" + "".join(lines)
    last = "".join(lines).strip().splitlines()[-1]
    assert proc.returncode == 3, "".join(lines)[-3000:]  # StoreError
    assert last.startswith(f"error: store {url}") and "cannot reach the store's endpoint" in last and "run the command again" in last, last
    assert "Traceback" not in "".join(lines)

    # the store is back: the re-run (after the dead run's lease expires, 3 s) finishes the job
    store = Store.from_url(url, {"endpoint_url": pausable_s3.endpoint_url})
    _reader_check(store, refresh_base)
    report = refresh(refresh_base.config(url), store, era5land=[refresh_base.january], wait=60, echo=_quiet)
    assert list(report.days_added) == list(pd.date_range("2020-01-01", LAST))
    _assert_equals_reference(store, refresh_base)


@pytest.mark.s3
def test_the_lease_keeps_being_renewed_after_a_pause_of_the_store(pausable_s3: PausableS3) -> None:
    import s3fs

    bucket = f"smci-lease-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=pausable_s3.endpoint_url, skip_instance_cache=True).mkdir(bucket)
    short = {"config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"total_max_attempts": 1}}}
    store = Store.from_url(f"s3://{bucket}/root", {"endpoint_url": pausable_s3.endpoint_url, **short})

    def expires_at() -> float:
        (name,) = store.ls(LEASE_RELPATH)
        return float(json.loads(store.read_bytes(f"{LEASE_RELPATH}/{name}"))["expires_at"])

    lease = acquire_lease(store, LEASE_RELPATH, holder="a refresh", ttl=60)
    lease.start_renewing(every=0.5)
    try:
        pausable_s3.pause()
        time.sleep(10)  # renewals meanwhile fail (each request times out after ~7 s of s3fs retries)
        pausable_s3.resume()
        during = expires_at()
        time.sleep(2)
        assert expires_at() > during  # renewed again: the renewals did not stop at the first failure
        lease.check()
    finally:
        pausable_s3.resume()
        lease.release()
