"""A TamsStore a platform team puts in production, against the real kube-apiserver and controller-manager: its
exposure, placement, scaling, disruption budget and NetworkPolicy as children; `kubectl scale` and the autoscaler
through the scale subresource; a child the API server refuses, a paused store, a rotated Secret."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import vastdb
from prometheus_client.parser import text_string_to_metric_families

from control_plane import ControlPlane, free_port, kubernetes_binaries
from helpers import VAST_SETTINGS, new_fake_vast
from operator_harness import GROUP, condition, create, new_namespace, operated, path, play_kubelet, wait
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server

Manifest = dict[str, Any]
METRICS_PORT = free_port()
OPERATOR_NAMESPACE = "tams-system"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def admin(kube: ControlPlane) -> Iterator[httpx.Client]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vastdb, "connect", new_fake_vast().connect)
        env = {"TAMS_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE, "TAMS_OPERATOR_METRICS_PORT": str(METRICS_PORT)}
        with operated(kube, **env, TAMS_OPERATOR_METRICS_ADDRESS="127.0.0.1") as client:
            yield client


@pytest.fixture
def namespace(admin: httpx.Client) -> str:
    return new_namespace(admin)


def ref(api_version: str, kind: str, namespace: str, name: str = "news-tams") -> Manifest:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}


def store_ref(namespace: str) -> Manifest:
    return ref(GROUP, "TamsStore", namespace, "news")


def get(admin: httpx.Client, manifest: Manifest) -> Manifest | None:
    response = admin.get(path(manifest))
    return response.json() if response.status_code == 200 else None


def patch(admin: httpx.Client, manifest: Manifest, body: Manifest) -> Manifest:
    response = admin.patch(path(manifest), json=body, headers=MERGE)
    assert response.status_code == 200, response.text
    return response.json()


def has_condition(admin: httpx.Client, namespace: str, type_: str, status: str, reason: str | None = None) -> Manifest:
    def holds() -> Manifest | None:
        body = get(admin, store_ref(namespace)) or {}
        found = condition(body, type_)
        ok = found is not None and found["status"] == status and reason in (None, found["reason"])
        return body if ok else None

    return wait(holds, f"{type_}={status} ({reason})", 30)


def ready(admin: httpx.Client, namespace: str) -> Manifest:
    wait(lambda: play_kubelet(admin, namespace, "app.kubernetes.io/instance=news"), "pods")

    def both() -> Manifest | None:
        play_kubelet(admin, namespace, "app.kubernetes.io/instance=news")  # pods of a rollout, too
        body = get(admin, store_ref(namespace)) or {}
        found = condition(body, "Ready")
        return body if found and found["status"] == "True" else None

    return wait(both, "Ready", 60)


def shared_store(admin: httpx.Client, namespace: str, s3_server: S3Server, **spec: Any) -> Manifest:
    for name, data in {
        "s3-keys": {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY},
        "vast-keys": {"accessKey": VAST_SETTINGS["vast_access_key"], "secretKey": VAST_SETTINGS["vast_secret_key"]},
    }.items():
        create(admin, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                       "stringData": data})  # fmt: skip
    vast = {
        "endpoint": VAST_SETTINGS["vast_endpoint"],
        "bucket": VAST_SETTINGS["vast_bucket"],
        "schema": f"s{uuid.uuid4().hex[:8]}",
        "credentialsSecretRef": {"name": "vast-keys"},
    }
    s3 = {"endpoint": s3_server.endpoint_url, "bucket": f"tams-{uuid.uuid4().hex[:12]}", "createBucket": True,
          "credentialsSecretRef": {"name": "s3-keys"}}  # fmt: skip
    body = {"metadata": {"backend": "vast", "vast": vast}, "media": {"backend": "s3", "s3": s3}, **spec}
    return create(admin, {**store_ref(namespace), "spec": body})


def kubectl(kube: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(kubernetes_binaries() / "kubectl"), f"--kubeconfig={kube.kubeconfig()}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def metric(name: str, namespace: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"namespace": namespace, "name": "news"}:
                return sample.value
    return None


PLACEMENT = {
    "labels": {"team": "archive"},
    "nodeSelector": {"media.example.com/tier": "storage"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "media", "effect": "NoSchedule"}],
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "imagePullSecrets": [{"name": "registry"}],
}
EXPOSED = {
    "publicUrl": "https://tams.example.com",
    "ingress": {"className": "traefik", "host": "tams.example.com", "tls": {"issuer": {"name": "e2e-ca"}}},
    "httpRoute": {"parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["tams.example.com"]},
    "networkPolicy": {"enabled": True, "ingressControllerNamespace": "traefik"},
    "autoscaling": {"minReplicas": 2, "maxReplicas": 5},
    "podTemplate": PLACEMENT,
}


def test_a_shared_store_scales_and_is_exposed_placed_and_protected(
    kube: ControlPlane, admin: httpx.Client, namespace: str, s3_server: S3Server
) -> None:
    store = shared_store(admin, namespace, s3_server, replicas=2)
    body = ready(admin, namespace)
    assert (body["status"]["replicas"], body["status"]["url"]) == (2, f"http://news-tams.{namespace}.svc:80")
    assert body["status"]["uiUrl"] == f"http://news-tams.{namespace}.svc:80/ui"
    budget = get(admin, ref("policy/v1", "PodDisruptionBudget", namespace))
    assert budget is not None and budget["spec"]["maxUnavailable"] == 1, "two pods: evictions take one at a time"

    scaled = kubectl(kube, "scale", "tamsstore/news", "-n", namespace, "--replicas=3")
    assert scaled.returncode == 0, scaled.stderr
    wait(lambda: (get(admin, ref("apps/v1", "Deployment", namespace)) or {})["spec"]["replicas"] == 3, "3 replicas")
    scale = admin.get(path(store) + "/scale").json()
    assert (scale["spec"]["replicas"], scale["status"]["selector"]) == (
        3,
        "app.kubernetes.io/name=tams,"
        "app.kubernetes.io/instance=news,app.kubernetes.io/component=api,app.kubernetes.io/managed-by=tams-operator",
    )

    patch(admin, store, {"spec": EXPOSED})
    # No Gateway API in this cluster: said, while everything else is made.
    has_condition(admin, namespace, "Exposed", "False", "CrdNotInstalled")
    ingress = wait(lambda: get(admin, ref("networking.k8s.io/v1", "Ingress", namespace)), "the Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "e2e-ca"
    assert ingress["spec"]["tls"] == [{"hosts": ["tams.example.com"], "secretName": "news-tams-tls"}]
    policy = wait(lambda: get(admin, ref("networking.k8s.io/v1", "NetworkPolicy", namespace)), "the NetworkPolicy")
    allowed = [peer["namespaceSelector"]["matchLabels"] for peer in policy["spec"]["ingress"][0]["from"]]
    assert allowed == [{"kubernetes.io/metadata.name": name} for name in (OPERATOR_NAMESPACE, "traefik")]
    pod = (get(admin, ref("apps/v1", "Deployment", namespace)) or {})["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "archive"
    assert (pod["spec"]["nodeSelector"], pod["spec"]["imagePullSecrets"]) == (
        PLACEMENT["nodeSelector"], PLACEMENT["imagePullSecrets"])  # fmt: skip
    assert pod["spec"]["tolerations"] == PLACEMENT["tolerations"]
    config = get(admin, ref("v1", "ConfigMap", namespace)) or {}
    assert config["data"]["TAMS_PUBLIC_URL"] == "https://tams.example.com"
    wait(lambda: (get(admin, store) or {})["status"].get("url") == "https://tams.example.com", "status.url")
    assert get(admin, store)["status"]["uiUrl"] == "https://tams.example.com/ui"
    listed = kubectl(kube, "get", "tamsstore", "news", "-n", namespace)
    assert "https://tams.example.com" in listed.stdout, "the printer column"

    # The autoscaler (the controller-manager's) finds its target through the scale subresource.
    hpa_ref = ref("autoscaling/v2", "HorizontalPodAutoscaler", namespace)

    def able_to_scale() -> bool:
        hpa = get(admin, hpa_ref) or {}
        conditions = {item["type"]: item["status"] for item in (hpa.get("status") or {}).get("conditions", [])}
        return conditions.get("AbleToScale") == "True"

    wait(able_to_scale, "the HPA reading the TamsStore's scale", 60)
    assert (get(admin, hpa_ref) or {})["spec"]["scaleTargetRef"]["kind"] == "TamsStore"

    # Fields removed: their children go.
    patch(admin, store, {"spec": {"ingress": None, "httpRoute": None, "networkPolicy": None, "autoscaling": None}})
    for kind in ("Ingress", "NetworkPolicy"):
        wait(lambda kind=kind: get(admin, ref("networking.k8s.io/v1", kind, namespace)) is None, f"{kind} gone")
    wait(lambda: get(admin, hpa_ref) is None, "the HPA gone")
    has_condition(admin, namespace, "Exposed", "False", "ClusterOnly")


def test_a_child_the_api_server_refuses_names_itself(admin: httpx.Client, namespace: str) -> None:
    bad = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "Near"}]}]}}}  # fmt: skip
    create(admin, {**store_ref(namespace), "spec": {"podTemplate": {"affinity": bad}}})
    body = has_condition(admin, namespace, "Ready", "False", "InvalidSpec")
    assert "Deployment news-tams" in condition(body, "Ready")["message"]


def test_a_paused_store_is_left_alone_until_resumed(admin: httpx.Client, namespace: str) -> None:
    store = create(admin, {**store_ref(namespace), "spec": {}})
    ready(admin, namespace)
    assert metric("tams_operator_store_ready", namespace) == 1
    patch(admin, store, {"metadata": {"annotations": {"tams-operator.io/paused": "true"}}})
    has_condition(admin, namespace, "ReconciliationPaused", "True", "Paused")
    assert metric("tams_operator_store_paused", namespace) == 1

    changed = patch(admin, store, {"spec": {"presignedUrlTimeout": 600}})

    def handled() -> bool:
        annotations = (get(admin, store) or {})["metadata"]["annotations"]
        seen = json.loads(annotations.get("tams-operator.io/last-handled-configuration", "{}"))
        return seen.get("spec", {}).get("presignedUrlTimeout") == 600

    wait(handled, "the operator handled the change")
    assert (get(admin, ref("v1", "ConfigMap", namespace)) or {})["data"]["TAMS_PRESIGNED_URL_TIMEOUT"] == "3600"
    assert (get(admin, store) or {})["status"]["observedGeneration"] < changed["metadata"]["generation"]

    patch(admin, store, {"metadata": {"annotations": {"tams-operator.io/paused": None}}})
    has_condition(admin, namespace, "ReconciliationPaused", "False", "Resumed")
    config = ref("v1", "ConfigMap", namespace)
    wait(lambda: (get(admin, config) or {})["data"]["TAMS_PRESIGNED_URL_TIMEOUT"] == "600", "the change applied")
    assert metric("tams_operator_store_paused", namespace) == 0


def test_a_rotated_secret_rolls_the_pods(admin: httpx.Client, namespace: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tokens", "namespace": namespace},
              "stringData": {"tokens": "ingest tok-1 tams-api/write"}}  # fmt: skip
    create(admin, secret)
    create(
        admin, {**store_ref(namespace), "spec": {"auth": {"modes": ["token"], "tokensSecretRef": {"name": "tokens"}}}}
    )
    ready(admin, namespace)
    deployment = ref("apps/v1", "Deployment", namespace)

    def config_hash() -> str:
        return (get(admin, deployment) or {})["spec"]["template"]["metadata"]["annotations"][
            "tams-operator.io/config-hash"
        ]

    before = config_hash()
    patch(admin, secret, {"stringData": {"tokens": "ingest tok-2 tams-api/write"}})
    wait(lambda: config_hash() != before, "the pod template changed by the rotation (within the resync interval)")
