"""`/`, `/service`, `/service/storage-backends` and `/service/profiles`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Query, Request
from starlette.responses import Response

from .. import API_VERSION, __version__, schemas
from ..clock import now
from ..domain import profiles
from ..errors import BadRequest
from ..http import JsonResponse, listing_headers, paging_headers
from ..model import Page, Profile, ProfileQuery, ServiceInfo, tags_match
from ..paging import decode_offset
from .common import (
    MIME_PATTERN,
    Format,
    ServicesDep,
    get_and_head,
    page_request,
    principal_name,
    require_uuid,
    tag_filter,
    tams_router,
)

router = tams_router(tags=["Service"])

SERVICE_TYPE = "urn:x-tams:service.tams-operator"


@get_and_head(router, "/")
def list_root() -> Response:
    return JsonResponse(["service", "flows", "sources", "flow-delete-requests"])


def _defaults(services: ServicesDep) -> ServiceInfo:
    return ServiceInfo(services.settings.service_name, services.settings.service_description)


@get_and_head(router, "/service")
def get_service(services: ServicesDep) -> Response:
    info = services.store.get_service_info(_defaults(services))
    settings = services.settings
    return JsonResponse(
        {
            "name": info.name,
            "description": info.description,
            "type": SERVICE_TYPE,
            "api_version": API_VERSION,
            "service_version": __version__,
            "min_object_timeout": f"{settings.object_timeout}:0",
            "min_presigned_url_timeout": f"{settings.presigned_url_timeout}:0",
            "event_stream_mechanisms": [{"name": "webhooks", "docs": "/service/webhooks"}],
        }
    )


@router.post("/service", status_code=200)
def post_service(services: ServicesDep, body: Any = Body(...)) -> Response:
    schemas.check("service-post.json", body, "service info")
    services.store.update_service_info(body.get("name"), body.get("description"))
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
    matching = [store.backend for store in services.media if tags_match(store.backend.tags, tags)]
    # Alphabetical by label (id where unset); a page key is the number of backends already returned.
    matching.sort(key=lambda backend: (backend.label is None, backend.label or backend.id), reverse=reverse_order)
    start = 0 if wanted.key is None else decode_offset(wanted.key)
    items = matching[start : start + wanted.limit]
    more = start + wanted.limit < len(matching)
    listing = Page(items, str(start + wanted.limit) if more else None, wanted.limit)
    return JsonResponse(
        [backend.to_json() for backend in items], headers=listing_headers(request, listing, reverse_order)
    )


# -- profiles --------------------------------------------------------------------------------------


@get_and_head(router, "/service/profiles", tags=["Profiles"])
def list_profiles(
    request: Request,
    services: ServicesDep,
    format: Format | None = None,
    codec: Annotated[str | None, Query(pattern=MIME_PATTERN)] = None,
    label: str | None = None,
    page: str | None = None,
    limit: int | None = None,
) -> Response:
    query = ProfileQuery(page=page_request(services.settings, limit, page), format=format, codec=codec, label=label)
    listing = services.store.list_profiles(query)
    return JsonResponse([profile.to_json() for profile in listing.items], headers=paging_headers(request, listing))


@get_and_head(router, "/service/profiles/{profile_id}", tags=["Profiles"])
def get_profile(services: ServicesDep, profile_id: str) -> Response:
    return JsonResponse(profiles.get(services.store, require_uuid(profile_id, "profile")).to_json())


@router.post("/service/profiles/{profile_id}", status_code=201, tags=["Profiles"])
def create_profile(request: Request, services: ServicesDep, profile_id: str, body: Any = Body(...)) -> Response:
    require_uuid(profile_id, "profile")
    schemas.check("profile.json", body, "profile")
    if body["id"] != profile_id:
        raise BadRequest(f"profile id {body['id']} in the body does not match {profile_id} in the path")
    details = {name: value for name, value in body.items() if name not in ("id", "flow_metadata", "created")}
    creator = principal_name(request)
    if creator is not None:
        details.setdefault("created_by", creator)
    profile = Profile(id=profile_id, flow_metadata=body["flow_metadata"], created=now().text, details=details)
    profiles.create(services.store, profile)
    return JsonResponse(profile.to_json(), status=201)
