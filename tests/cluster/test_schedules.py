"""deploy/: the scheduled `smci refresh` examples parse, and their command lines really run `smci refresh`.

- systemd (``deploy/systemd/``): ``systemd-analyze verify`` accepts the
  service and the timer (with the paths of this checkout), and the service's
  ``ExecStart`` runs; without systemd-analyze the files are parsed as INI.
- cron (``deploy/cron/``): every line is a comment, a variable or 5 valid
  time fields and a command; the command runs, writing its log line.
- SLURM (``deploy/jobqueue/``): the scrontab entries parse and start the
  driver script with ``refresh``; the self-resubmitting sbatch script passes
  ``bash -n`` and, run with stand-in ``sbatch`` and ``smci``, queues its next
  run for tomorrow as a singleton before starting the refresh.
- Kubernetes: the CronJob validates (Kubernetes 1.33 schemas, strict), forbids
  concurrent runs and runs ``smci refresh``.

"Runs" means the real ``smci`` on an empty store: it says "nothing new" and
exits 0; with the store's lease held by someone else it exits 7.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from smci_dask.cli.main import cli
from smci_dask.io import Store
from smci_dask.io.lease import hold_lease
from smci_dask.pipeline.refresh import LEASE_RELPATH

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SERVICE = DEPLOY / "systemd" / "smci-refresh.service"
TIMER = DEPLOY / "systemd" / "smci-refresh.timer"
CRON = DEPLOY / "cron" / "smci-refresh.cron"
SCRONTAB = DEPLOY / "jobqueue" / "smci-refresh.scrontab"
SBATCH = DEPLOY / "jobqueue" / "smci-refresh.slurm"
CRONJOB = DEPLOY / "kubernetes" / "smci-refresh-cronjob.yaml"
SMCI = Path(sys.executable).parent / "smci"
#: The install paths the examples use, replaced by this checkout's in the tests.
OPT_SMCI = "/opt/smci-dask/.venv/bin/smci"
ETC_CONFIG = "/etc/smci/smci.yaml"
ETC_ENV = "/etc/smci/refresh.env"

#: Allowed values of the 5 cron time fields (day of week 7 is Sunday too).
CRON_FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)]


def check_cron_field(text: str, name: str, low: int, high: int) -> None:
    """Raise ValueError unless ``text`` is a cron field: ``*``, numbers, ranges ``a-b``, lists, steps ``/n``."""
    for part in text.split(","):
        span, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            raise ValueError(f"{name} {text!r}: bad step {step!r}")
        if span == "*":
            continue
        first, _, last = span.partition("-")
        for value in (first, last) if last else (first,):
            if not value.isdigit() or not low <= int(value) <= high:
                raise ValueError(f"{name} {text!r}: {value!r} is not in {low}..{high}")
        if last and int(last) < int(first):
            raise ValueError(f"{name} {text!r}: empty range")


def cron_entries(path: Path) -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """A crontab's variables and its entries ``(5 time fields, command)``; ValueError for any other line."""
    variables: dict[str, str] = {}
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            raise ValueError(f"{path.name} line {number}: 5 time fields and a command expected: {line!r}")
        for text, (name, low, high) in zip(parts[:5], CRON_FIELDS, strict=True):
            check_cron_field(text, name, low, high)
        if re.search(r"(?<!\\)%", parts[5]):
            raise ValueError(f"{path.name} line {number}: an unescaped % ends a cron command")
        entries.append((parts[:5], parts[5]))
    return variables, entries


@pytest.mark.parametrize(
    ("line", "ok"),
    [("30 6 * * * x", True), ("*/15 0-23 1,15 * 1-5 x", True), ("60 6 * * * x", False), ("30 6 * * x", False), ("30 6 * 0 * x", False)],
)
def test_the_cron_parser_rejects_bad_lines(tmp_path: Path, line: str, ok: bool) -> None:
    path = tmp_path / "tab"
    path.write_text(line + "\n")
    if ok:
        assert len(cron_entries(path)[1]) == 1
    else:
        with pytest.raises(ValueError):
            cron_entries(path)


# ---------------------------------------------------------------- running the commands for real
@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """An empty store, a run config (region tiny) and the credentials file, as on an installed machine.

    The store's root comes from the credentials file (``SMCI__STORE__ROOT``), not from the config (which names
    another folder), so a run that reports on the store has read that file as its scheduler would.
    """
    store = tmp_path / "store"
    store.mkdir()
    config = tmp_path / "smci.yaml"
    config.write_text(yaml.safe_dump({"region": {"name": "tiny"}, "store": {"root": str(tmp_path / "not-this-one")}}))
    env_file = tmp_path / "refresh.env"
    env_file.write_text(f"SMCI__STORE__ROOT={store}\n")
    return {"store": store, "config": config, "env_file": env_file, "home": tmp_path}


