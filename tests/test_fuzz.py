"""Bad input never yields a 500.

Two layers, both against a store seeded with two flows (one collecting the other), their sources, a
controlled and an uncontrolled media object and two segments:

1. Schemathesis over the service's own OpenAPI document (`/openapi.json`), positive and negative data, and
   over the spec's (TimeAddressableMediaStore.yaml), positive data answered only as the spec documents: every
   operation, a fixed seed and a bounded number of examples per operation, on the SQLite store and on the
   VAST store (over the SDK fake). Path and query parameters that name a flow, source, object or tag
   sometimes take the seeded ones, so existing resources are exercised as well as missing ones.
2. Targeted requests for what the issue lists: malformed JSON, wrong types in bodies, bad UUIDs, bad
   timeranges, odd limits, garbage page keys, unknown query parameters and bad tag filters; fixed cases
   plus small Hypothesis properties.

Every answer must be below 500, and every error must be the spec's error JSON (schemas/error.json)
without a traceback.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from helpers import VAST_SETTINGS, fake_vast_store, new_fake_vast, serving
from spec import OPENAPI_PATH
from tams_api import schemas
from tams_api.app import create_app, open_services
from tams_api.config import Settings
from tams_api.routers.common import Services
from vast_fake import FakeVast

PUBLIC_URL = "http://testserver"
STORAGE_ID = "9d4a3e96-7a5c-4d9f-b16e-0c1f2a3b4c5d"

# -- the seeded store ---------------------------------------------------------------------------------

SOURCE_ID = "5f0c9a52-3c1e-4f5b-9d2a-6e7b8c9d0a1b"
FLOW_ID = "0b5e3d6c-7f4a-4c9e-9a36-4f1d2a6b8c01"
COLLECTOR_SOURCE_ID = "6a1d0b63-4d2f-4a6c-8e3b-7f8c9d0e1b2c"
COLLECTOR_FLOW_ID = "7b2e1c74-5e3a-4b7d-9f4c-8a9d0e1f2c3d"
OBJECT_ID = "8c3f2d85-6f4b-4c8e-a05d-9b0e1f2a3d4e"  # allocated on this store's backend
EXTERNAL_OBJECT_ID = "external-object-1"  # held elsewhere: registered with its own get_urls
TAG_NAME = "genre"
SEEDED_IDS = (FLOW_ID, SOURCE_ID, OBJECT_ID, COLLECTOR_FLOW_ID, COLLECTOR_SOURCE_ID)


def video_flow(flow_id: str, source_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": flow_id,
        "source_id": source_id,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
        **extra,
    }


SEEDED_FLOWS = (
    video_flow(
        FLOW_ID,
        SOURCE_ID,
        label="seeded flow",
        description="the flow fuzzing finds",
        tags={TAG_NAME: "news", "audience": ["uk", "world"]},
        max_bit_rate=8000,
        avg_bit_rate=6000,
    ),
    video_flow(
        COLLECTOR_FLOW_ID, COLLECTOR_SOURCE_ID, label="collector", flow_collection=[{"id": FLOW_ID, "role": "v"}]
    ),
)
EXTERNAL_GET_URLS = [{"url": "https://media.example.com/external-object-1.ts", "label": "external"}]
SEEDED_SEGMENTS = [
    {"object_id": OBJECT_ID, "timerange": "[0:0_10:0)"},
    {"object_id": EXTERNAL_OBJECT_ID, "timerange": "[10:0_20:0)", "get_urls": EXTERNAL_GET_URLS},
]


def seed(client: TestClient) -> None:
    """Create the seeded resources, or restore them after a fuzzed request changed or deleted them."""
    for flow in SEEDED_FLOWS:
        send(client, "PUT", f"/flows/{flow['id']}/read_only", {204, 404}, document=False)  # 404: not there (yet)
        send(client, "PUT", f"/flows/{flow['id']}", {201, 204}, document=flow)
    send(client, "PUT", f"/sources/{SOURCE_ID}/label", {204}, document="seeded source")
    send(client, "PUT", f"/sources/{SOURCE_ID}/tags/{TAG_NAME}", {204}, document="news")
    # 400 when the object is allocated or registered already, 200 when a segment is there already: either way
    # what is there is what the seed wants (or what a fuzzed request put in its place).
    send(client, "POST", f"/flows/{FLOW_ID}/storage", {201, 400}, document={"object_ids": [OBJECT_ID]})
    send(client, "POST", f"/flows/{FLOW_ID}/segments", {200, 201}, document=SEEDED_SEGMENTS)


def assert_seeded(client: TestClient) -> None:
    segments = client.get(f"/flows/{FLOW_ID}/segments", params={"timerange": "[0:0_20:0)"})
    assert [segment["object_id"] for segment in segments.json()] == [OBJECT_ID, EXTERNAL_OBJECT_ID], segments.text
    assert client.get(f"/objects/{OBJECT_ID}").status_code == 200
    assert client.get(f"/flows/{COLLECTOR_FLOW_ID}").json()["flow_collection"] == [{"id": FLOW_ID, "role": "v"}]


# Reads that would fail if a refused write had stored something the service cannot send back.
SEEDED_READS = (
    "/flows",
    f"/flows/{FLOW_ID}",
    f"/flows/{FLOW_ID}/segments",
    f"/objects/{OBJECT_ID}",
    "/sources",
    f"/sources/{SOURCE_ID}",
    "/service",
)


def open_fuzz_services(data_dir: Path, cluster: FakeVast | None = None) -> Services:
    """Services with media in `data_dir`, metadata in SQLite there too or in the VAST store on `cluster`."""
    # A fixed storage id keeps the seeded object on "this" backend in a copied data directory.
    settings = Settings(data_dir=data_dir, public_url=PUBLIC_URL, storage_id=STORAGE_ID, run_worker=False)
    if cluster is None:
        return open_services(settings)
    return open_services(settings.model_copy(update=VAST_SETTINGS), fake_vast_store(cluster))


def new_app(data_dir: Path, cluster: FakeVast | None = None) -> FastAPI:
    return create_app(services=open_fuzz_services(data_dir, cluster))


# -- what every answer must look like -----------------------------------------------------------------

ERROR_SCHEMA = Draft202012Validator(schemas.schema("error.json"))


def assert_answer(method: str, status: int, body: bytes, allowed: set[int] | None, where: str) -> None:
    """Below 500 (and among `allowed` when given); an error is the spec's error JSON, never a traceback."""
    assert status < 500, f"{where}: server error {status}: {body[:500]!r}"
    assert allowed is None or status in allowed, f"{where}: status {status} not in {sorted(allowed)}: {body[:500]!r}"
    assert b"Traceback" not in body, f"{where}: traceback in the body: {body[:500]!r}"
    if status < 400 or method.upper() == "HEAD":
        return
    document = json.loads(body)
    problems = [error.message for error in ERROR_SCHEMA.iter_errors(document)]
    assert not problems, f"{where}: error body {document!r} breaks schemas/error.json: {problems}"
    assert "traceback" not in document, f"{where}: error body carries a traceback: {document!r}"
    datetime.fromisoformat(document["time"])


