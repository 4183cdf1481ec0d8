"""Client factory: real LocalClusters, a real scheduler address, dask-jobqueue on a fake batch system.

The SLURM/PBS tests put tiny fake ``sbatch``/``scancel`` (``qsub``/``qdel``)
scripts on PATH: "submitting" runs dask-jobqueue's job script detached on this
machine, so the real dask-jobqueue code path starts a real worker. Kubernetes
is tested without a cluster: missing credentials, and the arguments handed to
``KubeCluster`` (replaced by a LocalCluster).

dask-jobqueue and dask-kubernetes add their defaults to ``dask.config`` when
first imported. Imported for the first time inside ``dask.config.set({...})``,
those defaults vanish when the block exits (``set`` deletes the ``jobqueue``
section it believes it created), so this module imports dask-jobqueue up front.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import dask.config
import dask_jobqueue  # imported up front: its import merges its defaults into dask.config (see above)
import pytest
import yaml
from distributed import LocalCluster

from smci_dask.cluster import close_client, cluster_client, cluster_info, factory, format_cluster_info, make_client
from smci_dask.config import ClusterConfig, Config, load_config
from smci_dask.errors import ClusterError

GIB = 1024**3
REPO = Path(__file__).resolve().parents[2]
JOBQUEUE_YAML = REPO / "deploy" / "jobqueue" / "jobqueue.yaml"


def cluster_config(**cluster: Any) -> Config:
    """The packaged defaults with ``cluster`` overrides, ignoring the caller's environment."""
    return load_config(overrides={"cluster": cluster}, environ={})


# ---------------------------------------------------------------- fake batch systems
SUBMIT = """#!/usr/bin/env bash
# fake {submit}: dask-jobqueue deletes the job script on return, so copy it, then run it detached
script=$(mktemp "{jobs}/job.XXXXXX")
cp "$1" "$script"
setsid bash "$script" >"$script.log" 2>&1 </dev/null &
echo "$!" >>"{jobs}/submitted"
echo "{prefix}$!{suffix}"
"""
#: a job id that cannot be a process id (above any pid_max), so the fake cancel kills nothing
NEVER_RUNS = "999999999"
SUBMIT_NOTHING = """#!/usr/bin/env bash
# fake {submit} that accepts the job and never runs it
echo "{prefix}999999999{suffix}"
"""
CANCEL = """#!/usr/bin/env bash
echo "$1" >>"{jobs}/cancelled"
kill -TERM -- "-${{1%%.*}}" 2>/dev/null || true
"""
SYSTEMS = {
    "slurm": ("sbatch", "scancel", "Submitted batch job ", ""),
    "pbs": ("qsub", "qdel", "", ".fake-pbs-server"),
}


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a fake batch system for ``kind`` on PATH; returns the folder recording jobs."""

    def install(kind: str, *, runs_jobs: bool = True) -> Path:
        submit, cancel, prefix, suffix = SYSTEMS[kind]
        bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
        bin_dir.mkdir(exist_ok=True)
        jobs.mkdir(exist_ok=True)
        template = SUBMIT if runs_jobs else SUBMIT_NOTHING
        _script(bin_dir / submit, template.format(submit=submit, jobs=jobs, prefix=prefix, suffix=suffix))
        _script(bin_dir / cancel, CANCEL.format(jobs=jobs))
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        return jobs

    return install


def jobqueue_settings(kind: str, **extra: Any) -> dict[str, Any]:
    """Small jobs for this machine; the scheduler's HTTP server on a free port."""
    settings = {
        f"jobqueue.{kind}.cores": 1,
        f"jobqueue.{kind}.memory": "1GiB",
        f"jobqueue.{kind}.processes": 1,
        f"jobqueue.{kind}.walltime": "00:10:00",
        f"jobqueue.{kind}.scheduler-options": {"dashboard_address": ":0"},
    }
    settings.update({f"jobqueue.{kind}.{k}": v for k, v in extra.items()})
    return settings


