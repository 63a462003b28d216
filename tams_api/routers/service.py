"""`/`, `/service` and `/service/storage-backends`."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body, Request
from starlette.responses import Response

from .. import API_VERSION, __version__, schemas
from ..errors import BadRequest
from ..http import json_response, listing_headers
from ..model import Page, ServiceInfo, tags_match
from .common import ServicesDep, get_and_head, page_request, tag_filter

router = APIRouter(tags=["Service"])

SERVICE_TYPE = "urn:x-tams:service.tams-operator"


@get_and_head(router, "/")
def list_root() -> Response:
    return json_response(["service", "flows", "sources"])


def _defaults(services: ServicesDep) -> ServiceInfo:
    return ServiceInfo(services.settings.service_name, services.settings.service_description)


@get_and_head(router, "/service")
def get_service(services: ServicesDep) -> Response:
    info = services.store.get_service_info(_defaults(services))
    settings = services.settings
    return json_response(
        {
            "name": info.name,
            "description": info.description,
            "type": SERVICE_TYPE,
            "api_version": API_VERSION,
            "service_version": __version__,
            "min_object_timeout": f"{settings.object_timeout}:0",
            "min_presigned_url_timeout": f"{settings.presigned_url_timeout}:0",
        }
    )


@router.post("/service", status_code=200)
def post_service(services: ServicesDep, body: Any = Body(...)) -> Response:
    schemas.check("service-post.json", body, "service info")
    services.store.update_service_info(body.get("name"), body.get("description"), _defaults(services))
    return Response(status_code=200)


@get_and_head(router, "/service/storage-backends")
def list_storage_backends(
    request: Request,
    services: ServicesDep,
    reverse_order: bool = False,
    page: str | None = None,
    limit: int | None = None,
) -> Response:
    wanted = page_request(services.settings, limit, page, reverse_order)
    tags = tag_filter(request)
    backends = [services.media.backend]
    matching = [backend for backend in backends if tags_match(backend.tags, tags)]
    # Alphabetical by label (id where unset); a page key is the number of backends already returned.
    matching.sort(key=lambda backend: (backend.label is None, backend.label or backend.id), reverse=reverse_order)
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses, and int() refuses 4,300+ digits.
    if wanted.key is not None and not re.fullmatch(r"[0-9]{1,9}", wanted.key):
        raise BadRequest(f"invalid page key {wanted.key!r}")
    start = int(wanted.key or 0)
    items = matching[start : start + wanted.limit]
    more = start + wanted.limit < len(matching)
    listing = Page(items, str(start + wanted.limit) if more else None, wanted.limit)
    return json_response(
        [backend.to_json() for backend in items], headers=listing_headers(request, listing, reverse_order)
    )