def send(
    client: TestClient,
    method: str,
    url: str,
    allowed: set[int] | None,
    *,
    document: Any = None,
    raw: bytes | None = None,
    params: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    """Send `document` as JSON (lone surrogates escaped, as json.dumps does) or `raw` bytes, and check the answer."""
    content = raw if raw is not None else None if document is None else json.dumps(document).encode()
    headers = {"content-type": content_type} if content is not None else {}
    response = client.request(method, url, content=content, headers=headers, params=params)
    assert_answer(method, response.status_code, response.content, allowed, f"{method} {response.url}")
    return response


# == 1. schemathesis over the service's own OpenAPI and over the spec's =================================

EXAMPLES_PER_OPERATION = 12
# HEAD runs the GET handlers (fuzzed in full) behind a middleware that drops the body.
EXAMPLES_PER_HEAD_OPERATION = 4
FUZZ_SEED = 20_240_611


def served_openapi_document() -> dict[str, Any]:
    """The document the service serves at /openapi.json, read in-process from a throwaway instance."""
    with tempfile.TemporaryDirectory() as data_dir, TestClient(new_app(Path(data_dir))) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def fuzz_config(mode: str, coverage: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": FUZZ_SEED,
            "generation": {"mode": mode, "max-examples": EXAMPLES_PER_OPERATION},
            "operations": [{"include-method": "HEAD", "generation": {"max-examples": EXAMPLES_PER_HEAD_OPERATION}}],
            "phases": {"coverage": {"enabled": coverage}},
        }
    )


# Positive and negative data: the service's document gives every operation a 400. No coverage phase: with
# negative data it alone sends ~4,000 requests (~1,400 on PUT /flows/{flow_id}), too slow here.
SCHEMA = schemathesis.openapi.from_dict(served_openapi_document(), config=fuzz_config("all", coverage=False))
# The spec's document, from its file so that its schemas (schemas/*.json beside it) resolve. Positive data only:
# most of its operations document no 400, so it says nothing of requests that break its own parameter schemas.
# Its coverage phase adds boundary values (empty strings, zeros): ~1,500 requests, ~700 of them PUT /flows/{flowId}.
SPEC_SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH, config=fuzz_config("positive", coverage=True))


# Generated values replaced half the time, so that requests reach the seeded resources and get past the checks
# of parameters the document types as plain strings (a generated timerange or page key is nearly always refused).
# The service's document names path parameters flow_id, the spec's flowId.
ABSENT = object()
PATH_REPLACEMENTS = {
    "flow_id": FLOW_ID,
    "flowId": FLOW_ID,
    "source_id": SOURCE_ID,
    "sourceId": SOURCE_ID,
    "object_id": OBJECT_ID,
    "objectId": OBJECT_ID,
    "name": TAG_NAME,
}
QUERY_REPLACEMENTS = {
    "source_id": SOURCE_ID,
    "object_id": OBJECT_ID,
    "accept_storage_ids": STORAGE_ID,
    "timerange": "[5:0_15:0)",
    "page": ABSENT,
}
FLOW_PATHS = {"/flows/{flow_id}", "/flows/{flowId}"}


@SCHEMA.hook
@SPEC_SCHEMA.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    return _sometimes_replaced(path_parameters, PATH_REPLACEMENTS)


@SCHEMA.hook
@SPEC_SCHEMA.hook
def flatmap_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> Any:
    return _sometimes_replaced(query, QUERY_REPLACEMENTS)


