"""deploy/kubernetes: every manifest validates, and `cluster.kind: kubernetes` creates the manifest's DaskCluster.

Built-in kinds are validated with kubernetes-validate (the Kubernetes JSON
schemas, strict: unknown fields fail). The operator's DaskCluster and
DaskAutoscaler are validated against dask-kubernetes' own CRD schemas: they
ship as templates whose ``$ref`` point at ``python://dask_kubernetes/...``
(the templates beside them) and ``python://k8s_crd_resolver/...`` (Kubernetes'
PodSpec and ServiceSpec), resolved here to the package files and to
kubernetes-validate's definitions. No cluster is contacted.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import dask_kubernetes
import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from smci_dask.cluster import kubernetes_cluster_spec, kubernetes_env
from smci_dask.config import load_config

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "deploy" / "kubernetes"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
#: the Kubernetes version the manifests are validated for
K8S_VERSION = "1.33.0"
DASK_API = "kubernetes.dask.org/v1"
CRD_DIR = Path(dask_kubernetes.__file__).parent / "operator" / "customresources"
#: env names that would hold a credential
SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.IGNORECASE)


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every document of every deploy/kubernetes/*.yaml, as (file, document)."""
    out = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path.name, doc))
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


# ---------------------------------------------------------------- the operator's CRD schemas
@cache
def _k8s_definitions() -> dict[str, Any]:
    """kubernetes-validate's strict definitions, also under ``definitions`` (where the CRD templates point)."""
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    doc = json.loads((folder / "_definitions.json").read_text())
    return {**doc, "definitions": doc["$defs"]}


def _retrieve(uri: str) -> Resource:
    if uri.startswith("python://k8s_crd_resolver/") or uri.endswith("/api/_definitions.json"):
        return Resource.from_contents(_k8s_definitions(), default_specification=DRAFT202012)
    prefix = "python://dask_kubernetes/"
    if uri.startswith(prefix):
        path = Path(dask_kubernetes.__file__).parent / uri[len(prefix) :]
        return Resource.from_contents(yaml.safe_load(path.read_text()), default_specification=DRAFT202012)
    raise LookupError(f"unexpected schema reference {uri}")


@cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    """A validator for the operator's ``kind`` (DaskCluster, DaskAutoscaler) from its CRD's openAPIV3Schema."""
    crd = yaml.safe_load((CRD_DIR / f"{kind.lower()}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = version["schema"]["openAPIV3Schema"]
    registry: Registry = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(doc: dict[str, Any]) -> None:
    """Raise when ``doc`` does not validate (operator CRD schema or the Kubernetes schema)."""
    if doc["apiVersion"] == DASK_API:
        crd_validator(doc["kind"]).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# ---------------------------------------------------------------- every manifest
def test_the_expected_resources_are_there() -> None:
    kinds = sorted({(doc["apiVersion"], doc["kind"]) for _, doc in manifests()})
    assert kinds == [
        ("apps/v1", "Deployment"),
        ("batch/v1", "CronJob"),
        ("batch/v1", "Job"),
        (DASK_API, "DaskAutoscaler"),
        (DASK_API, "DaskCluster"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
    ]


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=[f"{name}:{doc['kind']}" for name, doc in manifests()])
def test_manifest_validates(name: str, doc: dict[str, Any]) -> None:
    validate(doc)


@pytest.mark.parametrize(
    ("kind", "break_it", "message"),
    [
        ("DaskCluster", lambda d: d["spec"]["worker"].update(replicas="two"), "is not of type 'integer'"),
        ("DaskCluster", lambda d: d["spec"]["worker"]["spec"]["containers"][0].update(imagee="x"), "imagee"),
        ("DaskCluster", lambda d: d["spec"]["scheduler"].pop("service"), "'service' is a required property"),
        ("DaskAutoscaler", lambda d: d["spec"].pop("maximum"), "'maximum' is a required property"),
        ("Job", lambda d: d["spec"]["template"]["spec"].update(restartPolicy=3), "3 is not of type"),
        ("CronJob", lambda d: d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].update(envv=[]), "envv"),
    ],
    ids=["replicas", "container-typo", "no-service", "autoscaler-max", "job-type", "cronjob-typo"],
)
def test_validation_catches_broken_manifests(kind: str, break_it: Any, message: str) -> None:
    """The schemas are really applied: a broken copy of each kind fails with the reason."""
    doc = copy.deepcopy(by_kind(kind)[0])
    validate(doc)
    break_it(doc)
    with pytest.raises(jsonschema.ValidationError, match=re.escape(message)):
        validate(doc)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a manifest (pod templates of Jobs, CronJobs, Deployments, DaskClusters)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                found.extend(node["containers"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def test_no_credentials_in_the_manifests() -> None:
    """Secret-looking variables come from Secrets (secretKeyRef) only; no Secret resource ships with values."""
    assert not by_kind("Secret")
    refs = set()
    for name, doc in manifests():
        for container in _containers(doc):
            for env in container.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env, f"{name}: {env['name']} has a literal value"
                    ref = env["valueFrom"]["secretKeyRef"]
                    refs.add(ref["name"])
                    assert ref["key"] == env["name"] or env["name"] == "JUPYTER_TOKEN"
        text = yaml.safe_dump(doc)
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"{name}: looks like an AWS access key id"
    assert refs == {"smci-object-store", "smci-jupyter"}


# ---------------------------------------------------------------- Python and manifests agree
def test_python_cluster_spec_is_the_daskcluster_manifest() -> None:
    """`cluster.kind: kubernetes` with the packaged defaults creates exactly deploy/kubernetes/daskcluster.yaml."""
    (manifest,) = by_kind("DaskCluster")
    spec = kubernetes_cluster_spec(load_config(environ={}), environ={})
    assert spec == manifest
    validate(spec)


def test_python_cluster_spec_follows_the_config() -> None:
    cfg = load_config(
        overrides={
            "cluster": {
                "kubernetes": {
                    "name": "soil",
                    "image": "registry.example.org/smci:1.2",
                    "n_workers": 7,
                    "resources": {"limits": {"cpu": "4", "memory": "16Gi"}},
                    "secret": "s3-creds",
                    "secret_keys": ["AWS_ACCESS_KEY_ID"],
                    "env_from_driver": ["SMCI__STORE__ROOT", "NOT_SET"],
                }
            }
        },
        environ={},
    )
    spec = kubernetes_cluster_spec(cfg, environ={"SMCI__STORE__ROOT": "s3://b/smci"})
    validate(spec)
    worker = spec["spec"]["worker"]
    (scheduler,) = spec["spec"]["scheduler"]["spec"]["containers"]
    (container,) = worker["spec"]["containers"]
    assert spec["metadata"]["name"] == "soil" and worker["replicas"] == 7
    assert spec["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == "soil"
    for c in (container, scheduler):
        assert c["image"] == "registry.example.org/smci:1.2"
        # resources merge with the defaults' requests
        assert c["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "16Gi"}}
        ref = {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID", "optional": True}
        assert c["env"] == [
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": ref}},
            {"name": "SMCI__STORE__ROOT", "value": "s3://b/smci"},
        ]
    assert container["args"][:2] == ["dask", "worker"] and scheduler["args"][:2] == ["dask", "scheduler"]
    # no Secret at all: no references
    no_secret = cfg.cluster.model_copy(update={"kubernetes": cfg.cluster.kubernetes.model_copy(update={"secret": None})})
    assert kubernetes_env(no_secret, {}) == []


def test_manifests_agree_with_each_other_and_the_image() -> None:
    (cluster,) = by_kind("DaskCluster")
    (autoscaler,) = by_kind("DaskAutoscaler")
    name = cluster["metadata"]["name"]
    image = cluster["spec"]["worker"]["spec"]["containers"][0]["image"]
    assert autoscaler["spec"]["cluster"] == name
    assert 1 <= autoscaler["spec"]["minimum"] <= autoscaler["spec"]["maximum"]
    uid = int(re.search(r"^ARG SMCI_UID=(\d+)$", DOCKERFILE.read_text(), re.MULTILINE).group(1))  # type: ignore[union-attr]
    scheduler = f"tcp://{name}-scheduler:8786"  # the operator's service name for the scheduler
    drivers = by_kind("Job") + by_kind("CronJob") + by_kind("Deployment")
    assert len(drivers) == 3
    for doc in drivers:
        (container,) = _containers(doc)
        assert container["image"] == image
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SMCI__CLUSTER__KIND"] == "address" and env["SMCI__CLUSTER__ADDRESS"] == scheduler
        assert env["SMCI_CONFIG"] == "/etc/smci/smci.yaml"
        pod = doc["spec"]["template"]["spec"] if doc["kind"] != "CronJob" else doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
        assert {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v} == {"smci-config"}
    assert by_kind("Job")[0]["spec"]["template"]["spec"]["containers"][0]["args"] == ["run"]
    assert by_kind("CronJob")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["refresh"]


def test_driver_role_covers_what_kubecluster_creates() -> None:
    """The Role of rbac.yaml lets its ServiceAccount create and delete DaskClusters and read their pods and services."""
    (role,) = by_kind("Role")
    (binding,) = by_kind("RoleBinding")
    (account,) = by_kind("ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"]}]
    allowed = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for verb in ("create", "get", "watch", "patch", "delete"):
        assert ("kubernetes.dask.org", "daskclusters", verb) in allowed
    for resource in ("pods", "services"):
        assert ("", resource, "list") in allowed


def test_the_configmap_is_a_valid_smci_config(tmp_path: Path) -> None:
    (configmap,) = by_kind("ConfigMap")
    path = tmp_path / "smci.yaml"
    path.write_text(configmap["data"]["smci.yaml"])
    cfg = load_config(path, environ={"SMCI__CLUSTER__KIND": "address", "SMCI__CLUSTER__ADDRESS": "tcp://smci-scheduler:8786"})
    assert cfg.store.root.startswith("s3://")
    assert cfg.cluster.kind == "address" and cfg.cluster.address == "tcp://smci-scheduler:8786"
