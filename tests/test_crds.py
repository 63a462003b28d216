"""The CRDs in crds/: structural, documented for `kubectl explain`, defaulted, and validated by the real API
server (CEL rules included) so that bad specs are refused with a message saying what to fix."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tams_operator.environment import OPERATOR_PREFIXES, OPERATOR_VARIABLES

from control_plane import ControlPlane, kubernetes_binaries

CRD_DIR = Path(__file__).resolve().parents[1] / "crds"
GROUP = "tams-operator.io/v1alpha1"


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml"))]


def undocumented(schema: dict[str, Any], path: str = "") -> list[str]:
    missing = [path or "<root>"] if "description" not in schema else []
    for name, child in schema.get("properties", {}).items():
        missing += undocumented(child, f"{path}.{name}")
    if "items" in schema and schema["items"].get("type") == "object":
        missing += undocumented(schema["items"], f"{path}[]")
    return missing


@pytest.mark.parametrize("crd", crds(), ids=lambda crd: crd["spec"]["names"]["kind"])
def test_every_field_is_described_for_kubectl_explain(crd: dict[str, Any]) -> None:
    for version in crd["spec"]["versions"]:
        assert undocumented(version["schema"]["openAPIV3Schema"]) == []


@pytest.fixture(scope="module")
def api(kube: ControlPlane) -> Iterator[httpx.Client]:
    """The admin's client, with the CRDs installed and established."""
    with kube.client() as client:
        for crd in crds():
            created = client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
            assert created.status_code in (201, 409), created.text
        for crd in crds():
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            deadline = time.monotonic() + 30
            while not any(
                condition["type"] == "Established" and condition["status"] == "True"
                for condition in client.get(path).json().get("status", {}).get("conditions", [])
            ):
                assert time.monotonic() < deadline, f"{path} not established"
                time.sleep(0.1)
        yield client


def create(api: httpx.Client, plural: str, spec: dict[str, Any]) -> httpx.Response:
    kind = {"tamsstores": "TamsStore", "tamswebhooks": "TamsWebhook", "tamsdeletionrequests": "TamsDeletionRequest"}
    body = {"apiVersion": GROUP, "kind": kind[plural], "metadata": {"name": f"t-{uuid.uuid4().hex[:10]}"}, "spec": spec}
    return api.post(f"/apis/{GROUP}/namespaces/default/{plural}", json=body)


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["message"]


def test_a_minimal_store_gets_its_defaults(api: httpx.Client) -> None:
    response = create(api, "tamsstores", {})
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["replicas"] == 1
    assert spec["metadata"]["backend"] == "sqlite"
    assert spec["media"]["backend"] == "filesystem"
    assert spec["service"] == {"type": "ClusterIP", "port": 80}
    assert (spec["presignedUrlTimeout"], spec["reclaimPolicy"]) == (3600, "Retain")


