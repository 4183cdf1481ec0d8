"""`smci refresh` (:mod:`smci_dask.pipeline.refresh`): new days in, only complete days out, safe to stop and to repeat.

The product before the refresh holds 2019-12-24..31 on an axis ending
2019-12-31; the refresh brings the January 2020 ERA5-Land file. Expected
values come from a product made from scratch over the same days
(``refresh_base.reference``), never from the refresh itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

from smci_dask.cli.main import cli
from smci_dask.config import Config, RegionConfig, StoreConfig
from smci_dask.covariates.era5land_store import complete_days as era5_complete_days
from smci_dask.io import Store, open_zarr
from smci_dask.io.lease import LeaseBusy, hold_lease
from smci_dask.pipeline.ingest import ERA5LAND_RELPATH
from smci_dask.pipeline.refresh import CRASH_ENV, LEASE_RELPATH, LOG_RELPATH, refresh
from smci_dask.products.smci1km import complete_days, open_product
from smci_dask.products.smci9km import PRODUCT_9KM_RELPATH

FIRST = "2019-12-24"
LAST = "2020-01-30"


class Crash(Exception):
    """Stands for the process dying at a checkpoint."""


def _quiet(_line: str) -> None:
    pass


def snapshot(root: Path, *, skip: str) -> dict[str, tuple[int, int]]:
    """Every file below ``root`` (but ``skip``) -> (size, mtime in ns): equal snapshots mean nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not str(p.relative_to(root)).startswith(skip)
    }


def _assert_equals_reference(store: Store, base: Any) -> None:
    got = open_product(store, complete_only=True).load()
    ref = base.reference
    assert list(got.time.values) == list(ref.time.values)
    np.testing.assert_array_equal(got["sm"].values, ref["sm"].values)
    got9 = open_product(store, PRODUCT_9KM_RELPATH, complete_only=True).load()
    assert list(got9.time.values) == list(base.reference_9km.time.values)
    np.testing.assert_array_equal(got9["sm"].values, base.reference_9km["sm"].values)


def _reader_check(store: Store, land: np.ndarray) -> pd.DatetimeIndex:
    """What a reader polling the product sees: every day listed as complete has a value on every land cell."""
    ds = open_product(store, complete_only=True)
    if ds.sizes["time"]:
        values = ds["sm"].values
        assert np.isfinite(values[..., land]).all(), "a day listed as complete has fill on land"
    return pd.DatetimeIndex(ds.time.values)


def test_refresh_adds_the_new_days_like_a_run_from_scratch_then_writes_nothing(refresh_base: Any, tmp_path: Path) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    old_chunks = {p: p.stat().st_mtime_ns for p in (root / "product" / "smci_1km" / "sm" / "c").rglob("*") if p.is_file()}

    report = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet)

    assert list(report.days_added) == list(pd.date_range("2020-01-01", LAST))
    assert report.run == refresh_base.run and report.extended_to == pd.Timestamp("2020-12-31")
    axis = pd.DatetimeIndex(open_zarr(store, "product/smci_1km")["time"].values)
    assert axis[0] == pd.Timestamp("2019-01-01") and axis[-1] == pd.Timestamp("2020-12-31") and len(axis) == 731
    assert list(complete_days(store)) == list(pd.date_range(FIRST, LAST))
    _assert_equals_reference(store, refresh_base)
    # the chunks of the days held before were not rewritten
    assert all(p.stat().st_mtime_ns == t for p, t in old_chunks.items())

    logs = store.ls(LOG_RELPATH)
    assert len(logs) == 1
    record = json.loads(store.read_text(f"{LOG_RELPATH}/{logs[0]}"))
    md5 = hashlib.md5(Path(refresh_base.january).read_bytes(), usedforsecurity=False).hexdigest()
    assert record["inputs"]["era5land"] == [{"url": refresh_base.january, "md5": md5, "bytes": Path(refresh_base.january).stat().st_size}]
    assert record["days_added"] == [["2020-01-01", LAST]] and record["model_run"] == refresh_base.run
    assert record["code_version"]

    before = snapshot(root, skip=LEASE_RELPATH)
    again = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet)
    assert again.nothing_new and "nothing new" in again.summary()
    assert snapshot(root, skip=LEASE_RELPATH) == before


