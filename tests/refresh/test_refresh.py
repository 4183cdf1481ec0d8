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
from smci_dask.errors import StoreError
from smci_dask.io import Store, open_zarr
from smci_dask.io.lease import LeaseBusy, hold_lease
from smci_dask.pipeline.ingest import ERA5LAND_RELPATH
from smci_dask.pipeline.refresh import CHECKPOINTS as REFRESH_CHECKPOINTS
from smci_dask.pipeline.refresh import CRASH_ENV, LEASE_RELPATH, LOG_RELPATH, refresh
from smci_dask.products import smci1km
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


#: Where the first refresh stops: every checkpoint a January refresh with ERA5-Land and LAI files passes (the revised-*
#: ones only pass when a revision is recomputed: see the revised tests), ``predict-task`` after the first and after the
#: last of the 12 prediction tasks (whose chunks and markers are written while the complete days have not moved yet);
#: the subprocess test below stops a process after 3 tasks, the S3 test at 3 more points.
CHECKPOINTS = [
    ("locked", 1),
    ("era5land-ingested", 1),
    ("lai-reset", 1),
    ("lai-ingested", 1),
    ("axis-extended", 1),
    ("predict-task", 1),
    ("predict-task", 12),
    ("predicted", 1),
    ("aggregated-9km", 1),
    ("exported", 1),
    ("logged", 1),
]


def test_the_parametrisation_covers_every_checkpoint_a_january_refresh_passes() -> None:
    passed = {w for w, _ in CHECKPOINTS} | {"revised-reset", "revised-reingested"}
    assert passed == set(REFRESH_CHECKPOINTS)


@pytest.mark.parametrize(("where", "nth"), CHECKPOINTS, ids=[f"{w}-{n}" for w, n in CHECKPOINTS])
def test_refresh_stopped_at_a_checkpoint_is_finished_by_the_next_one(refresh_base: Any, tmp_path: Path, where: str, nth: int) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    land = refresh_base.land()
    lai = refresh_base.lai("2019-12-19", "2020-02-02")  # held already: their md5s are recorded, nothing re-ingested
    seen: dict[str, int] = {}

    def hook(name: str, *_details: Any) -> None:
        seen[name] = seen.get(name, 0) + 1
        days = _reader_check(store, land)
        assert days[0] == pd.Timestamp(FIRST) and days.isin(refresh_base.reference.time.values).all()
        if name == where and seen[name] == nth:
            raise Crash(where)

    with pytest.raises(Crash):
        refresh(refresh_base.config(root), store, era5land=[refresh_base.january], lai=lai, echo=_quiet, checkpoint=hook)
    _reader_check(store, land)
    if where not in ("locked",):
        assert era5_complete_days(store, ERA5LAND_RELPATH)[-1] == pd.Timestamp(LAST)

    report = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], lai=lai, echo=_quiet)
    _assert_equals_reference(store, refresh_base)
    logs = [json.loads(store.read_text(f"{LOG_RELPATH}/{n}")) for n in store.ls(LOG_RELPATH)]
    if where in ("locked", "era5land-ingested", "lai-reset", "lai-ingested"):  # stopped before predicting: the re-run adds the days
        assert report.log is not None and [r["status"] for r in logs] == ["done"]
    elif where == "logged":
        assert report.nothing_new and [r["status"] for r in logs] == ["done"]
    else:  # stopped while adding the days: its record says so; the re-run adds what was left and logs that
        assert logs[0]["status"] == "running" and logs[0]["days_added"] == [["2020-01-01", LAST]]
        assert all(r["status"] == "done" for r in logs[1:])
    assert not refresh(refresh_base.config(root), store, era5land=[refresh_base.january], lai=lai, echo=_quiet).days_added.size


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


#: The S3 checkpoints: each run of the chain below stops at the next one (the S3 refresh is paid once, not three times).
S3_CHECKPOINTS = [("era5land-ingested", 1), ("predict-task", 5), ("aggregated-9km", 1)]


