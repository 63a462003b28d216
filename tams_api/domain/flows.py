"""Rules for writing flows: the spec's schema, then what the service keeps for itself; which flows may change."""

from __future__ import annotations

from typing import Any

from .. import schemas
from ..errors import BadRequest, Forbidden, NotFound
from ..model import SERVER_MANAGED_FLOW_FIELDS, FlowWrite, Profile
from ..stores.metadata import FlowRecord

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


# What a profile holds and a flow created from it may not set itself.
PROFILE_FIELDS = frozenset(
    {"format", "codec", "container", "avg_bit_rate", "segment_duration", "container_mapping", "essence_parameters"}
)


def flow_write(flow_id: str, body: Any, profile: Profile | None, author: str | None) -> FlowWrite:
    """Validate a `PUT /flows/{id}` body against the spec and split it into what the store keeps.

    `profile` is the profile the body's `profile_id` names (None when it names none, or one that does not
    exist); a flow created from it takes its technical metadata from it. `author` is the principal writing it:
    the flow's (and a new source's) created_by and updated_by come from it, never from the body.
    """
    check_flow_body(body)
    if body["id"] != flow_id:
        raise BadRequest(f"flow id {body['id']} in the body does not match {flow_id} in the path")
    for item in body.get("flow_collection", []):
        if item["id"] == flow_id:
            raise BadRequest("a flow cannot collect itself")
    metadata = {name: value for name, value in body.items() if name not in _KEPT_APART}
    profile_id = body.get("profile_id")
    if profile_id == "":
        del metadata["profile_id"]  # an empty profile_id breaks the link to a profile
    elif profile_id is not None:
        if profile is None:
            raise BadRequest(f"profile {profile_id} does not exist")
        given = sorted(PROFILE_FIELDS & body.keys())
        if given:
            raise BadRequest(f"a flow created from profile {profile_id} cannot also set {', '.join(given)}")
        metadata.update(profile.flow_metadata)
    return FlowWrite(
        id=flow_id,
        source_id=body["source_id"],
        format=metadata.pop("format", None) or body["format"],
        metadata=metadata,
        tags=body.get("tags", {}),
        flow_collection=body.get("flow_collection", []),
        author=author,
    )


def writable(flow: FlowRecord | None, flow_id: str) -> FlowRecord:
    """The flow, if it exists and may be changed: a read-only flow refuses every change but to read_only itself."""
    if flow is None:
        raise NotFound(f"flow {flow_id} does not exist")
    if flow.read_only:
        raise Forbidden(f"flow {flow_id} is read-only")
    return flow