def local_paths(text: str, site: dict[str, Path]) -> str:
    return text.replace(OPT_SMCI, str(SMCI)).replace(ETC_CONFIG, str(site["config"])).replace(ETC_ENV, str(site["env_file"]))


def clean_env(site: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMCI", "DASK_CONFIG", "SLURM_"))}
    return {**env, "HOME": str(site["home"])}


def test_systemd_units_are_wired_to_smci_refresh() -> None:
    service = configparser.ConfigParser(interpolation=None, strict=True)
    service.optionxform = str  # type: ignore[assignment,method-assign]
    service.read_string(SERVICE.read_text())
    timer = configparser.ConfigParser(interpolation=None, strict=True)
    timer.optionxform = str  # type: ignore[assignment,method-assign]
    timer.read_string(TIMER.read_text())

    argv = shlex.split(service["Service"]["ExecStart"])
    assert argv[0] == OPT_SMCI and argv[1:3] == ["--config", ETC_CONFIG] and argv[3] == "refresh"
    assert service["Service"]["Type"] == "oneshot"
    assert "7" in service["Service"]["SuccessExitStatus"].split()  # the lease is held elsewhere: not a failure
    assert timer["Timer"]["Unit"] == SERVICE.name and timer["Timer"]["OnCalendar"]
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / SERVICE.name).write_text(SERVICE.read_text().replace(OPT_SMCI, str(SMCI)).replace("/opt/smci-dask", str(REPO)))
    shutil.copy(TIMER, units / TIMER.name)

    def verify() -> subprocess.CompletedProcess[str]:
        args = ["systemd-analyze", "verify", str(units / SERVICE.name), str(units / TIMER.name)]
        return subprocess.run(args, capture_output=True, text=True, timeout=60)

    out = verify()
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    calendar = subprocess.run(["systemd-analyze", "calendar", "*-*-* 06:30:00 UTC"], capture_output=True, text=True, timeout=60)
    assert calendar.returncode == 0 and "Next elapse" in calendar.stdout
    # the check is real: a unit without ExecStart is refused
    (units / SERVICE.name).write_text((units / SERVICE.name).read_text().replace("ExecStart=", "ExecStarted="))
    assert verify().returncode != 0


