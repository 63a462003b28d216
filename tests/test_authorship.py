"""created_by and updated_by of flows and sources: the authenticated principal's (a SHOULD of the spec), never what
a request body says; absent when authentication is off and nobody is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import STORE_BACKENDS, backend_settings, new_id, video_flow
from spec import check_response
from tams_api.config import Settings
from test_auth_http import basic

USERS = "alice alicepw; bob bobpw"


@pytest.fixture(params=[True, False], ids=["auth", "no-auth"])
def authenticated(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture(params=STORE_BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path, authenticated: bool) -> Settings:
    auth = {"auth_modes": "basic", "auth_users": USERS} if authenticated else {}
    return backend_settings(request, tmp_path, **auth)


def credentials(user: str, authenticated: bool) -> dict[str, str]:
    return basic(user, f"{user}pw") if authenticated else {}


def authors(document: dict[str, Any]) -> dict[str, str]:
    return {name: document[name] for name in ("created_by", "updated_by") if name in document}


def expected_authors(creator: str, updater: str, authenticated: bool) -> dict[str, str]:
    return {"created_by": creator, "updated_by": updater} if authenticated else {}


def test_a_new_flow_and_its_source_are_created_by_the_principal(client: TestClient, authenticated: bool) -> None:
    flow_id, source_id = new_id(), new_id()
    alice = credentials("alice", authenticated)
    body = video_flow(flow_id, source_id, created_by="mallory", updated_by="mallory")
    created = client.put(f"/flows/{flow_id}", json=body, headers=alice)
    assert created.status_code == 201, created.text
    expected = expected_authors("alice", "alice", authenticated)
    assert authors(created.json()) == expected
    assert authors(check_response(client.get(f"/flows/{flow_id}", headers=alice), "/flows/{flowId}")) == expected
    source = check_response(client.get(f"/sources/{source_id}", headers=alice), "/sources/{sourceId}")
    assert authors(source) == expected


def test_updated_by_is_whoever_changed_the_metadata_last(client: TestClient, authenticated: bool) -> None:
    flow_id, source_id = new_id(), new_id()
    body = video_flow(flow_id, source_id)
    assert client.put(f"/flows/{flow_id}", json=body, headers=credentials("alice", authenticated)).status_code == 201
    flow, source = (f"/flows/{flow_id}", "/flows/{flowId}"), (f"/sources/{source_id}", "/sources/{sourceId}")
    changes: list[tuple[str, str, str, Any, tuple[str, str]]] = [
        ("bob", "PUT", flow[0], {**body, "label": "again", "created_by": "mallory", "updated_by": "mallory"}, flow),
        ("alice", "PUT", f"{flow[0]}/label", "relabelled", flow),
        ("bob", "PUT", f"{flow[0]}/tags/genre", "news", flow),
        ("alice", "DELETE", f"{flow[0]}/tags/genre", None, flow),
        ("bob", "PUT", f"{flow[0]}/flow_collection", [], flow),
        ("alice", "PUT", f"{flow[0]}/read_only", True, flow),
        ("bob", "PUT", f"{source[0]}/label", "camera", source),
        ("alice", "PUT", f"{source[0]}/tags/site", "studio", source),
    ]
    for user, method, path, value, (changed, openapi_path) in changes:
        headers = credentials(user, authenticated)
        response = client.request(method, path, json=value, headers=headers)
        assert response.status_code in (201, 204), f"{method} {path}: {response.text}"
        document = check_response(client.get(changed, headers=headers), openapi_path)
        assert authors(document) == expected_authors("alice", user, authenticated), f"after {method} {path}"
