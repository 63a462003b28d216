"""Rules for writing flows: the spec's schema, then what the service keeps for itself."""

from __future__ import annotations

from typing import Any

from . import schemas
from .errors import BadRequest
from .model import SERVER_MANAGED_FLOW_FIELDS, FlowWrite

# Kept apart from the free-form metadata: tags and collections have their own tables.
_KEPT_APART = SERVER_MANAGED_FLOW_FIELDS | {"id", "source_id", "format", "tags", "flow_collection"}


# The flow-put schema is a oneOf over formats; checking the branch the body names first gives errors that
# say what to fix ("'frame_rate' is a required property") instead of "not valid under any of the schemas".
FORMAT_SCHEMAS = {
    "urn:x-nmos:format:video": "flow-video.json",
    "urn:x-nmos:format:audio": "flow-audio.json",
    "urn:x-tam:format:image": "flow-image.json",
    "urn:x-nmos:format:data": "flow-data.json",
    "urn:x-nmos:format:multi": "flow-multi.json",
}


def check_flow_body(body: Any) -> None:
    if not isinstance(body, dict):
        raise BadRequest("a flow must be a JSON object")
    schemas.check("flow-common.json", body, "flow")
    fmt = body.get("format")
    branch = FORMAT_SCHEMAS.get(fmt) if isinstance(fmt, str) else None  # a list or object format is unhashable
    if branch is not None and "profile_id" not in body:
        schemas.check(branch, body, "flow")
    schemas.check("flow-put.json", body, "flow")


def flow_write(flow_id: str, body: Any) -> FlowWrite:
    """Validate a `PUT /flows/{id}` body against the spec and split it into what the store keeps."""
    check_flow_body(body)
    if body["id"] != flow_id:
        raise BadRequest(f"flow id {body['id']} in the body does not match {flow_id} in the path")
    profile_id = body.get("profile_id")
    if profile_id:
        raise BadRequest(f"profile {profile_id} does not exist")
    metadata = {name: value for name, value in body.items() if name not in _KEPT_APART}
    if profile_id == "":
        del metadata["profile_id"]  # an empty profile_id breaks the link to a profile
    for item in body.get("flow_collection", []):
        if item["id"] == flow_id:
            raise BadRequest("a flow cannot collect itself")
    return FlowWrite(
        id=flow_id,
        source_id=body["source_id"],
        format=body["format"],
        metadata=metadata,
        tags=body.get("tags", {}),
        flow_collection=body.get("flow_collection", []),
    )