def test_refresh_on_s3_stopped_at_three_checkpoints_is_finished_by_the_next_one(
    refresh_base: Any, s3_store: tuple[str, dict[str, Any]]
) -> None:
    """Four refreshes on S3: the first three stop at the checkpoints of :data:`S3_CHECKPOINTS` in turn, the fourth finishes."""
    url, options = s3_store
    store = Store.from_url(url, options)
    for part in ("covariates", "models", "product"):
        store.fs.put(str(refresh_base.root / part), store.join(part), recursive=True)
    land = refresh_base.land()

    for where, nth in S3_CHECKPOINTS:
        seen: dict[str, int] = {}

        def hook(name: str, *_details: Any, where: str = where, nth: int = nth, seen: dict[str, int] = seen) -> None:
            seen[name] = seen.get(name, 0) + 1
            if name in ("predict-task", where):  # a reader polling while tasks write chunks (the costly part on S3: only here)
                _reader_check(store, land)
            if name == where and seen[name] == nth:
                raise Crash(name)

        with pytest.raises(Crash):
            refresh(refresh_base.config(url), store, era5land=[refresh_base.january], echo=_quiet, checkpoint=hook)
        days = _reader_check(store, land)
        expected = pd.date_range(FIRST, LAST if where == "aggregated-9km" else "2019-12-31")
        assert list(days) == list(expected)

    report = refresh(refresh_base.config(url), store, era5land=[refresh_base.january], echo=_quiet)
    assert report.nothing_new  # the third run had finished everything but the (absent) exports and the log
    _assert_equals_reference(store, refresh_base)
    logs = [json.loads(store.read_text(f"{LOG_RELPATH}/{n}")) for n in store.ls(LOG_RELPATH)]
    assert [r["status"] for r in logs] == ["running", "running"]  # the 2nd and 3rd runs, both stopped after starting to add days


