"""Plain data the stores take and give: no HTTP types, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from .segment_rows import SegmentRow
from .timerange import Bounds

T = TypeVar("T")
TagValue = str | list[str]
Tags = dict[str, TagValue]

# Flow fields the service manages itself; values given in a PUT are ignored.
SERVER_MANAGED_FLOW_FIELDS = frozenset(
    {"created", "metadata_updated", "segments_updated", "timerange", "collected_by", "created_by", "updated_by"}
)


def uses_init_segments(metadata: dict[str, Any]) -> bool:
    """Whether a flow's media objects have init objects (`essence_parameters.init_segments`, false if omitted)."""
    return bool((metadata.get("essence_parameters") or {}).get("init_segments", False))


@dataclass(slots=True)
class TagFilter:
    """`tag.{name}=a,b` (any listed value matches) and `tag_exists.{name}=true|false`."""

    values: dict[str, list[str]] = field(default_factory=dict)
    exists: dict[str, bool] = field(default_factory=dict)


@dataclass(slots=True)
class PageRequest:
    limit: int
    key: str | None = None  # opaque key from a previous page's `next_key`
    reverse: bool = False


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    next_key: str | None  # None on the last page
    limit: int


@dataclass(slots=True)
class ServiceInfo:
    name: str
    description: str


@dataclass(slots=True)
class Source:
    id: str
    format: str
    created: str
    updated: str
    label: str | None = None
    description: str | None = None
    created_by: str | None = None
    updated_by: str | None = None
    tags: Tags = field(default_factory=dict)
    source_collection: list[dict[str, Any]] = field(default_factory=list)
    collected_by: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "format": self.format}
        for name in ("label", "description", "created_by", "updated_by"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        body["created"] = self.created
        body["updated"] = self.updated
        body["tags"] = self.tags
        if self.source_collection:
            body["source_collection"] = self.source_collection
        if self.collected_by:
            body["collected_by"] = self.collected_by
        return body


@dataclass(slots=True)
class Flow:
    id: str
    source_id: str
    # What the client PUT, less tags, collections and server-managed fields; plus who created and updated it.
    metadata: dict[str, Any]
    created: str
    metadata_updated: str
    segments_updated: str | None = None
    tags: Tags = field(default_factory=dict)
    flow_collection: list[dict[str, Any]] = field(default_factory=list)
    collected_by: list[str] = field(default_factory=list)
    timerange: str | None = None  # filled only when asked for

    @property
    def read_only(self) -> bool:
        return bool(self.metadata.get("read_only", False))

    @property
    def container(self) -> str | None:
        return self.metadata.get("container")

    @property
    def init_segments(self) -> bool:
        return uses_init_segments(self.metadata)

    def to_json(self) -> dict[str, Any]:
        body = {"id": self.id, "source_id": self.source_id, **self.metadata}
        body["tags"] = self.tags
        body["created"] = self.created
        body["metadata_updated"] = self.metadata_updated
        if self.segments_updated is not None:
            body["segments_updated"] = self.segments_updated
        if self.flow_collection:
            body["flow_collection"] = self.flow_collection
        if self.collected_by:
            body["collected_by"] = self.collected_by
        if self.timerange is not None:
            body["timerange"] = self.timerange
        return body


@dataclass(slots=True)
class Profile:
    """Technical flow metadata, stored once, that flows are created from (`profile_id`)."""

    id: str
    flow_metadata: dict[str, Any]
    created: str
    details: dict[str, Any] = field(default_factory=dict)  # label, description, created_by, tags, ...

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.details, "created": self.created, "flow_metadata": self.flow_metadata}


@dataclass(slots=True)
class ProfileQuery:
    page: PageRequest
    format: str | None = None
    codec: str | None = None
    label: str | None = None


@dataclass(slots=True)
class FlowWrite:
    """A validated `PUT /flows/{id}` body."""

    id: str
    source_id: str
    format: str
    metadata: dict[str, Any]
    tags: Tags
    flow_collection: list[dict[str, Any]]
    author: str | None  # the principal writing it; None when authentication is off


