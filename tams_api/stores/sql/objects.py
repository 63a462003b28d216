"""Media objects in the SQL store: their records, those allocated, the flows using one, and their instances."""

from __future__ import annotations

from ...clock import Instant
from ...model import Page, PageRequest, ReleasedMedia, TagFilter
from ...paging import decode_key, encode_key
from ...segment_rows import storage_ids_column, storage_ids_from_column, uncontrolled_urls_from_column
from ..metadata import FlowRecord, ObjectRecord
from .connection import Db, SqlConnections
from .rows import _live, _rows_in

_OBJECT_COLUMNS = (
    "id, registered, allocated_for, timerange, key_frame_count, init_object_id, uncontrolled_urls, storage_ids, "
    "first_flow_id"
)


def _object_record(
    object_id: str,
    registered: int,
    allocated_for: str | None,
    timerange: str | None,
    key_frame_count: int | None,
    init_object_id: str | None,
    urls: str | None,
    storage_ids: str | None,
    first_flow_id: str | None,
) -> ObjectRecord:
    """An object's record from its _OBJECT_COLUMNS."""
    return ObjectRecord(
        object_id,
        bool(registered),
        allocated_for,
        timerange,
        key_frame_count,
        init_object_id,
        uncontrolled_urls_from_column(urls) or None,
        storage_ids_from_column(storage_ids),
        first_flow_id,
    )


class ObjectsMixin(SqlConnections):
    """Media objects: allocated for a flow, in use once a segment uses them, with their instances."""

    @staticmethod
    def insert_allocated(
        db: Db,
        flow: FlowRecord,
        storage_id: str,
        content_type: str,
        object_ids: list[str],
        stamp: Instant,
    ) -> None:
        db.executemany(
            "INSERT INTO objects (id, storage_ids, content_type, allocated_for, allocated_ns) VALUES (?, ?, ?, ?, ?)",
            [
                (object_id, storage_ids_column([storage_id]), content_type, flow.id, stamp.ns)
                for object_id in object_ids
            ],
        )

    # Objects exist for clients once a segment of a flow that is not soft-deleted uses them, as its media object
    # or as its init object.
    _IN_USE = (
        f"(EXISTS (SELECT 1 FROM segments s JOIN flows f ON f.pk = s.flow_pk WHERE s.object_id = o.id "
        f"AND {_live('f.id')}) OR EXISTS (SELECT 1 FROM objects u JOIN segments s ON s.object_id = u.id "
        f"JOIN flows f ON f.pk = s.flow_pk WHERE u.init_object_id = o.id AND {_live('f.id')}))"
    )

    def object_flows(self, db: Db, object_id: str, page: PageRequest, flow_tags: TagFilter) -> Page[str] | None:
        if db.execute(f"SELECT 1 FROM objects o WHERE id = ? AND {self._IN_USE}", (object_id,)).fetchone() is None:
            return None
        conditions, params = self._tag_conditions("flow", "f.id", flow_tags)
        conditions.append(_live("f.id"))
        # Flows whose segments use the object, as their media object or as their init object.
        conditions.insert(
            0,
            "f.pk IN (SELECT flow_pk FROM segments WHERE object_id = ? UNION "
            "SELECT s.flow_pk FROM segments s JOIN objects u ON u.id = s.object_id WHERE u.init_object_id = ?)",
        )
        params[:0] = [object_id, object_id]
        if page.key is not None:
            conditions.append("f.id < ?" if page.reverse else "f.id > ?")
            params.append(decode_key(page.key, 1, ("",))[0])
        direction = "DESC" if page.reverse else "ASC"
        flow_ids = [
            flow_id
            for (flow_id,) in db.execute(
                f"SELECT f.id FROM flows f WHERE {' AND '.join(conditions)} ORDER BY f.id {direction} LIMIT ?",
                (*params, page.limit + 1),
            )
        ]
        next_key = encode_key([flow_ids[page.limit - 1]]) if len(flow_ids) > page.limit else None
        return Page(flow_ids[: page.limit], next_key, page.limit)

    @staticmethod
    def object_records(db: Db, object_ids: set[str]) -> dict[str, ObjectRecord]:
        records: dict[str, ObjectRecord] = {}
        if len(object_ids) > 1:
            # Objects allocated together have neighbouring ids (UUIDv7: time first), so one range of the key holds them
            # all and reads them in about half the time of a seek each. Rows of other objects in the range are read
            # only up to a budget; what the range did not give (ids from elsewhere, or a collation whose order is
            # not Python's) is then sought id by id.
            others = len(object_ids) // 8 + 8
            rows = db.execute(
                f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
                (min(object_ids), max(object_ids), len(object_ids) + others),
            )
            for row in rows:
                if row[0] in object_ids:
                    records[row[0]] = _object_record(*row)
                elif (others := others - 1) < 0:
                    break
        missing = object_ids - records.keys() if records else object_ids
        if missing:
            rows = _rows_in(db, f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE id IN ({{values}})", missing)
            records.update((row[0], _object_record(*row)) for row in rows)
        return records

    @staticmethod
    def init_objects_in_use(db: Db, object_ids: set[str]) -> set[str]:
        sql = "SELECT DISTINCT init_object_id FROM objects WHERE init_object_id IN ({values})"
        return {object_id for (object_id,) in _rows_in(db, sql, object_ids)}

    def save_instances(self, db: Db, record: ObjectRecord, released: list[ReleasedMedia]) -> None:
        db.execute(
            "UPDATE objects SET storage_ids = ?, uncontrolled_urls = ? WHERE id = ?",
            (storage_ids_column(record.storage_ids), record.urls_column(), record.id),
        )
        for item in released:
            self._queue_release(db, item.object_id, [item.storage_id])
