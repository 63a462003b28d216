"""`/sources`: read-mostly; sources come and go with their flows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Body, Query, Request
from starlette.responses import Response

from ..domain import sources
from ..domain.tags import tag
from ..errors import NotFound
from ..http import JsonResponse, listing_headers, no_content
from ..model import Source, SourceQuery
from .common import (
    UUID_LIST_EMPTY_PATTERN,
    Format,
    ServicesDep,
    get_and_head,
    page_request,
    principal_name,
    require_uuid,
    string_value,
    tag_filter,
    tag_value,
    tams_router,
    uuid_list,
)

router = tams_router(tags=["Sources"])


@get_and_head(router, "/sources")
def list_sources(
    request: Request,
    services: ServicesDep,
    label: str | None = None,
    format: Format | None = None,
    collected_by_ids: Annotated[str | None, Query(pattern=UUID_LIST_EMPTY_PATTERN)] = None,
    sort_by: Literal["created", "updated", "label"] = "created",
    reverse_order: bool = False,
    page: str | None = None,
    limit: int | None = None,
) -> Response:
    query = SourceQuery(
        page=page_request(services.settings, limit, page, reverse_order),
        sort_by=sort_by,
        label=label,
        format=format,
        collected_by_ids=uuid_list(collected_by_ids, "collected_by_ids"),
        tags=tag_filter(request),
    )
    listing = services.store.list_sources(query)
    return JsonResponse(
        [source.to_json() for source in listing.items], headers=listing_headers(request, listing, reverse_order)
    )


def _source(services: ServicesDep, source_id: str) -> Source:
    return sources.get(services.store, require_uuid(source_id, "source"))


@get_and_head(router, "/sources/{source_id}")
def get_source(services: ServicesDep, source_id: str) -> Response:
    return JsonResponse(_source(services, source_id).to_json())


@get_and_head(router, "/sources/{source_id}/tags")
def get_source_tags(services: ServicesDep, source_id: str) -> Response:
    return JsonResponse(_source(services, source_id).tags)


@get_and_head(router, "/sources/{source_id}/tags/{name:path}")
def get_source_tag(services: ServicesDep, source_id: str, name: str) -> Response:
    return JsonResponse(tag(_source(services, source_id).tags, "source", source_id, name))


@router.put("/sources/{source_id}/tags/{name:path}", status_code=204)
def put_source_tag(
    request: Request, services: ServicesDep, source_id: str, name: str, body: Any = Body(...)
) -> Response:
    sources.set_tag(services.store, require_uuid(source_id, "source"), name, tag_value(body), principal_name(request))
    return no_content()


@router.delete("/sources/{source_id}/tags/{name:path}", status_code=204)
def delete_source_tag(request: Request, services: ServicesDep, source_id: str, name: str) -> Response:
    sources.set_tag(services.store, require_uuid(source_id, "source"), name, None, principal_name(request))
    return no_content()


def _property_routes(name: str) -> None:
    """GET/HEAD, PUT and DELETE of a string property (label, description) of a source."""

    @get_and_head(router, f"/sources/{{source_id}}/{name}", name=f"get_source_{name}")
    def get_property(services: ServicesDep, source_id: str) -> Response:
        value = getattr(_source(services, source_id), name)
        if value is None:
            raise NotFound(f"source {source_id} has no {name}")
        return JsonResponse(value)

    @router.put(f"/sources/{{source_id}}/{name}", status_code=204, name=f"put_source_{name}")
    def put_property(request: Request, services: ServicesDep, source_id: str, body: Any = Body(...)) -> Response:
        value = string_value(body, name)
        sources.set_property(services.store, require_uuid(source_id, "source"), name, value, principal_name(request))
        return no_content()

    @router.delete(f"/sources/{{source_id}}/{name}", status_code=204, name=f"delete_source_{name}")
    def delete_property(request: Request, services: ServicesDep, source_id: str) -> Response:
        sources.set_property(services.store, require_uuid(source_id, "source"), name, None, principal_name(request))
        return no_content()


for _name in ("label", "description"):
    _property_routes(_name)
