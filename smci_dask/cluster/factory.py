"""Dask clients for every ``cluster.kind``: local, address, slurm, pbs, kubernetes.

The pipeline asks for a client and never knows which cluster is behind it
(DESIGN.md section 3). Each kind is one small function that builds the
cluster from the ``cluster`` section of the config; everything else about a
batch job comes from dask's own configuration (``jobqueue.slurm.*`` in
``~/.config/dask/jobqueue.yaml`` or ``$DASK_CONFIG``), so an existing
dask-jobqueue setup keeps working. Kubernetes gets the ``DaskCluster`` of
:func:`kubernetes_cluster_spec` (the resource deploy/kubernetes/daskcluster.yaml
holds for the default config).

Ownership: the client returned by :func:`make_client` carries its cluster in
``client.cluster`` (``None`` for ``kind: address``, whose cluster belongs to
someone else). :func:`close_client` closes both; :func:`cluster_client` is
the context manager that does it on exit.

Every failure is a :class:`~smci_dask.errors.ClusterError` with one line
that names the kind, the address or system, and what to do.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypedDict

import dask.config
from distributed import Client, LocalCluster

from smci_dask.config import ClusterConfig, Config
from smci_dask.errors import ClusterError

__all__ = [
    "ClusterInfo",
    "WorkerInfo",
    "close_client",
    "cluster_client",
    "cluster_info",
    "format_cluster_info",
    "kubernetes_cluster_spec",
    "kubernetes_env",
    "make_client",
]

#: batch system (also its dask config section jobqueue.<kind>) -> (dask-jobqueue class name, submit command)
_JOBQUEUE: dict[str, tuple[str, str]] = {
    "slurm": ("SLURMCluster", "sbatch"),
    "pbs": ("PBSCluster", "qsub"),
}

#: where a pod finds its service-account token (in-cluster Kubernetes credentials)
_SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

_GIB = 1024**3


class WorkerInfo(TypedDict):
    """One worker of :func:`cluster_info`: memory in bytes (0 = no limit)."""

    name: str
    address: str
    threads: int
    memory: int


class ClusterInfo(TypedDict):
    """What :func:`cluster_info` reports: memory in bytes."""

    cluster: str | None
    scheduler_address: str
    dashboard_link: str | None
    n_workers: int
    total_threads: int
    total_memory: int
    workers: list[WorkerInfo]


# ---------------------------------------------------------------- errors
def _one_line(exc: BaseException) -> str:
    """An exception as one short line: its type when the message is empty, newlines folded."""
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _error(kind: str, problem: str, todo: str) -> ClusterError:
    return ClusterError(f"cluster kind {kind!r}: {problem}: {todo}")


def _seconds(timeout: float) -> str:
    return f"{timeout:g} s"


# ---------------------------------------------------------------- public API
def make_client(cfg: Config | ClusterConfig, *, timeout: float | None = None) -> Client:
    """A connected :class:`distributed.Client` for ``cfg.cluster``.

    Parameters
    ----------
    cfg
        The whole configuration or its ``cluster`` section.
    timeout
        Seconds to wait for the scheduler (``address``) and for the first worker
        (``local``, ``slurm``, ``pbs``, ``kubernetes``); default
        ``cluster.wait_for_workers_timeout``.

    Returns
    -------
    distributed.Client
        With the cluster it started in ``client.cluster`` (``None`` for
        ``address``). Close both with :func:`close_client`, or use
        :func:`cluster_client`.

    Raises
    ------
    ClusterError
        One line naming the kind, the address or batch system, and what to do.
    """
    cc = cfg.cluster if isinstance(cfg, Config) else cfg
    wait = float(cc.wait_for_workers_timeout if timeout is None else timeout)
    makers: dict[str, Callable[[ClusterConfig, float], Client]] = {
        "local": _local_client,
        "address": _address_client,
        "slurm": _jobqueue_client,
        "pbs": _jobqueue_client,
        "kubernetes": _kubernetes_client,
    }
    maker = makers.get(cc.kind)
    if maker is None:  # the config validates kind; this guards direct construction
        raise _error(cc.kind, "unknown cluster kind", f"use one of {', '.join(makers)}")
    return maker(cc, wait)


def active_client(client: Any = None) -> Any:
    """``client`` if given, else the default :class:`distributed.Client` of this process, else None (run here)."""
    if client is not None:
        return client
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def close_client(client: Client) -> None:
    """Close ``client`` and then the cluster it owns (if any); errors on the way are ignored."""
    cluster = client.cluster
    with suppress(Exception):
        client.close()
    if cluster is not None:
        with suppress(Exception):
            cluster.close()


@contextmanager
def cluster_client(cfg: Config | ClusterConfig, *, timeout: float | None = None) -> Iterator[Client]:
    """Context manager: :func:`make_client` on entry, :func:`close_client` on exit.

    Examples
    --------
    >>> with cluster_client(load_config()) as client:  # doctest: +SKIP
    ...     print(format_cluster_info(cluster_info(client)))
    """
    client = make_client(cfg, timeout=timeout)
    try:
        yield client
    finally:
        close_client(client)


# ---------------------------------------------------------------- kinds
def _local_client(cc: ClusterConfig, wait: float) -> Client:
    lc = cc.local
    options: dict[str, Any] = {
        "n_workers": lc.n_workers,
        "threads_per_worker": lc.threads_per_worker,
        "memory_limit": lc.memory_limit,
        "processes": lc.processes,
        "dashboard_address": lc.dashboard_address,
    }
    if lc.dashboard_address is None:
        # distributed still binds its HTTP server to 8787 when the dashboard is off; keep the port free
        options["dashboard_address"] = ":0"
        options["scheduler_kwargs"] = {"dashboard": False}
    try:
        cluster = LocalCluster(**options)
    except Exception as exc:
        raise _error(
            "local",
            f"cannot start a LocalCluster of {lc.n_workers} worker(s) x {lc.threads_per_worker} thread(s), "
            f"memory_limit {lc.memory_limit!r} ({_one_line(exc)})",
            "fix cluster.local (memory_limit like '4GiB', a free dashboard_address)",
        ) from None
    return _attach(cluster, "local", "the local machine", wait, expect_workers=True)


def _address_client(cc: ClusterConfig, wait: float) -> Client:
    address = cc.address
    if not address:
        raise _error("address", "cluster.address is not set", "give the scheduler address, e.g. tcp://10.0.0.5:8786")
    # A Client registers itself as dask's default (global client + scheduler setting) *before* it
    # connects, and a failed connection leaves it there: every later compute then hangs on it. So
    # probe with a non-default client first, and only make the default one once that worked.
    scheduler_before = dask.config.get("scheduler", None)
    try:
        Client(address, timeout=wait, set_as_default=False).close()
        return Client(address, timeout=wait)
    except (OSError, TimeoutError) as exc:
        detail = _one_line(exc)
        problem = f"cannot reach scheduler {address} within {_seconds(wait)}"
        if not detail.startswith("Timed out"):  # distributed's own timeout message repeats the line
            problem += f" ({detail})"
    except Exception as exc:  # malformed address, protocol mismatch ...
        problem = f"cannot connect to scheduler {address} ({_one_line(exc)})"
    _restore_scheduler(scheduler_before)
    raise _error("address", problem, "start a scheduler there (dask scheduler) or fix cluster.address")


def _restore_scheduler(before: object) -> None:
    if before is None:
        dask.config.config.pop("scheduler", None)
    else:
        dask.config.set(scheduler=before)


def _jobqueue_client(cc: ClusterConfig, wait: float) -> Client:
    kind = cc.kind
    class_name, submit = _JOBQUEUE[kind]
    if shutil.which(submit) is None:
        raise _error(
            kind,
            f"the {kind.upper()} command '{submit}' is not on PATH",
            f"run on a {kind.upper()} login node (or load its module), or choose another cluster.kind",
        )
    try:
        import dask_jobqueue  # its import merges its defaults into dask.config: import before reading jobqueue.*
    except ImportError as exc:
        raise _error(kind, f"dask-jobqueue is not importable ({_one_line(exc)})", "install dask-jobqueue") from None
    missing = [key for key in ("cores", "memory") if dask.config.get(f"jobqueue.{kind}.{key}", None) is None]
    if missing:
        keys = " and ".join(f"jobqueue.{kind}.{key}" for key in missing)
        raise _error(
            kind,
            f"dask config {keys} not set",
            "point DASK_CONFIG at deploy/jobqueue/jobqueue.yaml or copy it to ~/.config/dask/ and edit it",
        )

    jq = cc.jobqueue
    try:
        cluster = getattr(dask_jobqueue, class_name)()
    except Exception as exc:
        raise _error(
            kind,
            f"dask-jobqueue {class_name} rejected the dask config jobqueue.{kind} ({_one_line(exc)})",
            "fix jobqueue.yaml (see deploy/jobqueue/jobqueue.yaml)",
        ) from None
    try:
        if jq.adaptive:
            cluster.adapt(minimum_jobs=jq.minimum_jobs, maximum_jobs=jq.maximum_jobs)
            expect = jq.minimum_jobs > 0
        else:
            cluster.scale(jobs=jq.jobs)
            expect = jq.jobs > 0
    except Exception as exc:
        with suppress(Exception):
            cluster.close()
        raise _error(kind, f"cannot request jobs from {kind.upper()} ({_one_line(exc)})", "check cluster.jobqueue") from None
    return _attach(cluster, kind, f"{kind.upper()} jobs", wait, expect_workers=expect)


def _kubernetes_credentials() -> str | None:
    """Where kube credentials would come from, or None when there are none (no network access)."""
    kubeconfig = os.environ.get("KUBECONFIG")
    paths = [p for p in kubeconfig.split(os.pathsep) if p] if kubeconfig else ["~/.kube/config"]
    for p in paths:
        if Path(p).expanduser().is_file():
            return f"kubeconfig {p}"
    if os.environ.get("KUBERNETES_SERVICE_HOST") and _SERVICE_ACCOUNT_TOKEN.is_file():
        return "the pod's service account"
    return None


#: The operator's defaults start `dask-worker` and `dask-scheduler`, console scripts that
#: distributed no longer installs (the image has only `dask`): use its subcommands.
K8S_WORKER_COMMAND = "dask worker"
K8S_SCHEDULER_ARGS = ("dask", "scheduler", "--host", "0.0.0.0")


def kubernetes_env(cfg: Config | ClusterConfig, environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The pods' environment: each ``secret_keys`` entry from the Secret (secretKeyRef), then ``env_from_driver``.

    Credentials stay in the Secret: the DaskCluster resource holds only the
    reference. ``environ`` (default :data:`os.environ`) supplies the values of
    ``env_from_driver`` that the driver has; the others are left out.
    """
    kc = (cfg.cluster if isinstance(cfg, Config) else cfg).kubernetes
    environ = os.environ if environ is None else environ
    env: list[dict[str, Any]] = []
    if kc.secret:
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": kc.secret, "key": key, "optional": True}}} for key in kc.secret_keys]
    env += [{"name": name, "value": environ[name]} for name in kc.env_from_driver if name in environ]
    return env