VAST = {"endpoint": "http://vast", "bucket": "tams", "credentialsSecretRef": {"name": "vast-keys"}}
S3 = {"bucket": "media", "credentialsSecretRef": {"name": "s3-keys"}}
POSTGRES = {"uriSecretRef": {"name": "archive-db-app"}}
SHARED = {"metadata": {"backend": "postgres", "postgres": POSTGRES}, "media": {"backend": "s3", "s3": S3}}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"replicas": 2}, "replicas > 1 needs a metadata store the replicas share"),
        ({"replicas": 2, "metadata": {"backend": "vast", "vast": VAST}}, "replicas > 1 needs a media store"),
        ({"metadata": {"backend": "vast"}}, "metadata.vast is required when metadata.backend is vast"),
        ({"metadata": {"backend": "postgres"}}, "metadata.postgres is required when metadata.backend is postgres"),
        ({"metadata": {"backend": "postgres", "postgres": {}}}, "uriSecretRef"),
        ({"metadata": {"backend": "postgres", "postgres": {**POSTGRES, "schema": "News"}}}, "schema"),
        ({"media": {"backend": "s3"}}, "media.s3 is required when media.backend is s3"),
        ({"auth": {"modes": ["jwt"]}}, "auth.jwt is required when auth.modes has jwt"),
        ({"auth": {"modes": ["basic"]}}, "auth.usersSecretRef is required"),
        ({"presignedUrlTimeout": 5}, "presignedUrlTimeout"),
        ({"deleteSyncLimit": -1}, "deleteSyncLimit"),
        ({"maxBodyBytes": 100}, "maxBodyBytes"),
        ({"maxBulkSegments": 0}, "maxBulkSegments"),
        ({"metadata": {"backend": "mysql"}}, "metadata.backend"),
        ({"autoscaling": {"maxReplicas": 4}}, "autoscaling needs stores the replicas share"),
        ({**SHARED, "autoscaling": {"minReplicas": 5, "maxReplicas": 4}}, "minReplicas must not exceed"),
        ({"env": [{"name": "TAMS_PUBLIC_URL", "value": "x"}]}, "TAMS_PUBLIC_URL is set by the operator from the spec"),
        ({"env": [{"name": "TAMS_EXTRA_BACKEND_0_ACCESS_KEY_ID", "value": "x"}]}, "is set by the operator"),
        ({"publicUrl": "tams.example.com"}, "publicUrl"),
        ({"ingress": {"tls": {}}}, "host"),
        ({"httpRoute": {"parentRefs": []}}, "parentRefs"),
        ({"podTemplate": {"tolerations": [{"operator": "Maybe"}]}}, "operator"),
        ({"podTemplate": {"topologySpreadConstraints": [{"maxSkew": 1}]}}, "topologyKey"),
        ({"tracing": {"otlpEndpoint": "http://otel:4318", "samplingRatio": 2}}, "samplingRatio"),
        ({"logLevel": "verbose"}, "logLevel"),
    ],
)
def test_bad_store_specs_are_refused_saying_what_to_fix(api: httpx.Client, spec: dict, message: str) -> None:
    assert message in refusal(create(api, "tamsstores", spec))


def test_a_shared_store_may_scale(api: httpx.Client) -> None:
    spec = {"replicas": 3, "metadata": {"backend": "vast", "vast": VAST}, "media": {"backend": "s3", "s3": S3}}
    created = create(api, "tamsstores", spec)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["metadata"]["vast"]["schema"] == "tams"
    spec = {
        "replicas": 3,
        "metadata": {"backend": "postgres", "postgres": POSTGRES},
        "media": {"backend": "s3", "s3": S3},
    }
    created = create(api, "tamsstores", spec)
    assert created.status_code == 201, created.text
    postgres = created.json()["spec"]["metadata"]["postgres"]
    assert (postgres["schema"], postgres["uriSecretRef"]["key"], postgres["poolSize"]) == ("tams", "uri", 10)


def test_a_shared_store_autoscales_and_takes_the_rest_of_the_settings_through_env(api: httpx.Client) -> None:
    spec = {**SHARED, "autoscaling": {"maxReplicas": 6}, "env": [{"name": "TAMS_DEFAULT_PAGE_LIMIT", "value": "50"}]}
    created = create(api, "tamsstores", spec)
    assert created.status_code == 201, created.text
    autoscaling = created.json()["spec"]["autoscaling"]
    assert (autoscaling["minReplicas"], autoscaling["targetCPUUtilizationPercentage"]) == (1, 80)


MOVE = "to move a store, create a new TamsStore"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.mark.parametrize(
    ("spec", "change", "message"),
    [
        ({}, {"metadata": {"backend": "postgres", "postgres": POSTGRES}}, "metadata.backend cannot change: another"),
        ({}, {"media": {"backend": "s3", "s3": S3}}, "media.backend cannot change"),
        (SHARED, {"metadata": {"postgres": {"schema": "other"}}}, "metadata.postgres.schema cannot change"),
        (SHARED, {"media": {"s3": {"bucket": "elsewhere"}}}, "media.s3.bucket and prefix cannot change"),
        (SHARED, {"media": {"s3": {"prefix": "news/"}}}, "media.s3.bucket and prefix cannot change"),
        (
            {"metadata": {"backend": "vast", "vast": VAST}, "media": {"backend": "s3", "s3": S3}},
            {"metadata": {"vast": {"bucket": "other"}}},
            "metadata.vast.bucket and schema cannot change",
        ),
    ],
    ids=["metadata-backend", "media-backend", "postgres-schema", "bucket", "prefix", "vast-bucket"],
)
def test_where_the_data_lives_cannot_change_in_place(api: httpx.Client, spec: dict, change: dict, message: str) -> None:
    created = create(api, "tamsstores", spec)
    assert created.status_code == 201, created.text
    path = f"/apis/{GROUP}/namespaces/default/tamsstores/{created.json()['metadata']['name']}"
    patched = api.patch(path, json={"spec": change}, headers=MERGE)
    said = refusal(patched)
    assert message in said and (MOVE in said or "extra backend" in said), said
    # Anything else may change.
    allowed = api.patch(path, json={"spec": {"presignedUrlTimeout": 600}}, headers=MERGE)
    assert allowed.status_code == 200, allowed.text


