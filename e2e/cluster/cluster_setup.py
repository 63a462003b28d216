"""The e2e cluster with the images under test loaded, and the pieces a user would install on it: the operator from
the Helm chart, SeaweedFS as a pod behind a Service for the S3 stores, PostgreSQL as a pod behind a Service named
as CloudNativePG names its clusters' for the stores on PostgreSQL. Used by the e2e fixtures and by
bench/cluster_ready.py."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from helm_python.config import Config

import images
import kind_cluster
from cluster_access import Cluster
from operator_harness import ROOT, apply, documents, wait
from s3_server import QUIET_FLAGS, identities

Manifest = dict[str, Any]
CHART = ROOT / "charts" / "tams-operator"
OPERATOR_NAMESPACE = "tams-system"
RELEASE = "tams-operator"
S3_NAMESPACE = "s3"
S3_SAMPLE = ROOT / "samples" / "tamsstore-s3.yaml"
POSTGRES_SAMPLE = ROOT / "samples" / "tamsstore-postgres-s3.yaml"
POSTGRES_PORT = 5432
WAIT_S = 240  # pods that pull nothing start in seconds; a loaded machine takes longer


@contextmanager
def running_cluster(keep: bool = False) -> Iterator[Cluster]:
    """The images built (each with its time and size on stderr), a fresh kind cluster with them loaded; torn down
    at the end unless `keep`."""
    try:
        yield kind_cluster.up()
    finally:
        if not keep:
            kind_cluster.down()


def wait_available(admin: httpx.Client, namespace: str, name: str) -> None:
    def available() -> bool:
        response = admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        conditions = response.json().get("status", {}).get("conditions", []) if response.status_code == 200 else []
        return any(item["type"] == "Available" and item["status"] == "True" for item in conditions)

    wait(available, f"Deployment {namespace}/{name} available", WAIT_S)


def operator_values(image: str = images.TAMS_IMAGE) -> dict[str, Any]:
    """The chart's values as the e2e installs it: `image` loaded into the nodes, never pulled; the chart's two
    replicas, peering (the scenario kills the working one and sees the standby take over)."""
    repository, tag = image.rsplit(":", 1)
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        # Faster than the defaults, so the scenario's waits stay short: drift checks and TAMS status polls.
        "operator": {"settings": {"resyncInterval": 15, "pollInterval": 2, "retryInitial": 2, "retryMax": 20}},
    }


def install_operator(kubeconfig: Path, admin: httpx.Client, image: str = images.TAMS_IMAGE) -> None:
    """The chart installed into tams-system, its operator (`image`, loaded into the node, never pulled) running."""
    with Config(kubeconfig_path=kubeconfig, namespace=OPERATOR_NAMESPACE) as helm:
        helm.install(CHART, RELEASE, operator_values(image), namespace=OPERATOR_NAMESPACE, create_namespace=True)
    wait_available(admin, OPERATOR_NAMESPACE, RELEASE)


def upgrade_operator(kubeconfig: Path, values: dict[str, Any]) -> int:
    """`helm upgrade` of the release with `values` over the ones it has (--reuse-values), as a user upgrades to a
    new release; the revision it replaced. Returns once Helm applied it: the operator's pods roll meanwhile."""
    with Config(kubeconfig_path=kubeconfig, namespace=OPERATOR_NAMESPACE) as helm:
        upgraded = helm.upgrade(CHART, RELEASE, values, namespace=OPERATOR_NAMESPACE, reuse_values=True)
    return int(upgraded["revision"]) - 1


def rollback_operator(kubeconfig: Path, admin: httpx.Client, revision: int) -> None:
    """`helm rollback` of the release to `revision`, its operator running again."""
    with Config(kubeconfig_path=kubeconfig, namespace=OPERATOR_NAMESPACE) as helm:
        helm.rollback(RELEASE, version=revision)
    wait_rolled_out(admin, OPERATOR_NAMESPACE, RELEASE)


def wait_rolled_out(admin: httpx.Client, namespace: str, name: str) -> None:
    """The Deployment's latest spec running on all its pods, the old ones gone (`kubectl rollout status`)."""

    def done() -> bool:
        deployment = admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}").json()
        return rollout_complete(deployment)

    wait(done, f"Deployment {namespace}/{name} rolled out", WAIT_S)


def rollout_complete(deployment: Manifest) -> bool:
    """What `kubectl rollout status` waits for: the latest spec seen, on every replica, each available, no old one
    left."""
    status, wanted = deployment.get("status") or {}, deployment["spec"].get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
    )


