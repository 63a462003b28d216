"""What a request must pass before the service reads its body: credentials first, then a bounded size; and a
bounded bulk. Driven at the ASGI level, where one can see how much of a body the service pulled."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from helpers import Tams, make_settings, new_id
from spec import assert_valid
from tams_api.app import create_app

LIMIT = 64 * 1024
CHUNK = 16 * 1024
BASIC = "Basic " + base64.b64encode(b"admin:adminpw").decode()


class Call:
    """One request sent to the app chunk by chunk, noting how many body bytes the app pulled."""

    def __init__(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        self.method, self.path, self.body, self.headers = method, path, body, headers
        self.pulled = 0
        self.status = 0
        self.response = b""

    async def _receive(self) -> dict[str, Any]:
        if self.pulled >= len(self.body):
            await asyncio.sleep(3600)  # a client that sent everything waits: only the app's answer ends the call
        chunk = self.body[self.pulled : self.pulled + CHUNK]
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < len(self.body)}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.response += message.get("body", b"")

    def run(self, app: FastAPI) -> Call:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(name.lower().encode(), value.encode()) for name, value in self.headers.items()],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "state": {},
        }
        asyncio.run(asyncio.wait_for(app(scope, self._receive, self._send), 30))
        return self


@pytest.fixture(scope="module")
def guarded_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = make_settings(
        tmp_path_factory.mktemp("guarded"), auth_modes="basic", auth_users="admin adminpw", max_body_bytes=LIMIT
    )
    return create_app(settings)


FLOW_PATH = f"/flows/{new_id()}"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_unauthenticated_body_is_refused_before_it_is_read(guarded_app: FastAPI, declared: bool) -> None:
    body = b"[" + b"1," * (LIMIT // 2) + b"1]"  # well-formed JSON the service would have decoded
    headers = {"content-type": "application/json", **({"content-length": str(len(body))} if declared else {})}
    call = Call("PUT", FLOW_PATH, body, headers).run(guarded_app)
    assert call.status == 401
    assert call.pulled == 0


def test_a_malformed_body_without_credentials_is_401_not_400(guarded_app: FastAPI) -> None:
    call = Call("POST", f"{FLOW_PATH}/segments", b"{not json", {"content-type": "application/json"}).run(guarded_app)
    assert call.status == 401


def test_a_body_declared_too_long_is_413_unread(guarded_app: FastAPI) -> None:
    headers = {"authorization": BASIC, "content-type": "application/json", "content-length": str(LIMIT + 1)}
    call = Call("PUT", FLOW_PATH, b" " * (LIMIT + 1), headers).run(guarded_app)
    assert call.status == 413
    assert call.pulled == 0
    error = orjson.loads(call.response)
    assert_valid(error, "error.json")
    assert str(LIMIT) in error["summary"]


def test_a_streamed_body_is_read_no_further_than_the_limit(guarded_app: FastAPI) -> None:
    body = b" " * (LIMIT * 8)
    call = Call("PUT", FLOW_PATH, body, {"authorization": BASIC, "content-type": "application/json"}).run(guarded_app)
    assert call.status == 413
    assert call.pulled <= LIMIT + CHUNK


def test_a_body_within_the_limit_is_served(guarded_app: FastAPI) -> None:
    headers = {"authorization": BASIC, "content-type": "application/json"}
    call = Call("PUT", FLOW_PATH, b'{"id": "x"}', headers).run(guarded_app)
    assert call.status == 400  # read and parsed: the flow body is incomplete


def test_media_uploads_are_not_held_to_the_json_limit(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, max_body_bytes=1024))
    with TestClient(app) as client:
        tams = Tams(client)
        flow_id = tams.put_flow()
        [media_object] = tams.allocate(flow_id, limit=1)
        tams.upload(media_object, b"m" * (LIMIT * 4))  # fails unless the upload goes through
        tams.register(flow_id, media_object["object_id"], "[0:0_10:0)")
        [segment] = tams.segments(flow_id, presigned="true")
        assert len(client.get(segment["get_urls"][0]["url"]).content) == LIMIT * 4


def test_a_bulk_longer_than_the_maximum_is_refused_naming_it(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, max_bulk_segments=3))
    with TestClient(app) as client:
        tams = Tams(client)
        flow_id = tams.put_flow()
        objects = [item["object_id"] for item in tams.allocate(flow_id, limit=4)]
        bulk = [{"object_id": object_id, "timerange": f"[{n}:0_{n + 1}:0)"} for n, object_id in enumerate(objects)]
        refused = tams.post_segments(flow_id, bulk)
        assert refused.status_code == 400
        assert "at most 3" in refused.json()["summary"] and "TAMS_MAX_BULK_SEGMENTS" in refused.json()["summary"]
        assert tams.segments(flow_id) == []  # nothing of it stored
        assert tams.post_segments(flow_id, bulk[:3]).status_code == 201
