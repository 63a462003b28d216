"""Flows: the spec's schema of a flow, then what the service keeps for itself; writing a flow whole or one property,
tag or collection at a time; which flows may change; a flow going with what only it held."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from .. import schemas
from ..bindable import check_bindable
from ..clock import now
from ..errors import BadRequest, Forbidden
from ..model import SERVER_MANAGED_FLOW_FIELDS, Flow, FlowWrite, Profile, ReleasedMedia, TagValue
from ..stores.metadata import FlowRecord, MetadataStore, Transaction
from ..timerange import Bounds
from . import events, found, sources
from .tags import with_tag

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
            raise BadRequest(f"profile_id names profile {profile_id}, which does not exist")
        given = sorted(PROFILE_FIELDS & body.keys())
        if given:
            raise BadRequest(f"a flow created from profile {profile_id} cannot also set {', '.join(given)}")
        metadata.update(profile.flow_metadata)
    _check_indexed(metadata)
    return FlowWrite(
        id=flow_id,
        source_id=body["source_id"],
        format=metadata.pop("format", None) or body["format"],
        metadata=metadata,
        tags=body.get("tags", {}),
        flow_collection=body.get("flow_collection", []),
        author=author,
    )


def _check_indexed(metadata: dict[str, Any]) -> None:
    """The properties the stores index for listing filters must be values they can bind."""
    for name in ("codec", "label", "profile_id", "status"):
        check_bindable(name, metadata.get(name))
    essence = metadata.get("essence_parameters") or {}
    for name in ("frame_width", "frame_height"):
        check_bindable(f"essence_parameters.{name}", essence.get(name))


def writable(flow: FlowRecord | None, flow_id: str) -> FlowRecord:
    """The flow, if it exists and may be changed: a read-only flow refuses every change but to read_only itself."""
    if found(flow, "flow", flow_id).read_only:
        raise Forbidden(f"flow {flow_id} is read-only")
    return flow


def get(store: MetadataStore, flow_id: str, timerange_within: Bounds | None = None) -> Flow:
    """The flow; with the span of its segments that overlap `timerange_within` when given (same snapshot)."""

    def read(tx: Transaction) -> Flow:
        flow = found(store.get_flow(tx, flow_id), "flow", flow_id)
        if timerange_within is not None:
            flow.timerange = store.flow_timerange(
                tx, found(store.flow_record(tx, flow_id), "flow", flow_id), timerange_within
            )
        return flow

    return store.read(read)


def sign(metadata: dict[str, Any], author: str | None, previous: dict[str, Any] | None) -> None:
    """Record in a flow's metadata who wrote it: `created_by` stays whoever created the flow (as in `previous`,
    the metadata stored before, if any), `updated_by` becomes `author`. Nobody known (authentication off) is
    recorded as no value."""
    creator = author if previous is None else previous.get("created_by")
    for name, value in (("created_by", creator), ("updated_by", author)):
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = value


def put(store: MetadataStore, flow: FlowWrite) -> tuple[Flow, bool]:
    """Create or replace the flow (tags and collection replaced too); the flow as stored, and whether it is new."""
    return store.write(functools.partial(_put, store, flow))


def _put(store: MetadataStore, flow: FlowWrite, tx: Transaction) -> tuple[Flow, bool]:
    stamp = now()
    previous = store.flow_record(tx, flow.id, soft_deleted_too=True)
    if previous is not None and previous.soft_deleted:
        # To clients a soft-deleted flow is deleted, so a PUT creates the flow anew: the old one is purged now.
        drop(store, tx, previous)
        previous = None
    if previous is not None and previous.read_only:
        raise Forbidden(f"flow {flow.id} is read-only")
    _check_collection(store, tx, flow.id, flow.flow_collection)
    source_appears = sources.join(store, tx, flow, previous, stamp)
    metadata = {**flow.metadata, "format": flow.format}
    sign(metadata, flow.author, previous.metadata if previous else None)
    # A client may set metadata_version (e.g. carried over from another store); otherwise a change of metadata
    # gets a new one.
    previous_version = previous.metadata.get("metadata_version") if previous else None
    if metadata.get("metadata_version") in (None, previous_version):
        metadata["metadata_version"] = str(uuid.uuid4())
    record = FlowRecord(flow.id, flow.source_id, metadata, False, previous.key if previous else None)
    record.tags, record.collection = flow.tags, flow.flow_collection
    store.save_flow(tx, record, stamp)
    if previous is not None and previous.source_id != flow.source_id:
        sources.left(store, tx, previous.source_id)
    stored = found(store.get_flow(tx, flow.id), "flow", flow.id)
    if source_appears:
        sources.announce(store, tx, "sources/created", flow.source_id)
    event_type = "flows/created" if previous is None else "flows/updated"
    events.emit(store, tx, event_type, lambda: {"flow": stored.to_json()}, flow_id=flow.id)
    return stored, previous is None


def _check_collection(store: MetadataStore, tx: Transaction, flow_id: str, collection: list[dict[str, Any]]) -> None:
    for item in collection:
        if item["id"] == flow_id:
            raise BadRequest("a flow cannot collect itself")
        if store.flow_record(tx, item["id"]) is None:
            raise BadRequest(f"flow_collection names flow {item['id']}, which does not exist")


def set_property(store: MetadataStore, flow_id: str, name: str, value: Any | None, author: str | None) -> None:
    """Set (or, with None, remove) a simple property of the flow's metadata."""

    def change(flow: FlowRecord, tx: Transaction) -> None:
        if name == "avg_bit_rate" and flow.metadata.get("profile_id"):
            raise BadRequest(
                f"avg_bit_rate comes from profile {flow.metadata['profile_id']}: "
                "unlink the flow first by setting profile_id to '' in a PUT of the flow"
            )
        if value is None:
            flow.metadata.pop(name, None)
        else:
            flow.metadata[name] = value
        _check_indexed(flow.metadata)

    _change(store, flow_id, author, change)


