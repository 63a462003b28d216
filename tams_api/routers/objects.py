"""`/objects/{id}`: a media object and the flows that reference it; `/objects/{id}/instances`: where it is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from starlette.responses import Response

from .. import schemas
from ..errors import BadRequest, NotFound
from ..http import json_response, paging_headers
from ..model import PageRequest, TagFilter
from ..urls import UrlBuilder
from .common import ServicesDep, get_and_head, page_request, tag_filter
from .urls import url_options

router = APIRouter(tags=["Objects"])


# Declared before `/objects/{object_id:path}`, whose path converter would also take ".../instances".
@router.post("/objects/{object_id:path}/instances", status_code=201)
def add_instance(services: ServicesDep, object_id: str, body: Any = Body(...)) -> Response:
    schemas.check("objects-instances-post.json", body, "object instance")
    backend = services.media.backend
    if "storage_id" in body:
        if body["storage_id"] != backend.id:
            raise BadRequest(f"storage backend {body['storage_id']} does not exist; see /service/storage-backends")
        usage = services.store.get_object(object_id, PageRequest(limit=1), TagFilter())
        if usage is None:
            raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
        if usage.object.storage_id == backend.id:
            raise BadRequest(f"object {object_id} already has an instance on storage backend {backend.id}")
        # Copying in from an uncontrolled URL would make this service fetch arbitrary URLs; not offered yet.
        raise BadRequest("copying an object held only at uncontrolled URLs into this store is not supported")
    if body["label"] == backend.label:
        raise BadRequest(f"label {body['label']!r} belongs to a storage backend; choose another")
    services.store.add_uncontrolled_url(object_id, body["url"], body["label"])
    return Response(status_code=201)


@router.delete("/objects/{object_id:path}/instances", status_code=204)
def delete_instance(
    services: ServicesDep, object_id: str, storage_id: str | None = None, label: str | None = None
) -> Response:
    backend = services.media.backend
    if storage_id is None and label == backend.label:
        storage_id, label = backend.id, None  # the controlled instance, named by its backend's label
    if (storage_id is None) == (label is None):
        raise BadRequest("give exactly one of storage_id and label")
    if services.store.remove_instance(object_id, storage_id, label):
        services.media.delete([object_id])
    return Response(status_code=204)


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
    options = url_options(request, accept_get_urls, accept_storage_ids, presigned, verbose_storage)
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