def test_systemd_exec_start_runs_smci_refresh(site: dict[str, Path]) -> None:
    service = configparser.ConfigParser(interpolation=None)
    service.optionxform = str  # type: ignore[assignment,method-assign]
    service.read_string(local_paths(SERVICE.read_text(), site))
    assert service["Service"]["EnvironmentFile"] == f"-{site['env_file']}"
    env = clean_env(site)
    env.update(line.split("=", 1) for line in site["env_file"].read_text().splitlines())  # as systemd reads EnvironmentFile
    out = subprocess.run(shlex.split(service["Service"]["ExecStart"]), capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"refresh: nothing new for {site['store']}" in out.stdout

    # a refresh holding the store's lease: this one waits --wait seconds, then exits 7 (the same arguments, in-process, waiting 1 s)
    argv = shlex.split(service["Service"]["ExecStart"])[1:]
    argv[argv.index("--wait") + 1] = "1"
    with hold_lease(Store.from_url(str(site["store"])), LEASE_RELPATH, holder="a refresh on another machine", ttl=60):
        busy = CliRunner().invoke(cli, argv, env={"SMCI_CONFIG": None, "SMCI__STORE__ROOT": str(site["store"])})
    assert busy.exit_code == 7 and "a refresh on another machine" in busy.output, busy.output


def test_cron_line_parses_and_runs_smci_refresh(site: dict[str, Path]) -> None:
    variables, entries = cron_entries(CRON)
    assert variables == {"SHELL": "/bin/sh"}
    ((fields, command),) = entries
    assert fields == ["30", "6", "*", "*", "*"]
    assert f"{OPT_SMCI} --config {ETC_CONFIG} refresh" in command

    out = subprocess.run(["/bin/sh", "-c", local_paths(command, site)], capture_output=True, text=True, env=clean_env(site), timeout=120)
    assert out.returncode == 0, out.stderr
    log = (site["home"] / "smci-refresh.log").read_text()
    assert f"refresh: nothing new for {site['store']}" in log


# ---------------------------------------------------------------- SLURM
def _sbatch_options(text: str, directive: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(rf"^{directive} (--[a-z-]+)=(\S+)$", text, re.MULTILINE))


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, str]:
    """A venv whose ``smci`` prints what it got, and an ``sbatch`` that records its arguments, first on PATH."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    smci = bin_dir / "smci"
    smci.write_text('#!/bin/sh\necho "smci $*"\necho "KIND=$SMCI__CLUSTER__KIND"\necho "SMCI_CONFIG=$SMCI_CONFIG"\n')
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/sbatch.args"\necho 43\n')
    for exe in (smci, sbatch):
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMCI", "DASK_CONFIG", "SLURM_"))}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "SMCI_VENV": str(tmp_path / "venv"), "HOME": str(tmp_path)}


def test_scrontab_entry_parses_and_starts_the_driver_with_refresh(stand_ins: dict[str, str], tmp_path: Path) -> None:
    text = SCRONTAB.read_text()
    options = _sbatch_options(text, "#SCRON")
    assert options["--job-name"] == "smci-refresh" and re.fullmatch(r"\d+:\d\d:\d\d", options["--time"])
    assert options == _sbatch_options(SBATCH.read_text(), "#SBATCH")  # the two SLURM variants ask for the same job
    _, entries = cron_entries(SCRONTAB)
    ((fields, command),) = entries
    assert fields == ["30", "6", "*", "*", "*"]

    # as SLURM runs it: the command line in a shell, with the checkout where the example expects $HOME/smci-dask
    (tmp_path / "smci-dask").symlink_to(REPO)
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=stand_ins, cwd=tmp_path, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["smci refresh --wait 600", "KIND=slurm", f"SMCI_CONFIG={tmp_path}/smci-dask/smci.yaml"]


def test_self_resubmitting_sbatch_script(stand_ins: dict[str, str], tmp_path: Path) -> None:
    check = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert os.access(SBATCH, os.X_OK)

    env = {**stand_ins, "SLURM_SUBMIT_DIR": str(REPO), "SLURM_JOB_ID": "42"}
    spooled = tmp_path / "slurm_script"  # sbatch runs a copy of the script, not the file in deploy/
    shutil.copy(SBATCH, spooled)
    before = date.today()
    out = subprocess.run(["bash", str(spooled)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30)
    after = date.today()
    assert out.returncode == 0, out.stderr
    (submitted,) = (tmp_path / "sbatch.args").read_text().splitlines()
    args = submitted.split()
    assert args[-1] == str(SBATCH)  # the original, found through SLURM_SUBMIT_DIR
    begin = dict(a.split("=", 1) for a in args[:-1] if "=" in a)["--begin"]
    assert begin in {f"{d + timedelta(days=1):%Y-%m-%d}T06:30:00" for d in (before, after)}
    assert {"--parsable", "--dependency=singleton", "--job-name=smci-refresh"} <= set(args)
    lines = out.stdout.splitlines()
    assert lines[0] == f"smci refresh: job 42; next run queued as job 43 for {begin}"
    assert lines[2:] == ["smci refresh --wait 600", "KIND=slurm", f"SMCI_CONFIG={REPO}/smci.yaml"]


# ---------------------------------------------------------------- Kubernetes
def test_cronjob_forbids_overlaps_and_runs_refresh() -> None:
    (doc,) = [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d]
    kubernetes_validate.validate(doc, "1.33.0", strict=True)
    spec = doc["spec"]
    assert doc["kind"] == "CronJob" and spec["concurrencyPolicy"] == "Forbid"
    for text, (name, low, high) in zip(spec["schedule"].split(), CRON_FIELDS, strict=True):
        check_cron_field(text, name, low, high)
    job = spec["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert container["args"][0] == "refresh" and job["template"]["spec"]["restartPolicy"] == "Never"
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and 7 in rule["onExitCodes"]["values"]  # a busy lease is not retried
    broken = {**doc, "spec": {**spec, "concurrencyPolicy": "Forbid", "schedulee": "x"}}
    with pytest.raises(Exception, match="schedulee"):
        kubernetes_validate.validate(broken, "1.33.0", strict=True)


def test_readme_documents_every_schedule() -> None:
    text = (DEPLOY / "README.md").read_text()
    section = text[text.index("## Scheduling refreshes") :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    for path in (SERVICE, TIMER, CRON, SCRONTAB, SBATCH, CRONJOB):
        assert str(path.relative_to(DEPLOY)) in section, path.name
    assert "exit" in section and " 7" in section and "lease" in section