@dataclass(slots=True)
class NewSegment:
    """A validated segment of a `POST /flows/{id}/segments` body."""

    object_id: str
    timerange: str
    bounds: Bounds
    object_timerange: str  # the object's timerange: as given, or else implied by this segment
    on_object_timeline: Bounds  # the segment's samples on the object's timeline (timerange - ts_offset)
    ts_offset: str | None = None
    explicit_object_timerange: bool = False
    last_duration: str | None = None
    sample_offset: int | None = None
    sample_count: int | None = None
    key_frame_count: int | None = None
    init_object_id: str | None = None
    get_urls: list[dict[str, str]] | None = None  # uncontrolled URLs of an object held elsewhere


@dataclass(slots=True)
class SegmentFailure:
    object_id: str
    timerange: str
    summary: str


@dataclass(slots=True)
class StoredObject:
    """What the metadata store knows of a media object."""

    id: str
    storage_ids: list[str]  # storage backends holding a controlled instance, in the order they got it
    timerange: str | None = None
    key_frame_count: int | None = None
    init_object_id: str | None = None
    uncontrolled_urls: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReleasedMedia:
    """The bytes of an object on one storage backend that no metadata refers to any more: to be deleted."""

    object_id: str
    storage_id: str


@dataclass(slots=True)
class Segment:
    timerange: str
    object: StoredObject
    ts_offset: str | None = None
    last_duration: str | None = None
    sample_offset: int | None = None
    sample_count: int | None = None


def segment_record(segment: Segment) -> dict[str, Any]:
    """A segment as plain JSON data, for the outbox (dataclasses.asdict deep-copies: 5x slower here)."""
    record = {name: getattr(segment, name) for name in Segment.__slots__}
    record["object"] = {name: getattr(segment.object, name) for name in StoredObject.__slots__}
    return record


@dataclass(slots=True)
class ObjectUsage:
    """`GET /objects/{id}`: the object and one page of the flows referencing it."""

    object: StoredObject
    first_referenced_by_flow: str | None
    referenced_by_flows: Page[str]


@dataclass(slots=True)
class FlowQuery:
    page: PageRequest
    sort_by: Literal["created", "metadata_updated", "label"] = "created"
    source_id: str | None = None
    timerange: Bounds | None = None
    format: str | None = None
    codec: str | None = None
    profile_id: str | None = None
    label: str | None = None
    status: str | None = None
    frame_width: int | None = None
    frame_height: int | None = None
    init_segments: bool | None = None
    collected_by_ids: list[str] | None = None  # [] selects flows no flow collects
    tags: TagFilter = field(default_factory=TagFilter)


@dataclass(slots=True)
class SourceQuery:
    page: PageRequest
    sort_by: Literal["created", "updated", "label"] = "created"
    label: str | None = None
    format: str | None = None
    collected_by_ids: list[str] | None = None
    tags: TagFilter = field(default_factory=TagFilter)


@dataclass(slots=True)
class SegmentQuery:
    page: PageRequest
    window: Bounds
    object_id: str | None = None


@dataclass(slots=True)
class SegmentPage:
    page: Page[SegmentRow]
    timerange: str | None  # span of the returned segments, for X-Paging-Timerange


def tags_match(tags: Tags, wanted: TagFilter) -> bool:
    """Whether tags pass a filter: any listed value of `tag.{name}`, presence per `tag_exists.{name}`."""
    for name, exists in wanted.exists.items():
        if (name in tags) != exists:
            return False
    for name, values in wanted.values.items():
        value = tags.get(name)
        have = [value] if isinstance(value, str) else (value or [])
        if not set(have) & set(values):
            return False
    return True


# -- webhooks and the outbox -----------------------------------------------------------------------

EVENT_TYPES = (
    "flows/created",
    "flows/updated",
    "flows/deleted",
    "flows/segments_added",
    "flows/segments_deleted",
    "sources/created",
    "sources/updated",
    "sources/deleted",
)
# Filter and transformation options of a webhook, as the spec names them.
WEBHOOK_FILTERS = ("flow_ids", "source_ids", "flow_collected_by_ids", "source_collected_by_ids")
WEBHOOK_URL_OPTIONS = (
    "accept_get_urls",
    "accept_storage_ids",
    "presigned",
    "verbose_storage",
    "include_object_timerange",
)


