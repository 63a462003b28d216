"""`/metrics` (scraped and parsed as Prometheus does), `/health` and `/ready`, on every store combination."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from background import receiver, running_worker, wait_for
from endpoints import Content
from helpers import STORAGE_LABEL, Tams, make_settings
from spec import assert_valid
from tams_api.app import create_app
from tams_api.config import Settings
from tams_api.domain import webhooks
from tams_api.metrics import REQUESTS, UNMATCHED_ROUTE, RequestMetrics
from tams_api.readiness import Readiness
from tams_api.stores.metadata import MetadataStore

Labels = frozenset[tuple[str, str]]

LISTED_SERIES = {
    "tams_api_requests_total",
    "tams_api_request_duration_seconds",
    "tams_api_segments_registered_total",
    "tams_api_media_bytes_written_total",
    "tams_api_webhook_deliveries_total",
    "tams_api_webhook_errors_total",
    "tams_api_outbox_depth",
    "tams_api_delete_requests_pending",
}


def scrape(client: TestClient) -> dict[str, dict[Labels, float]]:
    """Every sample of `/metrics` by series name and labels, as a Prometheus server parses the text."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(response.text):
        samples.setdefault(family.name, {})  # families without samples yet are listed too
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(frozenset(labels.items()), 0.0)


def families(client: TestClient) -> set[str]:
    return {family.name for family in text_string_to_metric_families(client.get("/metrics").text)}


def test_metrics_expose_the_listed_series(client: TestClient) -> None:
    names = families(client)
    # The parser names counter families without `_total`.
    assert {name.removesuffix("_total") for name in LISTED_SERIES} <= names


def test_requests_are_counted_by_route_template_never_by_raw_path(tams: Tams, flow_id: str) -> None:
    before = scrape(tams.client)
    tams.add_segment(flow_id, "[0:0_1:0)")
    tams.segments(flow_id)
    assert tams.client.get(f"/no/such/{flow_id}").status_code == 404
    after = scrape(tams.client)

    def counted(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/flows/{flow_id}/segments"
    for method, status in (("POST", "201"), ("GET", "200")):
        assert counted("tams_api_requests_total", method=method, route=route, status=status) == 1
        assert counted("tams_api_request_duration_seconds_count", method=method, route=route) == 1
    assert counted("tams_api_requests_total", method="GET", route=UNMATCHED_ROUTE, status="404") == 1
    assert not [labels for series in after.values() for labels in series if any(flow_id in v for _, v in labels)]
    assert counted("tams_api_segments_registered_total") == 1


def test_uploads_the_service_receives_are_counted_and_presigned_s3_uploads_are_not(
    tams: Tams, flow_id: str, settings: Settings
) -> None:
    before = value(scrape(tams.client), "tams_api_media_bytes_written_total", storage=STORAGE_LABEL)
    tams.add_segment(flow_id, "[0:0_1:0)", data=b"x" * 1234)
    after = value(scrape(tams.client), "tams_api_media_bytes_written_total", storage=STORAGE_LABEL)
    # Filesystem media is uploaded to this service; S3 media straight to S3, which the service never sees.
    assert after - before == (1234 if settings.media_backend == "filesystem" else 0)


def test_outbox_depth_is_what_the_furthest_behind_webhook_has_not_had(app: FastAPI, tams: Tams) -> None:
    store: MetadataStore = app.state.services.store
    assert store.undelivered_events() == 0
    tams.put_flow()  # no webhook listens: no event is kept
    assert store.undelivered_events() == 0
    with receiver() as events:
        registered = tams.client.post("/service/webhooks", json={"url": events.url, "events": ["flows/created"]})
        webhook_id = registered.json()["id"]
        tams.client.post("/service/webhooks", json={"url": events.url, "events": ["flows/created"]})
        flows = [tams.put_flow() for _ in range(3)]  # sources/created and flows/created each
        assert store.undelivered_events() == 6
        assert value(scrape(tams.client), "tams_api_outbox_depth") == 6
        webhooks.advance(store, webhook_id, store.events_after(0, 100)[-1].seq)
        assert store.undelivered_events() == 6  # the other webhook has had none of them
        with running_worker(app.state.services):
            wait_for(lambda: len(events.deliveries) == len(flows), what="the other webhook's flows/created events")
            wait_for(lambda: store.undelivered_events() == 0, what="the cursors to move")
    assert value(scrape(tams.client), "tams_api_outbox_depth") == 0


def test_webhook_deliveries_and_failures_are_counted(app: FastAPI, tams: Tams) -> None:
    before = scrape(tams.client)
    with receiver() as events:
        tams.client.post("/service/webhooks", json={"url": events.url, "events": ["flows/created"]})
        with running_worker(app.state.services, webhook_max_attempts=2):
            tams.put_flow()
            wait_for(lambda: events.deliveries, what="the delivery")
            events.answer = 500
            tams.put_flow()
            wait_for(lambda: tams.client.get("/service/webhooks").json()[0]["status"] == "error", what="error")
    after = scrape(tams.client)
    for outcome, attempts in (("delivered", 1), ("failed", 2)):
        counted = value(after, "tams_api_webhook_deliveries_total", outcome=outcome)
        assert counted == value(before, "tams_api_webhook_deliveries_total", outcome=outcome) + attempts
    assert value(after, "tams_api_webhook_errors_total") == value(before, "tams_api_webhook_errors_total") + 1


def test_delete_requests_pending_are_a_gauge(tams: Tams, content: Content) -> None:
    # `content` holds one deferred delete request that no worker has taken up.
    assert value(scrape(tams.client), "tams_api_delete_requests_pending") == 1


def test_health_and_ready_answer_when_the_stores_do(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_ready_names_an_unreachable_media_store_in_the_spec_error_shape(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        shutil.rmtree(settings.resolved_media_dir)
        response = client.get("/ready")
        assert client.get("/health").status_code == 200  # liveness never looks at the stores
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert_valid(response.json(), "error.json")
    assert response.json()["type"] == "Unavailable"
    assert f"media store {STORAGE_LABEL!r}: OSError: media directory" in response.json()["summary"]


def test_readiness_is_checked_once_per_cache_period() -> None:
    probes: list[str] = []
    down = False

    def probe() -> None:
        probes.append("metadata")
        if down:
            raise ConnectionError("connection refused")

    cached = Readiness({"metadata store": probe}, cache_seconds=3600)
    assert cached.problems() == cached.problems() == []
    assert len(probes) == 1
    down = True
    assert Readiness({"metadata store": probe}, cache_seconds=0).problems() == [
        "metadata store: ConnectionError: connection refused"
    ]
    assert cached.problems() == []  # still the cached answer
    assert len(probes) == 2


@pytest.fixture
def failing_app() -> Iterator[TestClient]:
    async def fail(_: Request) -> PlainTextResponse:
        raise RuntimeError("broken")

    async def fine(_: Request) -> PlainTextResponse:
        return PlainTextResponse("fine")

    app = Starlette(routes=[Route("/items/{item_id}", fail), Route("/fine/{name}", fine)])
    with TestClient(RequestMetrics(app), raise_server_exceptions=False) as client:
        yield client


def test_an_exception_escaping_the_app_counts_as_500_on_its_route(failing_app: TestClient) -> None:
    labels = ("GET", "/items/{item_id}", "500")
    before = REQUESTS.labels(*labels)._value.get()
    assert failing_app.get("/items/42").status_code == 500
    assert failing_app.get("/fine/x").text == "fine"
    assert REQUESTS.labels(*labels)._value.get() == before + 1
    assert REQUESTS.labels("GET", "/fine/{name}", "200")._value.get() >= 1
