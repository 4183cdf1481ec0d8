"""`smci predict` through the CLI, and a run on the S3 server with a distributed client."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from click.testing import CliRunner

from smci_dask import conventions as cv
from smci_dask.cli.main import cli
from smci_dask.config import StoreConfig
from smci_dask.errors import GridError
from smci_dask.inference import predict_product
from smci_dask.io import Store, open_zarr

if TYPE_CHECKING:
    from conftest import Trained  # tests/inference/conftest.py


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_cli_predicts_with_progress_and_defaults_to_the_latest_run(trained: Trained) -> None:
    args = ["predict", "--start", "2020-06-01", "--end", "2020-06-02", "--store", str(trained.root), "--region", "tiny"]
    res = _cli(*args, "--tile-size", "32", "--time-block", "4", "--no-cluster", "--format", "json")
    assert res.exit_code == 0, res.output + res.stderr
    progress = [line for line in res.stderr.splitlines() if line.startswith("[predict] ") and " tile " in line]
    assert len(progress) == 4 and progress[-1].startswith("[predict] 4/4 ")
    assert '"run": "t1"' in res.stdout and '"tasks_run": 4' in res.stdout
    raw = open_zarr(trained.store, "product/smci_1km", mask_and_scale=False)
    assert raw.attrs["model_run"] == "t1" and raw.attrs["complete_days"] == [["2020-06-01", "2020-06-02"]]
    assert (raw[cv.SM].sel({cv.TIME: "2020-06-02"}).values != cv.PRODUCT_FILL).any()
    again = _cli(*args, "--no-cluster")
    assert again.exit_code == 0 and "0 task(s) run, 4 already done" in again.stdout
    # and its distribution files
    out = trained.root / "exported"
    res = _cli(
        "export",
        "netcdf",
        "--period",
        "day",
        "--start",
        "2020-06-01",
        "--end",
        "2020-06-02",
        "--store",
        str(trained.root),
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output + res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["SMCI_1km_20200601.nc", "SMCI_1km_20200602.nc"]
    res = _cli("export", "netcdf", "--start", "2020-06-03", "--end", "2020-06-03", "--store", str(trained.root))
    assert res.exit_code == 5 and res.stderr.count("\n") == 1 and "does not hold days 2020-06-03 completely" in res.stderr


def test_cli_errors_are_one_line(trained: Trained, tmp_path: Path) -> None:
    bare = trained.bare_copy(tmp_path / "bare")
    res = _cli("predict", "--start", "2020-06-01", "--end", "2020-06-02", "--store", bare.url, "--region", "tiny", "--no-cluster")
    assert res.exit_code == 5
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no fitted models under") and "run `smci train` first" in lines[0]
    res = _cli("predict", "--start", "2021-02-01", "--end", "2021-02-02", "--store", str(trained.root), "--region", "tiny", "--no-cluster")
    assert res.exit_code == 5 and "2021-02-01..2021-02-02 lie outside the product period" in res.stderr
    res = _cli("predict", "--start", "2020-06-01", "--end", "2020-06-01", "--bbox", "1,2,3", "--no-cluster")
    assert res.exit_code == 2 and "W,S,E,N" in res.output + res.stderr


def test_s3_store_small_bbox_on_a_distributed_client(trained: Trained, s3_store: tuple[str, dict[str, Any]]) -> None:
    """The same tile and days on S3 (through a distributed client) and locally (in process): identical codes."""
    import s3fs
    from distributed import Client

    url, opts = s3_store
    fs = s3fs.S3FileSystem(**opts, use_listings_cache=False)
    target = url.removeprefix("s3://")
    for part in ("covariates/era5land", "covariates/lai", "covariates/static", "models"):  # what predict reads
        fs.put(str(trained.root / part), f"{target}/{part}", recursive=True)
    store = Store.from_url(url, opts)
    cfg = trained.config().model_copy(update={"store": StoreConfig(root=url, storage_options=opts)})
    bbox = (115.30, 37.30, 115.35, 37.35)  # inside the tile at row 0, column 1 of 32-cell tiles
    lines: list[str] = []
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        report = predict_product(cfg, store, start="2020-07-02", end="2020-07-03", bbox=bbox, client=client, echo=lines.append)
    assert report.tasks_run == 1 and sum(" tile (0, 1)" in line for line in lines) == 1 and report.land_cell_days > 0
    local = predict_product(
        trained.config(), trained.store, start="2020-07-02", end="2020-07-03", bbox=bbox, echo=lines.append, relpath="product/s3ref"
    )
    assert local.tasks_run == 1
    on_s3 = open_zarr(store, "product/smci_1km", mask_and_scale=False)[cv.SM].sel({cv.TIME: slice("2020-07-02", "2020-07-03")}).values
    ref = open_zarr(trained.store, "product/s3ref", mask_and_scale=False)[cv.SM].sel({cv.TIME: slice("2020-07-02", "2020-07-03")}).values
    assert np.array_equal(on_s3, ref)
    written = on_s3 != cv.PRODUCT_FILL
    assert written[:, :, :32, 32:60].any() and not written[:, :, 32:, :].any() and not written[:, :, :, :32].any()
    assert open_zarr(store, "product/smci_1km").attrs["complete_days"] == []  # three of the four tiles are not written
    assert len(store.ls("product/smci_1km.tasks")) == 1
    with pytest.raises(GridError, match="does not overlap"):
        predict_product(cfg, store, start="2020-07-01", end="2020-07-01", bbox=(100.0, 10.0, 101.0, 11.0), echo=lines.append)
