"""The CRDs in crds/: structural, documented for `kubectl explain`, defaulted, and validated by the real API
server (CEL rules included) so that bad specs are refused with a message saying what to fix."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from control_plane import ControlPlane

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
