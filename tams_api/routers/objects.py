"""`/objects/{id}`: a media object and the flows that reference it; `/objects/{id}/instances`: where it is."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Body, Request
from starlette.responses import Response

from .. import schemas
from ..domain import objects as rules
from ..http import JsonResponse, paging_headers
from ..urls import UrlBuilder
from ..worker import delete_released
from .common import ServicesDep, data_plane_router, get_and_head, page_request, tag_filter, tams_router
from .urls import url_options

router = tams_router(tags=["Objects"])
data_plane = data_plane_router(tags=["Objects"])


# Declared before `/objects/{object_id:path}`, whose path converter would also take ".../instances".
@router.post("/objects/{object_id:path}/instances", status_code=201)
def add_instance(services: ServicesDep, object_id: str, body: Any = Body(...)) -> Response:
    schemas.check("objects-instances-post.json", body, "object instance")
    if "storage_id" in body:
        rules.copy_instance(services.store, services.media, object_id, services.media_store(body["storage_id"]))
    else:
        rules.add_url(services.store, services.media, object_id, body["url"], body["label"])
    return Response(status_code=201)


@router.delete("/objects/{object_id:path}/instances", status_code=204)
def delete_instance(
    services: ServicesDep, object_id: str, storage_id: str | None = None, label: str | None = None
) -> Response:
    released = rules.remove_instance(services.store, services.media, object_id, storage_id, label)
    delete_released(services.store, services.media, released)
    return Response(status_code=204)


@get_and_head(data_plane, "/objects/{object_id:path}")
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
    options = url_options(request, accept_get_urls, accept_storage_ids, presigned, verbose_storage)
    usage = rules.usage(
        services.store, object_id, page_request(services.settings, limit, page), tag_filter(request, "flow_tag")
    )
    urls = UrlBuilder(services.media, options, functools.partial(rules.stored, services.store))
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
    return JsonResponse(body, headers=paging_headers(request, usage.referenced_by_flows))