@dataclass(slots=True)
class Webhook:
    """A registered webhook. `options` holds the filters and URL options given at registration."""

    id: str
    url: str
    events: list[str]
    status: str  # created | started | disabled | error
    api_key_name: str | None = None
    api_key_value: str | None = None  # write-only: never shown to clients
    options: dict[str, Any] = field(default_factory=dict)
    tags: Tags = field(default_factory=dict)
    error: dict[str, str] | None = None
    owner: str | None = None
    cursor: int = 0  # the last outbox event this webhook has had (internal)

    @property
    def active(self) -> bool:
        return self.status in ("created", "started")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "url": self.url, "events": self.events}
        if self.api_key_name is not None:
            body["api_key_name"] = self.api_key_name
        body.update(self.options)
        body["tags"] = self.tags
        body["status"] = self.status
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(slots=True)
class WebhookQuery:
    page: PageRequest
    tags: TagFilter = field(default_factory=TagFilter)


@dataclass(slots=True)
class Event:
    """One change, as written to the outbox in the transaction that made it.

    `payload` is the spec's `event` object, except for `flows/segments_added` where it holds stored segments
    (`segments`: Segment fields with their object) that each webhook renders with its own URL options.
    The collected_by lists are the flow's and source's collections at the time, for webhook filters.
    """

    seq: int
    type: str
    timestamp: str
    payload: dict[str, Any]
    flow_id: str | None = None
    source_id: str | None = None
    flow_collected_by: list[str] = field(default_factory=list)
    source_collected_by: list[str] = field(default_factory=list)


# -- flow delete requests --------------------------------------------------------------------------


@dataclass(slots=True)
class DeleteRequest:
    id: str
    flow_id: str
    timerange_to_delete: str
    timerange_remaining: str
    delete_flow: bool
    status: str  # created | started | done | error
    created: str
    updated: str
    created_by: str | None = None
    expiry: str | None = None
    error: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "flow_id": self.flow_id,
            "timerange_to_delete": self.timerange_to_delete,
            "timerange_remaining": self.timerange_remaining,
            "delete_flow": self.delete_flow,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,
        }
        for name in ("created_by", "expiry", "error"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


@dataclass(slots=True)
class DeleteRequestQuery:
    page: PageRequest
    sort_by: Literal["created", "expiry"] = "created"


@dataclass(slots=True)
class Deletion:
    """What a delete of segments or of a flow did: released objects now, or a request for later."""

    released: list[ReleasedMedia] = field(default_factory=list)
    deferred: DeleteRequest | None = None


@dataclass(slots=True)
class DeletedFlow:
    """A soft-deleted flow (extension): hidden from the spec's endpoints until restored or purged."""

    flow_id: str
    source_id: str
    label: str | None
    deleted_at: str
    deleted_ns: int
    deleted_by: str  # the authenticated principal's name; "anonymous" when authentication is off

    def to_json(self) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "source_id": self.source_id,
            "label": self.label,
            "deleted_at": self.deleted_at,
            "deleted_by": self.deleted_by,
        }


# -- analytics (extension): figures the stores compute with SQL aggregates or Arrow compute ------------------


@dataclass(slots=True)
class FlowUsage:
    flow_id: str
    label: str | None
    format: str
    segment_count: int
    duration_ns: int  # sum of the segments' durations (end - start of their closed nanosecond bounds, plus one)


@dataclass(slots=True)
class FormatCount:
    value: str | None  # a format, codec or container; None for flows without one
    flow_count: int


@dataclass(slots=True)
class FormatDistribution:
    flow_count: int
    formats: list[FormatCount]
    codecs: list[FormatCount]
    containers: list[FormatCount]


@dataclass(slots=True)
class StorageUsage:
    """Objects per storage backend (controlled instances), from the metadata alone: no byte counts, since clients
    upload straight to presigned URLs and the service never sees the bytes."""

    instances_by_storage_id: dict[str, int]
    media_objects: int  # registered as the media object of a segment (of any flow, soft-deleted ones too)
    unregistered_objects: int  # allocated and not the media object of a segment: init objects, and uploads pending
    uncontrolled_only_objects: int  # media objects held only at URLs outside this service's backends
    instances_awaiting_deletion: int  # released instances whose media the worker has yet to delete


@dataclass(slots=True)
class TimerangeAnalysis:
    flow_ids: list[str]
    timerange: str  # from the first segment's start to the last one's end; "()" without segments
    segment_count: int
    duration_ns: int  # covered: the segments' durations, overlaps between flows counted once
    min_segment_ns: int | None
    max_segment_ns: int | None
    mean_segment_ns: float | None
    gap_count: int
    gap_ns: int
    gaps: list[str]  # the first gaps as timeranges, in time order