# ---------------------------------------------------------------- local
def test_local_threads_cluster_reports_configured_workers() -> None:
    cfg = cluster_config(local={"n_workers": 2, "threads_per_worker": 2, "memory_limit": "1GiB", "processes": False})
    with cluster_client(cfg) as client:
        cluster = client.cluster
        info = cluster_info(client)
        assert info["cluster"] == "LocalCluster"
        assert info["n_workers"] == 2
        assert info["total_threads"] == 4
        assert info["total_memory"] == 2 * GIB
        assert [(w["threads"], w["memory"]) for w in info["workers"]] == [(2, GIB), (2, GIB)]
        assert [w["name"] for w in info["workers"]] == ["0", "1"]
        assert info["scheduler_address"] == client.scheduler.address
        assert client.submit(sum, [1, 2, 3]).result() == 6
        text = format_cluster_info(info)
        assert "2, 4 threads, 2.00 GiB memory" in text
        assert text.count("1.00 GiB") == 2
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_local_processes_cluster_and_address_kind() -> None:
    cfg = cluster_config(local={"n_workers": 1, "threads_per_worker": 1, "memory_limit": "512MiB", "processes": True})
    with cluster_client(cfg.cluster) as client:  # the cluster section alone works too
        info = cluster_info(client)
        assert (info["n_workers"], info["total_threads"], info["total_memory"]) == (1, 1, 512 * 1024**2)
        assert info["scheduler_address"].startswith("tcp://")
        assert info["dashboard_link"] and info["dashboard_link"].startswith("http")
        assert "0.50 GiB" in format_cluster_info(info)

        # kind address: connect to that scheduler; the address client owns no cluster
        remote = make_client(cluster_config(kind="address", address=info["scheduler_address"]), timeout=10)
        try:
            assert remote.cluster is None
            rinfo = cluster_info(remote)
            assert rinfo["cluster"] is None
            assert rinfo["scheduler_address"] == info["scheduler_address"]
            assert (rinfo["n_workers"], rinfo["total_threads"]) == (1, 1)
            assert remote.submit(lambda x: x + 1, 41).result() == 42
            assert "scheduler at an address" in format_cluster_info(rinfo)
        finally:
            close_client(remote)
        # closing the address client leaves the cluster running
        assert client.submit(lambda: 7).result() == 7


def test_cluster_client_closes_on_error() -> None:
    cfg = cluster_config(local={"n_workers": 1, "processes": False, "memory_limit": "256MiB"})
    with pytest.raises(RuntimeError, match="inside"):
        with cluster_client(cfg) as client:
            cluster = client.cluster
            raise RuntimeError("inside")
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_local_bad_memory_limit_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError, match=r"cluster kind 'local': cannot start a LocalCluster .*'lots'.*fix cluster.local"):
        make_client(cluster_config(local={"memory_limit": "lots", "processes": False}))


# ---------------------------------------------------------------- address
def test_unreachable_address_is_one_clear_line() -> None:
    cfg = cluster_config(kind="address", address="tcp://127.0.0.1:9")
    with pytest.raises(ClusterError) as err:
        make_client(cfg, timeout=1)
    message = str(err.value)
    assert message.startswith("cluster kind 'address': cannot reach scheduler tcp://127.0.0.1:9 within 1 s")
    assert "cluster.address" in message
    assert "\n" not in message
    assert err.value.exit_code == ClusterError.exit_code


def test_malformed_address_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError, match="cluster kind 'address': cannot connect to scheduler nonsense://x"):
        make_client(cluster_config(kind="address", address="nonsense://x"), timeout=1)


def test_failed_connection_leaves_dask_scheduler_setting_alone() -> None:
    import dask
    import dask.array as da

    before = dask.config.get("scheduler", None)
    with pytest.raises(ClusterError):
        make_client(cluster_config(kind="address", address="nonsense://x"), timeout=1)
    assert dask.config.get("scheduler", None) == before
    assert float(da.ones(4, chunks=2).sum().compute()) == 4.0  # no "no Client active" afterwards


def test_address_timeout_defaults_to_wait_for_workers_timeout() -> None:
    cfg = cluster_config(kind="address", address="tcp://127.0.0.1:9", wait_for_workers_timeout=0.5)
    with pytest.raises(ClusterError, match="within 0.5 s"):
        make_client(cfg)


# ---------------------------------------------------------------- slurm / pbs
@pytest.mark.parametrize(("kind", "command"), [("slurm", "sbatch"), ("pbs", "qsub")])
def test_jobqueue_without_submit_command(kind: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(ClusterError) as err:
        make_client(cluster_config(kind=kind))
    message = str(err.value)
    assert message.startswith(f"cluster kind '{kind}': the {kind.upper()} command '{command}' is not on PATH")
    assert "\n" not in message


def test_jobqueue_without_cores_and_memory(fake_batch) -> None:
    fake_batch("slurm")
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ClusterError, match=r"jobqueue.slurm.cores and jobqueue.slurm.memory not set: point DASK_CONFIG"):
            make_client(cluster_config(kind="slurm"))


