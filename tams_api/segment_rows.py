"""Listed segments as the metadata stores read them, and the column encodings of an object's lists that the rows
carry (the stores write them; listings read them back)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from .timerange import parse_bounds


def storage_ids_from_column(value: str | None) -> list[str]:
    """An object's controlled instances from their column: storage ids (UUIDs: no commas) joined by commas."""
    return value.split(",") if value else []


def storage_ids_column(storage_ids: Sequence[str]) -> str | None:
    return ",".join(storage_ids) or None


def uncontrolled_urls_column(urls: list[dict[str, str]] | None) -> str | None:
    """An object's uncontrolled URLs in their column: JSON text, or nothing when there are none."""
    return json.dumps(urls) if urls else None


def uncontrolled_urls_from_column(value: str | None) -> list[dict[str, str]]:
    return json.loads(value) if value else []


# A tuple ending with an object's id and instances as its columns hold them: (..., id, storage ids joined by commas,
# uncontrolled URLs as JSON text). A SegmentRow is one; so are those three columns alone.
ObjectColumns = tuple[Any, ...]


class SegmentRow(NamedTuple):
    """A listed segment and its object, flat, as the metadata stores read them: the object's storage ids and
    uncontrolled URLs in their column encodings (above). Listings are answered from these as the database gives them
    (a Segment and a StoredObject made of each row and read back into JSON were a fifth of a window GET's own time),
    unpacked rather than read by name where it counts: a NamedTuple's fields are slower to get than a dataclass's."""

    start_ns: int
    timerange: str
    ts_offset: str | None
    last_duration: str | None
    sample_offset: int | None
    sample_count: int | None
    object_timerange: str | None
    key_frame_count: int | None
    init_object_id: str | None
    # Last: a SegmentRow is its object's ObjectColumns.
    object_id: str
    storage_ids: str | None
    uncontrolled_urls: str | None


def segment_row_from_record(record: dict[str, Any]) -> SegmentRow:
    """The row of a segment kept as a record (segment_record), as a listing would give it."""
    stored = record["object"]
    return SegmentRow(
        start_ns=parse_bounds(record["timerange"]).start,
        timerange=record["timerange"],
        ts_offset=record["ts_offset"],
        last_duration=record["last_duration"],
        sample_offset=record["sample_offset"],
        sample_count=record["sample_count"],
        object_timerange=stored["timerange"],
        key_frame_count=stored["key_frame_count"],
        init_object_id=stored["init_object_id"],
        object_id=stored["id"],
        storage_ids=storage_ids_column(stored["storage_ids"]),
        uncontrolled_urls=uncontrolled_urls_column(stored["uncontrolled_urls"]),
    )
