"""`smci demo` end to end on the tiny region: every stage, the summary, the files, and a re-run that skips it all."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from smci_dask import open_product
from smci_dask.cli.main import cli
from smci_dask.conventions import DEPTHS_CM
from smci_dask.evaluation.scoring import ALL_DEPTHS
from smci_dask.pipeline.run import STAGE_NAMES

pytestmark = pytest.mark.slow


def _record(store, stage):
    return json.loads((store / "pipeline" / "stages" / f"{stage}.json").read_text())


def test_every_stage_ran_and_the_summary_says_what_it_did(tiny_demo):
    store, output = tiny_demo
    manifest = json.loads((store / "inputs" / "world.json").read_text())
    assert manifest["region"] == "tiny"
    assert "smci demo summary" in output and "workers" in output
    assert f"stations                 {manifest['counts']['stations']}" in output
    for stage in STAGE_NAMES:
        assert _record(store, stage)["fingerprint"], stage
        assert f"[{STAGE_NAMES.index(stage) + 1}/{len(STAGE_NAMES)} {stage}] done" in output
    # ten depths trained, each with its chosen parameters and CV scores in the summary and a model card in the store
    run = _record(store, "train")["result"]["model run"]
    for depth in DEPTHS_CM:
        assert f"model {depth} cm" in output
        assert (store / "models" / run / "final" / f"{depth}cm" / "card.json").exists()
        assert (store / "models" / run / "final" / f"{depth}cm" / "table2.png").stat().st_size > 0


def test_the_product_holds_the_last_90_days_on_land(tiny_demo):
    store, _ = tiny_demo
    product = open_product(str(store))
    first, last = (pd.Timestamp(d) for d in _record(store, "predict")["result"]["predicted days"].split(".."))
    assert (last - first).days + 1 == 90 and product.sizes["depth"] == len(DEPTHS_CM)
    # every predicted day is complete (the notebooks may have added earlier days to the same store)
    assert set(pd.date_range(first, last)) <= set(pd.DatetimeIndex(product.time.values))
    assert pd.Timestamp(product.time.values[-1]) == last
    day = product["sm"].isel(time=-1).load()
    land = day.notnull().any("depth")
    assert 0.3 < float(land.mean()) < 1.0  # the tiny region is part sea
    assert float(day.min()) >= 0.0 and float(day.max()) <= 0.6
    figure = _record(store, "predict")["result"]["product map figure"]
    assert (store / figure.split(str(store) + "/", 1)[-1]).stat().st_size > 0


def test_evaluation_and_map_beat_era5land_overall(tiny_demo):
    store, output = tiny_demo
    result = _record(store, "evaluate")["result"]
    report = store / result["evaluation report"].split(str(store) + "/", 1)[-1]
    assert report.name == "evaluation.md" and report.exists()
    metrics = pd.read_csv(report.parent / "metrics.csv")
    pooled = metrics[(metrics["group_by"] == "all") & (metrics["reference"] == "matched") & (metrics["depth"] == ALL_DEPTHS)]
    for experiment in ("year", "station"):
        rows = pooled[pooled["experiment"] == experiment].set_index("estimate")
        assert rows.loc["smci", "ubrmse"] < rows.loc["era5land", "ubrmse"], (experiment, rows)
    # the map against the synthetic truth, all land cells and predicted days
    run = _record(store, "train")["result"]["model run"]
    scores = pd.read_csv(store / "reports" / run / "map_vs_truth.csv").pivot(index="depth_cm", columns="source", values="ubrmse")
    assert scores["smci_1km"].mean() < scores["era5land"].mean()
    assert "map beats ERA5-Land (ubRMSE), depths" in output


def test_a_second_demo_skips_every_stage(tiny_demo, tmp_path):
    store, _ = tiny_demo
    mtime = (store / "inputs" / "world.json").stat().st_mtime_ns
    res = CliRunner().invoke(cli, ["demo", "--region", "tiny", "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "is up to date" in res.output
    for stage in STAGE_NAMES:
        assert f"{stage}] up to date" in res.output, res.output
    assert (store / "inputs" / "world.json").stat().st_mtime_ns == mtime


def test_demo_unreachable_store_is_one_line(s3_server):
    # a bucket that does not exist on the S3 server
    env = {"SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL": s3_server.endpoint_url}
    res = CliRunner().invoke(cli, ["demo", "--region", "tiny", "--store", "s3://no-such-bucket-smci/x"], env=env)
    assert res.exit_code == 3, res.output
    assert "bucket" in res.output and "does not exist" in res.output


def test_run_without_inputs_names_the_missing_setting(tmp_path):
    env = {"SMCI__CLUSTER__LOCAL__PROCESSES": "false", "SMCI__CLUSTER__LOCAL__N_WORKERS": "1", "SMCI__REGION__NAME": "tiny"}
    res = CliRunner().invoke(cli, ["run", "--store", str(tmp_path / "s"), "--only", "era5land"], env=env)
    assert res.exit_code == 2, res.output
    assert "inputs.era5land is empty" in res.output


def test_run_rejects_an_unknown_stage(tmp_path):
    res = CliRunner().invoke(cli, ["run", "--store", str(tmp_path / "s"), "--only", "table,nope"])
    assert res.exit_code == 2, res.output
    assert "'nope': no such stage" in res.output