@pytest.mark.parametrize(
    ("kind", "jobqueue"),
    [
        ("slurm", {"jobs": 1}),
        ("slurm", {"adaptive": True, "minimum_jobs": 1, "maximum_jobs": 2}),
        ("pbs", {"jobs": 1}),
    ],
    ids=["slurm-scale", "slurm-adapt", "pbs-scale"],
)
def test_jobqueue_on_a_fake_batch_system(kind: str, jobqueue: dict[str, Any], fake_batch) -> None:
    jobs = fake_batch(kind)
    cfg = cluster_config(kind=kind, jobqueue=jobqueue, wait_for_workers_timeout=30)
    with dask.config.set(jobqueue_settings(kind)):
        with cluster_client(cfg) as client:
            info = cluster_info(client)
            assert info["cluster"] == {"slurm": "SLURMCluster", "pbs": "PBSCluster"}[kind]
            assert info["n_workers"] >= 1
            assert info["workers"][0]["threads"] == 1
            assert info["workers"][0]["memory"] == GIB
            assert client.submit(lambda: 5).result() == 5
    submitted = (jobs / "submitted").read_text().split()
    assert submitted
    # closing the cluster cancelled the jobs it submitted
    cancelled = [c.split(".")[0] for c in (jobs / "cancelled").read_text().split()]
    assert set(submitted) <= set(cancelled)


def test_jobqueue_no_worker_joins(fake_batch) -> None:
    jobs = fake_batch("slurm", runs_jobs=False)
    cfg = cluster_config(kind="slurm", jobqueue={"jobs": 1})
    with dask.config.set(jobqueue_settings("slurm")):
        with pytest.raises(ClusterError) as err:
            make_client(cfg, timeout=1)
    message = str(err.value)
    assert message.startswith("cluster kind 'slurm': no worker joined the scheduler tcp://")
    assert "within 1 s" in message and "squeue" in message
    # the cluster was closed: its job was cancelled
    assert NEVER_RUNS in (jobs / "cancelled").read_text()


def test_jobqueue_zero_jobs_does_not_wait(fake_batch) -> None:
    fake_batch("slurm", runs_jobs=False)
    cfg = cluster_config(kind="slurm", jobqueue={"jobs": 0})
    with dask.config.set(jobqueue_settings("slurm")):
        with cluster_client(cfg, timeout=1) as client:
            assert cluster_info(client)["n_workers"] == 0