#: Where the first refresh stops: after the ingest; after the last of the 12 prediction tasks, whose chunks and
#: marker are written while the complete days have not moved yet (the test below stops a process after 3 tasks).
CHECKPOINTS = [("era5land-ingested", 1), ("predict-task", 12)]


@pytest.mark.parametrize(("where", "nth"), CHECKPOINTS, ids=[f"{w}-{n}" for w, n in CHECKPOINTS])
def test_refresh_stopped_at_a_checkpoint_is_finished_by_the_next_one(refresh_base: Any, tmp_path: Path, where: str, nth: int) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    land = refresh_base.land()
    seen: dict[str, int] = {}

    def hook(name: str, *_details: Any) -> None:
        seen[name] = seen.get(name, 0) + 1
        days = _reader_check(store, land)
        assert days[0] == pd.Timestamp(FIRST) and days.isin(refresh_base.reference.time.values).all()
        if name == where and seen[name] == nth:
            raise Crash(where)

    with pytest.raises(Crash):
        refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet, checkpoint=hook)
    _reader_check(store, land)
    assert era5_complete_days(store, ERA5LAND_RELPATH)[-1] == pd.Timestamp(LAST)

    report = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet)
    assert report.log is not None
    _assert_equals_reference(store, refresh_base)


def test_refresh_process_stopped_hard_leaves_an_expiring_lease_and_the_next_refresh_finishes(refresh_base: Any, tmp_path: Path) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMCI")}
    env.update({CRASH_ENV: "predict-task:3", "SMCI__REGION__NAME": "tiny", "SMCI__REFRESH__LEASE_TTL_SECONDS": "3"})
    args = [sys.executable, "-m", "smci_dask.cli", "refresh", "--store", str(root), "--no-cluster", "--era5land", refresh_base.january]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 99, done.stderr[-2000:]
    assert "[predict] 3/12" in done.stderr and "[predict] 4/12" not in done.stderr
    days = _reader_check(store, refresh_base.land())
    assert list(days) == list(pd.date_range(FIRST, "2019-12-31"))  # the 3 tasks' days are not listed as complete

    with pytest.raises(LeaseBusy, match="smci refresh on"):  # the dead process's lease is still live ...
        refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet)
    report = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], wait=30, echo=_quiet)  # ... until it expires
    assert list(report.days_added) == list(pd.date_range("2020-01-01", LAST))
    _assert_equals_reference(store, refresh_base)


def test_a_second_refresh_gets_lease_busy_naming_the_holder(any_store: Store) -> None:
    cfg = Config(region=RegionConfig(name="tiny"), years=(2019, 2019), store=StoreConfig(root=any_store.url))
    with hold_lease(any_store, LEASE_RELPATH, holder="the nightly refresh on host-a", ttl=60):
        with pytest.raises(LeaseBusy, match="the nightly refresh on host-a") as info:
            refresh(cfg, any_store, era5land=["/nonexistent/era5.nc"], echo=_quiet)
        assert info.value.exit_code == 7
    assert not any_store.exists("covariates")


