"""The API's Prometheus metrics (served on `GET /metrics`; monitoring/ queries these names).

Counters and histograms live in prometheus_client's default registry, so the worker's (webhook deliveries)
count in whichever process runs it. A server of several processes (TAMS_WORKERS) keeps them in files, one per
process, in the directory PROMETHEUS_MULTIPROC_DIR names (tams_api.serving), and /metrics sums them. What only
the store knows (the outbox backlog, pending delete requests) is read from the store at scrape time by
`StoreCollector`, once per scrape: a gauge per replica of one shared quantity, so dashboards take the `max` of it.

Bytes: clients upload straight to S3 on presigned URLs, and the service never learns those sizes without a
HEAD per object. `tams_api_media_bytes_written_total` therefore counts only bytes that pass through this
process (uploads on the filesystem store's URLs, copies between backends), not the bytes stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .stores.metadata import MetadataStore

UNMATCHED_ROUTE = "unmatched"  # the route label of requests no route matched: raw paths would be unbounded
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

REQUESTS = Counter(
    "tams_api_requests_total", "HTTP requests answered, by route template", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "tams_api_request_duration_seconds",
    "Seconds from a request's arrival to the end of its response, by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SEGMENTS_REGISTERED = Counter("tams_api_segments_registered_total", "Segments registered on flows")
MEDIA_BYTES_WRITTEN = Counter(
    "tams_api_media_bytes_written_total",
    "Media bytes this process wrote to a storage backend (filesystem uploads, copies between backends); "
    "uploads straight to S3 on presigned URLs are not seen",
    ["storage"],
)
WEBHOOK_DELIVERIES = Counter(
    "tams_api_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered; failed: error answer, timeout or unreachable, retried; "
    "refused: the address guard)",
    ["outcome"],
)
WEBHOOK_ERRORS = Counter("tams_api_webhook_errors_total", "Webhooks put in status error because delivery was given up")


class StoreCollector:
    """Gauges read from the metadata store at scrape time (two cheap queries); none when it cannot answer."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return self._families(None, None)

    def collect(self) -> Iterable[Metric]:
        # A store that cannot answer leaves the gauges out; /ready reports why.
        try:
            backlog, pending = self.store.undelivered_events(), len(self.store.pending_delete_requests())
        except Exception:
            return []
        return self._families(backlog, pending)

    @staticmethod
    def _families(backlog: int | None, pending: int | None) -> list[Metric]:
        outbox = GaugeMetricFamily(
            "tams_api_outbox_depth", "Outbox events the furthest-behind listening webhook has not yet been given"
        )
        requests = GaugeMetricFamily("tams_api_delete_requests_pending", "Flow delete requests not yet finished")
        if backlog is not None and pending is not None:
            outbox.add_metric([], backlog)
            requests.add_metric([], pending)
        return [outbox, requests]


def exposition(store: MetadataStore) -> bytes:
    """The Prometheus text format of this server's metrics (of all its processes) and of the store's gauges."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client.multiprocess import MultiProcessCollector

        # The values every process of the server wrote, counters and histograms summed (the process_* and python_*
        # metrics of the default registry are each process's own, so left out).
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return generate_latest(registry) + generate_latest(StoreCollector(store))


class RequestRecorder:
    """Counts and times answered requests by method, route template and status.

    The route is the matched route's template (`/flows/{flow_id}/segments`), left in the scope by whatever matched
    it (FastAPI's router, tams_api.dataplane; its `path` is the whole template as routers are included without
    prefixes); requests no route matched share one label. The metric children of each label set are kept in a dict,
    which skips prometheus_client's label validation and lock on every request.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        requests, duration = self._children_of(scope, status)
        requests.inc()
        duration.observe(seconds)

    def _children_of(self, scope: Scope, status: int) -> tuple[Counter, Histogram]:
        route = scope.get("route")
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        key = (method, getattr(route, "path", UNMATCHED_ROUTE), status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                REQUESTS.labels(method, key[1], str(status)),
                REQUEST_SECONDS.labels(method, key[1]),
            )
        return children


class RequestMetrics:
    """ASGI middleware recording every request it passes on (RequestRecorder), from its arrival to the end of its
    response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.recorder = RequestRecorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaping the app is answered 500 outside us

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.recorder.record(scope, status, time.perf_counter() - started)
