"""Soft delete (extension, TAMS_SOFT_DELETE): deleted for every spec endpoint, restorable, purged by the worker."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from background import running_worker, wait_for
from helpers import STORE_BACKENDS, Tams, backend_settings, new_id, open_test_services
from spec import check_response
from tams_api.app import create_app
from tams_api.config import Settings
from tams_api.domain import objects
from tams_api.routers.common import Services

RETENTION = 3600


@pytest.fixture(params=STORE_BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return backend_settings(request, tmp_path, soft_delete=True, soft_delete_retention=RETENTION)


def deleted_flows(client: TestClient) -> list[dict[str, str]]:
    response = client.get("/x-tams/deleted-flows")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_soft_deleted_flow_is_gone_for_clients_until_restored(tams: Tams) -> None:
    client = tams.client
    source_id = new_id()
    flow_id = tams.put_flow(source_id=source_id, label="doomed")
    object_id = tams.add_segment(flow_id, "[0:0_1:0)")
    collector = tams.put_flow(flow_collection=[{"id": flow_id, "role": "picture"}])
    before = client.get(f"/flows/{flow_id}").json()

    response = client.delete(f"/flows/{flow_id}")
    assert response.status_code == 204
    check_response(response, "/flows/{flowId}")
    for gone in (f"/flows/{flow_id}", f"/flows/{flow_id}/label", f"/sources/{source_id}", f"/objects/{object_id}"):
        assert client.get(gone).status_code == 404, gone
    assert tams.segments(flow_id) == []
    assert flow_id not in {flow["id"] for flow in client.get("/flows").json()}
    assert source_id not in {source["id"] for source in client.get("/sources").json()}
    assert client.get(f"/flows/{collector}/flow_collection").json() == []
    assert client.put(f"/flows/{flow_id}/label", json="x").status_code == 404
    assert client.delete(f"/flows/{flow_id}").status_code == 404
    [listed] = deleted_flows(client)
    assert (listed["flow_id"], listed["source_id"], listed["label"], listed["deleted_by"]) == (
        flow_id,
        source_id,
        "doomed",
        "anonymous",
    )

    assert client.post(f"/x-tams/flows/{flow_id}/restore").status_code == 204
    assert client.get(f"/flows/{flow_id}").json() == before
    assert tams.segment_timeranges(flow_id) == ["[0:0_1:0)"]
    assert client.get(f"/sources/{source_id}").status_code == 200
    assert client.get(f"/objects/{object_id}").json()["referenced_by_flows"] == [flow_id]
    assert client.get(f"/flows/{collector}/flow_collection").json() == [{"id": flow_id, "role": "picture"}]
    assert deleted_flows(client) == []
    assert client.post(f"/x-tams/flows/{flow_id}/restore").status_code == 404


def test_a_source_stays_while_another_flow_names_it(tams: Tams) -> None:
    source_id = new_id()
    first, second = tams.put_flow(source_id=source_id), tams.put_flow(source_id=source_id)
    assert tams.client.delete(f"/flows/{first}").status_code == 204
    assert tams.client.get(f"/sources/{source_id}").status_code == 200
    assert tams.client.delete(f"/flows/{second}").status_code == 204
    assert tams.client.get(f"/sources/{source_id}").status_code == 404
    assert tams.client.post(f"/x-tams/flows/{first}/restore").status_code == 204
    assert tams.client.get(f"/sources/{source_id}").status_code == 200


def test_a_put_of_a_soft_deleted_flow_creates_it_anew(tams: Tams) -> None:
    flow_id = tams.put_flow(label="old")
    tams.add_segment(flow_id, "[0:0_1:0)")
    assert tams.client.delete(f"/flows/{flow_id}").status_code == 204
    assert tams.put_flow(flow_id, label="new") == flow_id  # 201: created
    assert tams.segments(flow_id) == []
    assert deleted_flows(tams.client) == []


def test_webhooks_hear_of_the_delete_and_the_restore_once(app: FastAPI, tams: Tams) -> None:
    services: Services = app.state.services
    registered = tams.client.post(
        "/service/webhooks", json={"url": "http://127.0.0.1:9/events", "events": ["flows/created", "flows/deleted"]}
    )
    assert registered.status_code == 201, registered.text
    source_id = new_id()
    flow_id = tams.put_flow(source_id=source_id)
    start = services.store.events_after(0, 100)[-1].seq
    assert tams.client.delete(f"/flows/{flow_id}").status_code == 204
    assert tams.client.post(f"/x-tams/flows/{flow_id}/restore").status_code == 204
    events = [(event.type, event.flow_id or event.source_id) for event in services.store.events_after(start, 100)]
    assert events == [
        ("flows/deleted", flow_id),
        ("sources/deleted", source_id),
        ("sources/created", source_id),
        ("flows/created", flow_id),
    ]


@pytest.mark.parametrize("sync_limit", [1000, 0], ids=["at-once", "through-a-delete-request"])
def test_the_worker_purges_after_the_retention(app: FastAPI, tams: Tams, sync_limit: int) -> None:
    client = tams.client
    services: Services = app.state.services
    flow_id = tams.put_flow()
    object_id = tams.add_segment(flow_id, "[0:0_1:0)")
    media_url = tams.segments(flow_id)[0]["get_urls"][0]["url"]
    assert client.delete(f"/flows/{flow_id}").status_code == 204
    assert client.get(media_url).status_code == 200, "a soft-deleted flow keeps its media"

    with running_worker(services, soft_delete_retention=0, delete_sync_limit=sync_limit):
        wait_for(lambda: deleted_flows(client) == [], what="the purge")
        wait_for(lambda: client.get(media_url).status_code == 404, what="the media deletion")
    assert client.post(f"/x-tams/flows/{flow_id}/restore").status_code == 404
    assert objects.stored(services.store, [object_id]) == {}
    requests = client.get("/flow-delete-requests").json()
    assert [(request["flow_id"], request["status"]) for request in requests] == (
        [] if sync_limit else [(flow_id, "done")]
    )


def test_the_worker_keeps_flows_within_the_retention(app: FastAPI, tams: Tams) -> None:
    flow_id = tams.put_flow()
    assert tams.client.delete(f"/flows/{flow_id}").status_code == 204
    with running_worker(app.state.services) as worker:
        worker.purge_soft_deleted_flows()
    assert [flow["flow_id"] for flow in deleted_flows(tams.client)] == [flow_id]


USERS = "ops opspw tams-api/read,tams-api/write,tams-api/delete; ingest ingestpw tams-api/read,tams-api/write"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("settings", ["sqlite+filesystem", "vast+s3"], indirect=True)
def test_deleted_by_is_the_authenticated_identity_and_restore_needs_the_delete_scope(
    request: pytest.FixtureRequest, settings: Settings
) -> None:
    authenticated = settings.model_copy(update={"auth_modes": "basic", "auth_users": USERS, "auth_strict_scopes": True})
    ops, ingest = basic("ops", "opspw"), basic("ingest", "ingestpw")
    with TestClient(create_app(services=open_test_services(request, authenticated)), headers=ops) as client:
        flow_id = Tams(client).put_flow()
        assert client.delete(f"/flows/{flow_id}", headers=ingest).status_code == 403
        assert client.delete(f"/flows/{flow_id}").status_code == 204
        assert client.get("/x-tams/deleted-flows", headers=ingest).status_code == 403
        assert [flow["deleted_by"] for flow in deleted_flows(client)] == ["ops"]
        assert client.post(f"/x-tams/flows/{flow_id}/restore", headers=ingest).status_code == 403
        assert client.post(f"/x-tams/flows/{flow_id}/restore").status_code == 204
