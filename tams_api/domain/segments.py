"""Registering flow segments: the body's shape, what each segment means on the timeline, the init objects a flow
with init segments asks of its media objects, and the checks of each segment against the flow's other segments and
the objects it names (overlap, object roles, allocation, re-use)."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import time
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from .. import timerange as tr
from ..bindable import check_bindable
from ..clock import now
from ..errors import BadRequest, TamsError
from ..model import NewSegment, Segment, SegmentFailure, segment_record, uses_init_segments
from ..stores.metadata import FlowRecord, MetadataStore, ObjectRecord, Registration, Transaction
from . import events
from .flows import writable

BULK_CHUNK = 1000  # segments registered per write transaction: a large bulk never holds the store's writer long
CHUNK_PAUSE = 0.002  # seconds between two chunks of a bulk, for writers waiting in this process or in another
# A chunk's overlap checks read the stored segments between its first start and its last end in one query, up to this
# many per segment of the chunk; a chunk interleaving with more (filling gaps of a long stretch) has each segment seek
# the one stored segment it may overlap instead, so that what a chunk holds stays bounded.
STORED_SPANS_PER_SEGMENT = 4

# Same shape as the spec's schemas/flow-segment-post.json; pydantic validates a 1,000-segment body
# about 20x faster than jsonschema, and a test checks both agree.
TimeRangeText = Annotated[StrictStr, Field(pattern=tr.TIMERANGE_PATTERN.pattern)]
TimestampText = Annotated[StrictStr, Field(pattern=tr.TIMESTAMP_PATTERN.pattern)]


# TypedDicts rather than models: validated into plain dicts, half the time of model instances for a 1,000-segment body.
@with_config(ConfigDict(extra="allow"))
class GetUrl(TypedDict):
    url: StrictStr
    label: StrictStr


@with_config(ConfigDict(extra="allow"))
class SegmentPost(TypedDict):
    object_id: StrictStr
    timerange: TimeRangeText
    init_object_id: NotRequired[StrictStr | None]
    ts_offset: NotRequired[TimestampText | None]
    object_timerange: NotRequired[TimeRangeText | None]
    last_duration: NotRequired[TimestampText | None]
    sample_offset: NotRequired[StrictInt | None]
    sample_count: NotRequired[StrictInt | None]
    key_frame_count: NotRequired[StrictInt | None]
    get_urls: NotRequired[list[GetUrl] | None]


SEGMENTS_BODY = TypeAdapter(SegmentPost | list[SegmentPost])


def parse_body(body: object, max_segments: int) -> tuple[list[SegmentPost], bool]:
    """The segments of a POST body, and whether it was a list (bulk) rather than one segment. A bulk has at most
    `max_segments`, so that its answer (each failure echoed) and the time it holds the store's writer are bounded."""
    if isinstance(body, list) and len(body) > max_segments:
        raise BadRequest(
            f"{len(body)} segments in one request; at most {max_segments} may be registered at once "
            "(TAMS_MAX_BULK_SEGMENTS): split the list"
        )
    try:
        parsed = SEGMENTS_BODY.validate_python(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = "/".join(str(part) for part in first["loc"][1:])
        explained = first["type"] == "string_pattern_mismatch" and tr.pattern_problem(
            first["ctx"]["pattern"], first["input"]
        )
        raise BadRequest(f"invalid segment{f' at {where}' if where else ''}: {explained or first['msg']}") from None
    return (parsed, True) if isinstance(parsed, list) else ([parsed], False)


def new_segment(post: SegmentPost) -> NewSegment:
    """Interpret one segment, or raise BadRequest saying why it cannot be registered."""
    timerange = post["timerange"]
    bounds = tr.parse_bounds(timerange)
    if bounds.is_empty:
        raise BadRequest(f"segment timerange {timerange} is empty")
    if bounds.start == tr.INT64_MIN or bounds.end == tr.INT64_MAX:
        raise BadRequest(f"segment timerange {timerange} must have a start and an end")
    ts_offset, last_duration = post.get("ts_offset"), post.get("last_duration")
    if last_duration is not None and last_duration.startswith("-"):
        raise BadRequest("last_duration cannot be negative")
    sample_offset, sample_count = post.get("sample_offset"), post.get("sample_count")
    key_frame_count = post.get("key_frame_count")
    for name, value in (
        ("sample_offset", sample_offset),
        ("sample_count", sample_count),
        ("key_frame_count", key_frame_count),
    ):
        if value is not None:  # most segments give none of them
            check_bindable(name, value)
    # The samples on the object's own timeline: timerange - ts_offset.
    object_timerange = given_object_timerange = post.get("object_timerange")
    on_object_timeline = bounds
    if ts_offset is not None:
        offset = tr.timestamp_nanoseconds(ts_offset)
        on_object_timeline = tr.Bounds(bounds.start - offset, bounds.end - offset)
    if given_object_timerange is not None:
        if not tr.parse_bounds(given_object_timerange).covers(on_object_timeline):
            raise BadRequest(
                f"segment {timerange} offset by ts_offset is not within object_timerange {given_object_timerange}"
            )
    elif ts_offset is not None:
        object_timerange = tr.shifted(timerange, bounds, offset)
    else:
        object_timerange = timerange
    urls = post.get("get_urls")
    if urls is not None and len({url["label"] for url in urls}) != len(urls):
        raise BadRequest("get_urls labels must be unique")
    # Positional, in the order of NewSegment's fields: keywords cost a 1,000-segment body 0.4 ms more.
    return NewSegment(
        post["object_id"],
        timerange,
        bounds,
        object_timerange,
        on_object_timeline,
        ts_offset,
        given_object_timerange is not None,  # explicit_object_timerange
        last_duration,
        sample_offset,
        sample_count,
        key_frame_count,
        post.get("init_object_id"),
        urls,  # get_urls
    )


def with_init_objects(
    flow: FlowRecord, segments: list[NewSegment], objects: dict[str, ObjectRecord]
) -> tuple[list[NewSegment], list[SegmentFailure]]:
    """The segments to register, and those refused: on a flow with `init_segments` every media object MUST have
    an init object. A segment re-using an object SHOULD omit init_object_id, so one without it gets the object's
    (stored in `objects`, or given by another segment of the request): no object is registered without one."""
    if not uses_init_segments(flow.metadata) or all(segment.init_object_id is not None for segment in segments):
        return segments, []
    inits: dict[str, str] = {}
    for segment in segments:
        if segment.init_object_id is not None:
            inits.setdefault(segment.object_id, segment.init_object_id)
    for object_id, stored in objects.items():
        if stored.init_object_id is not None:
            inits.setdefault(object_id, stored.init_object_id)
    kept: list[NewSegment] = []
    refused: list[SegmentFailure] = []
    for segment in segments:
        if segment.init_object_id is not None:
            kept.append(segment)
        elif segment.object_id in inits:
            kept.append(dataclasses.replace(segment, init_object_id=inits[segment.object_id]))
        else:
            summary = (
                f"flow {flow.id} has init_segments: object {segment.object_id} needs an init_object_id "
                "(only a re-used object that has one may omit it)"
            )
            refused.append(SegmentFailure(segment.object_id, segment.timerange, summary))
    return kept, refused


def register(store: MetadataStore, flow_id: str, segments: list[NewSegment]) -> list[SegmentFailure]:
    """Register segments on a flow, BULK_CHUNK per write transaction; each is stored whole or is among the failures.
    A refusal of the flow itself (unknown, read-only, no container) refuses the request while nothing is stored;
    after a stored chunk (the flow changed between two), it fails the segments left."""
    failures: list[SegmentFailure] = []
    for start in range(0, max(len(segments), 1), BULK_CHUNK):
        if start:
            time.sleep(CHUNK_PAUSE)
        chunk = segments[start : start + BULK_CHUNK]
        try:
            failures += store.write(functools.partial(_register_chunk, store, flow_id, chunk))
        except TamsError as refused:
            if start == 0:
                raise
            failures += [SegmentFailure(left.object_id, left.timerange, refused.summary) for left in segments[start:]]
            break
    return failures


def _register_chunk(
    store: MetadataStore, flow_id: str, segments: list[NewSegment], tx: Transaction
) -> list[SegmentFailure]:
    flow = writable(store.flow_record(tx, flow_id), flow_id)
    if not flow.metadata.get("container"):
        raise BadRequest(f"flow {flow_id} has no 'container': set it before registering segments")
    objects = store.object_records(tx, {segment.object_id for segment in segments})
    segments, failures = with_init_objects(flow, segments, objects)
    inits = {segment.init_object_id for segment in segments if segment.init_object_id is not None}
    objects |= store.object_records(tx, inits - objects.keys())
    batch = _Batch(store, tx, flow, objects, segments)
    for segment in segments:
        problem = batch.add(segment)
        if problem is not None:
            failures.append(SegmentFailure(segment.object_id, segment.timerange, problem))
    if batch.registration.segments:
        store.insert_segments(tx, flow, batch.registration, now())

        def added() -> dict[str, Any]:
            records = [
                segment_record(
                    Segment(
                        timerange=segment.timerange,
                        object=objects[segment.object_id].stored(),
                        ts_offset=segment.ts_offset,
                        last_duration=segment.last_duration,
                        sample_offset=segment.sample_offset,
                        sample_count=segment.sample_count,
                    )
                )
                for segment in batch.registration.segments
            ]
            return {"flow_id": flow_id, "segments": records}

        events.emit(store, tx, "flows/segments_added", added, flow_id=flow_id)
    return failures


class _Spans:
    """(start, end, timerange) of segments that never overlap one another, by start: the one with the greatest start
    at or before a point then also has the greatest end, the only one that can reach that point."""

    __slots__ = ("_spans",)

    def __init__(self, spans: list[tuple[int, int, str]]) -> None:
        self._spans = spans

    def overlapping(self, bounds: tr.Bounds) -> str | None:
        """The timerange of the one that overlaps `bounds`, if any."""
        spans = self._spans
        # Segments mostly come in order: when none starts after `bounds` ends, the last is the one, without a search.
        if spans and spans[-1][0] <= bounds.end:
            candidate = spans[-1]
        else:
            before = bisect.bisect_right(spans, (bounds.end, tr.INT64_MAX, ""))
            if not before:
                return None
            candidate = spans[before - 1]
        return candidate[2] if candidate[1] >= bounds.start else None

    def add(self, bounds: tr.Bounds, timerange: str) -> None:
        span = (bounds.start, bounds.end, timerange)
        if not self._spans or self._spans[-1] <= span:
            self._spans.append(span)  # in order, as segments mostly come
        else:
            bisect.insort(self._spans, span)


class _Batch:
    """The segments of one write, each checked against what is stored and against those added before it."""

    def __init__(
        self,
        store: MetadataStore,
        tx: Transaction,
        flow: FlowRecord,
        objects: dict[str, ObjectRecord],
        segments: list[NewSegment],
    ) -> None:
        self.store = store
        self.tx = tx
        self.flow = flow
        self.objects = objects  # those the segments name, as the batch changes them
        self.init_in_use = store.init_objects_in_use(tx, set(objects))
        self.registration = Registration()  # what the batch adds
        self._added = _Spans([])
        self._stored = self._stored_spans(segments)

    def _stored_spans(self, segments: list[NewSegment]) -> _Spans | None:
        """The stored segments between the first start and the last end of `segments`, read at once; None when there
        are more than STORED_SPANS_PER_SEGMENT per segment (then each segment seeks the one it may overlap)."""
        if not segments:
            return None
        within = tr.Bounds(
            min(segment.bounds.start for segment in segments), max(segment.bounds.end for segment in segments)
        )
        limit = STORED_SPANS_PER_SEGMENT * len(segments)
        stored = self.store.segments_within(self.tx, self.flow, within, limit + 1)
        return _Spans(stored) if len(stored) <= limit else None

    def add(self, segment: NewSegment) -> str | None:
        """Keep the segment for writing; the reason it is refused otherwise."""
        overlap = self._overlapping(segment.bounds)
        if overlap is not None:
            return f"segment {segment.timerange} overlaps the existing segment {overlap}"
        problem = self._role_problem(segment) or self._object_problem(segment)
        if problem is not None:
            return problem
        if segment.init_object_id is not None:
            self.init_in_use.add(segment.init_object_id)
        self.registration.segments.append(segment)
        self._added.add(segment.bounds, segment.timerange)
        return None

    def _overlapping(self, bounds: tr.Bounds) -> str | None:
        """The timerange of a batch or stored segment that overlaps `bounds`, if any."""
        overlap = self._added.overlapping(bounds)
        if overlap is None:
            if self._stored is not None:
                overlap = self._stored.overlapping(bounds)
            else:
                overlap = self.store.overlapping_segment(self.tx, self.flow, bounds)
        return overlap

    def _role_problem(self, segment: NewSegment) -> str | None:
        """Media objects and init objects keep their roles, and an init object must be known here."""
        if segment.object_id in self.init_in_use:
            return f"object {segment.object_id} is an init object; it cannot be the media object of a segment"
        if segment.init_object_id is None:
            return None
        init = self.objects.get(segment.init_object_id)
        if init is None:
            return (
                f"init object {segment.init_object_id} is unknown: allocate it with POST /flows/{self.flow.id}/storage"
            )
        if init.registered:
            return f"object {segment.init_object_id} is the media object of a segment; it cannot be an init object"
        return None

    def _object_problem(self, segment: NewSegment) -> str | None:
        """A new object needs get_urls, an allocated one must be this flow's, a re-used one keeps its properties;
        the first segment of an object describes it."""
        stored = self.objects.get(segment.object_id)
        if stored is None:
            if not segment.get_urls:
                return (
                    f"object {segment.object_id} is unknown: allocate it with POST /flows/{self.flow.id}/storage, "
                    "or give get_urls for an object held elsewhere"
                )
            stored = self.objects[segment.object_id] = ObjectRecord(segment.object_id, registered=False)
            self.registration.created.append(stored)
        elif stored.registered:
            return reuse_problem(segment, stored)
        elif stored.allocated_for != self.flow.id:
            return f"object {segment.object_id} was allocated for flow {stored.allocated_for}, not for this flow"
        else:
            self.registration.registered.append(stored)
        stored.registered = True
        stored.first_flow_id = self.flow.id
        stored.timerange = segment.object_timerange
        stored.key_frame_count = segment.key_frame_count
        stored.init_object_id = segment.init_object_id
        stored.uncontrolled_urls = segment.get_urls or None
        return None


def reuse_problem(segment: NewSegment, stored: ObjectRecord) -> str | None:
    """A re-used object keeps its properties, and the segment must lie within it."""
    if (
        segment.explicit_object_timerange
        and stored.timerange is not None
        and tr.parse_bounds(segment.object_timerange) != tr.parse_bounds(stored.timerange)
    ):
        return f"object_timerange {segment.object_timerange} conflicts with the object's {stored.timerange}"
    if segment.key_frame_count is not None and segment.key_frame_count != stored.key_frame_count:
        return "key_frame_count conflicts with the re-used object's"
    if segment.init_object_id is not None and segment.init_object_id != stored.init_object_id:
        return "init_object_id conflicts with the re-used object's"
    if stored.timerange is not None and not tr.parse_bounds(stored.timerange).covers(segment.on_object_timeline):
        return (
            f"segment {segment.timerange} (offset by ts_offset) is not within the re-used object's "
            f"timerange {stored.timerange}"
        )
    return None