# ---------------------------------------------------------------- kubernetes
@pytest.fixture
def no_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No kubeconfig, no home config, no service account."""
    missing = tmp_path / "no-such-kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(factory, "_SERVICE_ACCOUNT_TOKEN", tmp_path / "no-token")
    return missing


def test_kubernetes_without_kube_config(no_kube: Path) -> None:
    with pytest.raises(ClusterError) as err:
        make_client(cluster_config(kind="kubernetes"), timeout=1)
    message = str(err.value)
    assert message.startswith("cluster kind 'kubernetes': no Kubernetes credentials")
    assert str(no_kube) in message and "KUBECONFIG" in message
    assert "\n" not in message


def test_kubernetes_without_kube_config_home_default(no_kube: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG")
    with pytest.raises(ClusterError, match=r"~/.kube/config does not exist"):
        make_client(cluster_config(kind="kubernetes"), timeout=1)


def test_kubernetes_arguments(no_kube: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What KubeCluster receives: the DaskCluster of kubernetes_cluster_spec; a LocalCluster stands in for the pods."""
    import dask_kubernetes.operator

    no_kube.write_text("apiVersion: v1\nkind: Config\n")  # credentials now "exist"
    monkeypatch.setenv("SMCI__STORE__ROOT", "s3://bucket/smci")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-be-copied")
    seen: dict[str, Any] = {}

    def fake_kube_cluster(**kwargs: Any) -> LocalCluster:
        seen.update(kwargs)
        return LocalCluster(n_workers=kwargs["n_workers"], processes=False, memory_limit="256MiB", dashboard_address=":0")

    monkeypatch.setattr(dask_kubernetes.operator, "KubeCluster", fake_kube_cluster)
    cfg = cluster_config(
        kind="kubernetes",
        kubernetes={
            "name": "smci-test",
            "namespace": "soil",
            "n_workers": 1,
            "env_from_driver": ["SMCI__STORE__ROOT", "AWS_ENDPOINT_URL"],
        },
    )
    with cluster_client(cfg, timeout=60) as client:  # generous: the stand-in LocalCluster starts slowly on a busy machine
        assert cluster_info(client)["n_workers"] == 1
    assert seen["namespace"] == "soil" and seen["n_workers"] == 1
    spec = seen["custom_cluster_spec"]
    assert spec["metadata"]["name"] == "smci-test" and spec["spec"]["worker"]["replicas"] == 1
    (worker,) = spec["spec"]["worker"]["spec"]["containers"]
    assert worker["image"] == cfg.cluster.kubernetes.image
    assert worker["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    literal = {e["name"]: e["value"] for e in worker["env"] if "value" in e}
    assert literal == {"SMCI__STORE__ROOT": "s3://bucket/smci"}  # only listed variables the driver has
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in worker["env"] if "valueFrom" in e}
    assert from_secret == {k: "smci-object-store" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    assert "must-not-be-copied" not in str(spec)


def test_kubernetes_operator_failure_is_a_cluster_error(no_kube: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dask_kubernetes.operator

    no_kube.write_text("apiVersion: v1\nkind: Config\n")

    def failing(**kwargs: Any) -> None:
        raise RuntimeError("Failed to create DaskCluster resource.\nAre the Dask Custom Resource Definitions installed?")

    monkeypatch.setattr(dask_kubernetes.operator, "KubeCluster", failing)
    with pytest.raises(ClusterError) as err:
        make_client(cluster_config(kind="kubernetes", kubernetes={"namespace": "soil"}), timeout=1)
    message = str(err.value)
    assert message.startswith("cluster kind 'kubernetes': cannot create DaskCluster 'smci' in soil (Failed to create")
    assert "operator is installed" in message and "\n" not in message


# ---------------------------------------------------------------- reporting
def test_format_cluster_info() -> None:
    info = {
        "cluster": "SLURMCluster",
        "scheduler_address": "tcp://10.0.0.5:8786",
        "dashboard_link": None,
        "n_workers": 2,
        "total_threads": 8,
        "total_memory": 16 * GIB,
        "workers": [
            {"name": "job-0", "address": "tcp://10.0.0.6:4001", "threads": 4, "memory": 16 * GIB},
            {"name": "job-1", "address": "tcp://10.0.0.7:4001", "threads": 4, "memory": 0},
        ],
    }
    text = format_cluster_info(info)  # type: ignore[arg-type]
    lines = text.splitlines()
    assert lines[0] == "Dask cluster (SLURMCluster)"
    assert "tcp://10.0.0.5:8786" in lines[1]
    assert lines[2].split() == ["dashboard", "-"]
    assert "2, 8 threads, 16.00 GiB memory" in lines[3]
    assert lines[5].split() == ["job-0", "4", "16.00", "GiB"]
    assert lines[6].split() == ["job-1", "4", "no", "limit"]


def test_make_client_accepts_config_or_section() -> None:
    cfg = cluster_config(kind="address", address="tcp://127.0.0.1:9")
    for value in (cfg, cfg.cluster):
        assert isinstance(value, Config | ClusterConfig)
        with pytest.raises(ClusterError, match="tcp://127.0.0.1:9"):
            make_client(value, timeout=0.2)


# ---------------------------------------------------------------- the shipped jobqueue.yaml
def _default_keys(kind: str) -> set[str]:
    shipped = yaml.safe_load((Path(dask_jobqueue.__file__).parent / "jobqueue.yaml").read_text())
    return set(shipped["jobqueue"][kind])


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_deploy_jobqueue_yaml_uses_current_keys(kind: str) -> None:
    ours = yaml.safe_load(JOBQUEUE_YAML.read_text())["jobqueue"][kind]
    unknown = set(ours) - _default_keys(kind)
    assert not unknown, f"keys dask-jobqueue does not know: {sorted(unknown)}"
    deprecated = {"extra", "env-extra", "job-extra", "header-skip"} & set(ours)
    assert not deprecated, f"renamed keys: {sorted(deprecated)}"
    assert ours["cores"] and ours["memory"] and ours["processes"]


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_deploy_jobqueue_yaml_job_script(kind: str, tmp_path: Path) -> None:
    from dask.utils import parse_timedelta

    ours = yaml.safe_load(JOBQUEUE_YAML.read_text())["jobqueue"][kind]
    ours["scheduler-options"] = {"dashboard_address": ":0"}
    ours["log-directory"] = str(tmp_path / "logs")  # the driver creates it
    with dask.config.set({f"jobqueue.{kind}.{key}": value for key, value in ours.items()}):
        cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
        with cls() as cluster:
            script = cluster.job_script()
    assert "--lifetime 55m --lifetime-stagger 4m" in script
    assert "--nworkers 4" in script and "--nthreads 4" in script and "--memory-limit 16.00GiB" in script
    assert 'source "${SMCI_VENV:-$HOME/smci-dask/.venv}/bin/activate"' in script  # the job-script prologue
    assert "--local-directory ${TMPDIR:-/tmp}" in script
    # workers retire before the batch system kills the job
    args = ours["worker-extra-args"]
    lifetime = parse_timedelta(args[args.index("--lifetime") + 1])
    stagger = parse_timedelta(args[args.index("--lifetime-stagger") + 1])
    h, m, s = (int(x) for x in ours["walltime"].split(":"))
    assert lifetime + stagger < h * 3600 + m * 60 + s
    assert "--lifetime-restart" not in args  # would restart the worker inside the job the walltime then kills
