"""Fixtures: a fresh service (own data directory) per test, and a store with one of everything in it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from endpoints import Content, webhook
from helpers import (
    STORE_BACKENDS,
    VAST_SETTINGS,
    StoppedClock,
    Tams,
    backend_settings,
    fake_vast_store,
    is_real_vast,
    make_settings,
    new_fake_vast,
    new_id,
    open_test_services,
    profile,
    serving,
)
from real_vast import NO_REAL_VAST, real_vast_settings, session_schema
from s3_server import S3Server
from tams_api import clock as service_clock
from tams_api.app import create_app, open_services
from tams_api.config import Settings
from tams_api.routers.common import Services
from vast_fake import FakeVast


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """One bucket for the API tests; each test keeps its objects under a prefix of its own."""
    return s3_server.new_bucket()


@pytest.fixture
def clock() -> Iterator[StoppedClock]:
    """The service's wall clock, stopped at the real time until the test moves it."""
    stopped = StoppedClock()
    with service_clock.use(stopped):
        yield stopped


@pytest.fixture
def soft_delete() -> bool:
    """Whether DELETE /flows/{id} soft-deletes (TAMS_SOFT_DELETE); tests parametrise it to run both ways."""
    return False


@pytest.fixture(params=STORE_BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path, soft_delete: bool) -> Settings:
    return backend_settings(request, tmp_path, soft_delete=soft_delete)


# Where a service keeps its data; tests whose other settings are equal share one app (see `app`).
LOCATION_SETTINGS = {"data_dir", "sqlite_path", "media_dir", "s3_prefix", "postgres_schema"}


@pytest.fixture(scope="session")
def shared_apps() -> dict[str, FastAPI]:
    return {}


@pytest.fixture
def services(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Services]:
    """This test's stores, opened on its own data (holding the content if the test asks for `content`)."""
    if "content" in request.fixturenames:
        request.getfixturevalue("content")  # in the stores before they are opened
    opened = open_test_services(request, settings)
    yield opened
    opened.store.close()


@pytest.fixture
def app(
    request: pytest.FixtureRequest,
    shared_apps: dict[str, FastAPI],
    services: Services,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FastAPI]:
    """An app `create_app` made, serving this test's services: one per settings but for the data location,
    shared by the tests with those settings (see `serving`)."""
    key = services.settings.model_dump_json(exclude=LOCATION_SETTINGS)
    if key not in shared_apps:
        # Created on stores no test uses: every lifespan of the app closes those it was created with.
        spare_dir = tmp_path_factory.mktemp("shared-app")
        spare = services.settings.model_copy(update={"data_dir": spare_dir, "sqlite_path": None, "media_dir": None})
        shared_apps[key] = create_app(services=open_test_services(request, spare, new_fake_vast()))
    shared = shared_apps[key]
    # `auth` depends only on settings in `key`; `services` hold the data and are swapped per test.
    assert set(shared.state._state) == {"services", "auth"}, "create_app keeps new state: give each test its own"
    with serving(shared, services):
        yield shared


@pytest.fixture
def client(app: FastAPI, settings: Settings) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield reaching_media(test_client, settings)


def reaching_media(test_client: TestClient, settings: Settings) -> TestClient:
    for spec in settings.media_backends:
        if spec.backend == "s3" and spec.endpoint_url:
            # Media URLs of an s3 store point at the S3 server: requests to it leave the test client for real.
            pattern = httpx._utils.URLPattern(f"all://{httpx.URL(spec.endpoint_url).netloc.decode()}")
            test_client._mounts = {pattern: httpx.HTTPTransport(), **test_client._mounts}
    return test_client


@pytest.fixture
def tams(client: TestClient) -> Tams:
    return Tams(client)


@pytest.fixture
def flow_id(tams: Tams) -> str:
    """A video flow with no segments."""
    return tams.put_flow()


