"""Flows: reading and listing them, saving them with their tags and collections, and dropping them with what only
they hold."""

from __future__ import annotations

import json
import operator
from typing import Any

from ...clock import Instant
from ...model import Flow, FlowQuery, Page, ReleasedMedia
from ..metadata import FlowRecord
from ..shared import creation, flow_values
from .rows import _all, _delete, _eq, _insert, _page, _select, _select_in, _sort, _update
from .session import Transactions, _guard, _Tx


class FlowsMixin(Transactions):
    """Flows and their collections; a flow's source is created with it and forgotten after its last flow."""

    def _flows_from_rows(self, t: _Tx, rows: list[dict[str, Any]]) -> list[Flow]:
        ids = [row["id"] for row in rows]
        tags = self._load_tags(t, "flow", ids)
        collections = t["flow_collections"]
        as_collector = _select_in(
            collections, "collector_id", ids, None, ["collector_id", "position", "member_id", "item"]
        )
        as_member = _select_in(collections, "member_id", ids, None, ["collector_id", "member_id"])
        hidden = self._hidden(
            t, {row["member_id"] for row in as_collector} | {row["collector_id"] for row in as_member}
        )
        items: dict[str, list[tuple[int, Any]]] = {flow_id: [] for flow_id in ids}
        for row in as_collector:
            if row["member_id"] not in hidden:
                items[row["collector_id"]].append((row["position"], json.loads(row["item"])))
        collected_by: dict[str, set[str]] = {flow_id: set() for flow_id in ids}
        for row in as_member:
            if row["collector_id"] not in hidden:
                collected_by[row["member_id"]].add(row["collector_id"])
        return [
            Flow(
                id=row["id"],
                source_id=row["source_id"],
                metadata=json.loads(row["metadata"]),
                created=row["created"],
                metadata_updated=row["metadata_updated"],
                segments_updated=row["segments_updated"],
                tags=tags[row["id"]],
                flow_collection=[item for _, item in sorted(items[row["id"]], key=operator.itemgetter(0))],
                collected_by=sorted(collected_by[row["id"]]),
            )
            for row in rows
        ]

    def _flow_row(self, t: _Tx, flow_id: str) -> dict[str, Any] | None:
        """The flow's row; None when there is none, or when it is soft-deleted."""
        table = t["flows"]
        rows = _select(table, table["id"] == flow_id, row_ids=True)
        if not rows or self._hidden(t, [flow_id]):
            return None
        return rows[0]

    def flow_record(self, t: _Tx, flow_id: str, soft_deleted_too: bool = False) -> FlowRecord | None:
        table = t["flows"]
        rows = _select(table, table["id"] == flow_id, row_ids=True)
        if not rows:
            return None
        deleted_flows = t["deleted_flows"]
        deleted = _select(deleted_flows, deleted_flows["flow_id"] == flow_id, ["deleted_by"])
        if deleted and not soft_deleted_too:
            return None
        row = rows[0]
        metadata = json.loads(row["metadata"])
        deleted_by = deleted[0]["deleted_by"] if deleted else None
        return FlowRecord(flow_id, row["source_id"], metadata, bool(row["read_only"]), row, bool(deleted), deleted_by)

    def get_flow(self, t: _Tx, flow_id: str) -> Flow | None:
        row = self._flow_row(t, flow_id)
        return self._flows_from_rows(t, [row])[0] if row else None

    def list_flows(self, query: FlowQuery) -> Page[Flow]:
        with self._read() as t:
            table = t["flows"]
            conditions = []
            for column in (
                "source_id",
                "format",
                "codec",
                "profile_id",
                "label",
                "status",
                "frame_width",
                "frame_height",
            ):
                value = getattr(query, column)
                if value is not None:
                    conditions.append(table[column] == value)
            if query.init_segments is not None:
                conditions.append(table["init_segments"] == int(query.init_segments))
            if query.timerange is not None:
                if query.timerange.is_empty:
                    conditions.append(table["seg_start_ns"].isnull())  # an empty range selects flows with no content
                else:
                    conditions.append(table["seg_start_ns"] <= query.timerange.end)
                    conditions.append(table["seg_end_ns"] >= query.timerange.start)
            rows = _select(table, _all(*conditions), ["id", "label", "created_ns", "metadata_updated_ns"])
            match = self._tag_match(t, "flow", query.tags)
            rows = [row for row in rows if match(row["id"])]
            hidden = self._hidden(t, [row["id"] for row in rows])
            rows = [row for row in rows if row["id"] not in hidden]
            if query.collected_by_ids is not None:
                rows = self._collected_by_filter(t, rows, query.collected_by_ids)
            key, descending = _sort(query.sort_by, query.page.reverse)
            page_rows, next_key = _page(rows, key, descending, query.page)
            full = {row["id"]: row for row in _select_in(table, "id", [row["id"] for row in page_rows])}
            items = self._flows_from_rows(t, [full[row["id"]] for row in page_rows])
        return Page(items, next_key, query.page.limit)

    def _collected_by_filter(
        self, t: _Tx, rows: list[dict[str, Any]], collector_ids: list[str]
    ) -> list[dict[str, Any]]:
        """Flows collected by one of `collector_ids`; with none given, flows no flow collects (soft-deleted
        collectors collect nothing)."""
        collections = t["flow_collections"]
        if collector_ids:
            found = _select_in(collections, "collector_id", collector_ids, None, ["collector_id", "member_id"])
        else:
            found = _select_in(
                collections, "member_id", [row["id"] for row in rows], None, ["collector_id", "member_id"]
            )
        hidden = self._hidden(t, {row["collector_id"] for row in found})
        members = {row["member_id"] for row in found if row["collector_id"] not in hidden}
        return [row for row in rows if (row["id"] in members) == bool(collector_ids)]

    @staticmethod
    def _write_collection(t: _Tx, flow_id: str, collection: list[dict[str, Any]]) -> None:
        table = t["flow_collections"]
        _delete(table, _select(table, table["collector_id"] == flow_id, ["position"], row_ids=True))
        rows = [
            {"collector_id": flow_id, "position": position, "member_id": item["id"], "item": json.dumps(item)}
            for position, item in enumerate(collection)
        ]
        _insert(table, "flow_collections", rows)

    def save_flow(self, t: _Tx, flow: FlowRecord, stamp: Instant) -> None:
        if flow.tags is not None:
            self._replace_tags(t, "flow", flow.id, flow.tags)
        if flow.collection is not None:
            self._write_collection(t, flow.id, flow.collection)
        values = flow_values(flow, stamp)
        if flow.key is None:
            _guard(t, f"flow {flow.id}")  # two writers that both found no such flow would both insert it
            _insert(t["flows"], "flows", [{**values, **creation(flow.id, stamp), "max_segment_ns": 0}])
            return
        previous_source = flow.key["source_id"]
        flow.key.update(values)
        _update(t["flows"], "flows", [flow.key], list(values))
        if previous_source != flow.source_id:
            self._forget_unnamed_source(t, previous_source)

    def drop_flow(self, t: _Tx, flow: FlowRecord) -> list[ReleasedMedia]:
        flow_id = flow.id
        deleted_flows = t["deleted_flows"]
        _delete(deleted_flows, _select(deleted_flows, deleted_flows["flow_id"] == flow_id, ["flow_id"], row_ids=True))
        segments = t["segments"]
        rows = _select(segments, segments["flow_id"] == flow_id, ["object_id"], row_ids=True)
        _delete(segments, rows)
        released = self._release_unreferenced(t, sorted({row["object_id"] for row in rows}))
        objects = t["objects"]
        unused = {
            row["id"]
            for row in _select(
                objects, _all(objects["allocated_for"] == flow_id, _eq(objects, "registered", False)), ["id"]
            )
        }
        unused -= self.init_objects_in_use(t, unused)
        released += self._release(t, sorted(unused))
        _delete(t["flows"], [flow.key])
        collections = t["flow_collections"]
        for column in ("collector_id", "member_id"):  # no OR across columns in VAST predicates
            _delete(collections, _select(collections, collections[column] == flow_id, ["position"], row_ids=True))
        self._delete_all_tags(t, "flow", flow_id)
        self._forget_unnamed_source(t, flow.source_id)
        return released
