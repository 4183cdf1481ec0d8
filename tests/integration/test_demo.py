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


def test_evaluation_and_map_beat_era5land_at_every_depth(tiny_demo):
    """Ours beats ERA5-Land's ubRMSE at every depth on the map and in the station experiment; in the year one pooled.

    On the tiny world the year experiment trains on one year (2019) of 18
    station cells: per depth it is within a few per cent of ERA5-Land either
    way, so only its pooled figure is asserted (see issue notes).
    """
    store, output = tiny_demo
    result = _record(store, "evaluate")["result"]
    report = store / result["evaluation report"].split(str(store) + "/", 1)[-1]
    assert report.name == "evaluation.md" and report.exists()
    metrics = pd.read_csv(report.parent / "metrics.csv")
    rows = metrics[(metrics["group_by"] == "all") & (metrics["reference"] == "matched")]
    for experiment in ("year", "station"):
        table = rows[rows["experiment"] == experiment].pivot(index="depth", columns="estimate", values="ubrmse")
        assert len(table) == len(DEPTHS_CM) + 1, table  # every depth and the pooled row
        assert table.loc[ALL_DEPTHS, "smci"] < table.loc[ALL_DEPTHS, "era5land"], table
        if experiment == "station":
            losing = table[~(table["smci"] < table["era5land"])]
            assert losing.empty, f"{experiment}: ERA5-Land's ubRMSE is lower at\n{losing}"
    # the map against the synthetic truth, all land cells and predicted days, every depth
    run = _record(store, "train")["result"]["model run"]
    scores = pd.read_csv(store / "reports" / run / "map_vs_truth.csv").pivot(index="depth_cm", columns="source", values="ubrmse")
    assert sorted(scores.index) == list(DEPTHS_CM)
    losing = scores[~(scores["smci_1km"] < scores["era5land"])]
    assert losing.empty, f"map vs truth: ERA5-Land's ubRMSE is lower at\n{losing}"
    assert f"map beats ERA5-Land (ubRMSE), depths {len(DEPTHS_CM)}/{len(DEPTHS_CM)}" in output


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


@pytest.fixture(scope="module")
def tiny_demo_s3(s3_server):
    """`smci demo --region tiny` with every store (the world's files included) in a bucket of the S3 server."""
    import s3fs

    bucket = "smci-demo-s3"
    s3fs.S3FileSystem(**s3_server.storage_options).mkdir(bucket)
    env = {"SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL": s3_server.endpoint_url}
    url = f"s3://{bucket}/demo"
    res = CliRunner().invoke(cli, ["demo", "--region", "tiny", "--store", url], env=env)
    assert res.exit_code == 0, res.output
    return url, res.output


def test_demo_on_s3_runs_every_stage_and_writes_the_product_report_and_figures(tiny_demo_s3, s3_server):
    import s3fs

    url, output = tiny_demo_s3
    fs = s3fs.S3FileSystem(**s3_server.storage_options, use_listings_cache=False)
    root = url.removeprefix("s3://")
    for stage in STAGE_NAMES:
        assert f"[{STAGE_NAMES.index(stage) + 1}/{len(STAGE_NAMES)} {stage}] done" in output
        assert fs.exists(f"{root}/pipeline/stages/{stage}.json"), stage
    train = json.loads(fs.cat(f"{root}/pipeline/stages/train.json"))["result"]
    run = train["model run"]
    for depth in DEPTHS_CM:
        assert f"model {depth} cm" in output
        assert fs.exists(f"{root}/models/{run}/final/{depth}cm/card.json")
    product = open_product(url, storage_options=s3_server.storage_options)
    first, last = (
        pd.Timestamp(d) for d in json.loads(fs.cat(f"{root}/pipeline/stages/predict.json"))["result"]["predicted days"].split("..")
    )
    assert pd.Timestamp(product.time.values[-1]) == last and (last - first).days + 1 == 90
    assert fs.exists(f"{root}/reports/{run}/evaluation.md") and fs.exists(f"{root}/reports/{run}/map_vs_truth.csv")
    assert fs.size(f"{root}/reports/{run}/smci_1km_{last:%Y%m%d}.png") > 0
    # the same headline as on local disk: ERA5-Land beaten at every depth on the map
    assert f"map beats ERA5-Land (ubRMSE), depths {len(DEPTHS_CM)}/{len(DEPTHS_CM)}" in output
