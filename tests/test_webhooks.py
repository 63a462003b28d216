"""Webhooks: registration and its lifecycle, and delivery from the outbox to a real HTTP receiver."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from background import Receiver, receiver, running_worker, wait_for
from helpers import Tams, new_id, video_flow
from spec import assert_valid, check_response, event_schema
from tams_api.domain import webhooks
from tams_api.model import EVENT_TYPES, Webhook
from tams_api.webhooks import forbidden_address


def register(client: TestClient, url: str, events: list[str] | tuple[str, ...] = EVENT_TYPES, **fields: Any) -> str:
    response = client.post("/service/webhooks", json={"url": url, "events": list(events), **fields})
    assert response.status_code == 201, response.text
    check_response(response, "/service/webhooks")
    return response.json()["id"]


def webhook(client: TestClient, webhook_id: str) -> dict[str, Any]:
    response = client.get(f"/service/webhooks/{webhook_id}")
    assert response.status_code == 200, response.text
    return check_response(response, "/service/webhooks/{webhookId}")


def test_every_event_type_arrives_with_its_payload_and_the_api_key(app: FastAPI, tams: Tams) -> None:
    client = tams.client
    with receiver() as events, running_worker(app.state.services):
        register(client, events.url, api_key_name="X-Api-Key", api_key_value="s3cret")
        source_id = new_id()
        flow_id = tams.put_flow(source_id=source_id, label="first")  # sources/created, flows/created
        updated = client.put(f"/flows/{flow_id}", json=video_flow(flow_id, source_id, label="second"))
        assert updated.status_code == 204  # flows/updated
        assert client.put(f"/sources/{source_id}/label", json="camera 1").status_code == 204  # sources/updated
        tams.add_segments(flow_id, "[0:0_1:0)", "[1:0_2:0)")  # flows/segments_added, twice
        deleted = client.delete(f"/flows/{flow_id}/segments", params={"timerange": "[1:0_2:0)"})
        assert deleted.status_code == 204  # flows/segments_deleted
        assert client.delete(f"/flows/{flow_id}").status_code == 204  # flows/deleted, sources/deleted
        wait_for(lambda: len(events.deliveries) >= 9, what="nine events")

    assert [event_type for event_type, _ in events.events()] == [
        "sources/created",
        "flows/created",
        "flows/updated",
        "sources/updated",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_deleted",
        "flows/deleted",
        "sources/deleted",
    ]
    for delivery in events.deliveries:
        assert delivery.headers["X-Api-Key"] == "s3cret"
        assert delivery.headers["Content-Type"] == "application/json"
        assert_valid(delivery.body, event_schema(delivery.body["event_type"]))
    payloads = [event for _, event in events.events()]
    assert payloads[0]["source"]["id"] == source_id
    assert (payloads[1]["flow"]["id"], payloads[1]["flow"]["label"]) == (flow_id, "first")
    assert payloads[2]["flow"]["label"] == "second"
    assert payloads[3]["source"]["label"] == "camera 1"
    added = payloads[4]
    assert added["flow_id"] == flow_id
    assert [segment["timerange"] for segment in added["segments"]] == ["[0:0_1:0)"]
    url = added["segments"][0]["get_urls"][0]
    assert url["presigned"] is True
    assert added["segments"][0]["object_id"] in url["url"]
    assert payloads[6] == {"flow_id": flow_id, "timerange": "[1:0_2:0)"}
    assert payloads[7] == {"flow_id": flow_id}
    assert payloads[8] == {"source_id": source_id}


def test_a_receiver_down_for_a_while_gets_every_event_in_order(app: FastAPI, tams: Tams) -> None:
    events = Receiver()
    events.start()
    register(tams.client, events.url, events=["flows/created"])
    events.stop()  # connections refused from now on
    with running_worker(app.state.services, webhook_max_attempts=1000):
        flow_ids = [tams.put_flow(label=f"flow {n}") for n in range(5)]
        events.answer = 503  # back, but failing
        events.start()
        wait_for(lambda: events.attempts >= 2, what="attempts on the failing receiver")
        assert events.deliveries == []
        events.stop()
        events.answer = 200
        events.start()
        wait_for(lambda: len(events.deliveries) >= 5, what="the five events")
    events.stop()
    assert [event["flow"]["id"] for _, event in events.events()] == flow_ids


def test_a_receiver_that_never_comes_back_puts_the_webhook_in_error(app: FastAPI, tams: Tams) -> None:
    with receiver() as events:
        webhook_id = register(tams.client, events.url, events=["flows/created"])
    with running_worker(app.state.services, webhook_max_attempts=3):
        tams.put_flow()
        stored = wait_for(lambda: (found := webhook(tams.client, webhook_id))["status"] == "error" and found)
    assert "after 3 attempt(s)" in stored["error"]["summary"]
    assert "cannot reach" in stored["error"]["summary"]
    # Re-enabling it starts it again, with the events from then on.
    body = {"id": webhook_id, "url": stored["url"], "events": stored["events"], "status": "created"}
    assert tams.client.put(f"/service/webhooks/{webhook_id}", json=body).json()["status"] == "created"
    assert "error" not in webhook(tams.client, webhook_id)


def test_a_hanging_receiver_times_out_and_is_retried(app: FastAPI, tams: Tams) -> None:
    events = Receiver(hang=True)
    events.start()
    webhook_id = register(tams.client, events.url, events=["flows/created"])
    with running_worker(app.state.services, webhook_timeout=0.2, webhook_max_attempts=2):
        tams.put_flow()
        stored = wait_for(lambda: (found := webhook(tams.client, webhook_id))["status"] == "error" and found)
    events.stop()
    assert "did not answer within 0.2 s" in stored["error"]["summary"]


def test_lifecycle_created_started_disabled_and_back(app: FastAPI, tams: Tams) -> None:
    client = tams.client
    with receiver() as events, running_worker(app.state.services):
        webhook_id = register(client, events.url, events=["flows/created"], api_key_name="X-Key", api_key_value="v")
        assert webhook(client, webhook_id)["status"] in ("created", "started")
        wait_for(lambda: webhook(client, webhook_id)["status"] == "started", what="started")
        body = {"id": webhook_id, "url": events.url, "events": ["flows/created"], "api_key_name": "X-Key"}
        disabled = client.put(f"/service/webhooks/{webhook_id}", json={**body, "status": "disabled"})
        assert disabled.status_code == 201
        assert check_response(disabled, "/service/webhooks/{webhookId}")["status"] == "disabled"
        tams.put_flow()  # not delivered: disabled
        enabled = client.put(f"/service/webhooks/{webhook_id}", json={**body, "status": "created"})
        assert enabled.json()["status"] == "created"
        flow_id = tams.put_flow()
        wait_for(lambda: events.deliveries, what="the event after re-enabling")
    assert [event["flow"]["id"] for _, event in events.events()] == [flow_id]
    assert events.deliveries[0].headers["X-Key"] == "v", "a PUT without api_key_value keeps the value"


def test_api_key_value_is_write_only(client: TestClient) -> None:
    webhook_id = register(client, "http://127.0.0.1:9/x", api_key_name="X-Key", api_key_value="never shown")
    for response in (client.get("/service/webhooks"), client.get(f"/service/webhooks/{webhook_id}")):
        assert "never shown" not in response.text
        assert "api_key_value" not in response.text


def test_an_errored_webhook_cannot_be_disabled(app: FastAPI, tams: Tams) -> None:
    webhook_id = register(tams.client, "http://127.0.0.1:9/closed", events=["flows/created"])
    with running_worker(app.state.services, webhook_max_attempts=1):
        tams.put_flow()
        wait_for(lambda: webhook(tams.client, webhook_id)["status"] == "error", what="error")
    body = {"id": webhook_id, "url": "http://127.0.0.1:9/closed", "events": ["flows/created"], "status": "disabled"}
    response = tams.client.put(f"/service/webhooks/{webhook_id}", json=body)
    assert response.status_code == 400
    check_response(response, "/service/webhooks/{webhookId}")


def test_listing_is_by_url_with_tags_and_paging(client: TestClient) -> None:
    ids = {
        url: register(client, url, tags={"team": team})
        for url, team in (("http://b.example/", "news"), ("http://a.example/", "sport"), ("http://c.example/", "news"))
    }
    listed = client.get("/service/webhooks", params={"limit": 2})
    assert [item["url"] for item in check_response(listed, "/service/webhooks")] == [
        "http://a.example/",
        "http://b.example/",
    ]
    following = client.get("/service/webhooks", params={"limit": 2, "page": listed.headers["X-Paging-NextKey"]})
    assert [item["url"] for item in following.json()] == ["http://c.example/"]
    news = client.get("/service/webhooks", params={"tag.team": "news", "reverse_order": "true"}).json()
    assert [item["id"] for item in news] == [ids["http://c.example/"], ids["http://b.example/"]]


def test_filters_select_events(app: FastAPI, tams: Tams) -> None:
    client = tams.client
    source_id = new_id()
    wanted_flow = tams.put_flow(source_id=source_id)
    other_flow = tams.put_flow()
    collector = tams.put_flow(flow_collection=[{"id": wanted_flow, "role": "video"}])
    with receiver() as by_flow, receiver() as by_source, receiver() as by_collection, receiver() as uncollected:
        register(client, by_flow.url, events=["flows/updated"], flow_ids=[wanted_flow])
        register(client, by_source.url, events=["flows/updated", "sources/updated"], source_ids=[source_id])
        register(client, by_collection.url, events=["flows/updated"], flow_collected_by_ids=[collector])
        register(client, uncollected.url, events=["flows/updated"], flow_collected_by_ids=[])
        with running_worker(app.state.services):
            for flow_id in (wanted_flow, other_flow):
                assert client.put(f"/flows/{flow_id}/label", json="changed").status_code == 204
            assert client.put(f"/sources/{source_id}/label", json="changed").status_code == 204
            wait_for(lambda: len(by_source.deliveries) == 2 and len(uncollected.deliveries) == 1, what="events")
            wait_for(lambda: by_flow.deliveries and by_collection.deliveries, what="events")
    assert [(kind, event.get("flow", {}).get("id")) for kind, event in by_flow.events()] == [
        ("flows/updated", wanted_flow)
    ]
    assert [kind for kind, _ in by_source.events()] == ["flows/updated", "sources/updated"]
    assert [event["flow"]["id"] for _, event in by_collection.events()] == [wanted_flow]
    assert [event["flow"]["id"] for _, event in uncollected.events()] == [other_flow]


def test_a_webhook_for_no_event_types_is_registered_and_receives_nothing(app: FastAPI, tams: Tams) -> None:
    # The spec's webhook schema sets no minimum on `events`.
    client, store = tams.client, app.state.services.store
    with receiver() as silent, receiver() as control:
        silent_id = register(client, silent.url, events=[])
        assert webhook(client, silent_id)["events"] == []
        register(client, control.url, events=["flows/created"])
        tams.put_flow()
        last = store.events_after(0, 100)[-1].seq
        with running_worker(app.state.services):
            wait_for(lambda: control.deliveries, what="the flows/created event at the control webhook")
            wait_for(lambda: webhooks.get(store, silent_id).cursor >= last, what="the silent webhook past the events")
    assert silent.deliveries == []
    assert webhook(client, silent_id)["status"] == "started"


def test_segments_added_urls_follow_the_webhook_options(app: FastAPI, tams: Tams) -> None:
    client = tams.client
    flow_id = tams.put_flow()
    with receiver() as plain, receiver() as detailed:
        register(client, plain.url, events=["flows/segments_added"], presigned=False)
        register(
            client,
            detailed.url,
            events=["flows/segments_added"],
            verbose_storage=True,
            include_object_timerange=True,
        )
        with running_worker(app.state.services):
            tams.add_segment(flow_id, "[0:0_1:0)")
            wait_for(lambda: plain.deliveries and detailed.deliveries, what="both deliveries")
    assert plain.events()[0][1]["segments"][0]["get_urls"] == []
    segment = detailed.events()[0][1]["segments"][0]
    assert segment["object_timerange"] == "[0:0_1:0)"
    assert segment["get_urls"][0]["controlled"] is True
    assert segment["get_urls"][0]["storage_id"]
    assert client.get(segment["get_urls"][0]["url"]).content == b"media", "events carry playable URLs"


def test_no_outbox_rows_without_listeners_and_none_for_refused_changes(app: FastAPI, tams: Tams) -> None:
    store = app.state.services.store
    flow_id = tams.put_flow()
    assert store.events_after(0, 10) == [], "without webhooks, changes write no events"
    register(tams.client, "http://127.0.0.1:9/x", events=["flows/segments_added"])
    tams.add_segment(flow_id, "[0:0_2:0)")
    before = store.events_after(0, 100)
    overlapping = tams.client.post(
        f"/flows/{flow_id}/segments", json={"object_id": tams.allocate(flow_id)[0]["object_id"], "timerange": "[1:0]"}
    )
    assert overlapping.status_code == 400
    assert store.events_after(0, 100) == before, "a refused change writes no event"


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fe80::1%eth0", "::ffff:169.254.169.254", "0.0.0.0", "fd00:ec2::254", "224.0.0.1"],
)
def test_link_local_metadata_and_unspecified_addresses_are_refused(address: str) -> None:
    assert forbidden_address(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "2001:db8::1", "192.168.1.1"])
def test_ordinary_addresses_are_allowed(address: str) -> None:
    assert not forbidden_address(address)


def test_ssrf_guard_names_the_setting_and_can_be_turned_off(client: TestClient) -> None:
    refused = client.post("/service/webhooks", json={"url": "http://169.254.169.254/", "events": ["flows/created"]})
    assert refused.status_code == 400
    assert "TAMS_WEBHOOK_ALLOW_LINK_LOCAL" in refused.json()["summary"]


def test_delivery_checks_the_address_again(app: FastAPI, tams: Tams) -> None:
    """A name can resolve elsewhere at delivery than at registration (DNS rebinding): the worker checks again."""
    store = app.state.services.store
    hook = Webhook(id=new_id(), url="http://169.254.169.254/latest", events=["flows/created"], status="created")
    webhooks.register(store, hook)  # as if it had resolved to an ordinary address when registered
    with running_worker(app.state.services):
        tams.put_flow()
        stored = wait_for(lambda: (found := webhook(tams.client, hook.id))["status"] == "error" and found)
    assert "after 1 attempt(s)" in stored["error"]["summary"]
    assert "link-local" in stored["error"]["summary"]
