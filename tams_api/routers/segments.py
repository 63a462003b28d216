"""`/flows/{id}/segments` and `/flows/{id}/storage`: registering and finding media on a flow's timeline."""

from __future__ import annotations

import functools
import os
import time
import uuid
from typing import Annotated, Any

from fastapi import Body, Request
from starlette.responses import Response

from .. import schemas
from ..domain import deletes
from ..domain import objects as object_rules
from ..domain import segments as rules
from ..errors import BadRequest, error_json
from ..http import JsonResponse, listing_headers
from ..metrics import SEGMENTS_REGISTERED
from ..model import SegmentFailure, SegmentQuery
from ..timerange import EVERYTHING
from ..urls import UrlBuilder, segments_json
from .common import (
    QueryForm,
    QueryParam,
    ServicesDep,
    data_plane_router,
    deletion_response,
    get_and_head,
    page_request,
    principal_name,
    require_uuid,
    tams_router,
    timerange_bounds,
)
from .urls import url_options

router = tams_router(tags=["Flows"])
data_plane = data_plane_router(tags=["Flows"])


def new_object_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so objects allocated together sit together in the stores' indexes
    and registering them touches a few pages rather than one random page each."""
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (random_bits >> 68) << 64
        | 0b10 << 62
        | (random_bits & ((1 << 62) - 1))
    )
    return str(uuid.UUID(int=value))


SEGMENT_QUERY = QueryForm(
    QueryParam("object_id"),
    QueryParam("timerange"),
    QueryParam("reverse_order", bool),
    QueryParam("verbose_storage", bool),
    QueryParam("accept_get_urls"),
    QueryParam("accept_storage_ids"),
    QueryParam("presigned", bool),
    QueryParam("include_object_timerange", bool),
    QueryParam("page"),
    QueryParam("limit", int),
)


@get_and_head(data_plane, "/flows/{flow_id}/segments", openapi_extra=SEGMENT_QUERY.openapi())
def list_segments(request: Request, services: ServicesDep, flow_id: str) -> Response:
    params = SEGMENT_QUERY.parse(request)
    reverse_order = bool(params["reverse_order"])
    options = url_options(
        request,
        params["accept_get_urls"],
        params["accept_storage_ids"],
        params["presigned"],
        bool(params["verbose_storage"]),
    )
    query = SegmentQuery(
        page=page_request(services.settings, params["limit"], params["page"], reverse_order),
        window=timerange_bounds(params["timerange"]) or EVERYTHING,
        object_id=params["object_id"],
    )
    # A flow that does not exist has no segments: 200 and an empty list, not 404.
    result = services.store.list_segments(require_uuid(flow_id, "flow"), query)
    urls = UrlBuilder(services.media, options, functools.partial(object_rules.stored, services.store))
    include_object_timerange = bool(params["include_object_timerange"])
    body = segments_json(result.page.items, urls, include_object_timerange)
    extra = {"X-Paging-Timerange": result.timerange} if result.timerange else {}
    return JsonResponse(body, headers=listing_headers(request, result.page, reverse_order, **extra))


def _failure_json(failure: SegmentFailure) -> dict[str, Any]:
    return {
        "object_id": failure.object_id,
        "timerange": failure.timerange,
        "error": error_json("BadRequest", failure.summary),
    }


@router.post("/flows/{flow_id}/segments", status_code=201)
def post_segments(services: ServicesDep, flow_id: str, body: Any = Body(...)) -> Response:
    require_uuid(flow_id, "flow")
    posts, bulk = rules.parse_body(body, services.settings.max_bulk_segments)
    interpreted = []
    failures: list[SegmentFailure] = []
    for post in posts:
        try:
            interpreted.append(rules.new_segment(post))
        except BadRequest as problem:
            if not bulk:
                raise
            failures.append(SegmentFailure(post["object_id"], post["timerange"], problem.summary))
    refused = rules.register(services.store, flow_id, interpreted)
    SEGMENTS_REGISTERED.inc(len(interpreted) - len(refused))
    failures += refused
    if not failures:
        return Response(status_code=201)
    if not bulk:
        raise BadRequest(failures[0].summary)  # a single segment that cannot be registered is a bad request
    return JsonResponse({"failed_segments": [_failure_json(failure) for failure in failures]}, status=200)


@router.delete("/flows/{flow_id}/segments", status_code=204)
def delete_segments(
    request: Request, services: ServicesDep, flow_id: str, timerange: str = "_", object_id: str | None = None
) -> Response:
    timerange_bounds(timerange)  # validates
    deletion = deletes.delete_segments(
        services.store,
        require_uuid(flow_id, "flow"),
        timerange,
        object_id,
        services.settings.delete_sync_limit,
        principal_name(request),
    )
    return deletion_response(services, deletion)


@router.post("/flows/{flow_id}/storage", status_code=201)
def allocate_storage(services: ServicesDep, flow_id: str, body: Annotated[Any, Body()] = None) -> Response:
    require_uuid(flow_id, "flow")
    request = {} if body is None else body
    schemas.check("flow-storage-post.json", request, "storage request")
    media = services.media_store(request.get("storage_id", services.media.default.backend.id))
    if request.get("presigned") is False:
        raise BadRequest("this storage backend only issues presigned URLs; omit presigned or set it to true")
    if "object_ids" in request:
        object_ids = request["object_ids"]
    else:
        limit = request.get("limit", 10)
        if limit < 1:
            raise BadRequest("limit must be a positive integer")
        object_ids = [new_object_id() for _ in range(min(limit, services.settings.max_page_limit))]
    content_type = object_rules.allocate(
        services.store, flow_id, media.backend.id, request.get("content_type"), object_ids
    )
    media_objects = []
    for object_id in object_ids:
        put = media.put_request(object_id, content_type)
        media_objects.append(
            {"object_id": object_id, "put_url": {"url": put.url, "content-type": put.content_type}, "presigned": True}
        )
    return JsonResponse({"media_objects": media_objects}, status=201)