# ------------------------------------------------------------------ the time axis grows under the readers' eyes
def test_time_axis_extension_shows_readers_the_same_complete_days_between_its_writes(
    refresh_base: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    before = open_product(store, complete_only=True).load()
    days = complete_days(store)
    seen: list[tuple[str, int]] = []

    def reader(step: str) -> None:
        ds = open_product(store)  # opens at every moment
        assert list(complete_days(store)) == list(days)
        xr.testing.assert_identical(open_product(store, complete_only=True).load(), before)
        seen.append((step, ds.sizes["time"]))

    def spy(fn: Any, step: str) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            reader(f"{step} {args[2] if step == 'resize' else args[2][0][0]}")
            return out

        return wrapped

    monkeypatch.setattr(smci1km, "resize_zarr_array", spy(smci1km.resize_zarr_array, "resize"))
    monkeypatch.setattr(smci1km, "write_zarr_blocks", spy(smci1km.write_zarr_blocks, "write"))
    axis = pd.date_range("2019-01-01", "2020-12-31")
    assert smci1km.extend_time_axis(store, smci1km.PRODUCT_1KM_RELPATH, axis)
    # the time array grows and gets its values while sm keeps the old length (readers see 365 days), then sm grows
    assert seen == [("resize time", 365), ("write time", 365), ("resize sm", 731)]
    plain = xr.open_zarr(root / "product" / "smci_1km", consolidated=False)  # a plain reader sees the whole new axis
    assert list(plain.time.values) == list(axis.values) and bool(plain["sm"].sel(time="2020-06-01").isnull().all())
    assert not smci1km.extend_time_axis(store, smci1km.PRODUCT_1KM_RELPATH, axis)


def test_a_reader_whose_first_look_fell_inside_the_extension_and_second_after_it_sees_the_new_axis(
    refresh_base: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's first open fails ("conflicting sizes", mid-extension); the extension ends before its second look."""
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    axis = pd.date_range("2019-01-01", "2020-12-31")
    real_open = smci1km.open_zarr
    looks: list[str] = []

    def open_during_then_after(store_: Store, relpath: str, **kwargs: Any) -> Any:
        if not looks:
            looks.append("inside")
            smci1km.extend_time_axis(store, smci1km.PRODUCT_1KM_RELPATH, axis)  # finishes while the reader retries
            raise StoreError(f"store {store.url}: cannot open Zarr {relpath!r}: ValueError: conflicting sizes for dimension 'time'")
        looks.append("after")
        return real_open(store_, relpath, **kwargs)

    monkeypatch.setattr(smci1km, "open_zarr", open_during_then_after)
    ds = open_product(store)
    assert looks[0] == "inside"
    assert list(ds.time.values) == list(axis.values) and ds.sizes["time"] == ds["sm"].shape[0] == len(axis)


def test_time_axis_extension_stopped_between_its_writes_is_finished_by_the_next_one(
    refresh_base: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    real = smci1km.resize_zarr_array

    def stop_at_sm(store_: Store, relpath: str, name: str, length: int) -> Any:
        if name == "sm":
            raise Crash("before sm grows")
        return real(store_, relpath, name, length)

    monkeypatch.setattr(smci1km, "resize_zarr_array", stop_at_sm)
    with pytest.raises(Crash):
        refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet)
    assert list(complete_days(store)) == list(pd.date_range(FIRST, "2019-12-31"))
    assert open_product(store).sizes["time"] == 365  # time holds 731 values, sm 365 days: the old axis is shown
    monkeypatch.setattr(smci1km, "resize_zarr_array", real)
    report = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet)
    assert report.extended_to == pd.Timestamp("2020-12-31")
    _assert_equals_reference(store, refresh_base)


# ------------------------------------------------------------------ LAI: revised composites, late composites
def _centre(start: str) -> pd.Timestamp:
    """Mid-point of an 8-day composite's window (written out here, not taken from the package)."""
    return pd.Timestamp(start) + pd.Timedelta(hours=3.5 * 24)


def _revise_lai(path: Path, add: int) -> None:
    """Rewrite a MODIS-like GeoTIFF with ``add`` raw units (x 0.1 m2 m-2) on its valid pixels that stay valid."""
    import rasterio

    with rasterio.open(path) as src:
        profile, tags, band_tags = src.profile, src.tags(), src.tags(1)
        scales, offsets = src.scales, src.offsets
        data = src.read(1)
    data = np.where(data <= 100 - add, data + add, data).astype(data.dtype)  # inside the tagged valid_range 0..100
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(**tags)
        dst.update_tags(1, **band_tags)
        dst.scales, dst.offsets = scales, offsets


def _fresh_reference(
    refresh_base: Any, tmp_path: Path, lai_files: list[str], drop: list[str], start: str, end: str, era5_days: Any = None
) -> xr.Dataset:
    """A product made from scratch (2019-2020 axis) from the base's covariates with composites ``drop`` re-ingested from ``lai_files``.

    The cube lists ``era5_days`` as complete (default 2019-01-01 .. LAST: the base's cube holds January's chunks).
    """
    import shutil

    from smci_dask.covariates import ingest_lai
    from smci_dask.covariates.lai import complete_composites, set_complete_composites
    from smci_dask.grid import grid_for
    from smci_dask.inference import predict_product
    from smci_dask.products.smci1km import set_complete_days

    root = tmp_path / "reference"
    shutil.copytree(refresh_base.root, root, ignore=shutil.ignore_patterns("product", "refresh"))
    ref = Store.from_url(str(root))
    set_complete_days(ref, ERA5LAND_RELPATH, pd.date_range("2019-01-01", LAST) if era5_days is None else era5_days)
    set_complete_composites(ref, complete_composites(ref).difference(pd.DatetimeIndex(drop)))
    if lai_files:
        ingest_lai(lai_files, ref, grid_for("tiny"))
    predict_product(refresh_base.config(root, (2019, 2020)), ref, start=start, end=end, run=refresh_base.run, echo=_quiet)
    return open_product(ref, complete_only=True).load()


def test_revised_lai_file_is_reported_then_its_days_recomputed_on_request(refresh_base: Any, tmp_path: Path) -> None:
    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    folder = tmp_path / "lai"
    folder.mkdir()
    for f in refresh_base.lai("2019-12-19", "2020-02-02"):
        (folder / Path(f).name).write_bytes(Path(f).read_bytes())
    lai = [str(folder)]
    first = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], lai=lai, echo=_quiet)
    assert not first.revised and not len(first.lai_updated) and not first.lai_composites  # held already: md5s recorded
    _assert_equals_reference(store, refresh_base)
    product = open_product(store, complete_only=True).load()
    revised = next(folder.glob("*A2020009*"))
    _revise_lai(revised, 5)  # +0.5 m2 m-2

    # the days whose daily LAI reads composite 2020-01-09: strictly between the centres of its neighbours
    affected = pd.date_range(_centre("2020-01-01").ceil("D"), _centre("2020-01-17").floor("D"))
    assert (affected[0], affected[-1]) == (pd.Timestamp("2020-01-05"), pd.Timestamp("2020-01-20"))
    reported = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], lai=lai, echo=_quiet)
    assert reported.nothing_new and list(reported.revised) == [str(revised)]
    assert reported.revised[str(revised)] == [f"{d:%Y-%m-%d}" for d in affected] and "--recompute-revised" in reported.summary()
    xr.testing.assert_identical(open_product(store, complete_only=True).load(), product)

    recomputed = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], lai=lai, recompute_revised=True, echo=_quiet)
    assert list(recomputed.recomputed) == list(affected) and list(recomputed.days_added) == list(affected)
    assert recomputed.lai_composites == [pd.Timestamp("2020-01-09")]
    got = open_product(store, complete_only=True).load()
    assert list(got.time.values) == list(pd.date_range(FIRST, LAST).values)
    others = ~got.time.isin(affected.values)
    xr.testing.assert_identical(got.sel(time=others), product.sel(time=others))  # the days that do not read it are untouched
    expected = _fresh_reference(refresh_base, tmp_path, [str(revised)], ["2020-01-09"], FIRST, LAST)
    np.testing.assert_array_equal(got["sm"].values, expected["sm"].values)
    assert not np.array_equal(got["sm"].sel(time=affected).values, product["sm"].sel(time=affected).values)
    nine = open_product(store, PRODUCT_9KM_RELPATH, complete_only=True)
    assert list(nine.time.values) == list(pd.date_range(FIRST, LAST).values)

    quiet = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], lai=lai, echo=_quiet)
    assert quiet.nothing_new and not quiet.revised


