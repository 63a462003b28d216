"""The e2e cluster with the images under test loaded, and the pieces a user would install on it: the operator from
the Helm chart, SeaweedFS as a pod behind a Service for the S3 stores. Used by the e2e fixtures and by
bench/cluster_ready.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def install_operator(kubeconfig: Path, admin: httpx.Client, image: str = images.TAMS_IMAGE) -> None:
    """The chart installed into tams-system, its operator (`image`, loaded into the node, never pulled) running."""
    repository, tag = image.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        # Faster than the defaults, so the scenario's waits stay short: drift checks and TAMS status polls.
        "operator": {"settings": {"resyncInterval": 15, "pollInterval": 2, "retryInitial": 2, "retryMax": 20}},
    }
    with Config(kubeconfig_path=kubeconfig, namespace=OPERATOR_NAMESPACE) as helm:
        helm.install(CHART, RELEASE, values, namespace=OPERATOR_NAMESPACE, create_namespace=True)
    wait_available(admin, OPERATOR_NAMESPACE, RELEASE)


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
