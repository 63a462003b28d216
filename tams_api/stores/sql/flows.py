"""Flows in the SQL store, with their collections: read, listed, saved, dropped with what only they hold."""

from __future__ import annotations

import json
from typing import Any

from ...clock import Instant
from ...model import Flow, FlowQuery, Page, ReleasedMedia
from ..metadata import FlowRecord
from ..shared import creation, flow_values
from .connection import Db, SqlConnections
from .rows import _insert_row, _live, _next_key, _one_of, _page_rows, _sort_keyset, _update_row


class FlowsMixin(SqlConnections):
    """Flows and flow collections."""

    _FLOW_COLUMNS = "pk, id, source_id, metadata, created, metadata_updated, segments_updated"

    def _flows_from_rows(self, db: Db, rows: list[tuple]) -> list[Flow]:
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

    def _flow_row(self, db: Db, flow_id: str) -> tuple | None:
        return db.execute(
            f"SELECT {self._FLOW_COLUMNS} FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)
        ).fetchone()

    def flow_record(self, db: Db, flow_id: str, soft_deleted_too: bool = False) -> FlowRecord | None:
        row = db.execute(
            "SELECT f.pk, f.source_id, f.metadata, f.read_only, d.flow_id IS NOT NULL, d.deleted_by "
            "FROM flows f LEFT JOIN deleted_flows d ON d.flow_id = f.id WHERE f.id = ?",
            (flow_id,),
        ).fetchone()
        if row is None or (row[4] and not soft_deleted_too):
            return None
        pk, source_id, metadata, read_only, soft_deleted, deleted_by = row
        return FlowRecord(flow_id, source_id, json.loads(metadata), bool(read_only), pk, bool(soft_deleted), deleted_by)

    def get_flow(self, db: Db, flow_id: str) -> Flow | None:
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
                    f"AND {_one_of('c.collector_id', len(ids))} AND {_live('c.collector_id')})"
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

    def _write_collection(self, db: Db, flow_id: str, collection: list[dict[str, Any]]) -> None:
        db.execute("DELETE FROM flow_collections WHERE collector_id = ?", (flow_id,))
        db.executemany(
            "INSERT INTO flow_collections (collector_id, position, member_id, item) VALUES (?, ?, ?, ?)",
            [(flow_id, position, item["id"], json.dumps(item)) for position, item in enumerate(collection)],
        )

    def save_flow(self, db: Db, flow: FlowRecord, stamp: Instant) -> None:
        values = flow_values(flow, stamp)
        if flow.key is None:
            _insert_row(db, "flows", {**values, **creation(flow.id, stamp)})
        else:
            (previous_source,) = db.execute("SELECT source_id FROM flows WHERE pk = ?", (flow.key,)).fetchone()
            _update_row(db, "flows", values, "pk", flow.key)
            if previous_source != flow.source_id:
                self._forget_unnamed_source(db, previous_source)
        if flow.tags is not None:
            self._replace_tags(db, "flow", flow.id, flow.tags)
        if flow.collection is not None:
            self._write_collection(db, flow.id, flow.collection)

    def drop_flow(self, db: Db, flow: FlowRecord) -> list[ReleasedMedia]:
        db.execute("DELETE FROM deleted_flows WHERE flow_id = ?", (flow.id,))
        object_ids = [
            row[0] for row in db.execute("SELECT DISTINCT object_id FROM segments WHERE flow_pk = ?", (flow.key,))
        ]
        db.execute("DELETE FROM segments WHERE flow_pk = ?", (flow.key,))
        released = self._release_unreferenced(db, object_ids)
        unused = db.execute(
            "SELECT id FROM objects WHERE allocated_for = ? AND registered = 0 "
            "AND NOT EXISTS (SELECT 1 FROM objects u WHERE u.init_object_id = objects.id)",
            (flow.id,),
        ).fetchall()
        released += self._release(db, [object_id for (object_id,) in unused])
        db.execute("DELETE FROM flows WHERE pk = ?", (flow.key,))
        db.execute("DELETE FROM flow_collections WHERE collector_id = ? OR member_id = ?", (flow.id, flow.id))
        self._delete_all_tags(db, "flow", flow.id)
        self._forget_unnamed_source(db, flow.source_id)
        return released
