"""Pure helpers both metadata stores use: flow columns, rows of profiles and delete requests, analytics."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .. import timerange as tr
from ..clock import Instant
from ..model import (
    DeleteRequest,
    FormatCount,
    Page,
    PageRequest,
    Profile,
    SegmentPage,
    TagValue,
    TimerangeAnalysis,
    Webhook,
    uses_init_segments,
)
from ..paging import encode_key
from ..segment_rows import SegmentRow, storage_ids_from_column
from .metadata import FlowRecord, SourceRecord


def tag_values(value: TagValue) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def flow_columns(fmt: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The flow properties stores index for listing filters."""
    essence = metadata.get("essence_parameters") or {}
    columns = {
        "format": fmt,
        "codec": metadata.get("codec"),
        "label": metadata.get("label"),
        "profile_id": metadata.get("profile_id"),
        "status": metadata.get("status"),
        "frame_width": essence.get("frame_width"),
        "frame_height": essence.get("frame_height"),
        "init_segments": int(uses_init_segments(metadata)),
        "read_only": int(bool(metadata.get("read_only", False))),
    }
    return columns


def profile_from_row(row: Sequence[Any]) -> Profile:
    """(id, created, document)"""
    profile_id, created, document = row
    details = json.loads(document)
    return Profile(id=profile_id, flow_metadata=details.pop("flow_metadata"), created=created, details=details)


def profile_document(profile: Profile) -> str:
    return json.dumps({**profile.details, "flow_metadata": profile.flow_metadata})


REQUEST_COLUMNS = (
    "id",
    "flow_id",
    "to_delete",
    "remaining",
    "delete_flow",
    "status",
    "created",
    "created_by",
    "updated",
    "expiry",
    "error",
)


def delete_request_from_row(row: Sequence[Any]) -> DeleteRequest:
    """A delete request from its `REQUEST_COLUMNS`."""
    request_id, flow_id, to_delete, remaining, delete_flow, status, created, created_by, updated, expiry, error = row
    return DeleteRequest(
        id=request_id,
        flow_id=flow_id,
        timerange_to_delete=to_delete,
        timerange_remaining=remaining,
        delete_flow=bool(delete_flow),
        status=status,
        created=created,
        created_by=created_by,
        updated=updated,
        expiry=expiry,
        error=json.loads(error) if error else None,
    )


def format_counts(counts: Iterable[tuple[str | None, int]]) -> list[FormatCount]:
    """Counts of flows per value, most common first, then by value (flows without one last)."""
    return [
        FormatCount(value, count)
        for value, count in sorted(counts, key=lambda item: (-item[1], item[0] is None, item[0] or ""))
    ]


def instances_by_storage_id(counts: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    """Controlled instances per storage backend, from object counts per `storage_ids` column value (a handful
    of distinct values: most objects live on one backend)."""
    totals: dict[str, int] = {}
    for column, count in counts:
        for storage_id in storage_ids_from_column(column):
            totals[storage_id] = totals.get(storage_id, 0) + count
    return dict(sorted(totals.items()))


def timerange_analysis(
    flow_ids: list[str],
    durations: tuple[int, int | None, int | None, float | None],
    first_start: int | None,
    last_end: int | None,
    gaps: list[tuple[int, int]],
    gap_totals: tuple[int, int],
) -> TimerangeAnalysis:
    """The analysis from what a store aggregated: (count, min, max, mean) of segment durations, the first start
    and last end, the first gaps (closed bounds) and (count, nanoseconds) of all gaps."""
    count, shortest, longest, mean = durations
    gap_count, gap_ns = gap_totals
    if first_start is None or last_end is None:
        return TimerangeAnalysis(flow_ids, "()", 0, 0, None, None, None, 0, 0, [])
    return TimerangeAnalysis(
        flow_ids=flow_ids,
        timerange=_half_open(first_start, last_end),
        segment_count=count,
        duration_ns=last_end - first_start + 1 - gap_ns,
        min_segment_ns=shortest,
        max_segment_ns=longest,
        mean_segment_ns=mean,
        gap_count=gap_count,
        gap_ns=gap_ns,
        gaps=[_half_open(start, end) for start, end in gaps],
    )


def _half_open(start: int, end: int) -> str:
    """Closed nanosecond bounds as the `[start_end)` TimeRange clients usually write."""
    return f"[{tr.format_timestamp(start)}_{tr.format_timestamp(end + 1)})"


# -- The columns a save writes, the same in every store --------------------------------------------------------------


def creation(record_id: str, stamp: Instant) -> dict[str, Any]:
    """The columns of a new row of a record kept with its creation time."""
    return {"id": record_id, "created": stamp.text, "created_ns": stamp.ns}


def flow_values(flow: FlowRecord, stamp: Instant) -> dict[str, Any]:
    return {
        "source_id": flow.source_id,
        **flow_columns(flow.metadata["format"], flow.metadata),
        "metadata": json.dumps(flow.metadata),
        "metadata_updated": stamp.text,
        "metadata_updated_ns": stamp.ns,
    }


def source_values(source: SourceRecord, stamp: Instant) -> dict[str, Any]:
    return {
        "format": source.format,
        "label": source.label,
        "description": source.description,
        "created_by": source.created_by,
        "updated_by": source.updated_by,
        "updated": stamp.text,
        "updated_ns": stamp.ns,
    }


def delete_request_values(request: DeleteRequest, stamp: Instant, expiry: Instant | None) -> dict[str, Any]:
    """What a step of the request changes."""
    return {
        "remaining": request.timerange_remaining,
        "status": request.status,
        "updated": stamp.text,
        "expiry": expiry.text if expiry else None,
        "expiry_ns": expiry.ns if expiry else None,
        "error": json.dumps(request.error) if request.error else None,
    }


def new_delete_request(request: DeleteRequest, stamp: Instant) -> dict[str, Any]:
    """What a request is created with, besides its first step's values."""
    return {
        **creation(request.id, stamp),
        "flow_id": request.flow_id,
        "to_delete": request.timerange_to_delete,
        "delete_flow": request.delete_flow,
        "created_by": request.created_by,
    }


def segment_page(segments: list[SegmentRow], next_after: int | None, page: PageRequest) -> SegmentPage:
    """A page of a flow's segments with the span of their timeranges; `next_after`: the start the next page's
    segments come after (None on the last page)."""
    span = None
    if segments:
        earliest, latest = (segments[-1], segments[0]) if page.reverse else (segments[0], segments[-1])
        span = tr.span(earliest.timerange, latest.timerange)
    next_key = encode_key([next_after]) if next_after is not None else None
    return SegmentPage(Page(segments, next_key, page.limit), span)


def webhook_values(webhook: Webhook) -> dict[str, Any]:
    """A webhook's row: what filters and delivery look at in columns of their own, the rest in a document."""
    document = {
        "events": webhook.events,
        "api_key_name": webhook.api_key_name,
        "api_key_value": webhook.api_key_value,
        "options": webhook.options,
    }
    return {
        "id": webhook.id,
        "url": webhook.url,
        "status": webhook.status,
        "owner": webhook.owner,
        "document": json.dumps(document),
        "error": json.dumps(webhook.error) if webhook.error else None,
        "cursor": webhook.cursor,
    }
