"""The steps tests repeat against the API: make flows, allocate objects, upload media, register segments."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from postgres_server import PostgresServer
from real_vast import empty_store, real_vast_settings
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from spec import next_link
from tams_api import timerange as tr
from tams_api.app import open_services
from tams_api.config import Settings
from tams_api.domain import flows
from tams_api.domain import segments as segments_domain
from tams_api.model import Flow, FlowWrite, NewSegment
from tams_api.routers.common import Services
from tams_api.stores.metadata import MetadataStore
from tams_api.stores.vast.store import VastMetadataStore
from vast_fake import FakeVast

VIDEO = "urn:x-nmos:format:video"
AUDIO = "urn:x-nmos:format:audio"
CONTAINER = "video/mp2t"
# The storage backend id tests configure, fixed so that a copied data directory keeps its objects on "this" backend.
STORAGE_ID = "5a1e3f2c-8d4b-4c6a-9e7f-0b1c2d3e4f50"
STORAGE_LABEL = "test-storage"  # on every media backend, so that tests name it alike


def make_settings(data_dir: Path, **changes: Any) -> Settings:
    # No in-process worker: tests that need background work run a worker of their own (tests/background.py).
    settings = Settings(
        data_dir=data_dir,
        public_url="http://testserver",
        storage_id=STORAGE_ID,
        storage_label=STORAGE_LABEL,
        run_worker=False,
    )
    return settings.model_copy(update=changes)


# The API tests run on these combinations of metadata and media store ("metadata+media"): the embedded
# default, S3 media (a real SeaweedFS), the VAST metadata store over the in-memory fake of its SDK, and on a real
# VAST cluster when the VASTDB_* variables name one (tests/real_vast.py).
STORE_BACKENDS = [
    "sqlite+filesystem",
    "sqlite+s3",
    "vast+s3",
    "postgres+filesystem",
    "postgres+s3",
    *(["vast-real+s3"] if real_vast_settings(os.environ) else []),
]
# Runs a test with hard and with soft deletes of flows (the `soft_delete` fixture): to clients both delete.
HARD_AND_SOFT_DELETE = pytest.mark.parametrize("soft_delete", [False, True], ids=["hard-delete", "soft-delete"])
VAST_SETTINGS = {
    "metadata_backend": "vast",
    "vast_endpoint": "http://vast.test",
    "vast_access_key": "vast-access",
    "vast_secret_key": "vast-secret",
    "vast_bucket": "tams",
}


def new_fake_vast() -> FakeVast:
    """An empty in-memory VAST cluster with the bucket and keys of `VAST_SETTINGS`."""
    return FakeVast(
        buckets=[VAST_SETTINGS["vast_bucket"]],
        access_key=VAST_SETTINGS["vast_access_key"],
        secret_key=VAST_SETTINGS["vast_secret_key"],
        endpoint=VAST_SETTINGS["vast_endpoint"],
    )


def fake_vast_store(fake: FakeVast, schema: str = "tams") -> VastMetadataStore:
    """The VAST store of `VAST_SETTINGS` on `fake`, handed the cluster (no `vastdb.connect` to patch)."""
    return VastMetadataStore(
        VAST_SETTINGS["vast_endpoint"],
        VAST_SETTINGS["vast_access_key"],
        VAST_SETTINGS["vast_secret_key"],
        VAST_SETTINGS["vast_bucket"],
        schema=schema,
        connect=fake.connect,
    )


def backend_settings(
    request: pytest.FixtureRequest, tmp_path: Path, stores: str | None = None, **changes: Any
) -> Settings:
    """Settings of a test's service on `stores` ("metadata+media", default: the parameter of the test, one of
    `STORE_BACKENDS`)."""
    metadata, media = (stores or getattr(request, "param", "sqlite+filesystem")).split("+")
    if metadata == "vast":
        changes = {**VAST_SETTINGS, **changes}  # the fake cluster's (see `open_test_services`)
    if metadata == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        changes = {
            "metadata_backend": "postgres",
            "postgres_url": server.url,
            "postgres_schema": server.new_schema(),
            **changes,
        }
    if metadata == "vast-real":
        changes = {**(real_vast_settings(os.environ) or {}), **request.getfixturevalue("real_vast_schema"), **changes}
    if media == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        changes = {
            "media_backend": "s3",
            "s3_endpoint_url": s3.endpoint_url,
            "s3_bucket": request.getfixturevalue("s3_bucket"),
            "s3_prefix": f"{tmp_path.name}/",
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            **changes,
        }
    settings = make_settings(tmp_path, **changes)
    if metadata == "vast-real":
        empty_store(settings)
    return settings


@dataclass
class StoppedClock:
    """A wall clock for the service (`tams_api.clock.use`): it stands still until the test moves it, so that what
    expires does so when the test says, not after a wait."""

    ns: int = field(default_factory=time.time_ns)

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)


def is_real_vast(settings: Settings) -> bool:
    return settings.metadata_backend == "vast" and settings.vast_endpoint != VAST_SETTINGS["vast_endpoint"]


def open_test_services(request: pytest.FixtureRequest, settings: Settings, cluster: FakeVast | None = None) -> Services:
    """The services `settings` configure; where they name the fake VAST cluster, on `cluster` (by default the
    test's own, `vast`)."""
    if settings.metadata_backend != "vast" or is_real_vast(settings):
        return open_services(settings)
    return open_services(settings, fake_vast_store(cluster or request.getfixturevalue("vast")))


@contextmanager
def serving(app: FastAPI, services: Services) -> Iterator[FastAPI]:
    """`app` serving `services` instead of those it was created with, until the block ends. FastAPI prepares an
    app's routes on its first request (about 0.3 s of CPU, more than most tests take): tests share apps this way."""
    original, app.state.services = app.state.services, services
    try:
        yield app
    finally:
        app.state.services = original


def new_id() -> str:
    return str(uuid.uuid4())


def video_flow(flow_id: str, source_id: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid `PUT /flows/{id}` body of an H.264 video flow in MPEG-TS, plus `fields`."""
    return {
        "id": flow_id,
        "source_id": source_id,
        "format": VIDEO,
        "codec": "video/h264",
        "container": CONTAINER,
        "essence_parameters": {
            "frame_width": 1920,
            "frame_height": 1080,
            "frame_rate": {"numerator": 25, "denominator": 1},
        },
        **fields,
    }


def segment_held_elsewhere(n: int) -> NewSegment:
    """Segment `[n:0_n+1:0)` of object `object-{n}`, held elsewhere (known by URL: nothing to allocate)."""
    timerange = f"[{n}:0_{n + 1}:0)"
    bounds = tr.parse_bounds(timerange)
    urls = [{"url": f"http://media.example/{n}.ts", "label": "elsewhere"}]
    return NewSegment(f"object-{n}", timerange, bounds, timerange, bounds, get_urls=urls)


def fill_flow(store: MetadataStore, flow_id: str, source_id: str, segments: int, batch: int = 1_000) -> None:
    """A video flow of `segments` one-second segments from 0:0 (`segment_held_elsewhere`), through the store's own
    writes: far quicker than through the API."""
    document = video_flow(flow_id, source_id)
    metadata = {key: value for key, value in document.items() if key not in ("id", "source_id", "format")}
    flows.put(store, FlowWrite(flow_id, source_id, document["format"], metadata, {}, [], None))
    for start in range(0, segments, batch):
        added = [segment_held_elsewhere(n) for n in range(start, min(segments, start + batch))]
        failures = segments_domain.register(store, flow_id, added)
        assert not failures, failures[0]


def profile(profile_id: str, **fields: Any) -> dict[str, Any]:
    """A profile of 1080p25 H.264 video in MPEG-TS."""
    flow_metadata = video_flow(profile_id, profile_id)
    for name in ("id", "source_id", "label", "description", "tags"):
        flow_metadata.pop(name, None)
    return {"id": profile_id, "label": "1080p25 h264", "flow_metadata": flow_metadata, **fields}


def audio_flow(flow_id: str, source_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": flow_id,
        "source_id": source_id,
        "format": AUDIO,
        "codec": "audio/aac",
        "container": "video/mp2t",
        "essence_parameters": {"sample_rate": 48000, "channels": 2},
        **fields,
    }


class Tams:
    """A TestClient with the few multi-step operations most tests need; each asserts its own success."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def put_flow(
        self,
        flow_id: str | None = None,
        source_id: str | None = None,
        make: Callable[..., dict[str, Any]] = video_flow,
        **fields: Any,
    ) -> str:
        """Create a flow (video unless `make` says otherwise; on a new source unless given); returns its id."""
        flow_id = flow_id or new_id()
        response = self.client.put(f"/flows/{flow_id}", json=make(flow_id, source_id or new_id(), **fields))
        assert response.status_code == 201, response.text
        return flow_id

    def allocate(self, flow_id: str, **request: Any) -> list[dict[str, Any]]:
        """`POST /flows/{id}/storage`; the `media_objects` it returns."""
        response = self.client.post(f"/flows/{flow_id}/storage", json=request or {"limit": 1})
        assert response.status_code == 201, response.text
        return response.json()["media_objects"]

    def upload(self, media_object: dict[str, Any], data: bytes) -> None:
        """PUT bytes to an allocated object's `put_url`, as a client without TAMS credentials would."""
        put_url = media_object["put_url"]
        response = self.client.put(put_url["url"], content=data, headers={"Content-Type": put_url["content-type"]})
        assert response.status_code in (200, 201, 204), response.text

    def post_segments(self, flow_id: str, body: Any) -> httpx.Response:
        return self.client.post(f"/flows/{flow_id}/segments", json=body)

    def register(self, flow_id: str, object_id: str, timerange: str, **fields: Any) -> None:
        """Register a segment of an object that exists already (uploaded, re-used or held elsewhere)."""
        response = self.post_segments(flow_id, {"object_id": object_id, "timerange": timerange, **fields})
        assert response.status_code == 201, response.text

    def add_segment(self, flow_id: str, timerange: str, data: bytes = b"media", **fields: Any) -> str:
        """Allocate, upload and register one segment; returns its object id."""
        media_object = self.allocate(flow_id)[0]
        self.upload(media_object, data)
        self.register(flow_id, media_object["object_id"], timerange, **fields)
        return media_object["object_id"]

    def add_segments(self, flow_id: str, *timeranges: str) -> list[str]:
        return [self.add_segment(flow_id, timerange) for timerange in timeranges]

    def segments(self, flow_id: str, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get(f"/flows/{flow_id}/segments", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def segment_timeranges(self, flow_id: str, **params: Any) -> list[str]:
        return [segment["timerange"] for segment in self.segments(flow_id, **params)]

    def pages(self, url: str, params: dict[str, Any] | None = None) -> list[httpx.Response]:
        """Every page of a listing, following `Link: rel="next"` as clients do."""
        responses = [self.client.get(url, params=params)]
        while (link := next_link(responses[-1])) is not None:
            assert len(responses) < 100, "paging does not end"
            responses.append(self.client.get(link))
        assert all(response.status_code == 200 for response in responses)
        return responses


def stored_flow(store: MetadataStore, flow_id: str) -> Flow | None:
    """The flow as the store holds it for clients, None when there is none."""
    return store.read(lambda tx: store.get_flow(tx, flow_id))
