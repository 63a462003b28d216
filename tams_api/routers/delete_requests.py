"""`/flow-delete-requests`: progress of deletions too large for one request, which the worker carries out."""

from __future__ import annotations

from typing import Literal

from fastapi import Request
from starlette.responses import Response

from ..domain import deletes
from ..http import JsonResponse, listing_headers
from ..model import DeleteRequestQuery
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
    return JsonResponse(
        [item.to_json() for item in listing.items], headers=listing_headers(request, listing, reverse_order)
    )


@get_and_head(router, "/flow-delete-requests/{request_id}")
def get_delete_request(services: ServicesDep, request_id: str) -> Response:
    return JsonResponse(deletes.get_request(services.store, request_id).to_json())
