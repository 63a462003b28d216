"""Flows in the SQLite store, with their collections: read, listed, created or replaced, changed, deleted."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from ... import timerange as tr
from ...clock import now
from ...errors import BadRequest, Forbidden, NotFound
from ...model import Deletion, Flow, FlowQuery, FlowWrite, Page, ReleasedMedia, TagValue
from ..metadata import FlowRecord
from ..shared import flow_columns, sign
from .connection import SqliteConnections
from .rows import _live, _next_key, _page_rows, _sort_keyset


class FlowsMixin(SqliteConnections):
    """Flows and flow collections."""

    _FLOW_COLUMNS = "pk, id, source_id, metadata, created, metadata_updated, segments_updated"

    def _flows_from_rows(self, db: sqlite3.Connection, rows: list[tuple]) -> list[Flow]:
        ids = [row[1] for row in rows]
        tags = self._load_tags(db, "flow", ids)
        flows = []
        for _pk, flow_id, source_id, metadata, created, metadata_updated, segments_updated in rows:
            collection = db.execute(
                f"SELECT item FROM flow_collections WHERE collector_id = ? AND {_live('member_id')} ORDER BY position",
                (flow_id,),
            ).fetchall()
            collected_by = db.execute(
                f"SELECT DISTINCT collector_id FROM flow_collections WHERE member_id = ? AND {_live('collector_id')} "
                "ORDER BY collector_id",
                (flow_id,),
            ).fetchall()
            flows.append(
                Flow(
                    id=flow_id,
                    source_id=source_id,
                    metadata=json.loads(metadata),
                    created=created,
                    metadata_updated=metadata_updated,
                    segments_updated=segments_updated,
                    tags=tags[flow_id],
                    flow_collection=[json.loads(item) for (item,) in collection],
                    collected_by=[collector for (collector,) in collected_by],
                )
            )
        return flows

    def _flow_row(self, db: sqlite3.Connection, flow_id: str) -> tuple | None:
        return db.execute(
            f"SELECT {self._FLOW_COLUMNS} FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)
        ).fetchone()

    def flow_record(self, db: sqlite3.Connection, flow_id: str) -> FlowRecord | None:
        row = db.execute(
            f"SELECT pk, source_id, metadata, read_only FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)
        ).fetchone()
        return None if row is None else FlowRecord(flow_id, row[1], json.loads(row[2]), bool(row[3]), key=row[0])

    def get_flow(self, flow_id: str) -> Flow | None:
        with self._read() as db:
            row = self._flow_row(db, flow_id)
            return self._flows_from_rows(db, [row])[0] if row else None

    def list_flows(self, query: FlowQuery) -> Page[Flow]:
        conditions, params = self._tag_conditions("flow", "flows.id", query.tags)
        conditions.append(_live("flows.id"))
        for column in ("source_id", "format", "codec", "profile_id", "label", "status", "frame_width", "frame_height"):
            value = getattr(query, column)
            if value is not None:
                conditions.append(f"flows.{column} = ?")
                params.append(value)
        if query.init_segments is not None:
            conditions.append("flows.init_segments = ?")
            params.append(int(query.init_segments))
        if query.timerange is not None:
            if query.timerange.is_empty:
                conditions.append("flows.seg_start_ns IS NULL")  # an empty range selects flows with no content
            else:
                conditions.append("flows.seg_start_ns <= ? AND flows.seg_end_ns >= ?")
                params += [query.timerange.end, query.timerange.start]
        if query.collected_by_ids is not None:
            if query.collected_by_ids:
                ids = query.collected_by_ids
                conditions.append(
                    "EXISTS (SELECT 1 FROM flow_collections c WHERE c.member_id = flows.id "
                    f"AND c.collector_id IN ({','.join('?' * len(ids))}) AND {_live('c.collector_id')})"
                )
                params += ids
            else:
                conditions.append(
                    "NOT EXISTS (SELECT 1 FROM flow_collections c WHERE c.member_id = flows.id "
                    f"AND {_live('c.collector_id')})"
                )
        keyset = _sort_keyset(query.sort_by, query.page.reverse, "flows")
        with self._read() as db:
            rows = _page_rows(db, "flows", self._FLOW_COLUMNS, conditions, params, keyset, query.page)
            items = self._flows_from_rows(db, [row[len(keyset.columns) :] for row in rows[: query.page.limit]])
        return Page(items, _next_key(rows, keyset, query.page.limit), query.page.limit)

    def _writable_flow(self, db: sqlite3.Connection, flow_id: str) -> tuple:
        row = db.execute(
            f"SELECT pk, read_only, metadata FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"flow {flow_id} does not exist")
        if row[1]:
            raise Forbidden(f"flow {flow_id} is read-only")
        return row

    def _check_collection(self, db: sqlite3.Connection, flow_id: str, collection: list[dict[str, Any]]) -> None:
        for item in collection:
            if item["id"] == flow_id:
                raise BadRequest("a flow cannot collect itself")
            if db.execute(f"SELECT 1 FROM flows WHERE id = ? AND {_live('id')}", (item["id"],)).fetchone() is None:
                raise BadRequest(f"flow_collection names flow {item['id']}, which does not exist")

    def _write_collection(self, db: sqlite3.Connection, flow_id: str, collection: list[dict[str, Any]]) -> None:
        db.execute("DELETE FROM flow_collections WHERE collector_id = ?", (flow_id,))
        db.executemany(
            "INSERT INTO flow_collections (collector_id, position, member_id, item) VALUES (?, ?, ?, ?)",
            [(flow_id, position, item["id"], json.dumps(item)) for position, item in enumerate(collection)],
        )

    def _touch_metadata(
        self, db: sqlite3.Connection, flow_id: str, metadata: dict[str, Any], updated_by: str | None
    ) -> None:
        """Store changed metadata with a new metadata_version, metadata_updated and updated_by."""
        stamp = now()
        sign(metadata, updated_by, metadata)
        metadata["metadata_version"] = str(uuid.uuid4())
        columns = flow_columns(metadata["format"], metadata)
        assignments = ", ".join(f"{name} = ?" for name in columns)
        db.execute(
            f"UPDATE flows SET {assignments}, metadata = ?, metadata_updated = ?, metadata_updated_ns = ? WHERE id = ?",
            (*columns.values(), json.dumps(metadata), stamp.text, stamp.ns, flow_id),
        )
        if self.listening(db):
            flow = self._flows_from_rows(db, [self._flow_row(db, flow_id)])[0]
            self.emit(db, "flows/updated", {"flow": flow.to_json()}, flow_id=flow_id)

    def put_flow(self, flow: FlowWrite) -> tuple[Flow, bool]:
        stamp = now()
        metadata = dict(flow.metadata)
        metadata["format"] = flow.format
        with self._write() as db:
            # A soft-deleted flow of that id is purged now: to clients it is deleted, and a PUT creates the flow anew.
            hidden = db.execute(
                "SELECT pk FROM flows WHERE id = ? AND id IN (SELECT flow_id FROM deleted_flows)", (flow.id,)
            ).fetchone()
            if hidden is not None:
                self._drop_flow(db, flow.id, hidden[0])
            existing = db.execute(
                "SELECT source_id, read_only, metadata FROM flows WHERE id = ?", (flow.id,)
            ).fetchone()
            if existing is not None and existing[1]:
                raise Forbidden(f"flow {flow.id} is read-only")
            self._check_collection(db, flow.id, flow.flow_collection)
            new_source = self._ensure_source(db, flow, stamp)
            previous = json.loads(existing[2]) if existing else None
            sign(metadata, flow.author, previous)
            # A client may set metadata_version (e.g. carried over from another store); otherwise a change
            # of metadata gets a new one.
            previous_version = previous.get("metadata_version") if previous else None
            if metadata.get("metadata_version") in (None, previous_version):
                metadata["metadata_version"] = str(uuid.uuid4())
            columns = flow_columns(flow.format, metadata)
            if existing is None:
                names = ", ".join(columns)
                db.execute(
                    f"INSERT INTO flows (id, source_id, {names}, metadata, created, created_ns, "
                    "metadata_updated, metadata_updated_ns) "
                    f"VALUES (?, ?, {', '.join('?' * len(columns))}, ?, ?, ?, ?, ?)",
                    (
                        flow.id,
                        flow.source_id,
                        *columns.values(),
                        json.dumps(metadata),
                        stamp.text,
                        stamp.ns,
                        stamp.text,
                        stamp.ns,
                    ),
                )
            else:
                assignments = ", ".join(f"{name} = ?" for name in columns)
                db.execute(
                    f"UPDATE flows SET source_id = ?, {assignments}, metadata = ?, metadata_updated = ?, "
                    "metadata_updated_ns = ? WHERE id = ?",
                    (flow.source_id, *columns.values(), json.dumps(metadata), stamp.text, stamp.ns, flow.id),
                )
                if existing[0] != flow.source_id:
                    self._source_left(db, existing[0])
            self._replace_tags(db, "flow", flow.id, flow.tags)
            self._write_collection(db, flow.id, flow.flow_collection)
            stored = self._flows_from_rows(db, [self._flow_row(db, flow.id)])[0]
            if self.listening(db):
                if new_source:
                    self._emit_source(db, "sources/created", flow.source_id)
                event_type = "flows/created" if existing is None else "flows/updated"
                self.emit(db, event_type, {"flow": stored.to_json()}, flow_id=flow.id)
        return stored, existing is None

    def delete_flow(self, flow_id: str, sync_limit: int, created_by: str | None) -> Deletion:
        """Delete the flow now when it has at most `sync_limit` segments, else leave it to a delete request."""
        with self._write() as db:
            pk = self._writable_flow(db, flow_id)[0]
            return self._delete_flow(db, flow_id, pk, sync_limit, created_by)

    def _delete_flow(
        self, db: sqlite3.Connection, flow_id: str, pk: int, sync_limit: int, created_by: str | None
    ) -> Deletion:
        pending = self._pending_flow_delete(db, flow_id)
        if pending is not None:
            return Deletion(deferred=pending)
        if self._more_covered_than(db, pk, tr.EVERYTHING, sync_limit):
            return Deletion(deferred=self._create_delete_request(db, flow_id, "_", True, created_by))
        return Deletion(released=self._drop_flow(db, flow_id, pk))

    def _drop_flow(self, db: sqlite3.Connection, flow_id: str, pk: int) -> list[ReleasedMedia]:
        if self.listening(db):
            self.emit(db, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
        # A soft-deleted flow was announced deleted already, and so was its source if the flow held it.
        hidden = db.execute("DELETE FROM deleted_flows WHERE flow_id = ?", (flow_id,)).rowcount > 0
        source_id = db.execute("SELECT source_id FROM flows WHERE pk = ?", (pk,)).fetchone()[0]
        object_ids = [row[0] for row in db.execute("SELECT DISTINCT object_id FROM segments WHERE flow_pk = ?", (pk,))]
        db.execute("DELETE FROM segments WHERE flow_pk = ?", (pk,))
        released = self._release_unreferenced(db, object_ids)
        # Objects allocated for this flow but never registered can no longer be used, unless they are init
        # objects that objects of other flows still use.
        unused = db.execute(
            "SELECT id FROM objects WHERE allocated_for = ? AND registered = 0 "
            "AND NOT EXISTS (SELECT 1 FROM objects u WHERE u.init_object_id = objects.id)",
            (flow_id,),
        ).fetchall()
        released += self._release(db, [object_id for (object_id,) in unused])
        db.execute("DELETE FROM flows WHERE pk = ?", (pk,))
        db.execute("DELETE FROM flow_collections WHERE collector_id = ? OR member_id = ?", (flow_id, flow_id))
        self._delete_all_tags(db, "flow", flow_id)
        self._source_left(db, source_id, announce=not hidden)
        return released

    def set_flow_property(self, flow_id: str, name: str, value: Any | None, updated_by: str | None) -> None:
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            if name == "avg_bit_rate" and metadata.get("profile_id"):
                raise BadRequest(
                    f"avg_bit_rate comes from profile {metadata['profile_id']}: "
                    "unlink the flow first by setting profile_id to '' in a PUT of the flow"
                )
            if value is None:
                metadata.pop(name, None)
            else:
                metadata[name] = value
            self._touch_metadata(db, flow_id, metadata, updated_by)

    def set_flow_read_only(self, flow_id: str, read_only: bool, updated_by: str | None) -> None:
        with self._write() as db:
            row = db.execute(f"SELECT metadata FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)).fetchone()
            if row is None:
                raise NotFound(f"flow {flow_id} does not exist")
            metadata = json.loads(row[0])
            metadata["read_only"] = read_only
            self._touch_metadata(db, flow_id, metadata, updated_by)

    def set_flow_tag(self, flow_id: str, name: str, value: TagValue | None, updated_by: str | None) -> None:
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            if value is not None:
                self._put_tag(db, "flow", flow_id, name, value)
            elif not self._delete_tag(db, "flow", flow_id, name):
                raise NotFound(f"flow {flow_id} has no tag {name!r}")
            self._touch_metadata(db, flow_id, metadata, updated_by)

    def set_flow_collection(self, flow_id: str, collection: list[dict[str, Any]], updated_by: str | None) -> None:
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            self._check_collection(db, flow_id, collection)
            self._write_collection(db, flow_id, collection)
            self._touch_metadata(db, flow_id, metadata, updated_by)
