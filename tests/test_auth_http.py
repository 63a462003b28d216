"""Authentication over HTTP: 401 with a challenge and the spec's error JSON, 403 for missing scopes, and
media URLs that keep working without TAMS credentials."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import Tams, make_settings, new_id, video_flow
from spec import assert_valid, check_response
from tams_api.app import create_app
from tams_api.config import Settings

USERS = "admin adminpw tams-api/admin; reader readpw tams-api/read; legacy legacypw"
TOKENS = "ingest tok-ingest tams-api/read,tams-api/write; ops tok-ops tams-api/read,tams-api/write,tams-api/delete"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        auth_modes="basic,token",
        auth_users=USERS,
        auth_tokens=TOKENS,
        auth_strict_scopes=True,
        delete_sync_limit=0,  # any delete of segments becomes a flow delete request
    )


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


BEARER = {"Authorization": "Bearer tok-ingest"}


def test_no_credentials_is_401_with_a_challenge(client: TestClient) -> None:
    response = client.get("/flows")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="tams", Bearer realm="tams"'
    assert_valid(response.json(), "error.json")  # the spec documents no 401; its error JSON still fits


@pytest.mark.parametrize(
    "headers", [basic("reader", "wrong"), basic("nobody", "readpw"), {"Authorization": "Bearer x"}]
)
def test_wrong_credentials_are_401(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/flows", headers=headers).status_code == 401


def test_scopes_decide_what_a_principal_may_do(client: TestClient) -> None:
    flow_id = new_id()
    body = video_flow(flow_id, new_id())
    assert client.get("/flows", headers=basic("reader", "readpw")).status_code == 200
    refused = client.put(f"/flows/{flow_id}", json=body, headers=basic("reader", "readpw"))
    assert refused.status_code == 403
    check_response(refused, "/flows/{flowId}")
    assert client.put(f"/flows/{flow_id}", json=body, headers=BEARER).status_code == 201
    assert client.delete(f"/flows/{flow_id}", headers=BEARER).status_code == 403  # no delete scope
    assert client.delete(f"/flows/{flow_id}", headers=basic("admin", "adminpw")).status_code == 204


def test_unscoped_credentials_are_refused_in_strict_mode(client: TestClient) -> None:
    assert client.get("/flows", headers=basic("legacy", "legacypw")).status_code == 403


def test_service_administration_needs_the_admin_scope(client: TestClient) -> None:
    assert client.post("/service", json={"name": "x"}, headers=BEARER).status_code == 403
    assert client.post("/service", json={"name": "x"}, headers=basic("admin", "adminpw")).status_code == 200


def test_webhooks_belong_to_whoever_registered_them(client: TestClient) -> None:
    body = {"url": "http://127.0.0.1:9/events", "events": ["flows/created"]}
    webhook_id = client.post("/service/webhooks", json=body, headers=BEARER).json()["id"]
    update = {**body, "id": webhook_id, "status": "disabled"}
    ops = {"Authorization": "Bearer tok-ops"}
    refused = client.put(f"/service/webhooks/{webhook_id}", json=update, headers=ops)
    assert refused.status_code == 403
    check_response(refused, "/service/webhooks/{webhookId}")
    assert client.delete(f"/service/webhooks/{webhook_id}", headers=ops).status_code == 403
    assert client.put(f"/service/webhooks/{webhook_id}", json=update, headers=BEARER).status_code == 201
    assert client.delete(f"/service/webhooks/{webhook_id}", headers=basic("admin", "adminpw")).status_code == 204


def test_delete_requests_record_who_asked_and_their_listing_needs_admin(client: TestClient) -> None:
    client.headers.update({"Authorization": "Bearer tok-ops"})
    tams = Tams(client)
    flow_id = tams.put_flow()
    tams.add_segment(flow_id, "[0:0_1:0)")
    deferred = client.delete(f"/flows/{flow_id}/segments")
    assert deferred.status_code == 202
    assert deferred.json()["created_by"] == "ops"
    request_id = deferred.json()["id"]
    assert client.get(f"/flow-delete-requests/{request_id}").status_code == 200
    assert client.get("/flow-delete-requests").status_code == 403
    admin = client.get("/flow-delete-requests", headers=basic("admin", "adminpw"))
    assert [item["id"] for item in admin.json()] == [request_id]


def test_media_urls_need_no_tams_credentials(client: TestClient) -> None:
    client.headers.update(BEARER)
    tams = Tams(client)
    flow_id = tams.put_flow()
    media_object = tams.allocate(flow_id)[0]
    anonymous = TestClient(client.app)
    put_url = media_object["put_url"]
    uploaded = anonymous.put(put_url["url"], content=b"bytes", headers={"Content-Type": put_url["content-type"]})
    assert uploaded.status_code == 200
    tams.register(flow_id, media_object["object_id"], "[0:0_1:0)")
    get_url = tams.segments(flow_id)[0]["get_urls"][0]["url"]
    assert anonymous.get(get_url).content == b"bytes"


def test_the_access_token_query_parameter_only_when_enabled(tmp_path: Path) -> None:
    for enabled, status in ((False, 401), (True, 200)):
        settings = make_settings(tmp_path / str(enabled)).model_copy(
            update={"auth_modes": "token", "auth_tokens": TOKENS, "auth_access_token_query": enabled}
        )
        with TestClient(create_app(settings)) as client:
            assert client.get("/flows", params={"access_token": "tok-ingest"}).status_code == status


def test_probes_and_by_default_metrics_need_no_credentials(client: TestClient) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_metrics_need_read_credentials_when_not_public(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth_modes="token", auth_tokens=TOKENS, metrics_public=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=BEARER).status_code == 200
        assert client.get("/ready").status_code == 200  # probes never need any