def test_late_lai_composites_repredict_the_days_that_read_extrapolated_lai(refresh_base: Any, tmp_path: Path) -> None:
    from smci_dask.covariates.lai import complete_composites, set_complete_composites

    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    held = complete_composites(store)
    set_complete_composites(store, held[held <= pd.Timestamp("2020-01-09")])  # LAI lags: the store ends with 2020-01-09
    early = refresh(refresh_base.config(root), store, era5land=[refresh_base.january], echo=_quiet)
    assert list(early.days_added) == list(pd.date_range("2020-01-01", LAST))

    late = refresh(refresh_base.config(root), store, lai=refresh_base.lai("2020-01-17", "2020-02-02"), echo=_quiet)
    # past the centre of 2020-01-09 the days read it as the nearest composite; now they interpolate towards the new ones
    expected = pd.date_range(_centre("2020-01-09").ceil("D"), LAST)
    assert list(late.lai_updated) == list(expected) and list(late.days_added) == list(expected)
    assert late.lai_composites == [pd.Timestamp(d) for d in ("2020-01-17", "2020-01-25", "2020-02-02")]
    _assert_equals_reference(store, refresh_base)  # as if the composites had been there from the start


def test_backfill_predicts_the_cube_days_before_the_first_complete_day(refresh_base: Any, tmp_path: Path) -> None:
    from smci_dask.products.smci1km import set_complete_days

    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    listed = pd.date_range("2019-12-14", "2019-12-31")
    set_complete_days(store, ERA5LAND_RELPATH, listed)  # the cube lists fewer days: a short history to fill
    assert refresh(refresh_base.config(root), store, echo=_quiet).nothing_new  # by default history is left to `smci predict`

    report = refresh(refresh_base.config(root), store, backfill=True, echo=_quiet)
    assert list(report.days_added) == list(pd.date_range("2019-12-14", "2019-12-23")) and report.extended_to is None
    assert not len(report.outside_axis)
    assert list(complete_days(store)) == list(pd.date_range("2019-12-14", "2019-12-31"))
    assert list(complete_days(store, PRODUCT_9KM_RELPATH)) == list(pd.date_range("2019-12-14", "2019-12-31"))
    # features read only the cube's listed days (the precipitation sums of the first days are shorter), so the
    # reference is made from scratch with the same cube; the days the base held were made with the whole cube
    expected = _fresh_reference(refresh_base, tmp_path, [], [], "2019-12-14", "2019-12-23", era5_days=listed)
    got = open_product(store, complete_only=True).sel(time=slice("2019-12-14", "2019-12-23"))
    assert list(got.time.values) == list(expected.time.values)
    np.testing.assert_array_equal(got["sm"].values, expected["sm"].values)


def test_cli_backfill_option_reaches_the_refresh(refresh_base: Any, tmp_path: Path) -> None:
    from smci_dask.products.smci1km import set_complete_days

    root = refresh_base.copy(tmp_path / "store")
    store = Store.from_url(str(root))
    set_complete_days(store, ERA5LAND_RELPATH, pd.date_range("2019-12-21", "2019-12-31"))
    args = ["refresh", "--store", str(root), "--no-cluster", "--backfill", "--format", "json"]
    res = CliRunner().invoke(cli, args, env={"SMCI__REGION__NAME": "tiny"})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["days_added"] == [["2019-12-21", "2019-12-23"]]
