"""Segments in the SQL store: stored, listed by window, deleted by range.

Segments live in a WITHOUT ROWID table clustered on (flow_pk, start_ns). Because segments of a flow
never overlap, the segment with the greatest start at or before a point also has the greatest end, so
overlap checks and window queries are index seeks whatever the flow's size.
"""

from __future__ import annotations

import functools
from typing import Any

from ... import timerange as tr
from ...clock import Instant, now
from ...model import Page, PageRequest, SegmentPage, SegmentQuery
from ...paging import decode_segment_key
from ...segment_rows import SegmentRow
from ..metadata import DeletedSegments, FlowRecord, ObjectRecord, Registration
from ..shared import segment_page
from .connection import Db, SqlConnections
from .rows import _live

# A SegmentRow's columns, in its order.
_SEGMENT_ROW_COLUMNS = (
    "s.start_ns, s.timerange, s.ts_offset, s.last_duration, s.sample_offset, s.sample_count, "
    "o.timerange, o.key_frame_count, o.init_object_id, o.id, o.storage_ids, o.uncontrolled_urls"
)
# The database's row as a SegmentRow, in C (no NamedTuple.__new__ or _make in Python per row).
_segment_row = functools.partial(tuple.__new__, SegmentRow)


# The flow's key and the lowest start a segment overlapping the window can have, within the listing's statement
# (its own snapshot): the start of the segment straddling the window start, if any (only the segment just before
# the start can reach into the window), else the window start.
_FLOW_PK = f"(SELECT pk FROM flows WHERE id = :flow_id AND {_live('id')})"
_WINDOW_LOWEST_START = (
    f"COALESCE((SELECT CASE WHEN p.end_ns >= :start THEN p.start_ns ELSE :start END FROM segments p "
    f"WHERE p.flow_pk = {_FLOW_PK} AND p.start_ns < :start ORDER BY p.start_ns DESC LIMIT 1), :start)"
)


def _registration(record: ObjectRecord) -> tuple[Any, ...]:
    """What registering a segment wrote of its object, in the order of `insert_segments`' statements."""
    return (
        record.first_flow_id,
        record.timerange,
        record.key_frame_count,
        record.init_object_id,
        record.urls_column(),
        record.id,
    )


