"""Soft-deleted flows (extension, under EXTENSION_PREFIX): listed and restored by whoever may delete flows.

With TAMS_SOFT_DELETE on, DELETE /flows/{id} hides a flow instead of deleting it; to every spec endpoint it is
deleted. The worker purges it for good TAMS_SOFT_DELETE_RETENTION seconds later."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from .. import EXTENSION_PREFIX
from ..clock import instant_text
from ..domain import deletes
from ..http import JsonResponse, no_content, paging_headers
from .common import ServicesDep, get_and_head, page_request, require_uuid, tams_router

router = tams_router(prefix=EXTENSION_PREFIX, tags=["x-tams: Soft delete (extension)"])

_DELETED_FLOW = {
    "type": "object",
    "properties": {
        "flow_id": {"type": "string"},
        "source_id": {"type": "string"},
        "label": {"type": ["string", "null"]},
        "deleted_at": {"type": "string", "format": "date-time"},
        "deleted_by": {"type": "string", "description": "the authenticated identity; anonymous without auth"},
        "purge_after": {"type": "string", "format": "date-time"},
    },
}


@get_and_head(
    router,
    "/deleted-flows",
    responses={
        200: {
            "description": "Soft-deleted flows, oldest deletion first (paged like the spec's listings).",
            "content": {"application/json": {"schema": {"type": "array", "items": _DELETED_FLOW}}},
        }
    },
)
def list_deleted_flows(
    request: Request, services: ServicesDep, page: str | None = None, limit: int | None = None
) -> Response:
    listing = services.store.list_deleted_flows(page_request(services.settings, limit, page))
    retention_ns = services.settings.soft_delete_retention * 1_000_000_000
    body = [{**flow.to_json(), "purge_after": instant_text(flow.deleted_ns + retention_ns)} for flow in listing.items]
    return JsonResponse(body, headers=paging_headers(request, listing))


@router.post("/flows/{flow_id}/restore", status_code=204, responses={204: {"description": "The flow is back."}})
def restore_flow(services: ServicesDep, flow_id: str) -> Response:
    """Undo a soft delete: the flow, its segments and (if it had gone with the flow) its source are back."""
    deletes.restore(services.store, require_uuid(flow_id, "flow"))
    return no_content()
