"""End to end: the TAMS API runs from the pod spec the operator wrote (command, args and environment resolved
from its ConfigMap and the Secrets, by the process kubelet) on SeaweedFS, with authentication on; TamsWebhook
and TamsDeletionRequest objects then act on it through the operator's own token, as they would in a cluster.

The operator runs in this process as its service account, watching this module's namespace only, and reaches
the store's API at 127.0.0.1 on the Service's port, where the process kubelet makes the API listen.
"""

from __future__ import annotations

import base64
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tams_operator.tamsstore import DEFAULT_IMAGE

from background import receiver
from control_plane import ControlPlane, free_port
from helpers import new_id, video_flow
from operator_harness import GROUP, condition, create, install, path, running_operator, wait
from process_kubelet import ProcessKubelet
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from spec import assert_valid, event_schema
from test_operator import get, s3_spec, secret, tams_store, wait_condition, wait_status

Manifest = dict[str, Any]
USER, PASSWORD = "editor", secrets.token_urlsafe(12)
SYNC_LIMIT = 2  # DELETEs of more segments than this become flow delete requests
BUCKET = f"tams-{uuid.uuid4().hex[:12]}"
STORE_SELECTOR = "app.kubernetes.io/instance=news,app.kubernetes.io/component=api"
# This checkout, installed in the test's venv, is the image: its entry point is the venv's `tams-api`.
ENTRY_POINTS = {DEFAULT_IMAGE: [str(Path(sys.executable).parent / "tams-api")]}


@pytest.fixture(scope="module")
def admin(kube: ControlPlane) -> Iterator[httpx.Client]:
    with kube.client() as client:
        install(client)
        yield client


