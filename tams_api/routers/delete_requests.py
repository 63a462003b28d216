"""`/flow-delete-requests`: progress of deletions too large for one request, which the worker carries out."""

from __future__ import annotations

from typing import Literal

from fastapi import Request
from starlette.responses import Response

from ..errors import NotFound
from ..http import json_response, listing_headers, no_content
from ..model import DeleteRequestQuery, Deletion
from ..worker import delete_released
from .common import ServicesDep, get_and_head, page_request, tams_router

router = tams_router(tags=["FlowDeleteRequests"])


@get_and_head(router, "/flow-delete-requests")
def list_delete_requests(
    request: Request,
    services: ServicesDep,
    sort_by: Literal["created", "expiry"] = "created",
    reverse_order: bool = False,
    page: str | None = None,
    limit: int | None = None,
) -> Response:
    query = DeleteRequestQuery(page=page_request(services.settings, limit, page, reverse_order), sort_by=sort_by)
    listing = services.store.list_delete_requests(query)
    return json_response(
        [item.to_json() for item in listing.items], headers=listing_headers(request, listing, reverse_order)
    )


@get_and_head(router, "/flow-delete-requests/{request_id}")
def get_delete_request(services: ServicesDep, request_id: str) -> Response:
    found = services.store.get_delete_request(request_id)
    if found is None:
        raise NotFound(f"flow delete request {request_id} does not exist")
    return json_response(found.to_json())


def deletion_response(services: ServicesDep, deletion: Deletion) -> Response:
    """204 when the deletion is done (its media deleted now), 202 and where to follow a deferred one."""
    if deletion.deferred is not None:
        location = f"/flow-delete-requests/{deletion.deferred.id}"
        return json_response(deletion.deferred.to_json(), status=202, headers={"Location": location})
    delete_released(services.store, services.media, deletion.released)
    return no_content()