def kubernetes_cluster_spec(cfg: Config | ClusterConfig, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``DaskCluster`` resource that ``cluster.kind: kubernetes`` creates; contacts nothing.

    dask-kubernetes' own :func:`~dask_kubernetes.operator.make_cluster_spec`
    with the name, image, worker count and resources of ``cluster.kubernetes``
    and :func:`kubernetes_env`, the scheduler started as ``dask scheduler``.
    deploy/kubernetes/daskcluster.yaml is this resource for the default config
    (a test compares the two).
    """
    from dask_kubernetes.operator import make_cluster_spec

    kc = (cfg.cluster if isinstance(cfg, Config) else cfg).kubernetes
    spec: dict[str, Any] = make_cluster_spec(
        name=kc.name,
        image=kc.image,
        n_workers=kc.n_workers,
        resources=copy.deepcopy(dict(kc.resources)) or None,
        env=kubernetes_env(cfg, environ),
        worker_command=K8S_WORKER_COMMAND,
    )
    for container in spec["spec"]["scheduler"]["spec"]["containers"]:
        container["args"] = list(K8S_SCHEDULER_ARGS) + container["args"][3:]  # keeps --jupyter when asked for
    return spec


def _kubernetes_client(cc: ClusterConfig, wait: float) -> Client:
    kc = cc.kubernetes
    if _kubernetes_credentials() is None:
        where = f"KUBECONFIG={os.environ['KUBECONFIG']}" if os.environ.get("KUBECONFIG") else "~/.kube/config"
        raise _error(
            "kubernetes",
            f"no Kubernetes credentials ({where} does not exist and this is not a pod with a service account)",
            "point KUBECONFIG at your cluster's kubeconfig or run the driver inside the cluster",
        )
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError as exc:
        raise _error("kubernetes", f"dask-kubernetes is not importable ({_one_line(exc)})", "install dask-kubernetes") from None

    spec = kubernetes_cluster_spec(cc)
    before = set(getattr(KubeCluster, "_instances", ()))
    failure: str | None = None
    try:
        cluster = KubeCluster(custom_cluster_spec=spec, namespace=kc.namespace, n_workers=kc.n_workers)
    except Exception as exc:
        failure = _one_line(exc)
    if failure is not None:
        _forget_failed_kubeclusters(KubeCluster, before)
        namespace = kc.namespace or "the kubeconfig's default namespace"
        raise _error(
            "kubernetes",
            f"cannot create DaskCluster {kc.name!r} in {namespace} ({failure})",
            "check that the dask-kubernetes operator is installed and your kubeconfig context can create DaskClusters",
        )
    return _attach(cluster, "kubernetes", f"DaskCluster {kc.name!r}", wait, expect_workers=kc.n_workers > 0)


def _forget_failed_kubeclusters(kube_cluster: type, before: set[Any]) -> None:
    """Close and forget KubeCluster objects a failed constructor left behind.

    dask-kubernetes registers every KubeCluster before it starts, and an atexit
    hook closes them all: a half-built one prints a long traceback at interpreter
    exit after our one-line error. ``_instances`` is private; if it changes, this
    does nothing.
    """
    instances = getattr(kube_cluster, "_instances", None)
    if instances is None:
        return
    for cluster in set(instances) - before:
        with suppress(Exception):
            cluster.close(timeout=10)
        with suppress(Exception):
            instances.discard(cluster)


def _attach(cluster: Any, kind: str, where: str, wait: float, *, expect_workers: bool) -> Client:
    """A client on ``cluster``; waits for a first worker when workers were requested. Closes all on failure."""
    try:
        client = Client(cluster)
    except Exception as exc:
        with suppress(Exception):
            cluster.close()
        raise _error(kind, f"cannot connect a client to the scheduler of {where} ({_one_line(exc)})", "see the scheduler log") from None
    if expect_workers:
        problem: str | None = None
        try:
            client.wait_for_workers(1, timeout=wait)
        except TimeoutError:
            problem = f"no worker joined the scheduler {_scheduler_address(cluster)} within {_seconds(wait)} ({where})"
        except Exception as exc:
            problem = f"waiting for the first worker failed ({where}: {_one_line(exc)})"
        if problem is not None:
            close_client(client)
            raise _error(kind, problem, _WAIT_HINTS[kind])
    return client


def _scheduler_address(cluster: Any) -> str:
    try:
        return str(cluster.scheduler_address)
    except Exception:
        return "(address unknown)"


_WAIT_HINTS: dict[str, str] = {
    "local": "check memory and the worker log, or raise cluster.wait_for_workers_timeout",
    "slurm": "check the jobs with squeue and their logs (jobqueue.slurm.log-directory), or raise cluster.wait_for_workers_timeout",
    "pbs": "check the jobs with qstat and their logs (jobqueue.pbs.log-directory), or raise cluster.wait_for_workers_timeout",
    "kubernetes": "check the worker pods (kubectl get pods -l dask.org/cluster-name=...), or raise cluster.wait_for_workers_timeout",
}


# ---------------------------------------------------------------- reporting
def cluster_info(client: Client) -> ClusterInfo:
    """Scheduler address, dashboard link, workers, threads and memory of ``client``'s cluster.

    Returns
    -------
    ClusterInfo
        ``total_memory`` and each worker's ``memory`` in bytes (0 = no limit);
        workers sorted by name.
    """
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before the n_workers argument
        info = client.scheduler_info()
    workers: list[WorkerInfo] = [
        {
            "name": str(w.get("name", address)),
            "address": address,
            "threads": int(w.get("nthreads", 0)),
            "memory": int(w.get("memory_limit") or 0),
        }
        for address, w in info.get("workers", {}).items()
    ]
    workers.sort(key=lambda w: (len(w["name"]), w["name"]))
    try:
        dashboard: str | None = client.dashboard_link
    except Exception:
        dashboard = None
    cluster = client.cluster
    return {
        "cluster": type(cluster).__name__ if cluster is not None else None,
        "scheduler_address": str(info.get("address") or client.scheduler.address),
        "dashboard_link": dashboard,
        "n_workers": len(workers),
        "total_threads": sum(w["threads"] for w in workers),
        "total_memory": sum(w["memory"] for w in workers),
        "workers": workers,
    }


def _gib(nbytes: int) -> str:
    return f"{nbytes / _GIB:.2f} GiB" if nbytes > 0 else "no limit"


def format_cluster_info(info: ClusterInfo) -> str:
    """:func:`cluster_info` as a text block for humans (memory in GiB)."""
    cluster = info["cluster"] or "scheduler at an address"
    lines = [
        f"Dask cluster ({cluster})",
        f"  scheduler  {info['scheduler_address']}",
        f"  dashboard  {info['dashboard_link'] or '-'}",
        f"  workers    {info['n_workers']}, {info['total_threads']} threads, {_gib(info['total_memory'])} memory",
    ]
    if info["workers"]:
        width = max(4, *(len(w["name"]) for w in info["workers"]))
        lines.append(f"    {'name':<{width}}  {'threads':>7}  {'memory':>12}")
        lines.extend(f"    {w['name']:<{width}}  {w['threads']:>7}  {_gib(w['memory']):>12}" for w in info["workers"])
    return "\n".join(lines)
