"""Flow delete requests: deletes too large for one request are deferred (202) and carried out by the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from background import running_worker, wait_for
from helpers import STORAGE_ID, STORE_BACKENDS, StoppedClock, Tams, backend_settings
from spec import check_response
from tams_api.config import Settings
from tams_api.domain import deletes
from tams_api.worker import Worker

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=STORE_BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    # Deletes of more than three segments are deferred; the worker deletes two per step.
    return backend_settings(request, tmp_path, delete_sync_limit=3, delete_chunk_size=2)


def request_status(client: TestClient, request_id: str) -> dict[str, Any]:
    response = client.get(f"/flow-delete-requests/{request_id}")
    assert response.status_code == 200, response.text
    return check_response(response, "/flow-delete-requests/{request-id}")


def finished(client: TestClient, request_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (status := request_status(client, request_id))["status"] == "done" and status,
        what=f"delete request {request_id} to finish",
    )


def get_urls(tams: Tams, flow_id: str) -> dict[str, str]:
    return {segment["object_id"]: segment["get_urls"][0]["url"] for segment in tams.segments(flow_id)}


def test_a_large_segment_delete_is_deferred_and_finished_by_the_worker(app: FastAPI, tams: Tams) -> None:
    client = tams.client
    flow_id = tams.put_flow()
    tams.add_segments(flow_id, *(f"[{n}:0_{n + 1}:0)" for n in range(6)))
    urls = get_urls(tams, flow_id)

    response = client.delete(f"/flows/{flow_id}/segments", params={"timerange": "[1:0_5:0)"})
    assert response.status_code == 202, response.text
    request = check_response(response, "/flows/{flowId}/segments")
    assert response.headers["Location"] == f"/flow-delete-requests/{request['id']}"
    assert (request["flow_id"], request["timerange_to_delete"], request["delete_flow"]) == (flow_id, "[1:0_5:0)", False)
    assert request["status"] == "created"
    assert request_status(client, request["id"])["timerange_remaining"] == "[1:0_4:999999999]"
    listed = client.get("/flow-delete-requests")
    assert [item["id"] for item in check_response(listed, "/flow-delete-requests")] == [request["id"]]

    with running_worker(app.state.services):
        done = finished(client, request["id"])
    assert done["timerange_remaining"] == "()"
    assert "expiry" in done
    assert tams.segment_timeranges(flow_id) == ["[0:0_1:0)", "[5:0_6:0)"]
    kept = set(get_urls(tams, flow_id))
    for object_id, url in urls.items():
        assert client.get(url).status_code == (200 if object_id in kept else 404), "released media is deleted"


def test_a_deferred_flow_delete_keeps_objects_other_flows_use(app: FastAPI, tams: Tams) -> None:
    client = tams.client
    doomed, survivor = tams.put_flow(), tams.put_flow()
    object_ids = tams.add_segments(doomed, *(f"[{n}:0_{n + 1}:0)" for n in range(5)))
    urls = get_urls(tams, doomed)
    shared = object_ids[:2]
    for n, object_id in enumerate(shared):
        tams.register(survivor, object_id, f"[{10 + n}:0_{11 + n}:0)", ts_offset=f"{10}:0")

    response = client.delete(f"/flows/{doomed}")
    assert response.status_code == 202
    request = check_response(response, "/flows/{flowId}")
    assert request["delete_flow"] is True and request["timerange_to_delete"] == "_"
    again = client.delete(f"/flows/{doomed}")
    assert (again.status_code, again.json()["id"]) == (202, request["id"]), "one request per flow deletion"
    assert client.get(f"/flows/{doomed}").status_code == 200, "the flow stays until its request is done"

    with running_worker(app.state.services):
        finished(client, request["id"])
    assert client.get(f"/flows/{doomed}").status_code == 404
    for object_id in object_ids:
        expected = 200 if object_id in shared else 404
        assert client.get(urls[object_id]).status_code == expected
        assert client.get(f"/objects/{object_id}").status_code == expected
    assert client.get(f"/objects/{shared[0]}").json()["referenced_by_flows"] == [survivor]
    assert len(tams.segments(survivor)) == 2


def test_a_flow_made_read_only_meanwhile_puts_the_request_in_error(app: FastAPI, tams: Tams) -> None:
    client = tams.client
    flow_id = tams.put_flow()
    tams.add_segments(flow_id, *(f"[{n}:0_{n + 1}:0)" for n in range(4)))
    request_id = client.delete(f"/flows/{flow_id}/segments").json()["id"]
    assert client.put(f"/flows/{flow_id}/read_only", json=True).status_code == 204
    with running_worker(app.state.services):
        failed = wait_for(lambda: (status := request_status(client, request_id))["status"] == "error" and status)
    assert "read-only" in failed["error"]["summary"]
    assert len(tams.segments(flow_id)) == 4, "nothing of a read-only flow is deleted"


def test_small_deletes_stay_synchronous(tams: Tams) -> None:
    flow_id = tams.put_flow()
    tams.add_segments(flow_id, "[0:0_1:0)", "[1:0_2:0)", "[2:0_3:0)")
    assert tams.client.delete(f"/flows/{flow_id}/segments").status_code == 204
    assert tams.segments(flow_id) == []


def test_an_object_id_delete_is_never_deferred(tams: Tams) -> None:
    flow_id = tams.put_flow()
    object_id = tams.add_segment(flow_id, "[0:0_1:0)")
    for n in range(1, 6):
        tams.register(flow_id, object_id, f"[{n}:0_{n + 1}:0)", ts_offset=f"{n}:0")
    response = tams.client.delete(f"/flows/{flow_id}/segments", params={"object_id": object_id})
    assert response.status_code == 204
    assert tams.segments(flow_id) == []


def test_listing_sorts_most_recent_first_and_pages(tams: Tams) -> None:
    ids = []
    for _ in range(3):
        flow_id = tams.put_flow()
        tams.add_segments(flow_id, *(f"[{n}:0_{n + 1}:0)" for n in range(4)))
        ids.append(tams.client.delete(f"/flows/{flow_id}").json()["id"])
    pages = tams.pages("/flow-delete-requests", {"limit": 2})
    assert [item["id"] for page in pages for item in page.json()] == ids[::-1]
    reverse = tams.client.get("/flow-delete-requests", params={"reverse_order": "true"}).json()
    assert [item["id"] for item in reverse] == ids


def test_media_released_before_a_crash_is_deleted_by_the_worker(app: FastAPI, tams: Tams) -> None:
    services = app.state.services
    flow_id = tams.put_flow()
    tams.add_segment(flow_id, "[0:0_1:0)")
    url = tams.segments(flow_id)[0]["get_urls"][0]["url"]
    # The store releases the object; the process "dies" before deleting its media.
    deletes.delete_segments(services.store, flow_id, "_", None, 1000, None)
    assert tams.client.get(url).status_code == 200
    Worker(services.store, services.media, services.settings).collect_garbage()
    assert tams.client.get(url).status_code == 404
    assert services.store.released_objects(10) == []


def test_objects_allocated_but_never_registered_are_released_after_the_object_timeout(
    app: FastAPI, tams: Tams, clock: StoppedClock
) -> None:
    services = app.state.services
    flow_id = tams.put_flow()
    media_object = tams.allocate(flow_id)[0]
    tams.upload(media_object, b"abandoned")
    url = services.media.default.get_urls([media_object["object_id"]])[0]
    # The worker passes "now - TAMS_OBJECT_TIMEOUT": a cutoff after the first allocation, before the next.
    clock.advance(1)
    cutoff = clock.ns
    clock.advance(1)
    fresh = tams.allocate(flow_id)[0]
    assert services.store.release_expired_allocations(cutoff) == 1
    Worker(services.store, services.media, services.settings).collect_garbage()
    assert tams.client.get(url).status_code == 404, "its media is deleted"
    late = tams.post_segments(flow_id, {"object_id": media_object["object_id"], "timerange": "[0:0_1:0)"})
    assert late.status_code == 400, "an expired allocation cannot be registered"
    tams.register(flow_id, fresh["object_id"], "[0:0_1:0)")


@pytest.mark.parametrize("settings", ["sqlite+filesystem"], indirect=True)  # the worker process: a store on disk
def test_a_worker_killed_mid_request_resumes_and_finishes_after_restart(settings: Settings, tams: Tams) -> None:
    """A real `tams-api worker` process, SIGKILLed while it works through a large deletion."""
    client = tams.client
    flow_id, survivor = tams.put_flow(), tams.put_flow()
    count = 3000
    for start in range(0, count, 1000):
        objects = tams.allocate(flow_id, limit=1000)
        tams.upload(objects[0], b"first of its batch")
        body = [
            {"object_id": item["object_id"], "timerange": f"[{start + n}:0_{start + n + 1}:0)"}
            for n, item in enumerate(objects)
        ]
        assert tams.post_segments(flow_id, body).status_code == 201
    shared = tams.segments(flow_id, limit=1)[0]
    tams.register(survivor, shared["object_id"], "[0:0_1:0)")
    released_url = tams.segments(flow_id, timerange="[1000:0_1001:0)")[0]["get_urls"][0]["url"]
    assert client.get(released_url).status_code == 200

    response = client.delete(f"/flows/{flow_id}")
    assert response.status_code == 202
    request_id = response.json()["id"]

    environment = {
        **os.environ,
        "TAMS_DATA_DIR": str(settings.data_dir),
        "TAMS_STORAGE_ID": STORAGE_ID,
        "TAMS_DELETE_CHUNK_SIZE": "1",
        "TAMS_WORKER_POLL_INTERVAL": "0.05",
        "TAMS_WORKER_LEASE_SECONDS": "2",
    }

    def start_worker() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "tams_api", "worker", "--log-level", "warning"]
        return subprocess.Popen(command, cwd=ROOT, env=environment)

    worker = start_worker()
    try:
        wait_for(
            lambda: request_status(client, request_id)["timerange_remaining"] not in ("_", "()"),
            timeout=30,
            what="the worker to start deleting",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()
    interrupted = request_status(client, request_id)
    assert interrupted["status"] == "started", "killed mid-way"
    left = len(tams.segments(flow_id, limit=1000))
    assert left > 0, "segments remain after the kill"

    worker = start_worker()
    try:
        wait_for(lambda: request_status(client, request_id)["status"] == "done", timeout=60, what="the restart")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, "SIGTERM stops the worker cleanly"
    finally:
        worker.kill()
    assert client.get(f"/flows/{flow_id}").status_code == 404
    assert tams.segments(flow_id) == []
    assert client.get(released_url).status_code == 404, "media of released objects is gone"
    assert client.get(f"/objects/{shared['object_id']}").json()["referenced_by_flows"] == [survivor]
    assert client.get(shared["get_urls"][0]["url"]).status_code == 200, "the shared object survives"
    store = tams.client.app.state.services.store
    assert store.released_objects(10) == [], "no media left to delete: none forgotten"
    assert store.pending_delete_requests() == []