def set_read_only(store: MetadataStore, flow_id: str, read_only: bool, author: str | None) -> None:
    """The one change a read-only flow accepts."""

    def change(flow: FlowRecord, tx: Transaction) -> None:
        flow.metadata["read_only"] = read_only

    _change(store, flow_id, author, change, read_only_too=True)


def set_tag(store: MetadataStore, flow_id: str, name: str, value: TagValue | None, author: str | None) -> None:
    """Set (or, with None, remove) a tag of the flow."""

    def change(flow: FlowRecord, tx: Transaction) -> None:
        tags = found(store.get_flow(tx, flow_id), "flow", flow_id).tags
        flow.tags = with_tag(tags, "flow", flow_id, name, value)

    _change(store, flow_id, author, change)


def set_collection(store: MetadataStore, flow_id: str, collection: list[dict[str, Any]], author: str | None) -> None:
    """Replace the flow's collection (empty: it collects no flow)."""

    def change(flow: FlowRecord, tx: Transaction) -> None:
        _check_collection(store, tx, flow_id, collection)
        flow.collection = collection

    _change(store, flow_id, author, change)


# A change of a flow (its metadata, tags or collection) in a transaction.
_Change = Callable[[FlowRecord, Transaction], None]


def _change(
    store: MetadataStore, flow_id: str, author: str | None, change: _Change, read_only_too: bool = False
) -> None:
    def work(tx: Transaction) -> None:
        record = store.flow_record(tx, flow_id)
        flow = found(record, "flow", flow_id) if read_only_too else writable(record, flow_id)
        change(flow, tx)
        stamp = now()
        sign(flow.metadata, author, flow.metadata)
        flow.metadata["metadata_version"] = str(uuid.uuid4())
        store.save_flow(tx, flow, stamp)
        events.emit(store, tx, "flows/updated", lambda: as_event(store, tx, flow_id), flow_id=flow_id)

    store.write(work)


def as_event(store: MetadataStore, tx: Transaction, flow_id: str) -> dict[str, Any]:
    """The payload of an event about the flow as it is now."""
    return {"flow": found(store.get_flow(tx, flow_id), "flow", flow_id).to_json()}


def drop(store: MetadataStore, tx: Transaction, flow: FlowRecord) -> list[ReleasedMedia]:
    """The flow goes, with its segments and what only it held; the media released."""
    events.emit(store, tx, "flows/deleted", lambda: {"flow_id": flow.id}, flow_id=flow.id)
    released = store.drop_flow(tx, flow)
    if not flow.soft_deleted:  # a soft-deleted flow was announced deleted already, and so was its source if it held it
        sources.left(store, tx, flow.source_id)
    return released