def build_content(tams: Tams) -> Content:
    """A flow with tags, properties, a collected member flow and two segments on its own source (which has
    tags, label and description), plus an object allocated for it but not yet registered."""
    source_id = new_id()
    member_flow_id = tams.put_flow(label="member")
    main_flow_id = tams.put_flow(
        source_id=source_id,
        label="main",
        description="the flow every endpoint test reads",
        tags={"genre": ["news", "sport"]},
        max_bit_rate=6000,
        avg_bit_rate=5000,
        flow_collection=[{"id": member_flow_id, "role": "picture"}],
    )
    for path, value in (("tags/genre", "news"), ("label", "source label"), ("description", "source description")):
        assert tams.client.put(f"/sources/{source_id}/{path}", json=value).status_code == 204
    object_id, _ = tams.add_segments(main_flow_id, "[0:0_1:0)", "[1:0_2:0)")
    spare_object_id = tams.allocate(main_flow_id)[0]["object_id"]
    profile_id = new_id()
    assert tams.client.post(f"/service/profiles/{profile_id}", json=profile(profile_id)).status_code == 201
    registered = tams.client.post("/service/webhooks", json=webhook(tags={"genre": "news"}))
    assert registered.status_code == 201, registered.text
    # The app building content defers every segment delete (TAMS_DELETE_SYNC_LIMIT=0) and runs no worker.
    doomed_flow_id = tams.put_flow(label="doomed")
    tams.add_segments(doomed_flow_id, "[0:0_1:0)")
    deferred = tams.client.delete(f"/flows/{doomed_flow_id}/segments")
    assert deferred.status_code == 202, deferred.text
    return Content(
        flow_id=main_flow_id,
        member_flow_id=member_flow_id,
        source_id=source_id,
        object_id=object_id,
        spare_object_id=spare_object_id,
        tag_name="genre",
        profile_id=profile_id,
        new_profile_id=new_id(),
        webhook_id=registered.json()["id"],
        delete_request_id=deferred.json()["id"],
    )


@pytest.fixture(scope="session")
def content_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Content]:
    """`build_content` through the API once; tests get a copy of the resulting data directory."""
    data_dir = tmp_path_factory.mktemp("content")
    settings = make_settings(data_dir).model_copy(update={"delete_sync_limit": 0})
    with TestClient(create_app(settings)) as client:
        content = build_content(Tams(client))
    return data_dir, content


@pytest.fixture(scope="session")
def vast_content_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[FakeVast, Content]:
    """`build_content` through the API once, on the VAST store over a fake cluster; tests get a clone of it."""
    fake = new_fake_vast()
    settings = make_settings(tmp_path_factory.mktemp("vast-content"), **VAST_SETTINGS, delete_sync_limit=0)
    with TestClient(create_app(services=open_services(settings, fake_vast_store(fake)))) as client:
        content = build_content(Tams(client))
    return fake, content


@pytest.fixture
def vast(request: pytest.FixtureRequest) -> FakeVast:
    """This test's fake VAST cluster: holding a copy of the content if the test asks for `content`, else empty."""
    if "content" in request.fixturenames:
        return request.getfixturevalue("vast_content_template")[0].clone()
    return new_fake_vast()


@pytest.fixture(scope="session")
def real_vast_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh schema on the real VAST cluster for this session (only asked for when VASTDB_* is set)."""
    cluster = make_settings(tmp_path_factory.mktemp("vast-real"), **(real_vast_settings(os.environ) or {}))
    with session_schema(cluster) as changes:
        yield changes


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "vast-real+s3" not in STORE_BACKENDS:
        terminalreporter.write_line(f"vast-real+s3 not run: {NO_REAL_VAST}")


@pytest.fixture
def content(request: pytest.FixtureRequest, settings: Settings) -> Content:
    if is_real_vast(settings) or settings.metadata_backend == "postgres":
        # Built through the API into this test's (new or emptied) schema: a database cannot be cloned.
        with TestClient(create_app(settings.model_copy(update={"delete_sync_limit": 0}))) as client:
            return build_content(Tams(reaching_media(client, settings)))
    if settings.metadata_backend == "vast":
        return request.getfixturevalue("vast_content_template")[1]  # the `vast` fixture holds a copy of it
    template_dir, content = request.getfixturevalue("content_template")
    shutil.copytree(template_dir, settings.data_dir, dirs_exist_ok=True)
    return content
