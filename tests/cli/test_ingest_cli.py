"""`smci ingest lai|static|stations` through the CLI on the synthetic tiny world."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import rasterio
from click.testing import CliRunner

from smci_dask import conventions as cv
from smci_dask.cli.main import cli
from smci_dask.covariates import open_lai, open_static
from smci_dask.io import Store


def _run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_ingest_static_and_lai(tiny_world, tmp_path):
    world, manifest = tiny_world
    out = tmp_path / "stores"
    text = _run("ingest", "static", world.join("static"), "--store", str(out), "--region", "tiny")
    assert f"({manifest['counts']['land cells']} land)" in text
    static = open_static(Store.from_url(str(out)))
    with rasterio.open(world.join("static/porosity.tif")) as src:
        np.testing.assert_allclose(static["porosity"].values, src.read(1, masked=True).filled(np.nan), equal_nan=True)

    text = _run("ingest", "lai", world.join("lai") + "/*.tif", "--store", str(out), "--region", "tiny")
    assert f"{manifest['counts']['lai composites']} composites written" in text
    lai = open_lai(Store.from_url(str(out)))
    with rasterio.open(world.join(sorted(manifest["files"]["lai"])[0])) as src:
        raw = src.read(1)
    expected = np.where(raw <= cv.LAI_VALID_MAX, raw * cv.LAI_SCALE, np.nan)
    np.testing.assert_allclose(lai["lai"].isel(time8=0).values, expected, rtol=0, atol=1e-6, equal_nan=True)

    again = _run("ingest", "lai", world.join("lai") + "/*.tif", "--store", str(out), "--region", "tiny")
    assert "0 composites written" in again


def test_ingest_stations_with_qc_and_matching(tiny_world, tiny_stores, tmp_path):
    world, _ = tiny_world
    stores, _ = tiny_stores
    out = tmp_path / "stores"
    # matching needs the ERA5-Land cube: reuse the session's, copied so the shared store stays untouched
    shutil.copytree(stores.join("covariates/era5land"), out / "covariates" / "era5land")
    table = pd.read_csv(world.join("stations/station_table.csv"))
    two = [world.join(f"stations/ismn/SYNTH/{s}") for s in table["station"][:2]]
    text = _run("ingest", "stations", *two, "--format", "ismn", "--store", str(out), "--region", "tiny")
    assert "stations: 2 read" in text and "kept after QC" in text
    daily = pd.read_parquet(out / "insitu" / "daily")
    assert daily["sm_matched"].notna().any()
    assert set(daily["depth_cm"].astype(int)) <= set(cv.DEPTHS_CM)
    # QC removed the injected negative readings before the daily means
    obs = pd.read_parquet(out / "insitu" / "observations")
    sm = obs[obs["variable"] == "sm"]
    assert not sm.loc[sm["qc_good"].astype(bool), "value"].lt(0).any()


def test_ingest_stations_bad_path_is_one_line(tmp_path):
    args = ["ingest", "stations", str(tmp_path / "nothing-here"), "--format", "ismn", "--store", str(tmp_path / "s")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 5
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "nothing-here" in errors[0] and "check the path" in errors[0]
    assert "Traceback" not in res.output


def test_ingest_help_states_units():
    for sub, words in (("lai", "m2 m-2"), ("static", "m3 m-3"), ("stations", "m3/m3")):
        out = _run("ingest", sub, "--help")
        assert words in out, sub


def test_table_command_writes_the_training_table(tiny_stores, tmp_path):
    stores, _ = tiny_stores
    out = tmp_path / "stores"
    for part in ("covariates", "insitu"):
        shutil.copytree(stores.join(part), out / part)
    text = _run("table", "--store", str(out), "--region", "tiny")
    table = pd.read_parquet(out / "training" / "table")
    daily = pd.read_parquet(out / "insitu" / "daily")
    assert len(table) == len(daily) and f"training table: {len(table)} rows" in text
    assert {"tp_sum28", "swvl2", "lai", "porosity", "sm_matched"} <= set(table.columns)
