"""Flows: reading and listing them, writing them (with their sources and collections), changing their
properties, tags and collections, and deleting them (now, or by a delete request)."""

from __future__ import annotations

import json
import operator
import uuid
from typing import Any

from ... import timerange as tr
from ...clock import Instant, now
from ...errors import BadRequest, Forbidden, NotFound
from ...model import DeleteRequest, Deletion, Flow, FlowQuery, FlowWrite, Page, ReleasedMedia, TagValue
from ..metadata import FlowRecord
from ..shared import REQUEST_COLUMNS, delete_request_from_row, flow_columns, sign
from .rows import _ACTIVE, TABLE_DEFAULTS, _all, _delete, _eq, _insert, _page, _select, _select_in, _sort, _update
from .session import Transactions, _guard, _retried_on_conflict, _Tx


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

    def _flow_row(self, t: _Tx, flow_id: str, hidden_too: bool = False) -> dict[str, Any] | None:
        """The flow's row; None when there is none, or when it is soft-deleted (unless `hidden_too`)."""
        table = t["flows"]
        rows = _select(table, table["id"] == flow_id, row_ids=True)
        if not rows or (not hidden_too and self._hidden(t, [flow_id])):
            return None
        return rows[0]

    def flow_record(self, t: _Tx, flow_id: str) -> FlowRecord | None:
        row = self._flow_row(t, flow_id)
        if row is None:
            return None
        return FlowRecord(flow_id, row["source_id"], json.loads(row["metadata"]), bool(row["read_only"]), key=row)

    def get_flow(self, flow_id: str) -> Flow | None:
        with self._read() as t:
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

    def _writable_flow(self, t: _Tx, flow_id: str) -> dict[str, Any]:
        row = self._flow_row(t, flow_id)
        if row is None:
            raise NotFound(f"flow {flow_id} does not exist")
        if row["read_only"]:
            raise Forbidden(f"flow {flow_id} is read-only")
        return row

    def _check_collection(self, t: _Tx, flow_id: str, collection: list[dict[str, Any]]) -> None:
        existing = {
            row["id"] for row in _select_in(t["flows"], "id", [item["id"] for item in collection], None, ["id"])
        }
        existing -= self._hidden(t, existing)
        for item in collection:
            if item["id"] == flow_id:
                raise BadRequest("a flow cannot collect itself")
            if item["id"] not in existing:
                raise BadRequest(f"flow_collection names flow {item['id']}, which does not exist")

    @staticmethod
    def _write_collection(t: _Tx, flow_id: str, collection: list[dict[str, Any]]) -> None:
        table = t["flow_collections"]
        _delete(table, _select(table, table["collector_id"] == flow_id, ["position"], row_ids=True))
        rows = [
            {"collector_id": flow_id, "position": position, "member_id": item["id"], "item": json.dumps(item)}
            for position, item in enumerate(collection)
        ]
        _insert(table, "flow_collections", rows)

    def _touch_metadata(self, t: _Tx, row: dict[str, Any], metadata: dict[str, Any], updated_by: str | None) -> None:
        """Store changed metadata with a new metadata_version, metadata_updated and updated_by."""
        stamp = now()
        sign(metadata, updated_by, metadata)
        metadata["metadata_version"] = str(uuid.uuid4())
        columns = flow_columns(metadata["format"], metadata)
        row.update(columns, metadata=json.dumps(metadata), metadata_updated=stamp.text, metadata_updated_ns=stamp.ns)
        _update(t["flows"], "flows", [row], [*columns, "metadata", "metadata_updated", "metadata_updated_ns"])
        if self.listening(t):
            flow = self._flows_from_rows(t, [row])[0]
            self.emit(t, "flows/updated", {"flow": flow.to_json()}, flow_id=row["id"])

    @_retried_on_conflict
    def put_flow(self, flow: FlowWrite) -> tuple[Flow, bool]:
        stamp = now()
        metadata = dict(flow.metadata)
        metadata["format"] = flow.format
        with self._write() as t:
            _guard(t, f"flow {flow.id}", f"source {flow.source_id}")  # the flow and its source may be created
            # A soft-deleted flow of that id is purged now: to clients it is deleted, and a PUT creates the flow anew.
            hidden = self._flow_row(t, flow.id, hidden_too=True)
            if hidden is not None and self._hidden(t, [flow.id]):
                self._drop_flow(t, hidden)
            existing = self._flow_row(t, flow.id)
            if existing is not None and existing["read_only"]:
                raise Forbidden(f"flow {flow.id} is read-only")
            self._check_collection(t, flow.id, flow.flow_collection)
            new_source = self._ensure_source(t, flow, stamp)
            previous = json.loads(existing["metadata"]) if existing else None
            sign(metadata, flow.author, previous)
            # A client may set metadata_version (e.g. carried over from another store); otherwise a change
            # of metadata gets a new one.
            previous_version = previous.get("metadata_version") if previous else None
            if metadata.get("metadata_version") in (None, previous_version):
                metadata["metadata_version"] = str(uuid.uuid4())
            values = {
                "source_id": flow.source_id,
                **flow_columns(flow.format, metadata),
                "metadata": json.dumps(metadata),
                "metadata_updated": stamp.text,
                "metadata_updated_ns": stamp.ns,
            }
            if existing is None:
                row = {"id": flow.id, **values, "created": stamp.text, "created_ns": stamp.ns, "max_segment_ns": 0}
                _insert(t["flows"], "flows", [row])
            else:
                row = {**existing, **values}
                _update(t["flows"], "flows", [row], list(values))
                if existing["source_id"] != flow.source_id:
                    self._source_left(t, existing["source_id"])
            self._replace_tags(t, "flow", flow.id, flow.tags)
            self._write_collection(t, flow.id, flow.flow_collection)
            stored = self._flows_from_rows(t, [{**TABLE_DEFAULTS["flows"], **row}])[0]
            if self.listening(t):
                if new_source:
                    self._emit_source(t, "sources/created", flow.source_id)
                event_type = "flows/created" if existing is None else "flows/updated"
                self.emit(t, event_type, {"flow": stored.to_json()}, flow_id=flow.id)
        return stored, existing is None

    def _ensure_source(self, t: _Tx, flow: FlowWrite, stamp: Instant) -> bool:
        """Sources come into being with their first flow (True when this one did); a flow must match its
        source's format."""
        rows = self._source_rows(t, flow.source_id)
        if not rows:
            row = {
                "id": flow.source_id,
                "format": flow.format,
                "label": flow.metadata.get("label"),
                "description": flow.metadata.get("description"),
                "created_by": flow.author,
                "updated_by": flow.author,
                "created": stamp.text,
                "created_ns": stamp.ns,
                "updated": stamp.text,
                "updated_ns": stamp.ns,
            }
            _insert(t["sources"], "sources", [row])
            return True
        # A source whose flows are all soft-deleted is hidden: it comes back with this flow.
        reappears = not self._visible_sources(t, [flow.source_id])
        source = rows[0]
        if source["format"] != flow.format:
            flows = t["flows"]
            others = _select(flows, _all(flows["source_id"] == flow.source_id, flows["id"] != flow.id), ["id"])
            if others:
                raise BadRequest(
                    f"flow format {flow.format} conflicts with format {source['format']} of source {flow.source_id}"
                )
            for row in rows:
                row["format"] = flow.format
            _update(t["sources"], "sources", rows, ["format"])
        return reappears

    def _source_left(self, t: _Tx, source_id: str, announce: bool = True) -> None:
        """A flow left the source: without flows that are not soft-deleted it is gone for clients (announced
        unless it was gone already), and without any flow it is forgotten."""
        if self._visible_sources(t, [source_id]):
            return
        if announce:
            self._emit_source(t, "sources/deleted", source_id)
        flows = t["flows"]
        if not _select(flows, flows["source_id"] == source_id, ["id"], limit=1):
            _delete(t["sources"], self._source_rows(t, source_id))
            self._delete_all_tags(t, "source", source_id)

    @staticmethod
    def _pending_flow_delete(t: _Tx, flow_id: str) -> DeleteRequest | None:
        requests = t["delete_requests"]
        pending = _select(
            requests,
            _all(requests["flow_id"] == flow_id, _eq(requests, "delete_flow", True), requests["status"].isin(_ACTIVE)),
        )
        return delete_request_from_row([pending[0][c] for c in REQUEST_COLUMNS]) if pending else None

    @_retried_on_conflict
    def delete_flow(self, flow_id: str, sync_limit: int, created_by: str | None) -> Deletion:
        """Delete the flow now when it has at most `sync_limit` segments, else leave it to a delete request."""
        with self._write() as t:
            return self._delete_flow(t, self._writable_flow(t, flow_id), sync_limit, created_by)

    def _delete_flow(self, t: _Tx, row: dict[str, Any], sync_limit: int, created_by: str | None) -> Deletion:
        pending = self._pending_flow_delete(t, row["id"])
        if pending is not None:
            return Deletion(deferred=pending)
        if self._more_covered_than(t, row["id"], tr.EVERYTHING, sync_limit):
            return Deletion(deferred=self._create_delete_request(t, row["id"], "_", True, created_by))
        return Deletion(released=self._drop_flow(t, row))

    def _drop_flow(self, t: _Tx, flow: dict[str, Any]) -> list[ReleasedMedia]:
        flow_id = flow["id"]
        if self.listening(t):
            self.emit(t, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
        # A soft-deleted flow was announced deleted already, and so was its source if the flow held it.
        deleted_flows = t["deleted_flows"]
        hidden = _delete(
            deleted_flows, _select(deleted_flows, deleted_flows["flow_id"] == flow_id, ["flow_id"], row_ids=True)
        )
        segments = t["segments"]
        rows = _select(segments, segments["flow_id"] == flow_id, ["object_id"], row_ids=True)
        _delete(segments, rows)
        released = self._release_unreferenced(t, sorted({row["object_id"] for row in rows}))
        # Objects allocated for this flow but never registered can no longer be used, unless they are init
        # objects that objects of other flows still use.
        objects = t["objects"]
        unused = {
            row["id"]
            for row in _select(
                objects, _all(objects["allocated_for"] == flow_id, _eq(objects, "registered", False)), ["id"]
            )
        }
        unused -= self.init_objects_in_use(t, unused)
        released += self._release(t, sorted(unused))
        _delete(t["flows"], [flow])
        collections = t["flow_collections"]
        for column in ("collector_id", "member_id"):  # no OR across columns in VAST predicates
            _delete(collections, _select(collections, collections[column] == flow_id, ["position"], row_ids=True))
        self._delete_all_tags(t, "flow", flow_id)
        self._source_left(t, flow["source_id"], announce=not hidden)
        return released

    @_retried_on_conflict
    def set_flow_property(self, flow_id: str, name: str, value: Any | None, updated_by: str | None) -> None:
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            metadata = json.loads(row["metadata"])
            if name == "avg_bit_rate" and metadata.get("profile_id"):
                raise BadRequest(
                    f"avg_bit_rate comes from profile {metadata['profile_id']}: "
                    "unlink the flow first by setting profile_id to '' in a PUT of the flow"
                )
            if value is None:
                metadata.pop(name, None)
            else:
                metadata[name] = value
            self._touch_metadata(t, row, metadata, updated_by)

    @_retried_on_conflict
    def set_flow_read_only(self, flow_id: str, read_only: bool, updated_by: str | None) -> None:
        with self._write() as t:
            row = self._flow_row(t, flow_id)
            if row is None:
                raise NotFound(f"flow {flow_id} does not exist")
            metadata = json.loads(row["metadata"])
            metadata["read_only"] = read_only
            self._touch_metadata(t, row, metadata, updated_by)

    @_retried_on_conflict
    def set_flow_tag(self, flow_id: str, name: str, value: TagValue | None, updated_by: str | None) -> None:
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            if value is not None:
                self._put_tag(t, "flow", flow_id, name, value)
            elif not self._delete_tag(t, "flow", flow_id, name):
                raise NotFound(f"flow {flow_id} has no tag {name!r}")
            self._touch_metadata(t, row, json.loads(row["metadata"]), updated_by)

    @_retried_on_conflict
    def set_flow_collection(self, flow_id: str, collection: list[dict[str, Any]], updated_by: str | None) -> None:
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            self._check_collection(t, flow_id, collection)
            self._write_collection(t, flow_id, collection)
            self._touch_metadata(t, row, json.loads(row["metadata"]), updated_by)
