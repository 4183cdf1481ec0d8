"""`smci demo` end to end on the tiny region (grows as stages land)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from smci_dask.cli.main import cli
from smci_dask.pipeline.run import STAGE_NAMES


@pytest.mark.slow
def test_demo_tiny_builds_world_and_reports(tmp_path):
    store = tmp_path / "demo"
    env = {"SMCI__CLUSTER__LOCAL__PROCESSES": "false", "SMCI__CLUSTER__LOCAL__N_WORKERS": "1"}
    res = CliRunner().invoke(cli, ["demo", "--region", "tiny", "--store", str(store)], env=env)
    assert res.exit_code == 0, res.output
    manifest = json.loads((store / "inputs" / "world.json").read_text())
    assert manifest["region"] == "tiny"
    assert "smci demo summary" in res.output and "workers" in res.output
    assert f"stations                 {manifest['counts']['stations']}" in res.output

    # a second run keeps the complete world instead of rebuilding it
    mtime = (store / "inputs" / "world.json").stat().st_mtime_ns
    res2 = CliRunner().invoke(cli, ["demo", "--region", "tiny", "--store", str(store)], env=env)
    assert res2.exit_code == 0, res2.output
    assert "is up to date" in res2.output
    # ... and every stage of `smci run` is up to date: nothing is recomputed
    for stage in STAGE_NAMES:
        assert f"{stage}] up to date" in res2.output, res2.output
    assert (store / "pipeline" / "stages" / "table.json").exists()
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
