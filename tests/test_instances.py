"""Object instances: uncontrolled URLs added and removed, and an object's last instance kept."""

from __future__ import annotations

from fastapi.testclient import TestClient

from helpers import STORAGE_ID, STORAGE_LABEL, Tams


def urls(client: TestClient, object_id: str) -> list[tuple[str, bool]]:
    stored = client.get(f"/objects/{object_id}", params={"verbose_storage": "true"}).json()
    return [(url["label"], url["controlled"]) for url in stored["get_urls"]]


def test_uncontrolled_urls_come_and_go_and_the_last_instance_stays(tams: Tams, flow_id: str) -> None:
    client = tams.client
    object_id = tams.add_segment(flow_id, "[0:0_1:0)", data=b"bytes")
    mirror = {"url": "https://mirror.example/object", "label": "mirror"}
    assert client.post(f"/objects/{object_id}/instances", json=mirror).status_code == 201
    assert client.post(f"/objects/{object_id}/instances", json=mirror).status_code == 400  # label taken
    assert urls(client, object_id) == [(STORAGE_LABEL, True), ("mirror", False)]

    # The controlled copy may go while the mirror remains; its bytes go with it.
    get_url = tams.segments(flow_id)[0]["get_urls"][0]["url"]
    assert client.delete(f"/objects/{object_id}/instances", params={"storage_id": STORAGE_ID}).status_code == 204
    assert urls(client, object_id) == [("mirror", False)]
    assert client.get(get_url).status_code == 404

    # The mirror is now the last instance: it stays until the segments using it go.
    assert client.delete(f"/objects/{object_id}/instances", params={"label": "mirror"}).status_code == 400
    assert client.delete(f"/objects/{object_id}/instances", params={"label": "nowhere"}).status_code == 404


def test_labels_of_storage_backends_are_reserved(tams: Tams, flow_id: str) -> None:
    object_id = tams.add_segment(flow_id, "[0:0_1:0)")
    taken = {"url": "https://elsewhere.example/x", "label": STORAGE_LABEL}
    assert tams.client.post(f"/objects/{object_id}/instances", json=taken).status_code == 400


def test_instances_of_objects_not_yet_registered_are_404(tams: Tams, flow_id: str) -> None:
    object_id = tams.allocate(flow_id)[0]["object_id"]
    mirror = {"url": "https://mirror.example/object", "label": "mirror"}
    assert tams.client.post(f"/objects/{object_id}/instances", json=mirror).status_code == 404
