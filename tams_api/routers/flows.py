"""`/flows` and a flow's metadata sub-resources."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Body, Query, Request
from starlette.responses import Response

from .. import schemas
from ..auth import ANONYMOUS
from ..bindable import check_bindable
from ..domain import deletes, flows, profiles
from ..domain.flows import flow_write
from ..domain.tags import tag
from ..errors import BadRequest, NotFound
from ..http import JsonResponse, listing_headers, no_content
from ..model import Flow, FlowQuery
from ..timerange import EVERYTHING
from .common import (
    MIME_PATTERN,
    UUID_LIST_EMPTY_PATTERN,
    UUID_PATTERN,
    Format,
    ServicesDep,
    data_plane_router,
    deletion_response,
    get_and_head,
    page_request,
    principal_name,
    require_uuid,
    string_value,
    tag_filter,
    tag_value,
    tams_router,
    timerange_bounds,
    uuid_list,
)

router = tams_router(tags=["Flows"])
data_plane = data_plane_router(tags=["Flows"])
Status = Literal["awaiting_content", "ingesting", "replication_in_progress", "closed_complete"]


@get_and_head(router, "/flows")
def list_flows(
    request: Request,
    services: ServicesDep,
    source_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    timerange: str | None = None,
    format: Format | None = None,
    codec: Annotated[str | None, Query(pattern=MIME_PATTERN)] = None,
    profile_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    label: str | None = None,
    status: Status | None = None,
    frame_width: int | None = None,
    frame_height: int | None = None,
    init_segments: bool | None = None,
    collected_by_ids: Annotated[str | None, Query(pattern=UUID_LIST_EMPTY_PATTERN)] = None,
    sort_by: Literal["created", "metadata_updated", "label"] = "created",
    reverse_order: bool = False,
    page: str | None = None,
    limit: int | None = None,
) -> Response:
    # The filters not held to a pattern or a list of values: a store compares only what it can bind.
    for name, value in (("label", label), ("frame_width", frame_width), ("frame_height", frame_height)):
        check_bindable(name, value)
    query = FlowQuery(
        page=page_request(services.settings, limit, page, reverse_order),
        sort_by=sort_by,
        source_id=source_id,
        # `_` is the default: every flow, with content or without.
        timerange=None if timerange in (None, "_") else timerange_bounds(timerange),
        format=format,
        codec=codec,
        profile_id=profile_id,
        label=label,
        status=status,
        frame_width=frame_width,
        frame_height=frame_height,
        init_segments=init_segments,
        collected_by_ids=uuid_list(collected_by_ids, "collected_by_ids"),
        tags=tag_filter(request),
    )
    listing = services.store.list_flows(query)
    return JsonResponse(
        [flow.to_json() for flow in listing.items], headers=listing_headers(request, listing, reverse_order)
    )


def _flow(services: ServicesDep, flow_id: str) -> Flow:
    return flows.get(services.store, require_uuid(flow_id, "flow"))


@get_and_head(data_plane, "/flows/{flow_id}")
def get_flow(services: ServicesDep, flow_id: str, include_timerange: bool = False, timerange: str = "_") -> Response:
    within = timerange_bounds(timerange) or EVERYTHING  # checked even when not used
    flow = flows.get(services.store, require_uuid(flow_id, "flow"), within if include_timerange else None)
    return JsonResponse(flow.to_json())


@router.put("/flows/{flow_id}", status_code=201)
def put_flow(request: Request, services: ServicesDep, flow_id: str, body: Any = Body(...)) -> Response:
    profile_id = body.get("profile_id") if isinstance(body, dict) else None
    profile = profiles.find(services.store, profile_id) if isinstance(profile_id, str) and profile_id else None
    write = flow_write(require_uuid(flow_id, "flow"), body, profile, principal_name(request))
    flow, created = flows.put(services.store, write)
    return JsonResponse(flow.to_json(), status=201) if created else no_content()


@router.delete("/flows/{flow_id}", status_code=204)
def delete_flow(request: Request, services: ServicesDep, flow_id: str) -> Response:
    flow_id = require_uuid(flow_id, "flow")
    who = principal_name(request)
    if services.settings.soft_delete:  # the operator's choice: to clients the flow is deleted either way
        deletion = deletes.soft_delete(services.store, flow_id, who or ANONYMOUS.name)
    else:
        deletion = deletes.delete_flow(services.store, flow_id, services.settings.delete_sync_limit, who)
    return deletion_response(services, deletion)


# -- tags ------------------------------------------------------------------------------------------


@get_and_head(router, "/flows/{flow_id}/tags")
def get_flow_tags(services: ServicesDep, flow_id: str) -> Response:
    return JsonResponse(_flow(services, flow_id).tags)


@get_and_head(router, "/flows/{flow_id}/tags/{name:path}")
def get_flow_tag(services: ServicesDep, flow_id: str, name: str) -> Response:
    return JsonResponse(tag(_flow(services, flow_id).tags, "flow", flow_id, name))


@router.put("/flows/{flow_id}/tags/{name:path}", status_code=204)
def put_flow_tag(request: Request, services: ServicesDep, flow_id: str, name: str, body: Any = Body(...)) -> Response:
    flows.set_tag(services.store, require_uuid(flow_id, "flow"), name, tag_value(body), principal_name(request))
    return no_content()


@router.delete("/flows/{flow_id}/tags/{name:path}", status_code=204)
def delete_flow_tag(request: Request, services: ServicesDep, flow_id: str, name: str) -> Response:
    flows.set_tag(services.store, require_uuid(flow_id, "flow"), name, None, principal_name(request))
    return no_content()


# -- simple properties -----------------------------------------------------------------------------


def _bit_rate(body: Any, what: str) -> int:
    if not isinstance(body, int) or isinstance(body, bool) or body < 0:
        raise BadRequest(f"{what} must be a non-negative integer (1000 bits/second)")
    return body


PROPERTY_VALUES = {
    "label": string_value,
    "description": string_value,
    "max_bit_rate": _bit_rate,
    "avg_bit_rate": _bit_rate,
}


def _property_routes(name: str) -> None:
    """GET/HEAD, PUT and DELETE of one property of a flow."""
    parse = PROPERTY_VALUES[name]

    @get_and_head(router, f"/flows/{{flow_id}}/{name}", name=f"get_flow_{name}")
    def get_property(services: ServicesDep, flow_id: str) -> Response:
        metadata = _flow(services, flow_id).metadata
        if name not in metadata:
            raise NotFound(f"flow {flow_id} has no {name}")
        return JsonResponse(metadata[name])

    @router.put(f"/flows/{{flow_id}}/{name}", status_code=204, name=f"put_flow_{name}")
    def put_property(request: Request, services: ServicesDep, flow_id: str, body: Any = Body(...)) -> Response:
        value = parse(body, name)
        flows.set_property(services.store, require_uuid(flow_id, "flow"), name, value, principal_name(request))
        return no_content()

    @router.delete(f"/flows/{{flow_id}}/{name}", status_code=204, name=f"delete_flow_{name}")
    def delete_property(request: Request, services: ServicesDep, flow_id: str) -> Response:
        flows.set_property(services.store, require_uuid(flow_id, "flow"), name, None, principal_name(request))
        return no_content()


for _name in PROPERTY_VALUES:
    _property_routes(_name)


# -- read_only and flow_collection -----------------------------------------------------------------


@get_and_head(router, "/flows/{flow_id}/read_only")
def get_read_only(services: ServicesDep, flow_id: str) -> Response:
    return JsonResponse(_flow(services, flow_id).read_only)


@router.put("/flows/{flow_id}/read_only", status_code=204)
def put_read_only(request: Request, services: ServicesDep, flow_id: str, body: Any = Body(...)) -> Response:
    if not isinstance(body, bool):
        raise BadRequest("read_only must be true or false")
    flows.set_read_only(services.store, require_uuid(flow_id, "flow"), body, principal_name(request))
    return no_content()


@get_and_head(router, "/flows/{flow_id}/flow_collection")
def get_flow_collection(services: ServicesDep, flow_id: str) -> Response:
    return JsonResponse(_flow(services, flow_id).flow_collection)


@router.put("/flows/{flow_id}/flow_collection", status_code=204)
def put_flow_collection(request: Request, services: ServicesDep, flow_id: str, body: Any = Body(...)) -> Response:
    schemas.check("flow-collection.json", body, "flow_collection")
    flows.set_collection(services.store, require_uuid(flow_id, "flow"), body, principal_name(request))
    return no_content()


@router.delete("/flows/{flow_id}/flow_collection", status_code=204)
def delete_flow_collection(request: Request, services: ServicesDep, flow_id: str) -> Response:
    flows.set_collection(services.store, require_uuid(flow_id, "flow"), [], principal_name(request))
    return no_content()
