"""Segments: the windowed scan of a flow's segments, storing them, listing them, their flow's timerange, and
deleting those a range covers."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from ... import timerange as tr
from ...clock import Instant, now
from ...model import Page, SegmentPage, SegmentQuery
from ...paging import decode_segment_key
from ...segment_rows import SegmentRow
from ..metadata import DeletedSegments, FlowRecord, ObjectRecord, Registration
from ..shared import segment_page
from .rows import TABLE_DEFAULTS, _all, _delete, _insert, _select, _select_in, _update
from .session import Transactions, _guard, _Tx


def _segment_row(segment: dict[str, Any], stored: dict[str, Any]) -> SegmentRow:
    """A listing's row from a segment's row and its object's, columns as they are stored."""
    return SegmentRow(
        start_ns=segment["start_ns"],
        timerange=segment["timerange"],
        ts_offset=segment["ts_offset"],
        last_duration=segment["last_duration"],
        sample_offset=segment["sample_offset"],
        sample_count=segment["sample_count"],
        object_timerange=stored["timerange"],
        key_frame_count=stored["key_frame_count"],
        init_object_id=stored["init_object_id"],
        object_id=stored["id"],
        storage_ids=stored["storage_ids"],
        uncontrolled_urls=stored["uncontrolled_urls"],
    )


def _registration(record: ObjectRecord) -> dict[str, Any]:
    """The columns of an object that registering a segment writes."""
    return {
        "registered": True,
        "first_flow_id": record.first_flow_id,
        "timerange": record.timerange,
        "key_frame_count": record.key_frame_count,
        "init_object_id": record.init_object_id,
        "uncontrolled_urls": record.urls_column(),
    }


