"""Profiles: immutable once created, and flows created from them take their technical metadata."""

from __future__ import annotations

from fastapi.testclient import TestClient

from helpers import Tams, new_id, profile, video_flow
from spec import check_response


def create_profile(client: TestClient) -> str:
    profile_id = new_id()
    response = client.post(f"/service/profiles/{profile_id}", json=profile(profile_id, tags={"encoder": "x264"}))
    assert response.status_code == 201
    assert check_response(response, "/service/profiles/{profileId}")["created"]
    return profile_id


def flow_from(profile_id: str, **fields: object) -> dict[str, object]:
    return {"id": new_id(), "source_id": new_id(), "profile_id": profile_id, "label": "from a profile", **fields}


def test_a_profile_cannot_be_changed(client: TestClient) -> None:
    profile_id = create_profile(client)
    changed = profile(profile_id, label="changed")
    assert client.post(f"/service/profiles/{profile_id}", json=changed).status_code == 400
    assert client.get(f"/service/profiles/{profile_id}").json()["label"] == "1080p25 h264"


def test_a_flow_takes_its_technical_metadata_from_its_profile(client: TestClient) -> None:
    profile_id = create_profile(client)
    body = flow_from(profile_id)
    response = client.put(f"/flows/{body['id']}", json=body)
    assert response.status_code == 201, response.text
    flow = check_response(response, "/flows/{flowId}")
    expected = profile(profile_id)["flow_metadata"]
    assert {name: flow[name] for name in expected} == expected
    assert flow["profile_id"] == profile_id and flow["label"] == "from a profile"
    listed = client.get("/flows", params={"profile_id": profile_id}).json()
    assert [item["id"] for item in listed] == [body["id"]]


def test_a_profile_and_technical_metadata_together_are_refused(client: TestClient) -> None:
    profile_id = create_profile(client)
    body = flow_from(profile_id, codec="video/h264")
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 400
    assert client.get(f"/flows/{body['id']}").status_code == 404


def test_an_unknown_profile_is_refused(client: TestClient) -> None:
    body = flow_from(new_id())
    response = client.put(f"/flows/{body['id']}", json=body)
    assert response.status_code == 400
    assert "does not exist" in response.json()["summary"]


def test_avg_bit_rate_belongs_to_the_profile_until_the_link_is_broken(client: TestClient) -> None:
    profile_id = create_profile(client)
    body = flow_from(profile_id)
    flow_id = body["id"]
    assert client.put(f"/flows/{flow_id}", json=body).status_code == 201
    assert client.put(f"/flows/{flow_id}/avg_bit_rate", json=100).status_code == 400
    # An empty profile_id unlinks the flow, which then carries its own technical metadata.
    unlinked = video_flow(flow_id, body["source_id"], profile_id="")
    assert client.put(f"/flows/{flow_id}", json=unlinked).status_code == 204
    assert "profile_id" not in client.get(f"/flows/{flow_id}").json()
    assert client.put(f"/flows/{flow_id}/avg_bit_rate", json=100).status_code == 204


def test_profiles_list_filters_and_pages(client: TestClient) -> None:
    created = sorted(create_profile(client) for _ in range(3))
    pages = Tams(client).pages("/service/profiles", {"limit": 2})
    assert [item["id"] for page in pages for item in page.json()] == created
    assert client.get("/service/profiles", params={"format": "urn:x-nmos:format:audio"}).json() == []
