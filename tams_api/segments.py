"""Rules for registering flow segments: the body's shape, what each segment means on the timeline, and the init
objects a flow with init segments asks of its media objects."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from . import timerange as tr
from .errors import BadRequest
from .model import Flow, NewSegment, SegmentFailure, StoredObject

# Same shape as the spec's schemas/flow-segment-post.json; pydantic validates a 1,000-segment body
# about 20x faster than jsonschema, and a test checks both agree.
TimeRangeText = Annotated[StrictStr, Field(pattern=tr.TIMERANGE_PATTERN.pattern)]
TimestampText = Annotated[StrictStr, Field(pattern=tr.TIMESTAMP_PATTERN.pattern)]


class GetUrl(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: StrictStr
    label: StrictStr


class SegmentPost(BaseModel):
    model_config = ConfigDict(extra="allow")
    object_id: StrictStr
    timerange: TimeRangeText
    init_object_id: StrictStr | None = None
    ts_offset: TimestampText | None = None
    object_timerange: TimeRangeText | None = None
    last_duration: TimestampText | None = None
    sample_offset: StrictInt | None = None
    sample_count: StrictInt | None = None
    key_frame_count: StrictInt | None = None
    get_urls: list[GetUrl] | None = None


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
        raise BadRequest(f"invalid segment{f' at {where}' if where else ''}: {first['msg']}") from None
    return (parsed, True) if isinstance(parsed, list) else ([parsed], False)


def new_segment(post: SegmentPost) -> NewSegment:
    """Interpret one segment, or raise BadRequest saying why it cannot be registered."""
    bounds = tr.parse_bounds(post.timerange)
    if bounds.is_empty:
        raise BadRequest(f"segment timerange {post.timerange} is empty")
    if bounds.start == tr.INT64_MIN or bounds.end == tr.INT64_MAX:
        raise BadRequest(f"segment timerange {post.timerange} must have a start and an end")
    if post.last_duration is not None and post.last_duration.startswith("-"):
        raise BadRequest("last_duration cannot be negative")
    for name in ("sample_offset", "sample_count", "key_frame_count"):
        value = getattr(post, name)
        if value is not None and not tr.INT64_MIN <= value <= tr.INT64_MAX:
            raise BadRequest(f"{name} is outside the 64-bit integer range the service stores")
    # The samples on the object's own timeline: timerange - ts_offset.
    object_timerange = post.timerange
    on_object_timeline = bounds
    if post.ts_offset is not None:
        offset = tr.timestamp_nanoseconds(post.ts_offset)
        on_object_timeline = tr.Bounds(bounds.start - offset, bounds.end - offset)
        object_timerange = str(tr.shift(tr.parse_timerange(post.timerange), tr.parse_timestamp(post.ts_offset)))
    if post.object_timerange is not None:
        if not tr.parse_bounds(post.object_timerange).covers(on_object_timeline):
            raise BadRequest(
                f"segment {post.timerange} offset by ts_offset is not within object_timerange {post.object_timerange}"
            )
        object_timerange = post.object_timerange
    urls = [url.model_dump() for url in post.get_urls] if post.get_urls is not None else None
    if urls is not None and len({url["label"] for url in urls}) != len(urls):
        raise BadRequest("get_urls labels must be unique")
    return NewSegment(
        object_id=post.object_id,
        timerange=post.timerange,
        bounds=bounds,
        object_timerange=object_timerange,
        on_object_timeline=on_object_timeline,
        explicit_object_timerange=post.object_timerange is not None,
        ts_offset=post.ts_offset,
        last_duration=post.last_duration,
        sample_offset=post.sample_offset,
        sample_count=post.sample_count,
        key_frame_count=post.key_frame_count,
        init_object_id=post.init_object_id,
        get_urls=urls,
    )


def with_init_objects(
    flow: Flow, segments: list[NewSegment], find_objects: Callable[[list[str]], dict[str, StoredObject]]
) -> tuple[list[NewSegment], list[SegmentFailure]]:
    """The segments to register, and those refused: on a flow with `init_segments` every media object MUST have
    an init object. A segment re-using an object SHOULD omit init_object_id, so one without it gets the object's
    (stored, or given by another segment of the request): the store then never registers an object without one."""
    if not flow.init_segments or all(segment.init_object_id is not None for segment in segments):
        return segments, []
    inits: dict[str, str] = {}
    for segment in segments:
        if segment.init_object_id is not None:
            inits.setdefault(segment.object_id, segment.init_object_id)
    unknown = sorted({segment.object_id for segment in segments} - inits.keys())
    for object_id, stored in find_objects(unknown).items():
        if stored.init_object_id is not None:
            inits[object_id] = stored.init_object_id
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