class SegmentsMixin(SqlConnections):
    """Segments of flows: stored, listed by window, deleted by range."""

    @staticmethod
    def _preceding(db: Db, flow_pk: int, at_or_before: int) -> tuple | None:
        """(start_ns, end_ns, timerange) of the segment with the greatest start <= the given point."""
        return db.execute(
            "SELECT start_ns, end_ns, timerange FROM segments WHERE flow_pk = ? AND start_ns <= ? "
            "ORDER BY start_ns DESC LIMIT 1",
            (flow_pk, at_or_before),
        ).fetchone()

    def flow_timerange(self, db: Db, flow: FlowRecord, within: tr.Bounds) -> str:
        first, last = self._overlapping_ends(db, flow.key, within)
        return tr.span(first, last) if first else "()"

    def _overlapping_ends(self, db: Db, flow_pk: int, within: tr.Bounds) -> tuple[str, str] | tuple[None, None]:
        """Timeranges of the first and last segments that overlap `within`."""
        if within.is_empty:
            return None, None
        last = self._preceding(db, flow_pk, within.end)
        if last is None or last[1] < within.start:
            return None, None
        first = self._preceding(db, flow_pk, within.start - 1) if within.start > tr.INT64_MIN else None
        if first is None or first[1] < within.start:
            first = db.execute(
                "SELECT start_ns, end_ns, timerange FROM segments WHERE flow_pk = ? AND start_ns >= ? "
                "ORDER BY start_ns LIMIT 1",
                (flow_pk, within.start),
            ).fetchone()
        return first[2], last[2]

    def overlapping_segment(self, db: Db, flow: FlowRecord, bounds: tr.Bounds) -> str | None:
        before = self._preceding(db, flow.key, bounds.end)
        return before[2] if before is not None and before[1] >= bounds.start else None

    @staticmethod
    def segments_within(db: Db, flow: FlowRecord, within: tr.Bounds, limit: int) -> list[tuple[int, int, str]]:
        # From the start of the segment just before `within` (only it can reach into it from before): one seek, then
        # the range in key order.
        rows = db.execute(
            "SELECT start_ns, end_ns, timerange FROM segments WHERE flow_pk = :flow_pk AND start_ns >= COALESCE("
            "(SELECT p.start_ns FROM segments p WHERE p.flow_pk = :flow_pk AND p.start_ns < :start "
            "ORDER BY p.start_ns DESC LIMIT 1), :start) AND start_ns <= :end AND end_ns >= :start "
            "ORDER BY start_ns LIMIT :limit",
            {"flow_pk": flow.key, "start": within.start, "end": within.end, "limit": limit},
        )
        return [(start, end, timerange) for start, end, timerange in rows]

    def insert_segments(self, db: Db, flow: FlowRecord, registration: Registration, stamp: Instant) -> None:
        segments, created, registered = registration.segments, registration.created, registration.registered
        if created:
            db.executemany(
                "INSERT INTO objects (registered, first_flow_id, timerange, key_frame_count, init_object_id, "
                "uncontrolled_urls, id) VALUES (1, ?, ?, ?, ?, ?, ?)",
                map(_registration, created),
            )
        if registered:
            self._register_allocated(db, registered)
        # Most segments give none of the optional columns: a statement without them binds half the values.
        flow_pk = flow.key
        bare: list[tuple[Any, ...]] = []
        full: list[tuple[Any, ...]] = []
        for segment in segments:
            bounds = segment.bounds
            if (
                segment.ts_offset is None
                and segment.last_duration is None
                and segment.sample_offset is None
                and segment.sample_count is None
            ):
                bare.append((flow_pk, bounds.start, bounds.end, segment.timerange, segment.object_id))
            else:
                full.append(
                    (
                        flow_pk,
                        bounds.start,
                        bounds.end,
                        segment.timerange,
                        segment.object_id,
                        segment.ts_offset,
                        segment.last_duration,
                        segment.sample_offset,
                        segment.sample_count,
                    )
                )
        if bare:
            db.executemany(
                "INSERT INTO segments (flow_pk, start_ns, end_ns, timerange, object_id) VALUES (?, ?, ?, ?, ?)", bare
            )
        if full:
            db.executemany(
                "INSERT INTO segments (flow_pk, start_ns, end_ns, timerange, object_id, ts_offset, last_duration, "
                "sample_offset, sample_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                full,
            )
        start = self.dialect.least("COALESCE(seg_start_ns, :start)", ":start")
        end = self.dialect.greatest("COALESCE(seg_end_ns, :end)", ":end")
        db.execute(
            f"UPDATE flows SET segments_updated = :stamp, seg_start_ns = {start}, seg_end_ns = {end} "
            "WHERE pk = :flow_pk",
            {
                "start": min(segment.bounds.start for segment in segments),
                "end": max(segment.bounds.end for segment in segments),
                "flow_pk": flow.key,
                "stamp": stamp.text,
            },
        )

    @staticmethod
    def _register_allocated(db: Db, records: list[ObjectRecord]) -> None:
        """Allocated objects as registered by their first segment."""
        # Most first segments set none of key_frame_count, init_object_id and uncontrolled_urls: an UPDATE that leaves
        # those columns alone costs SQLite a quarter less (init_object_id is indexed). It changes only rows where they
        # are NULL, as in any object not yet registered; should one not be, every record takes the full UPDATE.
        bare: list[ObjectRecord] = []
        others: list[ObjectRecord] = []
        for record in records:
            if record.key_frame_count is None and record.init_object_id is None and not record.uncontrolled_urls:
                bare.append(record)
            else:
                others.append(record)
        if bare:
            changed = db.executemany(
                "UPDATE objects SET registered = 1, first_flow_id = ?, timerange = ? WHERE id = ? "
                "AND key_frame_count IS NULL AND init_object_id IS NULL AND uncontrolled_urls IS NULL",
                [(record.first_flow_id, record.timerange, record.id) for record in bare],
            ).rowcount
            if changed == len(bare):
                records = others
        if records:
            db.executemany(
                "UPDATE objects SET registered = 1, first_flow_id = ?, timerange = ?, key_frame_count = ?, "
                "init_object_id = ?, uncontrolled_urls = ? WHERE id = ?",
                map(_registration, records),
            )

    def list_segments(self, flow_id: str, query: SegmentQuery) -> SegmentPage:
        window = query.window
        if window.is_empty:
            return SegmentPage(Page([], None, query.page.limit), None)
        starts = self._segment_starts(query.page, window)
        if starts is None:
            return SegmentPage(Page([], None, query.page.limit), None)
        lowest, highest, params = starts
        params.update(flow_id=flow_id, start=window.start, end=window.end, limit=query.page.limit + 1)
        conditions = [f"s.flow_pk = {_FLOW_PK}", f"s.start_ns >= {lowest}", f"s.start_ns <= {highest}"]
        segments_table = "segments s"
        if query.object_id is not None:
            segments_table = self.dialect.segments_of_object
            conditions.append("s.object_id = :object_id")
            params["object_id"] = query.object_id
        direction = "DESC" if query.page.reverse else "ASC"
        rows = self._query(
            f"SELECT {_SEGMENT_ROW_COLUMNS} FROM {segments_table} JOIN objects o ON o.id = s.object_id "
            f"WHERE {' AND '.join(conditions)} ORDER BY s.start_ns {direction} LIMIT :limit",
            params,
        )
        return segment_page(
            list(map(_segment_row, rows[: query.page.limit])),
            rows[query.page.limit - 1][0] if len(rows) > query.page.limit else None,
            query.page,
        )

    def _segment_starts(self, page: PageRequest, window: tr.Bounds) -> tuple[str, str, dict[str, Any]] | None:
        """SQL for the lowest and highest start of a page's segments, with their parameters; None when no start is
        left past the page key. The key is folded into one of them: given two bounds on one side, SQLite seeks on
        one and filters by the other, and seeking on the window's made a page deep into a flow read every segment
        before it."""
        if page.key is None:
            return _WINDOW_LOWEST_START, ":end", {}
        after = decode_segment_key(page.key)
        if page.reverse:
            if after == tr.INT64_MIN:
                return None
            return _WINDOW_LOWEST_START, ":below", {"below": min(window.end, after - 1)}
        if after == tr.INT64_MAX:
            return None
        return self.dialect.greatest(_WINDOW_LOWEST_START, ":above"), ":end", {"above": after + 1}

    @staticmethod
    def _covered(within: tr.Bounds, object_id: str | None) -> tuple[str, list[Any]]:
        """Segments of a flow completely covered by a range (and of one object)."""
        where = "flow_pk = ? AND start_ns >= ? AND start_ns <= ? AND end_ns <= ?"
        params: list[Any] = [within.start, within.end, within.end]
        if object_id is not None:
            where += " AND object_id = ?"
            params.append(object_id)
        return where, params

    def more_covered_than(self, db: Db, flow: FlowRecord, within: tr.Bounds, limit: int) -> bool:
        where, params = self._covered(within, None)
        found = db.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM segments WHERE {where} LIMIT ?) AS covered",
            (flow.key, *params, limit + 1),
        ).fetchone()[0]
        return found > limit

    def delete_covered(
        self, db: Db, flow: FlowRecord, within: tr.Bounds, object_id: str | None, limit: int | None
    ) -> DeletedSegments:
        where, params = self._covered(within, object_id)
        flow_pk = flow.key
        rows = db.execute(
            f"SELECT start_ns, timerange, object_id FROM segments WHERE {where} ORDER BY start_ns LIMIT ?",
            (flow_pk, *params, tr.INT64_MAX if limit is None else limit),
        ).fetchall()
        if not rows:
            return DeletedSegments()
        last_start = rows[-1][0]
        db.execute(f"DELETE FROM segments WHERE {where} AND start_ns <= ?", (flow_pk, *params, last_start))
        first = db.execute(
            "SELECT start_ns FROM segments WHERE flow_pk = ? ORDER BY start_ns LIMIT 1", (flow_pk,)
        ).fetchone()
        last = self._preceding(db, flow_pk, tr.INT64_MAX)
        db.execute(
            "UPDATE flows SET segments_updated = ?, seg_start_ns = ?, seg_end_ns = ? WHERE pk = ?",
            (now().text, first[0] if first else None, last[1] if last else None, flow_pk),
        )
        released = self._release_unreferenced(db, sorted({row[2] for row in rows}))
        return DeletedSegments(released, tr.span(rows[0][1], rows[-1][1]), last_start)
