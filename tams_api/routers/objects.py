"""`/objects/{id}`: a media object and the flows that reference it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import NotFound
from ..http import json_response, paging_headers
from ..urls import UrlBuilder, UrlOptions
from .common import ServicesDep, get_and_head, page_request, tag_filter

router = APIRouter(tags=["Objects"])


@get_and_head(router, "/objects/{object_id:path}")
def get_object(
    request: Request,
    services: ServicesDep,
    object_id: str,
    verbose_storage: bool = False,
    accept_get_urls: str | None = None,
    accept_storage_ids: str | None = None,
    presigned: bool | None = None,
    page: str | None = None,
    limit: int | None = None,
) -> Response:
    options = UrlOptions.from_query(request, accept_get_urls, accept_storage_ids, presigned, verbose_storage)
    usage = services.store.get_object(
        object_id, page_request(services.settings, limit, page), tag_filter(request, "flow_tag")
    )
    # Allocated but not yet registered against a segment: still 404, as the spec requires.
    if usage is None:
        raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
    urls = UrlBuilder(services.media, options)
    stored = usage.object
    body: dict[str, Any] = {"id": stored.id, "referenced_by_flows": usage.referenced_by_flows.items}
    if usage.first_referenced_by_flow is not None:
        body["first_referenced_by_flow"] = usage.first_referenced_by_flow
    if stored.timerange is not None:
        body["timerange"] = stored.timerange
    if stored.key_frame_count is not None:
        body["key_frame_count"] = stored.key_frame_count
    body["get_urls"] = urls.get_urls(stored)
    if stored.init_object_id is not None:
        body["init_object"] = {"id": stored.init_object_id, **urls.init_object(stored.init_object_id)}
    return json_response(body, headers=paging_headers(request, usage.referenced_by_flows))