def test_the_variables_spec_env_refuses_are_those_the_operator_sets() -> None:
    """The CEL list and the operator's are one: a variable the operator starts setting cannot be overridden by
    spec.env unnoticed (tests/test_operator_resources.py checks the builders set no variable outside the list)."""
    [store] = [crd for crd in crds() if crd["spec"]["names"]["kind"] == "TamsStore"]
    env = store["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["env"]
    [rule] = env["items"]["x-kubernetes-validations"]
    listed = set(re.findall(r"'([A-Z0-9_]+)'", rule["rule"].split("startsWith")[0]))
    assert listed == OPERATOR_VARIABLES
    assert set(re.findall(r"startsWith\('([A-Z_]+)'\)", rule["rule"])) == set(OPERATOR_PREFIXES)


def test_kubectl_explain_documents_the_new_fields(api: httpx.Client, kube: ControlPlane) -> None:
    for field, words in [
        ("tamsstore.spec.podTemplate.tolerations", "Taints the pods tolerate"),
        ("tamsstore.spec.ingress.tls.issuer", "cert-manager"),
        ("tamsstore.spec.autoscaling", "HorizontalPodAutoscaler"),
        ("tamsstore.spec.networkPolicy.from", "allowed clients"),
        ("tamsstore.spec.worker.podTemplate.nodeSelector", "Node labels"),
        ("tamsstore.spec.env", "operator sets from the spec are refused"),
        ("tamsstore.spec.workers", "CPU limit"),
    ]:
        explained = kubectl_explain(kube, field)
        assert explained.returncode == 0 and words in " ".join(explained.stdout.split()), explained.stderr


def kubectl_explain(kube: ControlPlane, field: str) -> subprocess.CompletedProcess[str]:
    command = [str(kubernetes_binaries() / "kubectl"), f"--kubeconfig={kube.kubeconfig()}", "explain", field]
    deadline = time.monotonic() + 30
    while True:  # the CRD's OpenAPI is published a moment after it is established
        explained = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if explained.returncode == 0 or time.monotonic() > deadline:
            return explained
        time.sleep(0.5)


FLOW_ID = "0b4a1c1e-7f2d-4a8e-9c3b-5d6e7f8a9b0c"


def test_deletion_requests_default_to_everything_and_cannot_change(api: httpx.Client) -> None:
    created = create(api, "tamsdeletionrequests", {"storeRef": {"name": "media"}, "flowId": FLOW_ID})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["spec"]["timerange"], body["spec"]["deleteFlow"]) == ("_", False)
    body["spec"]["timerange"] = "[0:0_10:0)"
    path = f"/apis/{GROUP}/namespaces/default/tamsdeletionrequests/{body['metadata']['name']}"
    assert "cannot change" in refusal(api.put(path, json=body))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"flowId": "not-a-uuid"}, "spec.flowId"),
        ({"flowId": FLOW_ID, "timerange": "yesterday"}, "spec.timerange"),
        ({"flowId": FLOW_ID, "timerange": "[0:0_1:0)", "deleteFlow": True}, "deleteFlow needs timerange '_'"),
    ],
)
def test_bad_deletion_requests_are_refused(api: httpx.Client, spec: dict, message: str) -> None:
    assert message in refusal(create(api, "tamsdeletionrequests", {"storeRef": {"name": "media"}, **spec}))


def test_webhooks_check_events_and_keep_their_store(api: httpx.Client) -> None:
    spec = {"storeRef": {"name": "media"}, "url": "http://receiver/events", "events": ["flows/created"]}
    assert "spec.events" in refusal(create(api, "tamswebhooks", {**spec, "events": ["flows/exploded"]}))
    assert "spec.url" in refusal(create(api, "tamswebhooks", {**spec, "url": "ftp://x"}))
    created = create(api, "tamswebhooks", spec)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["spec"]["enabled"] is True
    body["spec"]["storeRef"]["name"] = "other"
    path = f"/apis/{GROUP}/namespaces/default/tamswebhooks/{body['metadata']['name']}"
    assert "storeRef cannot change" in refusal(api.put(path, json=body))
