"""The `smci` command: help, config show, one-line errors with exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from smci_dask.cli.main import cli


@pytest.fixture
def runner():
    return CliRunner()


def test_help_lists_stages(runner):
    res = runner.invoke(cli, ["--help"])
    assert res.exit_code == 0
    for word in ("synth", "demo", "config", "cluster"):
        assert word in res.output


@pytest.mark.parametrize("cmd", [["synth"], ["demo"], ["config", "show"], ["cluster", "info"]])
def test_every_subcommand_has_help(runner, cmd):
    res = runner.invoke(cli, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


def test_synth_help_states_units_and_defaults(runner):
    out = runner.invoke(cli, ["synth", "--help"]).output
    assert "m3 m-3" in out and "J m-2" in out and "[default: tiny]" in out


def test_config_show_is_effective_yaml(runner, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inference:\n  tile_size: 256\n")
    res = runner.invoke(cli, ["--config", str(f), "config", "show"], env={"SMCI__CLUSTER__LOCAL__N_WORKERS": "5"})
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert shown["inference"]["tile_size"] == 256
    assert shown["cluster"]["local"]["n_workers"] == 5


def test_config_show_masks_secrets(runner):
    res = runner.invoke(cli, ["config", "show", "--format", "json"], env={"SMCI__STORE__STORAGE_OPTIONS__SECRET": "hunter2"})
    assert res.exit_code == 0
    assert "hunter2" not in res.output and '"***"' in res.output


def test_bad_config_is_one_line_with_exit_code(runner):
    res = runner.invoke(cli, ["config", "show"], env={"SMCI__CLUSTER__KIND": "yarn"})
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid configuration")
    assert "'local', 'address', 'slurm', 'pbs' or 'kubernetes'" in lines[0]


def test_unknown_region_is_rejected(runner):
    res = runner.invoke(cli, ["synth", "--out", "/tmp/x", "--region", "atlantis"])
    assert res.exit_code == 2 and "atlantis" in res.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("foo://bucket/x", "unknown protocol 'foo'"),
        ("s3://", "has no bucket or path"),
    ],
)
def test_bad_store_url_one_line(runner, url, message):
    res = runner.invoke(cli, ["synth", "--out", url])
    assert res.exit_code == 3, res.output
    assert message in res.output and "Traceback" not in res.output


def test_debug_prints_traceback(runner):
    res = runner.invoke(cli, ["--debug", "synth", "--out", "foo://x"])
    assert res.exit_code == 3
    assert "Traceback" in res.output


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "smci_dask.cli", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "smci" in proc.stdout


def test_cluster_info_prints_workers_threads_memory_dashboard(runner):
    env = {"SMCI__CLUSTER__LOCAL__PROCESSES": "false", "SMCI__CLUSTER__LOCAL__N_WORKERS": "2", "SMCI__CLUSTER__LOCAL__MEMORY_LIMIT": "1GiB"}
    res = runner.invoke(cli, ["cluster", "info"], env=env)
    assert res.exit_code == 0, res.output
    assert "workers    2, 2 threads, 2.00 GiB memory" in res.output
    assert "dashboard  http://" in res.output


def test_cluster_info_unreachable_address_one_line(runner):
    res = runner.invoke(cli, ["cluster", "info", "--address", "tcp://127.0.0.1:9"], env={"SMCI__CLUSTER__WAIT_FOR_WORKERS_TIMEOUT": "1"})
    assert res.exit_code == 6
    assert res.output.count("\n") == 1 and "cannot reach scheduler tcp://127.0.0.1:9" in res.output
