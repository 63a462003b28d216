"""Optional OpenTelemetry tracing of requests: off unless an OTLP endpoint is configured
(TAMS_OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT). The packages are the `tracing` extra
(`pip install 'tams-api[tracing]'`), imported only when tracing is on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import Settings
from .dataplane import DataPlaneApi
from .errors import ConfigurationError

DEFAULT_SERVICE_NAME = "tams-api"


def trace_requests(app: DataPlaneApi, tracer_provider: Any) -> None:
    """A span per request (route template as its name) from `tracer_provider`, which the caller owns."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # /health, /ready and /metrics are asked every few seconds by machines: spans of them would drown the rest.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, excluded_urls="/health$,/ready$,/metrics$")
    app.data_plane = None  # the spans wrap the middleware stack: every request goes through it


def install_tracing(app: DataPlaneApi, settings: Settings) -> Callable[[], None]:
    """Trace requests to the configured OTLP endpoint, if any; returns what flushes and stops the export."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return lambda: None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigurationError(
            "TAMS_OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) is set but the tracing packages are "
            "not installed: pip install 'tams-api[tracing]'"
        ) from None
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    trace_requests(app, provider)
    return provider.shutdown
