"""Client factories: a local cluster, an existing scheduler, dask-jobqueue or Kubernetes.

The pipeline gets a :class:`distributed.Client` from :func:`make_client` (or
the :func:`cluster_client` context manager) and never knows which kind of
cluster ``cluster.kind`` named.
"""

from __future__ import annotations

from smci_dask.cluster.factory import (
    ClusterInfo,
    WorkerInfo,
    active_client,
    close_client,
    cluster_client,
    cluster_info,
    format_cluster_info,
    kubernetes_cluster_spec,
    kubernetes_env,
    make_client,
)

__all__ = [
    "ClusterInfo",
    "WorkerInfo",
    "active_client",
    "close_client",
    "cluster_client",
    "cluster_info",
    "format_cluster_info",
    "kubernetes_cluster_spec",
    "kubernetes_env",
    "make_client",
]
