"""A catalogue of requests to every in-scope TAMS endpoint, against the store the `content` fixture builds.

Paths are the spec's own path templates ("/flows/{flowId}") so responses can be checked against the
operation the spec documents; `Content.path_params` fills them in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from fastapi.testclient import TestClient

from helpers import STORAGE_ID, STORAGE_LABEL, new_id, profile, video_flow
from spec import endpoints


@dataclass(frozen=True, slots=True)
class Content:
    flow_id: str
    member_flow_id: str
    source_id: str
    object_id: str  # registered against a segment of flow_id
    spare_object_id: str  # allocated for flow_id, not registered
    tag_name: str  # set on flow_id and on source_id
    profile_id: str  # a profile flows can be created from
    new_profile_id: str  # not yet used: a profile may be created with it
    webhook_id: str  # a webhook registered for flow events, tagged with tag_name
    delete_request_id: str  # a deferred delete of another flow's segments, not yet worked on

    def path_params(self) -> dict[str, str]:
        return {
            "flowId": self.flow_id,
            "sourceId": self.source_id,
            "objectId": self.object_id,
            "name": self.tag_name,
            "profileId": self.profile_id,
            "webhookId": self.webhook_id,
            "request-id": self.delete_request_id,
        }

    def unknown(self) -> Content:
        """The same names with every id replaced by one the store has never seen."""
        return replace(
            self,
            flow_id=new_id(),
            source_id=new_id(),
            object_id=new_id(),
            profile_id=new_id(),
            webhook_id=new_id(),
            delete_request_id=new_id(),
        )


Body = Callable[[Content], Any]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str  # the spec's path template
    status: int
    query: str = ""  # may use the same {placeholders} as the path
    body: Body | None = None
    adapt: Callable[[Content], Content] | None = None  # e.g. point {profileId} at a profile yet to be made

    def send(self, client: TestClient, content: Content, method: str | None = None) -> httpx.Response:
        if self.adapt is not None:
            content = self.adapt(content)
        params = content.path_params()
        url = self.path.format(**params) + (f"?{self.query.format(**params)}" if self.query else "")
        if self.body is None:
            return client.request(method or self.method, url)
        return client.request(method or self.method, url, json=self.body(content))

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")

    @property
    def names_a_resource(self) -> bool:
        names = ("{flowId}", "{sourceId}", "{objectId}", "{profileId}", "{webhookId}", "{request-id}")
        return any(name in self.path for name in names)


def _constant(value: Any) -> Body:
    return lambda _: value


READS = [
    Call("GET", "/", 200),
    Call("GET", "/service", 200),
    Call("GET", "/service/storage-backends", 200),
    Call("GET", "/service/profiles", 200),
    Call("GET", "/service/profiles", 200, query="format=urn:x-nmos:format:video&codec=video/h264&limit=1"),
    Call("GET", "/service/profiles/{profileId}", 200),
    Call("GET", "/sources", 200),
    Call("GET", "/sources", 200, query="format=urn:x-nmos:format:video&tag.genre=news&sort_by=label"),
    Call("GET", "/sources/{sourceId}", 200),
    Call("GET", "/sources/{sourceId}/tags", 200),
    Call("GET", "/sources/{sourceId}/tags/{name}", 200),
    Call("GET", "/sources/{sourceId}/description", 200),
    Call("GET", "/sources/{sourceId}/label", 200),
    Call("GET", "/flows", 200),
    Call("GET", "/flows", 200, query="timerange=[0:0_5:0)&tag.genre=sport&tag_exists.genre=true&reverse_order=true"),
    Call("GET", "/flows/{flowId}", 200),
    Call("GET", "/flows/{flowId}", 200, query="include_timerange=true&timerange=[1:0_"),
    Call("GET", "/flows/{flowId}/tags", 200),
    Call("GET", "/flows/{flowId}/tags/{name}", 200),
    Call("GET", "/flows/{flowId}/description", 200),
    Call("GET", "/flows/{flowId}/label", 200),
    Call("GET", "/flows/{flowId}/read_only", 200),
    Call("GET", "/flows/{flowId}/flow_collection", 200),
    Call("GET", "/flows/{flowId}/max_bit_rate", 200),
    Call("GET", "/flows/{flowId}/avg_bit_rate", 200),
    Call("GET", "/flows/{flowId}/segments", 200),
    Call("GET", "/flows/{flowId}/segments", 200, query="presigned=true&include_object_timerange=true"),
    Call("GET", "/flows/{flowId}/segments", 200, query="verbose_storage=true&reverse_order=true&limit=1"),
    Call("GET", "/flows/{flowId}/segments", 200, query="accept_get_urls=&object_id={objectId}&timerange=[0:0]"),
    Call("GET", "/objects/{objectId}", 200),
    Call("GET", "/objects/{objectId}", 200, query="verbose_storage=true&presigned=true&flow_tag.genre=news"),
    Call("GET", "/service/webhooks", 200),
    Call("GET", "/service/webhooks", 200, query="tag.{name}=news&tag_exists.{name}=true&reverse_order=true&limit=1"),
    Call("GET", "/service/webhooks/{webhookId}", 200),
    Call("GET", "/flow-delete-requests", 200),
    Call("GET", "/flow-delete-requests", 200, query="sort_by=expiry&reverse_order=true&limit=1"),
    Call("GET", "/flow-delete-requests/{request-id}", 200),
]


def webhook(url: str = "https://receiver.example/events", **fields: Any) -> dict[str, Any]:
    return {"url": url, "events": ["flows/created", "flows/segments_added"], **fields}


WRITES = [
    Call("POST", "/service", 200, body=_constant({"name": "renamed", "description": "a store under test"})),
    Call(
        "POST",
        "/service/profiles/{profileId}",
        201,
        body=lambda c: profile(c.profile_id),
        adapt=lambda c: replace(c, profile_id=c.new_profile_id),
    ),
    Call("PUT", "/sources/{sourceId}/tags/{name}", 204, body=_constant(["a", "b"])),
    Call("DELETE", "/sources/{sourceId}/tags/{name}", 204),
    Call("PUT", "/sources/{sourceId}/label", 204, body=_constant("new label")),
    Call("DELETE", "/sources/{sourceId}/label", 204),
    Call("PUT", "/sources/{sourceId}/description", 204, body=_constant("new description")),
    Call("DELETE", "/sources/{sourceId}/description", 204),
    Call("PUT", "/flows/{flowId}", 204, body=lambda c: video_flow(c.flow_id, c.source_id, label="updated")),
    Call("DELETE", "/flows/{flowId}", 204),
    Call("PUT", "/flows/{flowId}/tags/{name}", 204, body=_constant("weather")),
    Call("DELETE", "/flows/{flowId}/tags/{name}", 204),
    Call("PUT", "/flows/{flowId}/label", 204, body=_constant("new label")),
    Call("DELETE", "/flows/{flowId}/label", 204),
    Call("PUT", "/flows/{flowId}/description", 204, body=_constant("new description")),
    Call("DELETE", "/flows/{flowId}/description", 204),
    Call("PUT", "/flows/{flowId}/read_only", 204, body=_constant(True)),
    Call("PUT", "/flows/{flowId}/flow_collection", 204, body=lambda c: [{"id": c.member_flow_id, "role": "v"}]),
    Call("DELETE", "/flows/{flowId}/flow_collection", 204),
    Call("PUT", "/flows/{flowId}/max_bit_rate", 204, body=_constant(8000)),
    Call("DELETE", "/flows/{flowId}/max_bit_rate", 204),
    Call("PUT", "/flows/{flowId}/avg_bit_rate", 204, body=_constant(7000)),
    Call("DELETE", "/flows/{flowId}/avg_bit_rate", 204),
    Call(
        "POST", "/flows/{flowId}/segments", 201, body=lambda c: {"object_id": c.spare_object_id, "timerange": "[5:0]"}
    ),
    Call(
        "POST", "/flows/{flowId}/segments", 201, body=lambda c: [{"object_id": c.spare_object_id, "timerange": "[5:0]"}]
    ),
    Call("DELETE", "/flows/{flowId}/segments", 204),
    Call("DELETE", "/flows/{flowId}/segments", 204, query="timerange=[0:0_1:0)&object_id={objectId}"),
    Call("POST", "/flows/{flowId}/storage", 201, body=_constant({"limit": 3})),
    Call("POST", "/flows/{flowId}/storage", 201, body=_constant({"object_ids": ["my/object-1", "my/object-2"]})),
    Call("POST", "/flows/{flowId}/storage", 201),
    Call("POST", "/objects/{objectId}/instances", 201, body=_constant({"url": "https://b.example/o", "label": "b"})),
    Call("POST", "/service/webhooks", 201, body=_constant(webhook(api_key_name="X-Key", api_key_value="secret"))),
    Call("PUT", "/service/webhooks/{webhookId}", 201, body=lambda c: webhook(id=c.webhook_id, status="disabled")),
    Call("DELETE", "/service/webhooks/{webhookId}", 204),
]

BAD_WRITES = [
    Call("POST", "/service", 400, body=_constant({"name": 5})),
    Call("POST", "/service/profiles/{profileId}", 400, body=lambda c: profile(c.profile_id)),  # exists already
    Call("POST", "/service/profiles/{profileId}", 400, body=lambda c: {"id": c.profile_id, "flow_metadata": {}}),
    Call("PUT", "/sources/{sourceId}/tags/{name}", 400, body=_constant({"not": "a tag value"})),
    Call("PUT", "/sources/{sourceId}/label", 400, body=_constant(5)),
    Call("PUT", "/sources/{sourceId}/description", 400, body=_constant(["not", "a string"])),
    Call("PUT", "/flows/{flowId}", 400, body=lambda c: {"id": c.flow_id}),
    Call("PUT", "/flows/{flowId}", 400, body=lambda c: video_flow(new_id(), c.source_id)),
    Call("PUT", "/flows/{flowId}/tags/{name}", 400, body=_constant(5)),
    Call("PUT", "/flows/{flowId}/label", 400, body=_constant(None)),
    Call("PUT", "/flows/{flowId}/description", 400, body=_constant(5)),
    Call("PUT", "/flows/{flowId}/read_only", 400, body=_constant("yes")),
    Call("PUT", "/flows/{flowId}/flow_collection", 400, body=_constant([{"role": "no id"}])),
    Call("PUT", "/flows/{flowId}/flow_collection", 400, body=lambda _: [{"id": new_id()}]),
    Call("PUT", "/flows/{flowId}/max_bit_rate", 400, body=_constant(-1)),
    Call("PUT", "/flows/{flowId}/avg_bit_rate", 400, body=_constant("fast")),
    Call("POST", "/flows/{flowId}/segments", 400, body=_constant({"timerange": "[0:0_1:0)"})),
    Call("POST", "/flows/{flowId}/segments", 400, body=lambda c: {"object_id": c.spare_object_id, "timerange": "x"}),
    Call("DELETE", "/flows/{flowId}/segments", 400, query="timerange=yesterday"),
    Call("POST", "/flows/{flowId}/storage", 400, body=_constant({"limit": 1, "object_ids": ["a"]})),
    Call("POST", "/flows/{flowId}/storage", 400, body=lambda c: {"object_ids": [c.object_id]}),
    Call("POST", "/objects/{objectId}/instances", 400, body=_constant({"url": "https://b.example/o"})),
    Call(
        "POST",
        "/objects/{objectId}/instances",
        400,
        body=_constant({"url": "https://c.ex", "label": STORAGE_LABEL}),
    ),
    Call("POST", "/objects/{objectId}/instances", 400, body=_constant({"storage_id": STORAGE_ID})),  # there already
    Call("DELETE", "/objects/{objectId}/instances", 400),  # neither storage_id nor label
    Call("DELETE", "/objects/{objectId}/instances", 400, query=f"storage_id={STORAGE_ID}"),  # its last instance
    Call("POST", "/service/webhooks", 400, body=_constant({"events": ["flows/created"]})),
    Call("POST", "/service/webhooks", 400, body=_constant(webhook(events=["flows/exploded"]))),
    Call("POST", "/service/webhooks", 400, body=_constant(webhook("http://169.254.169.254/latest/meta-data"))),
    Call("POST", "/service/webhooks", 400, body=_constant(webhook("file:///etc/passwd"))),
    Call("PUT", "/service/webhooks/{webhookId}", 400, body=lambda _: webhook(id=new_id(), status="created")),
    Call("PUT", "/service/webhooks/{webhookId}", 400, body=lambda c: webhook(id=c.webhook_id, status="started")),
]


def every_endpoint() -> set[tuple[str, str]]:
    """(METHOD, path) of every ENDPOINTS.txt line."""
    return set(endpoints())