def test_cli_says_nothing_new_and_lease_busy(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    store = Store.from_url(str(root))
    runner = CliRunner()
    args = ["refresh", "--store", str(root), "--no-cluster", "--era5land", str(tmp_path / "era5land_2020_01.nc")]
    env = {"SMCI__REGION__NAME": "tiny"}
    with hold_lease(store, LEASE_RELPATH, holder="another refresh", ttl=60):
        busy = runner.invoke(cli, args, env=env)
    assert busy.exit_code == 7, busy.output
    assert "another refresh" in busy.output and busy.output.count("\n") == 1
    assert not store.exists("covariates")

    idle = runner.invoke(cli, ["refresh", "--store", str(root), "--no-cluster"], env=env)  # no inputs configured, no product
    assert idle.exit_code == 0 and "nothing new" in idle.output
    assert store.ls("refresh") == [".lease"]


def test_revised_input_is_reported_then_recomputed_on_request(refresh_base: Any, tmp_path: Path) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    january = tmp_path / "era5" / "era5land_2020_01.nc"
    january.parent.mkdir()
    january.write_bytes(Path(refresh_base.january).read_bytes())
    refresh(refresh_base.config(root), store, era5land=[str(january)], echo=_quiet)
    cube = open_zarr(store, ERA5LAND_RELPATH)["t2m"].sel(time="2020-01-10").values.copy()
    first_day = open_product(store).sel(time=FIRST).load()

    # the provider re-issues the file: 2 m temperature of 10 January one kelvin warmer
    with xr.open_dataset(january) as ds:
        ds = ds.load()
    day = pd.DatetimeIndex(ds["valid_time"].values).normalize() == pd.Timestamp("2020-01-10")
    ds["t2m"][{"valid_time": np.flatnonzero(day)}] = ds["t2m"][{"valid_time": np.flatnonzero(day)}] + 1.0
    os.remove(january)
    ds.to_netcdf(january)

    reported = refresh(refresh_base.config(root), store, era5land=[str(january)], echo=_quiet)
    assert list(reported.revised) == [str(january)] and not len(reported.recomputed)
    assert "2020-01-10" in reported.revised[str(january)] and "--recompute-revised" in reported.summary()
    np.testing.assert_array_equal(open_zarr(store, ERA5LAND_RELPATH)["t2m"].sel(time="2020-01-10").values, cube)

    recomputed = refresh(refresh_base.config(root), store, era5land=[str(january)], recompute_revised=True, echo=_quiet)
    assert pd.Timestamp("2020-01-10") in recomputed.recomputed
    warmer = open_zarr(store, ERA5LAND_RELPATH)["t2m"].sel(time="2020-01-10").values
    np.testing.assert_allclose(warmer[np.isfinite(cube)], cube[np.isfinite(cube)] + 1.0, atol=0.02)
    assert list(complete_days(store)) == list(pd.date_range(FIRST, LAST))
    xr.testing.assert_identical(open_product(store).sel(time=FIRST).load(), first_day)  # a day the file does not touch

    quiet = refresh(refresh_base.config(root), store, era5land=[str(january)], echo=_quiet)
    assert quiet.nothing_new and not quiet.revised


def test_refresh_on_s3_stopped_mid_prediction_is_finished_by_the_next_one(refresh_base: Any, s3_store: tuple[str, dict[str, Any]]) -> None:
    url, options = s3_store
    store = Store.from_url(url, options)
    for part in ("covariates", "models", "product"):
        store.fs.put(str(refresh_base.root / part), store.join(part), recursive=True)
    land = refresh_base.land()
    tasks = []

    def hook(name: str, *_details: Any) -> None:
        if name == "predict-task":  # a reader polling while tasks write chunks (the costly part on S3: only here)
            _reader_check(store, land)
            tasks.append(name)
            if len(tasks) == 5:
                raise Crash(name)

    with pytest.raises(Crash):
        refresh(refresh_base.config(url), store, era5land=[refresh_base.january], echo=_quiet, checkpoint=hook)
    assert list(_reader_check(store, land)) == list(pd.date_range(FIRST, "2019-12-31"))
    report = refresh(refresh_base.config(url), store, era5land=[refresh_base.january], echo=_quiet)
    assert list(report.days_added) == list(pd.date_range("2020-01-01", LAST)) and report.extended_to is None  # extended before the stop
    _assert_equals_reference(store, refresh_base)