def sample_keys() -> dict[str, str]:
    """The S3 keys the S3 sample's Secret names: SeaweedFS is configured with them, so the sample applies as it is."""
    [secret] = [manifest for manifest in documents(S3_SAMPLE) if manifest["kind"] == "Secret"]
    return secret["stringData"]


def seaweedfs_manifests(image: str) -> list[Manifest]:
    """SeaweedFS in one pod (master, volume, filer and S3 gateway: `weed server`), its S3 port behind a Service."""
    keys = sample_keys()
    config = identities(keys["accessKey"], keys["secretKey"])
    labels = {"app.kubernetes.io/name": "seaweedfs"}
    meta = {"name": "seaweedfs", "namespace": S3_NAMESPACE, "labels": labels}
    container = {
        "name": "seaweedfs",
        "image": image,
        "imagePullPolicy": "Never",
        "args": [
            "server",
            "-ip=127.0.0.1",  # the pod's parts reach each other in the pod; clients only the S3 port
            "-ip.bind=0.0.0.0",
            "-dir=/data",
            "-volume.max=100",
            "-master.volumeSizeLimitMB=64",
            "-filer",
            "-s3",
            "-s3.port=8333",
            "-s3.config=/etc/seaweedfs/identities.json",
            *QUIET_FLAGS,
        ],
        "ports": [{"name": "s3", "containerPort": 8333}],
        "readinessProbe": {"tcpSocket": {"port": "s3"}, "periodSeconds": 2},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "identities", "mountPath": "/etc/seaweedfs", "readOnly": True},
        ],
    }
    pod = {
        "securityContext": {"fsGroup": 10001},
        "containers": [container],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "identities", "secret": {"secretName": "seaweedfs-identities"}},
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": S3_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "seaweedfs-identities", "namespace": S3_NAMESPACE},
            "data": {"identities.json": base64.b64encode(json.dumps(config).encode()).decode()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": labels, "ports": [{"name": "s3", "port": 8333, "targetPort": "s3"}]},
        },
    ]


def deploy_seaweedfs(admin: httpx.Client, image: str = images.SEAWEEDFS_IMAGE) -> str:
    """SeaweedFS (`image`, loaded into the node) running in the cluster; its S3 endpoint by Service name."""
    for manifest in seaweedfs_manifests(image):
        apply(admin, manifest)
    wait_available(admin, S3_NAMESPACE, "seaweedfs")
    return f"http://seaweedfs.{S3_NAMESPACE}.svc.cluster.local:8333"


def sample_database() -> tuple[str, str, str, str]:
    """Where the PostgreSQL sample's Secret points (`SERVICE.NAMESPACE`, role, password, database): the e2e server is
    made so, and the sample applies as it is."""
    [secret] = [manifest for manifest in documents(POSTGRES_SAMPLE) if manifest["kind"] == "Secret"
                and "uri" in manifest["stringData"]]  # fmt: skip
    uri = urlsplit(secret["stringData"]["uri"])
    assert uri.hostname and uri.username and uri.password and uri.port == POSTGRES_PORT, uri
    return uri.hostname, uri.username, uri.password, uri.path.lstrip("/")


def postgres_manifests(image: str) -> list[Manifest]:
    """PostgreSQL in one pod, its data in the pod (an emptyDir: the e2e's stores live as long as the cluster), behind
    the Service the sample's URI names, with the sample's role, password and database."""
    host, user, password, database = sample_database()
    name, namespace = host.split(".")
    labels = {"app.kubernetes.io/name": name}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    environment = {"APP_USER": user, "APP_PASSWORD": password, "APP_DATABASE": database}
    environment["POSTGRES_PASSWORD"] = secrets.token_urlsafe(16)  # the superuser's, which nobody here uses
    container = {
        "name": "postgres",
        "image": image,
        "imagePullPolicy": "Never",
        "env": [{"name": name, "value": value} for name, value in environment.items()],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
        "readinessProbe": {"exec": {"command": ["pg_isready", "--host=/tmp", "--quiet"]}, "periodSeconds": 2},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "securityContext": {"fsGroup": 10001},
        "containers": [container],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": labels,
                "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres"}],
            },
        },
    ]


def deploy_postgres(admin: httpx.Client, image: str = images.POSTGRES_IMAGE) -> Manifest:
    """PostgreSQL (`image`, loaded into the node) running where the sample's URI says; its Deployment."""
    manifests = postgres_manifests(image)
    for manifest in manifests:
        apply(admin, manifest)
    deployment = manifests[1]["metadata"]
    wait_available(admin, deployment["namespace"], deployment["name"])
    return manifests[1]
