"""Every endpoint answers with the status codes, bodies and headers the spec documents.

Each response is checked against the operation in TimeAddressableMediaStore.yaml (`spec.check_response`):
the status must be documented, a success body must match the schema the spec names for it, error bodies
must be error.json, HEAD and bodiless answers carry no body, and documented paging headers must hold.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from endpoints import BAD_WRITES, READS, WRITES, Call, Content, every_endpoint
from helpers import STORE_BACKENDS, Tams, backend_settings, new_id, video_flow
from spec import SPEC_DIR, assert_valid, check_response
from tams_api.config import Settings

ROOT = Path(__file__).resolve().parents[1]
# Writes that create the resource they name answer 201/204 for a new id, not 404.
CREATING_WRITES = {"PUT /flows/{flowId}", "POST /service/profiles/{profileId}"}
UNKNOWN_RESOURCE_WRITES = [call for call in WRITES if call.names_a_resource and call.id not in CREATING_WRITES]
UNKNOWN_RESOURCE_READS = [call for call in READS if call.names_a_resource and not call.path.endswith("/segments")]


# Soft delete (TAMS_SOFT_DELETE) must keep the spec's answers: every test here runs on every store, and with soft
# delete on each metadata store too (the media store plays no part in it, so not on every combination).
SOFT_DELETE_STORES = ["sqlite+filesystem", "vast+s3", "postgres+s3"]


@pytest.fixture(
    params=[*((stores, False) for stores in STORE_BACKENDS), *((stores, True) for stores in SOFT_DELETE_STORES)],
    ids=[*STORE_BACKENDS, *(f"{stores}-soft-delete" for stores in SOFT_DELETE_STORES)],
)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    stores, soft_delete = request.param
    return backend_settings(request, tmp_path, stores, soft_delete=soft_delete)


def _ids(calls: list[Call]) -> list[str]:
    return [call.id for call in calls]


def test_every_endpoint_is_exercised() -> None:
    exercised = {(call.method, call.path) for call in READS + WRITES + BAD_WRITES}
    exercised |= {("HEAD", call.path) for call in READS}
    assert exercised == every_endpoint()


@pytest.mark.parametrize("call", READS, ids=_ids(READS))
def test_read_matches_the_spec(client: TestClient, content: Content, call: Call) -> None:
    response = call.send(client, content)
    assert response.status_code == call.status, response.text
    check_response(response, call.path)


@pytest.mark.parametrize("call", READS, ids=_ids(READS))
def test_head_has_the_headers_of_get_and_no_body(client: TestClient, content: Content, call: Call) -> None:
    get = call.send(client, content)
    head = call.send(client, content, method="HEAD")
    assert head.status_code == get.status_code
    assert dict(head.headers) == dict(get.headers)
    check_response(head, call.path)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("call", UNKNOWN_RESOURCE_READS, ids=_ids(UNKNOWN_RESOURCE_READS))
def test_read_of_unknown_resource_is_404(client: TestClient, content: Content, call: Call, method: str) -> None:
    response = call.send(client, content.unknown(), method=method)
    assert response.status_code == 404, response.text
    check_response(response, call.path)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("kind", ["flows", "sources"])
def test_unknown_tag_is_404(client: TestClient, content: Content, kind: str, method: str) -> None:
    resource_id = content.flow_id if kind == "flows" else content.source_id
    response = client.request(method, f"/{kind}/{resource_id}/tags/no-such-tag")
    assert response.status_code == 404
    check_response(response, f"/{kind}/{{{kind[:-1]}Id}}/tags/{{name}}")


def test_unknown_flow_has_no_segments(client: TestClient) -> None:
    response = client.get(f"/flows/{new_id()}/segments")
    assert response.status_code == 200
    assert check_response(response, "/flows/{flowId}/segments") == []


@pytest.mark.parametrize("call", WRITES, ids=_ids(WRITES))
def test_write_matches_the_spec(client: TestClient, content: Content, call: Call) -> None:
    response = call.send(client, content)
    assert response.status_code == call.status, response.text
    check_response(response, call.path)


@pytest.mark.parametrize("call", BAD_WRITES, ids=[f"{call.id} #{n}" for n, call in enumerate(BAD_WRITES)])
def test_invalid_write_is_400(client: TestClient, content: Content, call: Call) -> None:
    response = call.send(client, content)
    assert response.status_code == 400, response.text
    check_response(response, call.path)


@pytest.mark.parametrize("call", UNKNOWN_RESOURCE_WRITES, ids=_ids(UNKNOWN_RESOURCE_WRITES))
def test_write_to_unknown_resource_is_404(client: TestClient, content: Content, call: Call) -> None:
    response = call.send(client, content.unknown())
    assert response.status_code == 404, response.text
    check_response(response, call.path)


def test_put_creates_a_flow_with_201_and_its_body_then_updates_with_204(client: TestClient) -> None:
    flow_id, source_id = new_id(), new_id()
    body = video_flow(flow_id, source_id, label="fresh", created="2000-01-01T00:00:00Z")
    created = client.put(f"/flows/{flow_id}", json=body)
    assert created.status_code == 201
    flow = check_response(created, "/flows/{flowId}")
    assert (flow["id"], flow["source_id"], flow["label"], flow["container"]) == (
        flow_id,
        source_id,
        "fresh",
        "video/mp2t",
    )
    assert flow["created"] != "2000-01-01T00:00:00Z", "created is server-managed"

    updated = client.put(f"/flows/{flow_id}", json={**body, "label": "renamed"})
    assert updated.status_code == 204
    check_response(updated, "/flows/{flowId}")
    assert client.get(f"/flows/{flow_id}/label").json() == "renamed"


def test_storage_allocation_gives_put_urls_with_the_flow_container(client: TestClient, flow_id: str) -> None:
    response = client.post(f"/flows/{flow_id}/storage", json={"limit": 2})
    media_objects = check_response(response, "/flows/{flowId}/storage")["media_objects"]
    assert len(media_objects) == 2
    assert len({item["object_id"] for item in media_objects}) == 2
    assert all(item["put_url"]["content-type"] == "video/mp2t" for item in media_objects)


def test_storage_allocation_needs_a_container(client: TestClient) -> None:
    flow_id = new_id()
    body = video_flow(flow_id, new_id())
    del body["container"]
    assert client.put(f"/flows/{flow_id}", json=body).status_code == 201
    response = client.post(f"/flows/{flow_id}/storage", json={"limit": 1})
    assert response.status_code == 400
    check_response(response, "/flows/{flowId}/storage")


def test_service_post_changes_what_get_reports(client: TestClient) -> None:
    assert client.post("/service", json={"name": "studio store", "description": "rack 4"}).status_code == 200
    service = check_response(client.get("/service"), "/service")
    assert (service["name"], service["description"], service["api_version"]) == ("studio store", "rack 4", "8.2")


def test_storage_backend_ids_match_the_storage_ids_of_get_urls(tams: Tams, content: Content) -> None:
    backends = check_response(tams.client.get("/service/storage-backends"), "/service/storage-backends")
    segments = tams.segments(content.flow_id, verbose_storage="true")
    storage_ids = {url["storage_id"] for segment in segments for url in segment["get_urls"] if url["controlled"]}
    assert storage_ids == {backend["id"] for backend in backends}


def test_error_bodies_match_error_json(client: TestClient) -> None:
    """Also for failures outside the spec's routes, e.g. unknown paths and methods."""
    for response in (client.get("/no-such-path"), client.patch("/flows")):
        assert response.status_code in (404, 405)
        assert_valid(response.json(), "error.json")


def _vendor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_spec", ROOT / "scripts" / "vendor_spec.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_schemas_equal_what_the_vendor_script_makes_from_the_spec() -> None:
    vendored_dir = ROOT / "tams_api" / "spec_schemas"
    vendored = {path.name: path.read_text() for path in sorted(vendored_dir.glob("*.json"))}
    assert vendored == _vendor_script().vendored_schemas(SPEC_DIR)
    assert (vendored_dir / "LICENCE.md").read_text() == (SPEC_DIR / "LICENCE.md").read_text()
