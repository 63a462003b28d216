"""The test control plane itself: a real API server whose controllers and RBAC work (the operator's tests
stand on it)."""

from __future__ import annotations

import time

import yaml

from control_plane import OUTSIDER, ControlPlane


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }


def wait_for_items(client, path: str, timeout_s: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = client.get(path).json()["items"]
        if items:
            return items
        time.sleep(0.2)
    raise AssertionError(f"nothing appeared at {path} in {timeout_s} s")


def test_the_controller_manager_turns_a_deployment_into_pods(kube: ControlPlane) -> None:
    with kube.client() as admin:
        created = admin.post("/apis/apps/v1/namespaces/default/deployments", json=deployment("web"))
        assert created.status_code == 201, created.text
        replica_sets = wait_for_items(admin, "/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dweb")
        assert replica_sets[0]["metadata"]["ownerReferences"][0]["name"] == "web"
        pods = wait_for_items(admin, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        assert pods[0]["status"]["phase"] == "Pending", "no kubelet: pods stay Pending"


def test_rbac_applies_to_test_identities(kube: ControlPlane) -> None:
    with kube.client(OUTSIDER) as outsider:
        assert outsider.get("/api/v1/namespaces/default/pods").status_code == 403


def test_kubeconfig_names_the_server_and_the_identity(kube: ControlPlane) -> None:
    config = yaml.safe_load(kube.kubeconfig(OUTSIDER).read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube.server
    assert config["users"][0]["user"]["token"] == kube.tokens[OUTSIDER]
