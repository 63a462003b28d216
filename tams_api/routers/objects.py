"""`/objects/{id}`: a media object and the flows that reference it; `/objects/{id}/instances`: where it is."""

from __future__ import annotations

from typing import Any

from fastapi import Body, Request
from starlette.responses import Response

from .. import schemas
from ..errors import BadRequest, NotFound
from ..http import json_response, paging_headers
from ..metrics import MEDIA_BYTES_WRITTEN
from ..model import PageRequest, TagFilter
from ..stores.media import MediaStore, copy_media
from ..urls import UrlBuilder
from ..worker import delete_released
from .common import Services, ServicesDep, get_and_head, page_request, tag_filter, tams_router
from .urls import url_options

router = tams_router(tags=["Objects"])


# Declared before `/objects/{object_id:path}`, whose path converter would also take ".../instances".
@router.post("/objects/{object_id:path}/instances", status_code=201)
def add_instance(services: ServicesDep, object_id: str, body: Any = Body(...)) -> Response:
    schemas.check("objects-instances-post.json", body, "object instance")
    if "storage_id" in body:
        copy_instance(services, object_id, services.media_store(body["storage_id"]))
        return Response(status_code=201)
    if any(store.backend.label == body["label"] for store in services.media):
        raise BadRequest(f"label {body['label']!r} belongs to a storage backend; choose another")
    services.store.add_uncontrolled_url(object_id, body["url"], body["label"])
    return Response(status_code=201)


def copy_instance(services: Services, object_id: str, target: MediaStore) -> None:
    """The spec's controlled copy: allocate the object on the target backend, copy it there from an existing
    controlled instance, then advertise the copy in `get_urls` (only once it is complete)."""
    usage = services.store.get_object(object_id, PageRequest(limit=1), TagFilter())
    if usage is None:
        raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
    storage_ids = usage.object.storage_ids
    if target.backend.id in storage_ids:
        raise BadRequest(f"object {object_id} already has an instance on storage backend {target.backend.id}")
    sources = [store for storage_id in storage_ids if (store := services.media.get(storage_id)) is not None]
    if not sources:
        # Copying in from an uncontrolled URL would make this service fetch arbitrary URLs; not offered.
        raise BadRequest("copying an object held only at uncontrolled URLs into this store is not supported")
    try:
        copied = copy_media(sources[0], target, object_id)
    except NotFound as missing:
        raise BadRequest(f"{missing.summary}: upload it before copying it") from None
    MEDIA_BYTES_WRITTEN.labels(target.backend.label).inc(copied)
    try:
        services.store.add_controlled_instance(object_id, target.backend.id)
    except NotFound:
        target.delete([object_id])  # the object went while its bytes were copied: nothing refers to the copy
        raise


@router.delete("/objects/{object_id:path}/instances", status_code=204)
def delete_instance(
    services: ServicesDep, object_id: str, storage_id: str | None = None, label: str | None = None
) -> Response:
    if storage_id is None:
        named = next((store.backend for store in services.media if store.backend.label == label), None)
        if named is not None:
            storage_id, label = named.id, None  # a controlled instance, named by its backend's label
    if (storage_id is None) == (label is None):
        raise BadRequest("give exactly one of storage_id and label")
    released = services.store.remove_instance(object_id, storage_id, label)
    delete_released(services.store, services.media, released)
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
    urls = UrlBuilder(services.media, options, services.store.find_objects)
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
