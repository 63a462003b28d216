"""Analytics (extension, under EXTENSION_PREFIX): figures the metadata store computes over flows that are not
soft-deleted, with SQL aggregates or Arrow compute. Read scope, like every GET."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Query
from starlette.responses import Response

from .. import EXTENSION_PREFIX
from ..domain import found
from ..http import JsonResponse
from .common import ServicesDep, get_and_head, require_uuid, tams_router

router = tams_router(prefix=f"{EXTENSION_PREFIX}/analytics", tags=["x-tams: Analytics (extension)"])

MAX_TOP_FLOWS = 1000
MAX_GAPS = 10000

_INTEGER = {"type": "integer"}
_COUNTS = {
    "type": "array",
    "items": {"type": "object", "properties": {"value": {"type": ["string", "null"]}, "flow_count": _INTEGER}},
}


def _documented(description: str, properties: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a 200 answer with a JSON object of these properties."""
    schema = {"type": "object", "properties": properties}
    return {200: {"description": description, "content": {"application/json": {"schema": schema}}}}


@get_and_head(
    router,
    "/flow-usage",
    responses=_documented(
        "The flows with the most segments, then the longest duration (`duration_ns`: the sum of their segments' "
        "durations in nanoseconds).",
        {
            "flows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "flow_id": {"type": "string"},
                        "label": {"type": ["string", "null"]},
                        "format": {"type": "string"},
                        "segment_count": _INTEGER,
                        "duration_ns": _INTEGER,
                    },
                },
            }
        },
    ),
)
def flow_usage(services: ServicesDep, limit: Annotated[int, Query(ge=1, le=MAX_TOP_FLOWS)] = 10) -> Response:
    return JsonResponse({"flows": [asdict(usage) for usage in services.store.flow_usage(limit)]})


@get_and_head(
    router,
    "/formats",
    responses=_documented(
        "Flows per format, codec and container, most common first (`value` null: flows without one).",
        {"flow_count": _INTEGER, "formats": _COUNTS, "codecs": _COUNTS, "containers": _COUNTS},
    ),
)
def format_distribution(services: ServicesDep) -> Response:
    return JsonResponse(asdict(services.store.format_distribution()))


@get_and_head(
    router,
    "/storage",
    responses=_documented(
        "Object instances per storage backend, from the metadata alone: `bytes` is null, since clients upload "
        "straight to presigned URLs and the service never sees the bytes (ask the backend itself).",
        {
            "storage_backends": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "storage_id": {"type": "string"},
                        "label": {"type": ["string", "null"]},
                        "instances": _INTEGER,
                        "bytes": {"type": "null"},
                    },
                },
            },
            "media_objects": _INTEGER,
            "unregistered_objects": _INTEGER,
            "uncontrolled_only_objects": _INTEGER,
            "instances_awaiting_deletion": _INTEGER,
        },
    ),
)
def storage_usage(services: ServicesDep) -> Response:
    usage = services.store.storage_usage()
    # Every configured backend, and backends no longer configured that still hold instances.
    instances = {store.backend.id: 0 for store in services.media} | usage.instances_by_storage_id
    backends = []
    for storage_id, count in instances.items():
        store = services.media.get(storage_id)
        label = store.backend.label if store is not None else None
        backends.append({"storage_id": storage_id, "label": label, "instances": count, "bytes": None})
    body = asdict(usage)
    del body["instances_by_storage_id"]
    return JsonResponse({"storage_backends": backends, **body})


_TIMERANGE_ANSWER = _documented(
    "Coverage of the segments: `timerange` from the first start to the last end, `duration_ns` covered (overlaps "
    "of several flows counted once), segment durations, and the gaps (`gaps`: the first `max_gaps` of them).",
    {
        "flow_ids": {"type": "array", "items": {"type": "string"}},
        "timerange": {"type": "string"},
        "segment_count": _INTEGER,
        "duration_ns": _INTEGER,
        "min_segment_ns": {"type": ["integer", "null"]},
        "max_segment_ns": {"type": ["integer", "null"]},
        "mean_segment_ns": {"type": ["number", "null"]},
        "gap_count": _INTEGER,
        "gap_ns": _INTEGER,
        "gaps": {"type": "array", "items": {"type": "string"}},
    },
)
MaxGaps = Annotated[int, Query(ge=0, le=MAX_GAPS)]


@get_and_head(router, "/flows/{flow_id}/timerange", responses=_TIMERANGE_ANSWER)
def flow_timerange(services: ServicesDep, flow_id: str, max_gaps: MaxGaps = 100) -> Response:
    return _timerange(services, "flow", flow_id, max_gaps)


@get_and_head(router, "/sources/{source_id}/timerange", responses=_TIMERANGE_ANSWER)
def source_timerange(services: ServicesDep, source_id: str, max_gaps: MaxGaps = 100) -> Response:
    return _timerange(services, "source", source_id, max_gaps)


def _timerange(services: ServicesDep, owner: str, owner_id: str, max_gaps: int) -> Response:
    """A flow that is not (or is soft-deleted), or a source without a flow, has no timeline to analyse."""
    analysis = services.store.timerange_analysis(owner, require_uuid(owner_id, owner), max_gaps)
    return JsonResponse(asdict(found(analysis, owner, owner_id)))