@pytest.fixture(scope="module")
def namespace(admin: httpx.Client) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    create(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def kubelet(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> ProcessKubelet:
    return ProcessKubelet(admin, tmp_path_factory.mktemp("kubelet"), ENTRY_POINTS)


@pytest.fixture(scope="module")
def tams(
    kube: ControlPlane, admin: httpx.Client, namespace: str, s3_server: S3Server, kubelet: ProcessKubelet
) -> Iterator[httpx.Client]:
    """A Ready store whose API runs as a local process from its pod spec; a client of it as a basic user."""
    port = free_port()  # the Service's, where the process kubelet makes the API listen
    create(admin, secret(namespace, "s3-keys", accessKey=ACCESS_KEY, secretKey=SECRET_KEY))
    create(admin, secret(namespace, "tams-users", users=f"{USER} {PASSWORD}"))
    spec = {
        "service": {"port": port},
        "metadata": {"backend": "sqlite"},
        "media": s3_spec(s3_server, BUCKET, createBucket=True),
        "auth": {"modes": ["basic"], "usersSecretRef": {"name": "tams-users"}},
        "deleteSyncLimit": SYNC_LIMIT,
        "reclaimPolicy": "Delete",
    }
    with running_operator(kube, namespace, TAMS_OPERATOR_API_URL_TEMPLATE="http://127.0.0.1:{port}"):
        store = create(admin, tams_store(namespace, spec))
        pod = wait(lambda: pods(admin, namespace), "the API's pod")[0]
        with kubelet.running(pod), httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(USER, PASSWORD)) as user:
            wait_condition(admin, store, "Ready")
            yield user
        # Gone while the operator runs, so that its finalizer is let go (and the bucket with it).
        assert admin.delete(path(store)).status_code == 200
        wait(lambda: admin.get(path(store)).status_code == 404, "the TamsStore gone", 60)


def pods(admin: httpx.Client, namespace: str) -> list[Manifest]:
    response = admin.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": STORE_SELECTOR})
    return response.json()["items"]


@pytest.fixture(scope="module")
def operator_api(admin: httpx.Client, namespace: str, tams: httpx.Client) -> Iterator[httpx.Client]:
    """The store's API as the operator reaches it: with the admin token from the Secret it made."""
    token_secret = admin.get(f"/api/v1/namespaces/{namespace}/secrets/news-tams-operator").json()
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    with httpx.Client(base_url=tams.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def add_segments(tams: httpx.Client, flow_id: str, *timeranges: str) -> None:
    """A video flow with a segment per timerange, each an object uploaded to its presigned S3 URL."""
    created = tams.put(f"/flows/{flow_id}", json=video_flow(flow_id, new_id()))
    assert created.status_code == 201, created.text
    allocated = tams.post(f"/flows/{flow_id}/storage", json={"limit": len(timeranges)})
    assert allocated.status_code == 201, allocated.text
    media_objects = allocated.json()["media_objects"]
    for media_object in media_objects:
        put_url = media_object["put_url"]
        uploaded = httpx.put(put_url["url"], content=b"media", headers={"Content-Type": put_url["content-type"]})
        assert uploaded.status_code == 200, uploaded.text
    body = [
        {"object_id": media_object["object_id"], "timerange": timerange}
        for media_object, timerange in zip(media_objects, timeranges, strict=True)
    ]
    registered = tams.post(f"/flows/{flow_id}/segments", json=body)
    assert registered.status_code == 201, registered.text


def segment_timeranges(tams: httpx.Client, flow_id: str) -> list[str]:
    response = tams.get(f"/flows/{flow_id}/segments")
    assert response.status_code == 200, response.text
    return [segment["timerange"] for segment in response.json()]


def custom_resource(namespace: str, kind: str, spec: Manifest) -> Manifest:
    name = f"{kind.lower()}-{uuid.uuid4().hex[:8]}"
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": GROUP, "kind": kind, "metadata": metadata, "spec": {"storeRef": {"name": "news"}, **spec}}


def test_the_api_runs_from_the_pod_spec_with_the_stores_configuration(
    tams: httpx.Client, operator_api: httpx.Client, kubelet: ProcessKubelet
) -> None:
    assert httpx.get(tams.base_url.join("/flows")).status_code == 401, "authentication is on"
    assert tams.get("/flows").status_code == 200, "the user from the users Secret"
    assert operator_api.get("/service/webhooks").status_code == 200, "the operator's token"
    backends = tams.get("/service/storage-backends").json()
    assert [backend["label"] for backend in backends] == [f"s3:{BUCKET}"], "the ConfigMap's S3 settings"
    # TAMS_DATA_DIR=/data, where the data claim is mounted: the claim's local directory.
    assert (kubelet.workdir / "claims" / "news-tams-data" / "tams.sqlite").is_file()


def test_a_webhook_object_registers_the_webhook_whose_events_arrive_and_goes_with_it(
    admin: httpx.Client, namespace: str, tams: httpx.Client, operator_api: httpx.Client
) -> None:
    api_key = secrets.token_urlsafe(12)
    create(admin, secret(namespace, "receiver-key", key=api_key))
    with receiver() as events:
        spec = {
            "url": events.url,
            "events": ["flows/created", "flows/segments_added"],
            "apiKey": {"headerName": "X-Api-Key", "secretRef": {"name": "receiver-key", "key": "key"}},
        }
        webhook = create(admin, custom_resource(namespace, "TamsWebhook", spec))
        # Started once the API's in-process worker delivers for it.
        body = wait_status(admin, webhook, "tamsStatus", "started")
        webhook_id = body["status"]["webhookId"]
        assert condition(body, "Ready")["status"] == "True"
        assert "error" not in body["status"]
        listed = operator_api.get("/service/webhooks").json()
        assert [(found["id"], found["url"]) for found in listed] == [(webhook_id, events.url)]

        flow_id = new_id()
        add_segments(tams, flow_id, "[0:0_1:0)", "[1:0_2:0)")
        wait(lambda: len(events.deliveries) >= 2, "the flow's events")

    assert [(event_type, event.get("flow_id") or event["flow"]["id"]) for event_type, event in events.events()] == [
        ("flows/created", flow_id),
        ("flows/segments_added", flow_id),
    ]
    for delivery in events.deliveries:
        assert_valid(delivery.body, event_schema(delivery.body["event_type"]))
        assert delivery.headers["X-Api-Key"] == api_key
    added = events.events()[1][1]
    assert [segment["timerange"] for segment in added["segments"]] == ["[0:0_1:0)", "[1:0_2:0)"]

    # Deleted through the API behind the operator's back: registered again.
    assert operator_api.delete(f"/service/webhooks/{webhook_id}").status_code == 204
    wait(lambda: get(admin, webhook)["status"]["webhookId"] != webhook_id, "the webhook registered again")
    webhook_id = get(admin, webhook)["status"]["webhookId"]
    assert [found["id"] for found in operator_api.get("/service/webhooks").json()] == [webhook_id]

    assert admin.delete(path(webhook)).status_code == 200
    wait(lambda: admin.get(path(webhook)).status_code == 404, "the TamsWebhook gone")
    assert operator_api.get(f"/service/webhooks/{webhook_id}").status_code == 404
    assert operator_api.get("/service/webhooks").json() == []


def test_a_deletion_request_deletes_the_segments_of_its_timerange(
    admin: httpx.Client, namespace: str, tams: httpx.Client
) -> None:
    flow_id = new_id()
    add_segments(tams, flow_id, "[0:0_1:0)", "[1:0_2:0)", "[2:0_3:0)")
    request = create(
        admin, custom_resource(namespace, "TamsDeletionRequest", {"flowId": flow_id, "timerange": "[0:0_2:0)"})
    )

    body = wait_status(admin, request, "state", "done", "error")
    assert body["status"]["state"] == "done", body["status"]
    assert (condition(body, "Complete")["status"], condition(body, "Complete")["reason"]) == ("True", "Done")
    assert condition(body, "Failed")["status"] == "False"
    assert "requestId" not in body["status"], "within the sync limit: deleted at once"
    assert segment_timeranges(tams, flow_id) == ["[2:0_3:0)"]


def test_a_large_deletion_becomes_a_flow_delete_request_followed_until_done(
    admin: httpx.Client, namespace: str, tams: httpx.Client, operator_api: httpx.Client
) -> None:
    flow_id = new_id()
    timeranges = [f"[{second}:0_{second + 1}:0)" for second in range(SYNC_LIMIT + 2)]
    add_segments(tams, flow_id, *timeranges)
    request = create(admin, custom_resource(namespace, "TamsDeletionRequest", {"flowId": flow_id}))

    body = wait_status(admin, request, "state", "done", "error")
    assert body["status"]["state"] == "done", body["status"]
    assert condition(body, "Complete")["status"] == "True"
    request_id = body["status"]["requestId"]
    followed = operator_api.get(f"/flow-delete-requests/{request_id}").json()
    assert (followed["flow_id"], followed["status"]) == (flow_id, "done")
    assert segment_timeranges(tams, flow_id) == []


def test_a_deletion_request_for_a_flow_that_does_not_exist_fails_saying_so(
    admin: httpx.Client, namespace: str, tams: httpx.Client
) -> None:
    flow_id = new_id()
    request = create(admin, custom_resource(namespace, "TamsDeletionRequest", {"flowId": flow_id}))

    body = wait_status(admin, request, "state", "done", "error")
    assert body["status"]["state"] == "error", body["status"]
    failed = condition(body, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "Failed")
    assert f"flow {flow_id} does not exist" in failed["message"], "the API's own words"
    assert condition(body, "Complete")["status"] == "False"
