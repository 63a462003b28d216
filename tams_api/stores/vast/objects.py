"""Media objects: their records, those allocated, the flows that use one, and their instances (controlled copies on
storage backends and uncontrolled URLs)."""

from __future__ import annotations

from collections.abc import Iterable

from ...clock import Instant
from ...model import Page, PageRequest, ReleasedMedia, TagFilter
from ...segment_rows import storage_ids_column, storage_ids_from_column, uncontrolled_urls_from_column
from ..metadata import FlowRecord, ObjectRecord
from .rows import _insert, _page, _select, _select_in, _update
from .session import Transactions, _guard, _Tx


class ObjectsMixin(Transactions):
    """Objects and their instances."""

    @staticmethod
    def insert_allocated(
        t: _Tx, flow: FlowRecord, storage_id: str, content_type: str, object_ids: list[str], stamp: Instant
    ) -> None:
        """Guarding the ids makes two allocations of one id conflict, so that the second (after a retry) sees the
        first's object."""
        _guard(t, *(f"object {object_id}" for object_id in object_ids))
        rows = [
            {
                "id": object_id,
                "storage_ids": storage_ids_column([storage_id]),
                "content_type": content_type,
                "allocated_for": flow.id,
                "allocated_ns": stamp.ns,
                "registered": False,
            }
            for object_id in object_ids
        ]
        _insert(t["objects"], "objects", rows)

    def _flows_using(self, t: _Tx, object_id: str) -> list[str]:
        """Flows that are not soft-deleted whose segments use the object, as their media or init object."""
        objects = t["objects"]
        users = [object_id, *(u["id"] for u in _select(objects, objects["init_object_id"] == object_id, ["id"]))]
        segments = t["segments"]
        flow_ids = {s["flow_id"] for s in _select_in(segments, "object_id", users, None, ["flow_id"])}
        existing = {f["id"] for f in _select_in(t["flows"], "id", flow_ids, None, ["id"])}
        return sorted(existing - self._hidden(t, existing))

    def object_flows(self, t: _Tx, object_id: str, page: PageRequest, flow_tags: TagFilter) -> Page[str] | None:
        existing = self._flows_using(t, object_id)
        if not existing:
            return None
        match = self._tag_match(t, "flow", flow_tags)
        candidates = [{"id": flow_id} for flow_id in existing if match(flow_id)]
        items, next_key = _page(candidates, lambda r: (r["id"],), page.reverse, page)
        return Page([item["id"] for item in items], next_key, page.limit)

    def save_instances(self, t: _Tx, record: ObjectRecord, released: list[ReleasedMedia]) -> None:
        instances = {"storage_ids": storage_ids_column(record.storage_ids), "uncontrolled_urls": record.urls_column()}
        _update(t["objects"], "objects", [{**record.key, **instances}], list(instances))
        self._queue_release(t, released)

    @staticmethod
    def object_records(t: _Tx, object_ids: set[str]) -> dict[str, ObjectRecord]:
        return {
            row["id"]: ObjectRecord(
                row["id"],
                row["registered"],
                row["allocated_for"],
                row["timerange"],
                row["key_frame_count"],
                row["init_object_id"],
                uncontrolled_urls_from_column(row["uncontrolled_urls"]) or None,
                storage_ids_from_column(row["storage_ids"]),
                row["first_flow_id"],
                key=row,
            )
            for row in _select_in(t["objects"], "id", object_ids, None, row_ids=True)
        }

    @staticmethod
    def init_objects_in_use(t: _Tx, object_ids: Iterable[str]) -> set[str]:
        """Those of `object_ids` that some object uses as its init object."""
        return {
            row["init_object_id"]
            for row in _select_in(t["objects"], "init_object_id", object_ids, None, ["init_object_id"])
        }
