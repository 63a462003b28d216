"""Optional OpenTelemetry tracing (the `tracing` extra, installed with the test extras): a span per request,
named by route template, exported over OTLP/HTTP only when an endpoint is configured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import Tams, make_settings
from tams_api.app import create_app
from tams_api.tracing import trace_requests


def test_every_request_has_a_span_named_by_its_route_template(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(make_settings(tmp_path))
    trace_requests(app, provider)
    with TestClient(app) as client:
        flow_id = Tams(client).put_flow()
        assert client.get(f"/flows/{flow_id}").status_code == 200
        assert client.get("/health").status_code == 200

    server_spans = [span for span in exporter.get_finished_spans() if span.parent is None]
    assert [(span.name, span.attributes["http.route"]) for span in server_spans] == [
        ("PUT /flows/{flow_id}", "/flows/{flow_id}"),
        ("GET /flows/{flow_id}", "/flows/{flow_id}"),
    ]  # and none for the probe
    # The attribute's name depends on the semantic conventions in force (OTEL_SEMCONV_STABILITY_OPT_IN).
    statuses = [
        span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))
        for span in server_spans
    ]
    assert statuses == [201, 200]


@contextmanager
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An OTLP/HTTP endpoint on 127.0.0.1 recording the (path, body) of each export."""
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_spans_go_to_the_configured_otlp_endpoint_and_are_flushed_at_shutdown(tmp_path: Path) -> None:
    with otlp_collector() as (endpoint, received):
        settings = make_settings(tmp_path, otel_exporter_otlp_endpoint=endpoint)
        with TestClient(create_app(settings)) as client:
            assert client.get("/flows").status_code == 200
        # Leaving the client ran the app's shutdown, which flushes the batch of spans.
        assert [path for path, _ in received] == ["/v1/traces"]
    export = ExportTraceServiceRequest.FromString(received[0][1])
    (resource_spans,) = export.resource_spans
    resource = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
    assert resource["service.name"] == "tams-api"
    names = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert "GET /flows" in names


def test_no_endpoint_no_tracing(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
