"""The metadata repository: what a metadata backend (SQLite, VAST) implements, plain dataclasses in and out.

It stores and queries records and decides nothing the spec says: the use cases of `tams_api.domain` run in its units
of work (`read`, `write`), check what they read and write what they decided. Listings (`list_*`) and the worker's
housekeeping are reads and writes of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..clock import Instant
from ..model import (
    DeletedFlow,
    DeleteRequest,
    DeleteRequestQuery,
    Event,
    Flow,
    FlowQuery,
    FlowUsage,
    FormatDistribution,
    NewSegment,
    Page,
    PageRequest,
    Profile,
    ProfileQuery,
    ReleasedMedia,
    SegmentPage,
    SegmentQuery,
    ServiceInfo,
    Source,
    SourceQuery,
    StorageUsage,
    StoredObject,
    TagFilter,
    Tags,
    TimerangeAnalysis,
    Webhook,
    WebhookQuery,
)
from ..segment_rows import uncontrolled_urls_column
from ..timerange import Bounds
from .migrations import Upgrade

R = TypeVar("R")

# What `read` and `write` hand their work: the backend's own transaction (SQLite: a connection inside BEGIN; VAST:
# its tables within one transaction). The domain only passes it back to the record methods.
Transaction = Any


@dataclass(slots=True)
class FlowRecord:
    """A flow as stored (not soft-deleted), for a use case to check and change."""

    id: str
    source_id: str
    metadata: dict[str, Any]
    read_only: bool
    key: Any = None  # the backend's handle on the row (SQLite: its pk; VAST: the row), None for a new flow
    soft_deleted: bool = False  # only when asked for (`flow_record(..., soft_deleted_too=True)`)
    deleted_by: str | None = None  # who soft-deleted it
    # Not read with the record: set them for `save_flow` to replace the flow's tags or collection.
    tags: Tags | None = None
    collection: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class SourceRecord:
    """A source as stored, shown to clients (`visible`) while a flow that is not soft-deleted names it."""

    id: str
    format: str
    label: str | None = None
    description: str | None = None
    created_by: str | None = None
    updated_by: str | None = None
    flow_count: int = 0  # flows naming it, soft-deleted ones included
    visible: bool = False
    key: Any = None  # the backend's handle on the row, None for a new source


@dataclass(slots=True)
class ObjectRecord:
    """A media object as stored: `registered` once a segment uses it (until then it is only allocated, for the
    flow `allocated_for`), or made by registering a segment with get_urls (`key` None until written)."""

    id: str
    registered: bool
    allocated_for: str | None = None
    timerange: str | None = None
    key_frame_count: int | None = None
    init_object_id: str | None = None
    uncontrolled_urls: list[dict[str, str]] | None = None
    storage_ids: list[str] = field(default_factory=list)
    first_flow_id: str | None = None
    key: Any = None  # the backend's handle on the row (VAST: the row), None for a new object

    def stored(self) -> StoredObject:
        return StoredObject(
            self.id,
            list(self.storage_ids),
            self.timerange,
            self.key_frame_count,
            self.init_object_id,
            list(self.uncontrolled_urls or []),
        )

    def urls_column(self) -> str | None:
        return uncontrolled_urls_column(self.uncontrolled_urls)


@dataclass(slots=True)
class DeletedSegments:
    """What a delete of covered segments did: the media it released, the span of the segments it deleted and the
    start of the last (None when it deleted none)."""

    released: list[ReleasedMedia] = field(default_factory=list)
    span: str | None = None
    last_start: int | None = None


@dataclass(slots=True)
class Registration:
    """Segments of a flow to store, none overlapping another, with the objects they made (`created`) and the
    allocated objects they registered (`registered`)."""

    segments: list[NewSegment] = field(default_factory=list)
    created: list[ObjectRecord] = field(default_factory=list)
    registered: list[ObjectRecord] = field(default_factory=list)


class MetadataStore(Protocol):
    """The repository the domain (`tams_api.domain`) works through: records in and out, no spec rule."""

    schema_upgrade: Upgrade  # what opening the store did to its schema (stores/migrations.py)
    # Whether a read is short work in this process that never waits on a network or a lock (an embedded database):
    # a request may then run it on the event loop rather than hand it to a thread.
    reads_inline: bool

    # -- The store itself --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the store holds (connections); the store is not used after."""
        ...

    def probe(self) -> None:
        """Read from the store, raising whatever stops it (readiness); changes nothing."""
        ...

    # -- Units of work: the domain's use cases run in one, reading and writing through its `tx` ----------------------

    def read(self, work: Callable[[Transaction], R]) -> R:
        """`work(tx)` on one consistent snapshot; its answer."""
        ...

    def write(self, work: Callable[[Transaction], R]) -> R:
        """`work(tx)` in one write transaction: all it wrote is committed when it returns, nothing when it raises.
        A backend may run `work` again on a fresh snapshot when a concurrent writer won (so work only reads and
        writes through `tx`)."""
        ...

    # -- Flows -------------------------------------------------------------------------------------------------------

    def get_flow(self, tx: Transaction, flow_id: str) -> Flow | None:
        """The flow as clients see it (with tags and collections), unless it does not exist or is soft-deleted."""
        ...

    def flow_record(self, tx: Transaction, flow_id: str, soft_deleted_too: bool = False) -> FlowRecord | None:
        """The flow, unless it does not exist or is soft-deleted (unless `soft_deleted_too`)."""
        ...

    def list_flows(self, query: FlowQuery) -> Page[Flow]:
        """A page of the flows clients see that match the query."""
        ...

    def save_flow(self, tx: Transaction, flow: FlowRecord, stamp: Instant) -> None:
        """Insert the flow (`key` None) or update it: source, metadata (with the columns listings filter on) and
        metadata_updated = `stamp`; replace its tags and its collection when the record has them. A source that no
        flow names any more is forgotten."""
        ...

    def flow_timerange(self, tx: Transaction, flow: FlowRecord, within: Bounds) -> str:
        """The span of the flow's segments that overlap `within` ("()" when none does)."""
        ...

    def drop_flow(self, tx: Transaction, flow: FlowRecord) -> list[ReleasedMedia]:
        """Delete the flow with its segments, collections, tags and soft-delete mark; release the objects no other
        segment uses and those allocated for it never registered (but init objects other objects name); forget
        its source when no flow names it any more. The media released."""
        ...

    # -- Sources (they exist while a flow names them) ----------------------------------------------------------------

    def get_source(self, tx: Transaction, source_id: str) -> Source | None:
        """The source as clients see it, unless no flow that is not soft-deleted names it."""
        ...

    def source_record(self, tx: Transaction, source_id: str) -> SourceRecord | None:
        """The source, visible or not, unless no flow names it."""
        ...

    def list_sources(self, query: SourceQuery) -> Page[Source]:
        """A page of the sources clients see that match the query."""
        ...

    def save_source(self, tx: Transaction, source: SourceRecord, stamp: Instant, tags: Tags | None = None) -> None:
        """Insert the source (`key` None; created = `stamp`) or update it; updated = `stamp`; replace its tags
        when given."""
        ...

    # -- Segments and their objects ----------------------------------------------------------------------------------

    def list_segments(self, flow_id: str, query: SegmentQuery) -> SegmentPage:
        """A page of the flow's segments that overlap the query's window, with their objects."""
        ...

    def overlapping_segment(self, tx: Transaction, flow: FlowRecord, bounds: Bounds) -> str | None:
        """The timerange of a stored segment of the flow that overlaps `bounds`, if any."""
        ...

    def segments_within(
        self, tx: Transaction, flow: FlowRecord, within: Bounds, limit: int
    ) -> list[tuple[int, int, str]]:
        """(start, end, timerange) of the first `limit` stored segments of the flow that overlap `within`, by start
        (closed nanosecond bounds, as stored)."""
        ...

    def insert_segments(self, tx: Transaction, flow: FlowRecord, registration: Registration, stamp: Instant) -> None:
        """Store the registration's segments of the flow with their objects, and move the flow's segments_updated to
        `stamp`."""
        ...

    def more_covered_than(self, tx: Transaction, flow: FlowRecord, within: Bounds, limit: int) -> bool:
        """Whether more than `limit` segments of the flow lie wholly within `within`."""
        ...

    def delete_covered(
        self, tx: Transaction, flow: FlowRecord, within: Bounds, object_id: str | None, limit: int | None
    ) -> DeletedSegments:
        """Delete the first `limit` (all when None) segments of the flow that lie wholly within `within` (of
        `object_id` only, when given), earliest first; move the flow's segments_updated; release the objects no
        segment uses any more."""
        ...

    def object_records(self, tx: Transaction, object_ids: set[str]) -> dict[str, ObjectRecord]:
        """Those of the objects that exist, by id."""
        ...

    def init_objects_in_use(self, tx: Transaction, object_ids: set[str]) -> set[str]:
        """Those of `object_ids` that some object names as its init object."""
        ...

    def object_flows(
        self, tx: Transaction, object_id: str, page: PageRequest, flow_tags: TagFilter
    ) -> Page[str] | None:
        """A page of the flows with `flow_tags` using the object (not soft-deleted); None if no such flow uses it."""
        ...

    def insert_allocated(
        self,
        tx: Transaction,
        flow: FlowRecord,
        storage_id: str,
        content_type: str,
        object_ids: list[str],
        stamp: Instant,
    ) -> None:
        """Store new objects (none stored yet) allocated at `stamp` for the flow, each an instance on `storage_id`."""
        ...

    def save_instances(self, tx: Transaction, record: ObjectRecord, released: list[ReleasedMedia]) -> None:
        """Store the object's instances (its storage_ids and uncontrolled_urls) and queue `released` for deletion."""
        ...

    # -- Soft delete (extension): a soft-deleted flow is deleted for every spec endpoint, until restored or purged ---

    def set_soft_deleted(self, tx: Transaction, flow: FlowRecord, stamp: Instant | None, by: str | None = None) -> None:
        """Mark the flow soft-deleted at `stamp` by `by`, or (`stamp` None) unmark it."""
        ...

    def list_deleted_flows(self, page: PageRequest) -> Page[DeletedFlow]:
        """A page of the soft-deleted flows, oldest deletion first (the order the worker purges them in)."""
        ...

    def deleted_flows_due(self, deleted_before_ns: int, limit: int) -> list[str]:
        """Soft-deleted flows deleted before the cut-off whose purge has not begun, oldest first."""
        ...

    # -- Flow delete requests: deletions too large for one request ---------------------------------------------------

    def get_delete_request(self, tx: Transaction, request_id: str) -> DeleteRequest | None:
        """The flow delete request, if it exists."""
        ...

    def pending_flow_delete(self, tx: Transaction, flow_id: str) -> DeleteRequest | None:
        """The flow's delete request under way that deletes the flow itself, if any."""
        ...

    def save_delete_request(
        self, tx: Transaction, request: DeleteRequest, stamp: Instant, expiry: Instant | None = None
    ) -> None:
        """Insert the request (created at `stamp`) or update it (updated at `stamp`; with `expiry` once finished)."""
        ...

    def list_delete_requests(self, query: DeleteRequestQuery) -> Page[DeleteRequest]:
        """A page of the flow delete requests, in the query's order."""
        ...

    def pending_delete_requests(self) -> list[str]:
        """The ids of the delete requests under way (created or started), oldest first."""
        ...

    def forget_expired_delete_requests(self, before_ns: int) -> int:
        """Delete the finished requests whose expiry is past the cut-off; how many."""
        ...

    # -- Released media the worker deletes ---------------------------------------------------------------------------

    def released_objects(self, limit: int) -> list[ReleasedMedia]:
        """Up to `limit` released media whose bytes are still to delete."""
        ...

    def forget_released(self, released: list[ReleasedMedia]) -> None:
        """Take media deleted from its backend off the list of released media."""
        ...

    def release_expired_allocations(self, allocated_before_ns: int) -> int:
        """Release the objects allocated before the cut-off that no segment registered (nor uses as init object);
        how many."""
        ...

    # -- Webhooks and the outbox (events are written by the changes they report, in their transactions) --------------

    def emit(self, tx: Transaction, event: Callable[[], Event | None]) -> None:
        """Put the event `event()` makes in the outbox (delivered once `tx` commits), only when some webhook listens
        (`event()` is called only then) and it makes one."""
        ...

    def webhook_record(self, tx: Transaction, webhook_id: str) -> Webhook | None:
        """The webhook, with its owner and cursor, if one has that id."""
        ...

    def put_webhook(self, tx: Transaction, webhook: Webhook, from_now: bool) -> None:
        """Store the webhook in place of any of its id; `from_now`: set its cursor to the outbox's last event first."""
        ...

    def delete_webhook(self, tx: Transaction, webhook_id: str) -> None:
        """Delete the webhook of that id, if any."""
        ...

    def list_webhooks(self, query: WebhookQuery) -> Page[Webhook]:
        """A page of the webhooks matching the query, by URL then id."""
        ...

    def active_webhooks(self) -> list[Webhook]:
        """The webhooks that listen (created or started): those the worker delivers to."""
        ...

    def events_after(self, seq: int, limit: int) -> list[Event]:
        """The first `limit` events of the outbox after `seq`, in order."""
        ...

    def prune_events(self) -> int:
        """Drop the events every listening webhook has had (all when none listens); how many."""
        ...

    def undelivered_events(self) -> int:
        """Events the furthest-behind listening webhook has not been given yet (0 when none listens)."""
        ...

    # -- Service information and profiles ----------------------------------------------------------------------------

    def get_service_info(self, defaults: ServiceInfo) -> ServiceInfo:
        """The stored name and description, `defaults` where none is stored."""
        ...

    def update_service_info(self, name: str | None, description: str | None) -> None:
        """Store the name and the description given (None: leave it as stored)."""
        ...

    def profile_record(self, tx: Transaction, profile_id: str) -> Profile | None:
        """The profile, if one has that id."""
        ...

    def insert_profile(self, tx: Transaction, profile: Profile) -> None:
        """Store a profile of a new id."""
        ...

    def list_profiles(self, query: ProfileQuery) -> Page[Profile]:
        """A page of the profiles matching the query, by id."""
        ...

    # -- Analytics (extension), over flows that are not soft-deleted; owner is "flow" or "source" --------------------

    def flow_usage(self, limit: int) -> list[FlowUsage]:
        """The `limit` flows with the most segments."""
        ...

    def format_distribution(self) -> FormatDistribution:
        """Counts of flows per format, codec and container."""
        ...

    def storage_usage(self) -> StorageUsage:
        """Counts of media objects and their instances per storage backend."""
        ...

    def timerange_analysis(self, owner: str, owner_id: str, max_gaps: int) -> TimerangeAnalysis | None:
        """The segments' coverage of the owner's flows (not soft-deleted) together; None when it has none."""
        ...

    # -- The worker's lease: one worker per store --------------------------------------------------------------------

    def claim_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the named lease for `seconds`; False while another holder's is current."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give up the named lease, if `holder` holds it."""
        ...
