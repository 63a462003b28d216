"""Pure helpers both metadata stores use: flow columns, rows of profiles and delete requests, analytics."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .. import timerange as tr
from ..model import DeleteRequest, FormatCount, Profile, TagValue, TimerangeAnalysis, uses_init_segments


def storage_ids_from_column(value: str | None) -> list[str]:
    """An object's controlled instances from their column: storage ids (UUIDs: no commas) joined by commas."""
    return value.split(",") if value else []


def storage_ids_column(storage_ids: Sequence[str]) -> str | None:
    return ",".join(storage_ids) or None


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
