"""Media objects and their instances in the SQLite store: allocation, lookup, controlled and uncontrolled
instances."""

from __future__ import annotations

import json
import sqlite3

from ...clock import now
from ...errors import BadRequest, NotFound
from ...model import ObjectUsage, Page, PageRequest, ReleasedMedia, StoredObject, TagFilter
from ...paging import decode_key, encode_key
from ..metadata import ObjectRecord
from ..shared import instances_left, storage_ids_column, storage_ids_from_column
from .connection import SqliteConnections
from .rows import _live, _rows_in, _stored_object


class ObjectsMixin(SqliteConnections):
    """Media objects: allocated for a flow, in use once a segment uses them, with their instances."""

    def allocate_objects(self, flow_id: str, storage_id: str, content_type: str, object_ids: list[str]) -> None:
        stamp = now()
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            if not metadata.get("container"):
                raise BadRequest(f"flow {flow_id} has no 'container': set it before allocating storage")
            for start in range(0, len(object_ids), 500):
                chunk = object_ids[start : start + 500]
                taken = db.execute(
                    f"SELECT id FROM objects WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1", chunk
                ).fetchone()
                if taken is not None:
                    raise BadRequest(f"object_id {taken[0]} is already in use")
            if len(set(object_ids)) != len(object_ids):
                raise BadRequest("object_ids must not repeat")
            db.executemany(
                "INSERT INTO objects (id, storage_ids, content_type, allocated_for, allocated_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (object_id, storage_ids_column([storage_id]), content_type, flow_id, stamp.ns)
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

    def get_object(self, object_id: str, flows: PageRequest, flow_tags: TagFilter) -> ObjectUsage | None:
        with self._read() as db:
            row = db.execute(
                "SELECT storage_ids, timerange, key_frame_count, init_object_id, uncontrolled_urls, first_flow_id "
                f"FROM objects o WHERE id = ? AND {self._IN_USE}",
                (object_id,),
            ).fetchone()
            if row is None:
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
            if flows.key is not None:
                conditions.append("f.id < ?" if flows.reverse else "f.id > ?")
                params.append(decode_key(flows.key, 1)[0])
            direction = "DESC" if flows.reverse else "ASC"
            flow_ids = [
                flow_id
                for (flow_id,) in db.execute(
                    f"SELECT f.id FROM flows f WHERE {' AND '.join(conditions)} ORDER BY f.id {direction} LIMIT ?",
                    (*params, flows.limit + 1),
                )
            ]
        *object_columns, first_flow_id = row
        next_key = encode_key([flow_ids[flows.limit - 1]]) if len(flow_ids) > flows.limit else None
        return ObjectUsage(
            object=_stored_object(object_id, *object_columns),
            first_referenced_by_flow=first_flow_id,
            referenced_by_flows=Page(flow_ids[: flows.limit], next_key, flows.limit),
        )

    def find_objects(self, object_ids: list[str]) -> dict[str, StoredObject]:
        with self._read() as db:
            return self._stored_objects(db, object_ids)

    @staticmethod
    def _stored_objects(db: sqlite3.Connection, object_ids: list[str]) -> dict[str, StoredObject]:
        rows = _rows_in(
            db,
            "SELECT id, storage_ids, timerange, key_frame_count, init_object_id, uncontrolled_urls FROM objects "
            "WHERE id IN ({values})",
            object_ids,
        )
        return {row[0]: _stored_object(*row) for row in rows}

    @staticmethod
    def object_records(db: sqlite3.Connection, object_ids: set[str]) -> dict[str, ObjectRecord]:
        rows = _rows_in(
            db,
            "SELECT id, registered, allocated_for, timerange, key_frame_count, init_object_id, uncontrolled_urls, "
            "storage_ids, first_flow_id FROM objects WHERE id IN ({values})",
            object_ids,
        )
        return {
            row[0]: ObjectRecord(
                row[0],
                bool(row[1]),
                *row[2:6],
                json.loads(row[6]) if row[6] else None,
                storage_ids_from_column(row[7]),
                row[8],
            )
            for row in rows
        }

    @staticmethod
    def init_objects_in_use(db: sqlite3.Connection, object_ids: set[str]) -> set[str]:
        sql = "SELECT DISTINCT init_object_id FROM objects WHERE init_object_id IN ({values})"
        return {object_id for (object_id,) in _rows_in(db, sql, object_ids)}

    def _object_instances(self, db: sqlite3.Connection, object_id: str) -> tuple[list[str], list[dict[str, str]]]:
        row = db.execute(
            f"SELECT storage_ids, uncontrolled_urls FROM objects o WHERE id = ? AND {self._IN_USE}", (object_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
        return storage_ids_from_column(row[0]), json.loads(row[1]) if row[1] else []

    def _set_uncontrolled_urls(self, db: sqlite3.Connection, object_id: str, urls: list[dict[str, str]]) -> None:
        db.execute(
            "UPDATE objects SET uncontrolled_urls = ? WHERE id = ?", (json.dumps(urls) if urls else None, object_id)
        )

    def _set_storage_ids(self, db: sqlite3.Connection, object_id: str, storage_ids: list[str]) -> None:
        db.execute("UPDATE objects SET storage_ids = ? WHERE id = ?", (storage_ids_column(storage_ids), object_id))

    def add_uncontrolled_url(self, object_id: str, url: str, label: str) -> None:
        with self._write() as db:
            _, urls = self._object_instances(db, object_id)
            if any(existing["label"] == label for existing in urls):
                raise BadRequest(f"object {object_id} already has a URL labelled {label!r}")
            self._set_uncontrolled_urls(db, object_id, [*urls, {"url": url, "label": label}])

    def add_controlled_instance(self, object_id: str, storage_id: str) -> None:
        """Advertise a copy of the object's bytes on another storage backend (the caller made it)."""
        with self._write() as db:
            storage_ids, _ = self._object_instances(db, object_id)
            if storage_id in storage_ids:
                raise BadRequest(f"object {object_id} already has an instance on storage backend {storage_id}")
            self._set_storage_ids(db, object_id, [*storage_ids, storage_id])

    def remove_instance(self, object_id: str, storage_id: str | None, label: str | None) -> list[ReleasedMedia]:
        """Remove the controlled instance on `storage_id` (queueing its bytes for deletion, which the caller
        carries out), or the uncontrolled URL labelled `label`. The last instance of an object stays."""
        with self._write() as db:
            storage_ids, urls = instances_left(object_id, *self._object_instances(db, object_id), storage_id, label)
            if storage_id is None:
                self._set_uncontrolled_urls(db, object_id, urls)
                return []
            self._set_storage_ids(db, object_id, storage_ids)
            return self._queue_release(db, object_id, [storage_id])