@SCHEMA.hook
@SPEC_SCHEMA.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """A flow's id is in its path and its body: make them agree, or nearly every generated flow is refused."""
    if case.method.upper() == "PUT" and case.operation.path in FLOW_PATHS and isinstance(case.body, dict):
        [case.body["id"]] = case.path_parameters.values()
    return case


@SPEC_SCHEMA.hook
def map_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the spec contradicts itself: its `page` is any string, but only a key the service issued names a
    page, and the storage backend, webhook and delete request listings document no status (no 400) for any other.
    There no page key is generated; tests/test_traps.py checks that a bad one is a 400."""
    if query and context.operation is not None and "400" not in context.operation.responses.status_codes:
        query.pop("page", None)
    return query


def _sometimes_replaced(
    parameters: dict[str, Any] | None, replacements: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not parameters:
        return st.just(parameters)
    choices = {
        name: st.sampled_from([value, replacements[name]]) if name in replacements else st.just(value)
        for name, value in parameters.items()
    }
    return st.fixed_dictionaries(choices).map(
        lambda chosen: {name: value for name, value in chosen.items() if value is not ABSENT}
    )


@dataclass
class FuzzTarget:
    app: FastAPI
    client: TestClient


@dataclass(frozen=True)
class SeededStore:
    """A seeded store for tests to copy: its data directory and, on VAST, its fake cluster."""

    data_dir: Path
    cluster: FakeVast | None

    def open_copy(self, data_dir: Path) -> Services:
        """Services on a copy: the data directory copied to `data_dir`, the cluster cloned."""
        shutil.copytree(self.data_dir, data_dir)
        return open_fuzz_services(data_dir, None if self.cluster is None else self.cluster.clone())


def seeded_store(data_dir: Path, cluster: FakeVast | None = None) -> SeededStore:
    with TestClient(new_app(data_dir, cluster)) as client:
        seed(client)
        assert_seeded(client)
    return SeededStore(data_dir, cluster)  # the lifespan has ended: the store is closed, its files complete


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> SeededStore:
    """The seeded store on SQLite, which the targeted tests use too."""
    return seeded_store(tmp_path_factory.mktemp("fuzz-template"))


@pytest.fixture(scope="module", params=["sqlite", "vast"])
def fuzz_template(
    request: pytest.FixtureRequest, seeded_template: SeededStore, tmp_path_factory: pytest.TempPathFactory
) -> SeededStore:
    """The seeded store on each metadata store: SQLite, and VAST over the fake cluster (media on the filesystem
    for both: the media store is not what is fuzzed)."""
    if request.param == "sqlite":
        return seeded_template
    return seeded_store(tmp_path_factory.mktemp("fuzz-template-vast"), new_fake_vast())


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    # One app for every operation and store: FastAPI prepares an app's routes on its first request, ~0.3 s of CPU.
    return new_app(tmp_path_factory.mktemp("fuzz-app"))


@pytest.fixture
def fuzz_target(fuzz_app: FastAPI, fuzz_template: SeededStore, tmp_path: Path) -> Iterator[FuzzTarget]:
    """The app serving a fresh copy of the seeded store (Schemathesis ends the app's lifespan after each test, and
    that closes only the services the app was created with)."""
    services = fuzz_template.open_copy(tmp_path / "data")
    try:
        with serving(fuzz_app, services), TestClient(fuzz_app) as client:
            yield FuzzTarget(fuzz_app, client)
    finally:
        services.store.close()


SCHEMATHESIS_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CHANGES_STATE = {"PUT", "POST", "DELETE"}
GENERATED_SETTINGS = settings(
    deadline=None,
    database=None,
    # One seeded app per operation on purpose (it is restored after requests that change it); generation of
    # the larger bodies is slow and filtered.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


def call_and_check(case: schemathesis.Case, target: FuzzTarget) -> None:
    response = case.call(app=target.app)
    case.validate_response(response, checks=SCHEMATHESIS_CHECKS)
    assert_answer(case.method, response.status_code, response.content, None, f"{case.method} {case.formatted_path}")
    # A refused request changes nothing; an accepted one may have changed or deleted what was seeded.
    changed = case.method.upper() in CHANGES_STATE and response.status_code < 400
    if changed and any(seeded in case.formatted_path for seeded in SEEDED_IDS):
        seed(target.client)


@SCHEMA.parametrize()
@GENERATED_SETTINGS
def test_every_operation_survives_generated_requests(case: schemathesis.Case, fuzz_target: FuzzTarget) -> None:
    call_and_check(case, fuzz_target)


@SPEC_SCHEMA.parametrize()
@GENERATED_SETTINGS
def test_every_operation_answers_requests_the_spec_describes_as_it_documents(
    case: schemathesis.Case, fuzz_target: FuzzTarget
) -> None:
    call_and_check(case, fuzz_target)


# == 2. targeted bad input ============================================================================

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def seeded_client(seeded_template: SeededStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    services = seeded_template.open_copy(tmp_path_factory.mktemp("fuzz-targeted") / "data")
    with TestClient(create_app(services=services)) as client:
        yield client


# -- malformed JSON bodies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonEndpoint:
    method: str
    path: str
    accepts: frozenset[str]  # top-level JSON kinds a valid body may have
    body_required: bool = True

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


JSON_ENDPOINTS = (
    JsonEndpoint("PUT", f"/flows/{FLOW_ID}", frozenset({"object"})),
    JsonEndpoint("PUT", f"/flows/{FLOW_ID}/label", frozenset({"string"})),
    JsonEndpoint("PUT", f"/flows/{FLOW_ID}/max_bit_rate", frozenset({"integer"})),
    JsonEndpoint("PUT", f"/flows/{FLOW_ID}/read_only", frozenset({"boolean"})),
    JsonEndpoint("PUT", f"/flows/{FLOW_ID}/flow_collection", frozenset({"array"})),
    JsonEndpoint("PUT", f"/flows/{FLOW_ID}/tags/{TAG_NAME}", frozenset({"string", "array"})),
    JsonEndpoint("POST", f"/flows/{FLOW_ID}/segments", frozenset({"object", "array"})),
    # The storage request is optional, and a JSON null stands for none.
    JsonEndpoint("POST", f"/flows/{FLOW_ID}/storage", frozenset({"object", "null"}), body_required=False),
    JsonEndpoint("PUT", f"/sources/{SOURCE_ID}/label", frozenset({"string"})),
    JsonEndpoint("PUT", f"/sources/{SOURCE_ID}/tags/{TAG_NAME}", frozenset({"string", "array"})),
    JsonEndpoint("POST", "/service", frozenset({"object"})),
)

# Bodies no endpoint may accept: not JSON, or JSON whose values the service cannot store and send back.
MALFORMED_BODIES = {
    "truncated object": b'{"id": "',
    "truncated array": b"[1, 2",
    "trailing comma": b'{"a": 1,}',
    "single quotes": b"{'a': 1}",
    "two documents": b"{} {}",
    "non-UTF-8 bytes": b"\xff\xfe\xfa\x00",
    "bare word": b"undefined",
    "NaN": b"NaN",
    "Infinity": b"-Infinity",
    "huge exponent": b"1e999999",
    "5000-digit integer": b"9" * 5000,
    "integer beyond 64 bits": str(2**64).encode(),
    "deeply nested arrays": b"[" * 100_000 + b"]" * 100_000,
    "deeply nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "lone surrogate": b'"\\ud800"',
    "lone surrogate in an array": b'["news", "\\udfff"]',
    "lone surrogate key": b'{"\\udc00": "x"}',
}


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=str)
@pytest.mark.parametrize("body", list(MALFORMED_BODIES.values()), ids=list(MALFORMED_BODIES))
def test_malformed_json_bodies_are_bad_requests(seeded_client: TestClient, endpoint: JsonEndpoint, body: bytes) -> None:
    send(seeded_client, endpoint.method, endpoint.path, {400}, raw=body)


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=str)
def test_missing_bodies_are_bad_requests_where_a_body_is_required(
    seeded_client: TestClient, endpoint: JsonEndpoint
) -> None:
    send(seeded_client, endpoint.method, endpoint.path, {400} if endpoint.body_required else {201}, raw=b"")


TOP_LEVEL_SAMPLES = {
    "null": None,
    "boolean": True,
    "integer": 42,
    "number": 4.5,
    "string": "text",
    "array": [],
    "object": {},
}


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [(endpoint, kind) for endpoint in JSON_ENDPOINTS for kind in TOP_LEVEL_SAMPLES if kind not in endpoint.accepts],
    ids=lambda item: str(item),
)
def test_bodies_of_the_wrong_top_level_type_are_bad_requests(
    seeded_client: TestClient, endpoint: JsonEndpoint, kind: str
) -> None:
    send(seeded_client, endpoint.method, endpoint.path, {400}, document=TOP_LEVEL_SAMPLES[kind])


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=str)
def test_bodies_that_are_not_declared_json_are_refused(
    seeded_client: TestClient, endpoint: JsonEndpoint, content_type: str
) -> None:
    send(seeded_client, endpoint.method, endpoint.path, {400, 415}, raw=b'"text"', content_type=content_type)


def new_segment(start: int, **extra: Any) -> dict[str, Any]:
    return {
        "object_id": f"fuzz-object-{start}",
        "timerange": f"[{start}:0_{start + 1}:0)",
        "get_urls": [{"url": f"https://media.example.com/{start}.ts", "label": "external"}],
        **extra,
    }


# Well-formed bodies with one value the service cannot store (SQLite integers are 64-bit) or send back
# (JSON text must be Unicode, so no lone surrogates; orjson encodes at most 64-bit integers).
SEEDED_FLOW = SEEDED_FLOWS[0]
UNREPRESENTABLE_WRITES = {
    "flow label": ("PUT", f"/flows/{FLOW_ID}/label", "\ud800"),
    "flow description": ("PUT", f"/flows/{FLOW_ID}/description", "a\udfffb"),
    "flow max_bit_rate": ("PUT", f"/flows/{FLOW_ID}/max_bit_rate", 10**30),
    "flow avg_bit_rate": ("PUT", f"/flows/{FLOW_ID}/avg_bit_rate", 2**64),
    "flow tag": ("PUT", f"/flows/{FLOW_ID}/tags/{TAG_NAME}", ["news", "\ud800"]),
    "flow body description": ("PUT", f"/flows/{FLOW_ID}", {**SEEDED_FLOW, "description": "\ud800"}),
    "flow body bit rate": ("PUT", f"/flows/{FLOW_ID}", {**SEEDED_FLOW, "max_bit_rate": 10**30}),
    "flow body tag name": ("PUT", f"/flows/{FLOW_ID}", {**SEEDED_FLOW, "tags": {"\udc00": "x"}}),
    "flow body frame width": (
        "PUT",
        f"/flows/{FLOW_ID}",
        {**SEEDED_FLOW, "essence_parameters": {**SEEDED_FLOW["essence_parameters"], "frame_width": 2**63}},
    ),
    "flow collection role": ("PUT", f"/flows/{FLOW_ID}/flow_collection", [{"id": COLLECTOR_FLOW_ID, "role": "\ud800"}]),
    "segment sample_offset": ("POST", f"/flows/{FLOW_ID}/segments", new_segment(500, sample_offset=2**63)),
    "segment sample_count": ("POST", f"/flows/{FLOW_ID}/segments", new_segment(501, sample_count=-(2**63) - 1)),
    "segment key_frame_count": ("POST", f"/flows/{FLOW_ID}/segments", new_segment(502, key_frame_count=10**30)),
    "segment object_id": ("POST", f"/flows/{FLOW_ID}/segments", new_segment(503, object_id="\ud800")),
    "segment get_urls": (
        "POST",
        f"/flows/{FLOW_ID}/segments",
        new_segment(504, get_urls=[{"url": "https://media.example.com/\ud800", "label": "external"}]),
    ),
    "segment extra field": ("POST", f"/flows/{FLOW_ID}/segments", new_segment(505, note="\udfff")),
    "storage object_ids": ("POST", f"/flows/{FLOW_ID}/storage", {"object_ids": ["\ud800"]}),
    "storage limit": ("POST", f"/flows/{FLOW_ID}/storage", {"limit": 10**30}),
    "service name": ("POST", "/service", {"name": "\ud800"}),
    "source label": ("PUT", f"/sources/{SOURCE_ID}/label", "\ud800"),
    "source tag": ("PUT", f"/sources/{SOURCE_ID}/tags/{TAG_NAME}", "\ud800"),
}


@pytest.mark.parametrize(
    ("method", "path", "document"), list(UNREPRESENTABLE_WRITES.values()), ids=list(UNREPRESENTABLE_WRITES)
)
def test_values_the_service_cannot_keep_are_refused(
    seeded_client: TestClient, method: str, path: str, document: Any
) -> None:
    send(seeded_client, method, path, {400}, document=document)
    for read_back in SEEDED_READS:
        send(seeded_client, "GET", read_back, {200})


# -- wrong types inside otherwise valid bodies --------------------------------------------------------

UNREPRESENTABLE_INTEGERS = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30])
ODD_STRINGS = st.sampled_from(["", "\x00", "\ud800", "a\udfffb", "é", "𝄞", "\u202e", "x" * 5000])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | UNREPRESENTABLE_INTEGERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | ODD_STRINGS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def replaced(document: Any, path: tuple[str | int, ...], value: Any) -> Any:
    """A deep copy of `document` with the value at `path` replaced."""
    changed = copy.deepcopy(document)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


FLOW_FIELDS = (
    ("label",),
    ("description",),
    ("format",),
    ("codec",),
    ("container",),
    ("source_id",),
    ("tags",),
    ("tags", TAG_NAME),
    ("essence_parameters",),
    ("essence_parameters", "frame_width"),
    ("essence_parameters", "frame_rate"),
    ("max_bit_rate",),
    ("read_only",),
    ("flow_collection",),
    ("metadata_version",),
    ("segments_updated",),
)


@PROPERTY_SETTINGS
@given(flow_id=st.uuids(version=4), field=st.sampled_from(FLOW_FIELDS), value=JSON_VALUES)
def test_flow_bodies_with_any_value_in_any_field(
    seeded_client: TestClient, flow_id: uuid.UUID, field: tuple[str, ...], value: Any
) -> None:
    flow = video_flow(str(flow_id), str(uuid.uuid4()), label="fuzz", tags={TAG_NAME: "fuzz"})
    send(seeded_client, "PUT", f"/flows/{flow_id}", {201, 400}, document=replaced(flow, field, value))
    send(seeded_client, "GET", f"/flows/{flow_id}", {200, 404})


SEGMENT_FIELDS = (
    ("object_id",),
    ("timerange",),
    ("ts_offset",),
    ("last_duration",),
    ("object_timerange",),
    ("sample_offset",),
    ("sample_count",),
    ("key_frame_count",),
    ("init_object_id",),
    ("get_urls",),
    ("get_urls", 0, "url"),
    ("get_urls", 0, "label"),
)


@PROPERTY_SETTINGS
@given(
    start=st.integers(1_000, 1_000_000), field=st.sampled_from(SEGMENT_FIELDS), value=JSON_VALUES, bulk=st.booleans()
)
def test_segment_bodies_with_any_value_in_any_field(
    seeded_client: TestClient, start: int, field: tuple[str | int, ...], value: Any, bulk: bool
) -> None:
    segment = replaced(new_segment(start), field, value)
    send(seeded_client, "POST", f"/flows/{FLOW_ID}/segments", {200, 201, 400}, document=[segment] if bulk else segment)
    send(seeded_client, "GET", f"/flows/{FLOW_ID}/segments", {200}, params={"timerange": f"[{start}:0_{start + 1}:0)"})


@PROPERTY_SETTINGS
@given(field=st.sampled_from(["limit", "object_ids", "storage_id", "content_type", "presigned"]), value=JSON_VALUES)
def test_storage_requests_with_any_value_in_any_field(seeded_client: TestClient, field: str, value: Any) -> None:
    send(seeded_client, "POST", f"/flows/{FLOW_ID}/storage", {201, 400}, document={field: value})


# -- bad ids in paths and queries ---------------------------------------------------------------------

BAD_IDS = (
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    FLOW_ID.upper(),
    "{" + FLOW_ID + "}",
    FLOW_ID[:-1],
    "x" * 3000,
    "%00",
    "%ED%A0%80",
    "é",
    "%2e%2e%2fservice",
)
ID_OPERATIONS = (
    ("GET", "/flows/{id}", None),
    ("HEAD", "/flows/{id}", None),
    ("PUT", "/flows/{id}", SEEDED_FLOW),
    ("DELETE", "/flows/{id}", None),
    ("PUT", "/flows/{id}/tags/" + TAG_NAME, "news"),
    ("GET", "/flows/{id}/label", None),
    ("PUT", "/flows/{id}/max_bit_rate", 5),
    ("PUT", "/flows/{id}/read_only", False),
    ("PUT", "/flows/{id}/flow_collection", []),
    ("GET", "/flows/{id}/segments", None),
    ("POST", "/flows/{id}/segments", new_segment(600)),
    ("DELETE", "/flows/{id}/segments", None),
    ("POST", "/flows/{id}/storage", {}),
    ("GET", "/sources/{id}", None),
    ("PUT", "/sources/{id}/label", "label"),
    ("GET", "/objects/{id}", None),
    ("HEAD", "/objects/{id}", None),
)


@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize(("method", "template", "document"), ID_OPERATIONS, ids=lambda item: str(item)[:40])
def test_bad_ids_in_paths_are_client_errors(
    seeded_client: TestClient, method: str, template: str, document: Any, bad_id: str
) -> None:
    send(seeded_client, method, template.replace("{id}", bad_id), {400, 404, 405}, document=document)


UUID_QUERY_PARAMETERS = (
    ("/flows", "source_id"),
    ("/flows", "profile_id"),
    ("/flows", "collected_by_ids"),
    ("/sources", "collected_by_ids"),
    (f"/flows/{FLOW_ID}/segments", "accept_storage_ids"),
    (f"/objects/{OBJECT_ID}", "accept_storage_ids"),
)
BAD_UUID_VALUES = (
    "not-a-uuid",
    "1234",
    SOURCE_ID.upper(),
    "{" + SOURCE_ID + "}",
    f"{SOURCE_ID},nope",
    f"{SOURCE_ID};{SOURCE_ID}",
    SOURCE_ID + "\x00",
    "é" * 40,
)


@pytest.mark.parametrize(("path", "parameter"), UUID_QUERY_PARAMETERS)
@pytest.mark.parametrize("value", BAD_UUID_VALUES)
def test_bad_uuids_in_queries_are_bad_requests(
    seeded_client: TestClient, path: str, parameter: str, value: str
) -> None:
    send(seeded_client, "GET", path, {400}, params={parameter: value})


@PROPERTY_SETTINGS
@given(target=st.sampled_from(UUID_QUERY_PARAMETERS), value=st.text(max_size=80))
def test_any_text_as_a_uuid_query(seeded_client: TestClient, target: tuple[str, str], value: str) -> None:
    path, parameter = target
    send(seeded_client, "GET", path, {200, 400}, params={parameter: value})


# -- bad timeranges -----------------------------------------------------------------------------------

BAD_TIMERANGES = (
    "",
    "abc",
    "0",
    "[",
    "[0_1]",
    "[0:0__1:0)",
    "[0:0_1:0))",
    "[[0:0_1:0)",
    "[01:0_2:0)",
    "[0:1000000000_2:0)",
    "[0:0 _1:0)",
    "[0.5:0_1:0)",
    "[:0_1:0)",
    "[0:_1:0)",
    "(5:0)",
    "[0:0_1:0]x",
    "[99999999999:0_1:0)",
    "[-99999999999:0_1:0)",
    "[" + "9" * 5000 + ":0_1:0)",
    "[0:0_" + "9" * 5000 + ":0)",
    "[0:0_1:0)\x00",
    "[٣:0_4:0)",
)
TIMERANGE_QUERIES = (
    ("GET", "/flows", {}),
    ("GET", f"/flows/{FLOW_ID}", {"include_timerange": "true"}),
    ("GET", f"/flows/{FLOW_ID}/segments", {}),
    ("HEAD", f"/flows/{FLOW_ID}/segments", {}),
    ("DELETE", f"/flows/{FLOW_ID}/segments", {}),
)


@pytest.mark.parametrize(("method", "path", "extra"), TIMERANGE_QUERIES, ids=lambda item: str(item)[:40])
@pytest.mark.parametrize("timerange", BAD_TIMERANGES, ids=lambda text: repr(text[:24]))
def test_bad_timeranges_in_queries_are_bad_requests(
    seeded_client: TestClient, method: str, path: str, extra: dict[str, str], timerange: str
) -> None:
    send(seeded_client, method, path, {400}, params={**extra, "timerange": timerange})


@pytest.mark.parametrize("field", ["timerange", "object_timerange", "ts_offset", "last_duration"])
@pytest.mark.parametrize("timerange", BAD_TIMERANGES, ids=lambda text: repr(text[:24]))
def test_bad_timeranges_in_segment_bodies_are_bad_requests(
    seeded_client: TestClient, field: str, timerange: str
) -> None:
    send(seeded_client, "POST", f"/flows/{FLOW_ID}/segments", {400}, document=new_segment(700, **{field: timerange}))


def _timestamp(negative: bool, seconds: int, nanoseconds: int) -> str:
    return f"{'-' if negative else ''}{seconds}:{nanoseconds}"


TIMESTAMP_LIKE = st.builds(
    _timestamp, st.booleans(), st.integers(0, 10**22) | st.integers(0, 100), st.integers(0, 10**11) | st.just(0)
)
TIMERANGE_LIKE = st.builds(
    lambda opening, start, separator, end, closing: f"{opening}{start}{separator}{end}{closing}",
    st.sampled_from(["", "[", "("]),
    st.just("") | TIMESTAMP_LIKE,
    st.sampled_from(["", "_"]),
    st.just("") | TIMESTAMP_LIKE,
    st.sampled_from(["", "]", ")"]),
)


@PROPERTY_SETTINGS
@given(timerange=TIMERANGE_LIKE | st.text(max_size=30), method=st.sampled_from(["GET", "HEAD"]))
def test_any_text_as_a_timerange_query(seeded_client: TestClient, timerange: str, method: str) -> None:
    send(seeded_client, method, f"/flows/{FLOW_ID}/segments", {200, 400}, params={"timerange": timerange})
    send(seeded_client, method, "/flows", {200, 400}, params={"timerange": timerange})
    send(
        seeded_client,
        method,
        f"/flows/{FLOW_ID}",
        {200, 400},
        params={"timerange": timerange, "include_timerange": "true"},
    )


@PROPERTY_SETTINGS
@given(
    field=st.sampled_from(["timerange", "object_timerange", "ts_offset", "last_duration"]),
    text=TIMERANGE_LIKE | TIMESTAMP_LIKE | st.text(max_size=30),
    start=st.integers(2_000_000, 3_000_000),
)
def test_any_text_as_a_segment_timerange(seeded_client: TestClient, field: str, text: str, start: int) -> None:
    send(seeded_client, "POST", f"/flows/{FLOW_ID}/segments", {201, 400}, document=new_segment(start, **{field: text}))


# -- limits, page keys, unknown parameters and tag filters --------------------------------------------

LISTINGS = (
    "/flows",
    "/sources",
    "/service/storage-backends",
    f"/flows/{FLOW_ID}/segments",
    f"/objects/{OBJECT_ID}",
)
BAD_LIMITS = ("1.5", "abc", "", "1e3", "0x10", "9" * 5000, "NaN", "true", "٣", "²")
OUT_OF_RANGE_LIMITS = (
    "0",
    "-1",
    "-9223372036854775809",
    "1001",
    "9223372036854775807",
    "9223372036854775808",
    "9" * 40,
)


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize("limit", BAD_LIMITS, ids=lambda text: repr(text[:12]))
def test_bad_limits_are_bad_requests(seeded_client: TestClient, path: str, limit: str) -> None:
    send(seeded_client, "GET", path, {400}, params={"limit": limit})


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize("limit", OUT_OF_RANGE_LIMITS, ids=lambda text: repr(text[:12]))
def test_out_of_range_limits_are_clamped(seeded_client: TestClient, path: str, limit: str) -> None:
    response = send(seeded_client, "GET", path, {200}, params={"limit": limit})
    assert 1 <= int(response.headers["X-Paging-Limit"]) <= 1000


def page_key(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


# One listing of each page key shape, with the number of values its keys encode.
ENCODED_KEY_LISTINGS = (
    ("/flows", {}, 2),
    ("/flows", {"sort_by": "label"}, 3),
    ("/sources", {"sort_by": "updated"}, 2),
    ("/sources", {"sort_by": "label", "reverse_order": "true"}, 3),
    (f"/flows/{FLOW_ID}/segments", {}, 1),
    (f"/objects/{OBJECT_ID}", {}, 1),
)
# Page keys here are offsets, not encoded values.
KEYED_LISTINGS = (*((path, query) for path, query, _ in ENCODED_KEY_LISTINGS), ("/service/storage-backends", {}))
POISONED_KEY_VALUES = ({"a": 1}, [1], 2**63, -(2**63) - 1, 10**30, "\ud800")
GARBAGE_PAGE_KEYS = (
    "garbage",
    "%%%",
    "=",
    "²",
    "9" * 5000,
    "-1",
    base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    page_key("text"),
    page_key({}),
    page_key([]),
    page_key([1, 2, 3, 4, 5]),
    "x" * 20_000,
)


@pytest.mark.parametrize(("path", "query"), KEYED_LISTINGS, ids=lambda item: str(item)[:40])
@pytest.mark.parametrize(
    "page", [*GARBAGE_PAGE_KEYS, *(page_key([value] * 3) for value in POISONED_KEY_VALUES)], ids=lambda k: k[:16]
)
def test_garbage_page_keys_are_bad_requests(
    seeded_client: TestClient, path: str, query: dict[str, str], page: str
) -> None:
    send(seeded_client, "GET", path, {400}, params={**query, "page": page})


@pytest.mark.parametrize(("path", "query", "key_length"), ENCODED_KEY_LISTINGS, ids=lambda item: str(item)[:40])
@pytest.mark.parametrize("poison", POISONED_KEY_VALUES, ids=repr)
def test_page_keys_of_the_right_length_with_poisoned_values(
    seeded_client: TestClient, path: str, query: dict[str, str], key_length: int, poison: Any
) -> None:
    send(seeded_client, "GET", path, {400}, params={**query, "page": page_key([poison] * key_length)})


@PROPERTY_SETTINGS
@given(
    listing=st.sampled_from(KEYED_LISTINGS),
    page=st.text(max_size=40) | st.lists(JSON_VALUES, min_size=1, max_size=3).map(page_key),
)
def test_any_page_key(seeded_client: TestClient, listing: tuple[str, dict[str, str]], page: str) -> None:
    path, query = listing
    send(seeded_client, "GET", path, {200, 400}, params={**query, "page": page})


UNKNOWN_QUERIES = (
    "foo=bar",
    "tag=news",
    "flow_id=" + FLOW_ID,
    "limit=5&limit=6",
    "page=&page=",
    "sort_by=created&sort_by=label",
    "%00=%00",
    "%ff=%fe",
    "x" * 2000 + "=1",
    "=x",
    "&&&",
    "timerange",
    "verbose_storage=maybe",
)
GET_PATHS = ("/", "/service", *LISTINGS, f"/flows/{FLOW_ID}", f"/sources/{SOURCE_ID}", f"/flows/{FLOW_ID}/tags")


@pytest.mark.parametrize("path", GET_PATHS)
@pytest.mark.parametrize("query", UNKNOWN_QUERIES, ids=lambda text: text[:20])
def test_unknown_and_repeated_query_parameters(seeded_client: TestClient, path: str, query: str) -> None:
    send(seeded_client, "GET", f"{path}?{query}", {200, 400})


@PROPERTY_SETTINGS
@given(
    path=st.sampled_from(GET_PATHS),
    query=st.dictionaries(
        st.sampled_from(["limit", "page", "tag.genre", "tag_exists.genre", "format", "reverse_order"])
        | st.text(min_size=1, max_size=12),
        st.text(max_size=20),
        max_size=4,
    ),
)
def test_any_query_parameters(seeded_client: TestClient, path: str, query: dict[str, str]) -> None:
    send(seeded_client, "GET", path, {200, 400}, params=query)


BAD_TAG_FILTERS = (
    ("/flows", "tag.genre=,"),
    ("/flows", "tag.genre=news,,sport"),
    ("/flows", "tag.=news"),
    ("/flows", "tag_exists.genre=maybe"),
    ("/flows", "tag_exists.genre="),
    ("/flows", "tag_exists.=true"),
    ("/sources", "tag.genre=news,"),
    ("/sources", "tag_exists.genre=1"),
    ("/service/storage-backends", "tag_exists.x=yes"),
    (f"/flows/{FLOW_ID}/segments", "storage_backend_tag.x=,"),
    (f"/flows/{FLOW_ID}/segments", "storage_backend_tag_exists.x=nope"),
    (f"/objects/{OBJECT_ID}", "flow_tag.genre=,news"),
    (f"/objects/{OBJECT_ID}", "flow_tag_exists.genre=TRUE"),
    ("/flows", "&".join(f"tag.t{number}=x" for number in range(1_100))),
    ("/sources", "&".join(f"tag_exists.t{number}=true" for number in range(1_100))),
)


@pytest.mark.parametrize(("path", "query"), BAD_TAG_FILTERS, ids=lambda item: str(item)[:40])
def test_bad_tag_filters_are_bad_requests(seeded_client: TestClient, path: str, query: str) -> None:
    send(seeded_client, "GET", f"{path}?{query}", {400})


def test_valid_tag_filters_find_the_seeded_flow(seeded_client: TestClient) -> None:
    for query in (f"tag.{TAG_NAME}=sport,news", f"tag_exists.{TAG_NAME}=true", "tag.audience=world"):
        found = [flow["id"] for flow in send(seeded_client, "GET", f"/flows?{query}", {200}).json()]
        assert FLOW_ID in found and COLLECTOR_FLOW_ID not in found, (query, found)


@PROPERTY_SETTINGS
@given(
    prefix=st.sampled_from(["tag.", "tag_exists."]),
    name=st.text(max_size=10),
    value=st.text(max_size=20),
    path=st.sampled_from(["/flows", "/sources", "/service/storage-backends"]),
)
def test_any_tag_filter(seeded_client: TestClient, prefix: str, name: str, value: str, path: str) -> None:
    send(seeded_client, "GET", path, {200, 400}, params={prefix + name: value})


@PROPERTY_SETTINGS
@given(
    name=st.sampled_from(["frame_width", "frame_height"]),
    value=st.integers() | UNREPRESENTABLE_INTEGERS | st.text(max_size=10),
)
def test_any_integer_query_filter(seeded_client: TestClient, name: str, value: int | str) -> None:
    send(seeded_client, "GET", "/flows", {200, 400}, params={name: str(value)})


def test_the_seeded_state_survived_the_refused_requests(seeded_client: TestClient) -> None:
    assert_seeded(seeded_client)
    for path in SEEDED_READS:
        send(seeded_client, "GET", path, {200})