class SegmentsMixin(Transactions):
    """Segments of flows, selected by start in windows that the flow's longest segment bounds."""

    @staticmethod
    def _scan(
        t: _Tx,
        flow: dict[str, Any],
        lo: int,
        hi: int,
        want: int | None,
        reverse: bool = False,
        keep: Callable[[dict[str, Any]], bool] = lambda row: True,
        object_id: str | None = None,
        columns: Sequence[str] | None = None,
        row_ids: bool = False,
    ) -> list[dict[str, Any]]:
        """Up to `want` (None: all) segments of a flow with lo <= start_ns <= hi that `keep` accepts, by start
        (latest first when `reverse`). Fetched in slices from the near end, each twice as wide as the last, so
        a page near one end of a long flow reads about a page of rows."""
        if flow["seg_start_ns"] is None:
            return []
        lo, hi = max(lo, flow["seg_start_ns"]), min(hi, flow["seg_end_ns"])
        segments = t["segments"]

        def fetched(start: int, end: int, limit: int = 0) -> list[dict[str, Any]]:
            where = _all(
                segments["flow_id"] == flow["id"],
                segments["start_ns"].between(start, end),
                None if object_id is None else segments["object_id"] == object_id,
            )
            return _select(segments, where, columns, row_ids, limit)

        def kept(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(filter(keep, rows), key=operator.itemgetter("start_ns"), reverse=reverse)

        if object_id is not None and want is not None and lo <= hi:
            # An object has few segments in a flow: one select (its projection, segments_by_object) finds them all,
            # where slices would take a select per doubling until one reaches them. Only fewer than `limit_rows`
            # rows are surely all of them (with as many, they are an arbitrary subset): else slice as below.
            rows = fetched(lo, hi, want)
            if len(rows) < want:
                return kept(rows)
        width = max(flow["max_segment_ns"] or 0, 1) * ((want or 0) + 1)
        found: list[dict[str, Any]] = []
        while lo <= hi and (want is None or len(found) < want):
            if want is None:
                start, end = lo, hi
            elif reverse:
                start, end = max(lo, hi - width + 1), hi
            else:
                start, end = lo, min(hi, lo + width - 1)
            found += kept(fetched(start, end))
            if reverse:
                hi = start - 1
            else:
                lo = end + 1
            width *= 2
        return found if want is None else found[:want]

    def _window(self, t: _Tx, flow: dict[str, Any], within: tr.Bounds) -> tuple[int, int]:
        """Start bounds of the segments that can overlap `within`."""
        return max(tr.INT64_MIN, within.start - (flow["max_segment_ns"] or 0)), within.end

    def flow_timerange(self, t: _Tx, flow: FlowRecord, within: tr.Bounds) -> str:
        if within.is_empty:
            return "()"
        lo, hi = self._window(t, flow.key, within)
        columns = ["start_ns", "end_ns", "timerange"]

        def overlapping(row: dict[str, Any]) -> bool:
            return row["end_ns"] >= within.start

        first = self._scan(t, flow.key, lo, hi, 1, False, overlapping, columns=columns)
        last = self._scan(t, flow.key, lo, hi, 1, True, overlapping, columns=columns)
        return tr.span(first[0]["timerange"], last[0]["timerange"]) if first else "()"

    def overlapping_segment(self, t: _Tx, flow: FlowRecord, bounds: tr.Bounds) -> str | None:
        stored = flow.key
        if stored["seg_start_ns"] is None or bounds.end < stored["seg_start_ns"] or bounds.start > stored["seg_end_ns"]:
            return None
        lo, hi = self._window(t, stored, bounds)
        found = self._scan(
            t,
            stored,
            lo,
            hi,
            1,
            True,
            lambda row: row["end_ns"] >= bounds.start,
            columns=["start_ns", "end_ns", "timerange"],
        )
        return found[0]["timerange"] if found else None

    def segments_within(self, t: _Tx, flow: FlowRecord, within: tr.Bounds, limit: int) -> list[tuple[int, int, str]]:
        # A range past the flow's ends (appending to it) reads nothing; else slices from its start, as listings do.
        lo, hi = self._window(t, flow.key, within)
        rows = self._scan(
            t,
            flow.key,
            lo,
            hi,
            limit,
            keep=lambda row: row["end_ns"] >= within.start,
            columns=["start_ns", "end_ns", "timerange"],
        )
        return [(row["start_ns"], row["end_ns"], row["timerange"]) for row in rows]

    def insert_segments(self, t: _Tx, flow: FlowRecord, registration: Registration, stamp: Instant) -> None:
        """Updating the flow row makes two writes of segments to one flow conflict, so that the overlap checks of
        one see the other's segments (after a retry)."""
        segments, created, registered = registration.segments, registration.created, registration.registered
        if created:
            _guard(t, *(f"object {record.id}" for record in created))
        new_rows = [{**TABLE_DEFAULTS["objects"], "id": record.id, **_registration(record)} for record in created]
        _insert(t["objects"], "objects", new_rows)
        registered_rows = [{**record.key, **_registration(record)} for record in registered]
        _update(t["objects"], "objects", registered_rows, list(_registration(ObjectRecord("", True))))
        rows = [
            {
                "flow_id": flow.id,
                "start_ns": segment.bounds.start,
                "end_ns": segment.bounds.end,
                "timerange": segment.timerange,
                "object_id": segment.object_id,
                "ts_offset": segment.ts_offset,
                "last_duration": segment.last_duration,
                "sample_offset": segment.sample_offset,
                "sample_count": segment.sample_count,
            }
            for segment in segments
        ]
        _insert(t["segments"], "segments", rows)
        row = flow.key
        lowest = min(segment.bounds.start for segment in segments)
        highest = max(segment.bounds.end for segment in segments)
        longest = max(segment.bounds.end - segment.bounds.start for segment in segments)
        row.update(
            segments_updated=stamp.text,
            seg_start_ns=lowest if row["seg_start_ns"] is None else min(row["seg_start_ns"], lowest),
            seg_end_ns=highest if row["seg_end_ns"] is None else max(row["seg_end_ns"], highest),
            max_segment_ns=min(tr.INT64_MAX, max(row["max_segment_ns"] or 0, longest)),
        )
        _update(t["flows"], "flows", [row], ["segments_updated", "seg_start_ns", "seg_end_ns", "max_segment_ns"])

    def list_segments(self, flow_id: str, query: SegmentQuery) -> SegmentPage:
        window = query.window
        if window.is_empty:
            return SegmentPage(Page([], None, query.page.limit), None)
        with self._read() as t:
            flow = self._flow_row(t, flow_id)
            if flow is None:
                return SegmentPage(Page([], None, query.page.limit), None)
            lo, hi = self._window(t, flow, window)
            if query.page.key is not None:
                after = decode_segment_key(query.page.key)
                if query.page.reverse:
                    hi = min(hi, after - 1)
                else:
                    lo = max(lo, after + 1)
            rows = self._scan(
                t,
                flow,
                lo,
                hi,
                query.page.limit + 1,
                query.page.reverse,
                lambda row: row["end_ns"] >= window.start,
                query.object_id,
            )
            page_rows = rows[: query.page.limit]
            objects = {
                row["id"]: row for row in _select_in(t["objects"], "id", [row["object_id"] for row in page_rows])
            }
        segments = [_segment_row(row, objects[row["object_id"]]) for row in page_rows]
        more = len(rows) > query.page.limit
        return segment_page(segments, rows[query.page.limit - 1]["start_ns"] if more else None, query.page)

    @staticmethod
    def more_covered_than(t: _Tx, flow: FlowRecord, within: tr.Bounds, limit: int) -> bool:
        segments = t["segments"]
        where = _all(
            segments["flow_id"] == flow.id,
            segments["start_ns"].between(within.start, within.end),
            segments["end_ns"] <= within.end,
        )
        # `limit_rows` is an arbitrary subset: enough to tell "more than `limit`".
        return len(_select(segments, where, ["start_ns"], limit=limit + 1)) > limit

    def delete_covered(
        self, t: _Tx, flow: FlowRecord, within: tr.Bounds, object_id: str | None, limit: int | None
    ) -> DeletedSegments:
        row = flow.key
        rows = self._scan(
            t,
            row,
            within.start,
            within.end,
            limit,
            keep=lambda segment: segment["end_ns"] <= within.end,
            object_id=object_id,
            columns=["start_ns", "end_ns", "timerange", "object_id"],
            row_ids=True,
        )
        if not rows:
            return DeletedSegments()
        _delete(t["segments"], rows)
        first = self._scan(t, row, tr.INT64_MIN, tr.INT64_MAX, 1, columns=["start_ns", "end_ns"])
        last = self._scan(t, row, tr.INT64_MIN, tr.INT64_MAX, 1, reverse=True, columns=["start_ns", "end_ns"])
        row.update(
            segments_updated=now().text,
            seg_start_ns=first[0]["start_ns"] if first else None,
            seg_end_ns=last[0]["end_ns"] if last else None,
        )
        _update(t["flows"], "flows", [row], ["segments_updated", "seg_start_ns", "seg_end_ns"])
        released = self._release_unreferenced(t, sorted({segment["object_id"] for segment in rows}))
        return DeletedSegments(released, tr.span(rows[0]["timerange"], rows[-1]["timerange"]), rows[-1]["start_ns"])
