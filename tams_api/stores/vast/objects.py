"""Media objects: allocating them, reading them and the flows that use them, and their instances (controlled
copies on storage backends and uncontrolled URLs)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ...clock import now
from ...domain.flows import writable
from ...errors import BadRequest, NotFound
from ...model import ObjectUsage, Page, PageRequest, ReleasedMedia, StoredObject, TagFilter
from ..metadata import ObjectRecord
from ..shared import instances_left, storage_ids_column, storage_ids_from_column
from .rows import _insert, _page, _select, _select_in, _stored_object, _update
from .session import Transactions, _guard, _retried_on_conflict, _Tx


class ObjectsMixin(Transactions):
    """Objects and their instances."""

    @_retried_on_conflict
    def allocate_objects(self, flow_id: str, storage_id: str, content_type: str, object_ids: list[str]) -> None:
        stamp = now()
        with self._write() as t:
            if not writable(self.flow_record(t, flow_id), flow_id).metadata.get("container"):
                raise BadRequest(f"flow {flow_id} has no 'container': set it before allocating storage")
            _guard(t, *(f"object {object_id}" for object_id in object_ids))
            taken = _select_in(t["objects"], "id", object_ids, None, ["id"])
            if taken:
                raise BadRequest(f"object_id {taken[0]['id']} is already in use")
            if len(set(object_ids)) != len(object_ids):
                raise BadRequest("object_ids must not repeat")
            rows = [
                {
                    "id": object_id,
                    "storage_ids": storage_ids_column([storage_id]),
                    "content_type": content_type,
                    "allocated_for": flow_id,
                    "allocated_ns": stamp.ns,
                    "registered": False,
                }
                for object_id in object_ids
            ]
            _insert(t["objects"], "objects", rows)

    def _object_in_use(self, t: _Tx, object_id: str) -> dict[str, Any] | None:
        """An object clients can see: one a segment of a flow that is not soft-deleted uses, as its media object
        or as its init object."""
        return self._object_and_users(t, object_id)[0]

    def _object_and_users(self, t: _Tx, object_id: str) -> tuple[dict[str, Any] | None, list[str]]:
        """The object's row (None unless in use) and the flows that use it."""
        objects = t["objects"]
        rows = _select(objects, objects["id"] == object_id, row_ids=True)
        users = self._flows_using(t, object_id) if rows else []
        return (rows[0] if users else None), users

    def _flows_using(self, t: _Tx, object_id: str) -> list[str]:
        """Flows that are not soft-deleted whose segments use the object, as their media or init object."""
        objects = t["objects"]
        users = [object_id, *(u["id"] for u in _select(objects, objects["init_object_id"] == object_id, ["id"]))]
        segments = t["segments"]
        flow_ids = {s["flow_id"] for s in _select_in(segments, "object_id", users, None, ["flow_id"])}
        existing = {f["id"] for f in _select_in(t["flows"], "id", flow_ids, None, ["id"])}
        return sorted(existing - self._hidden(t, existing))

    def get_object(self, object_id: str, flows: PageRequest, flow_tags: TagFilter) -> ObjectUsage | None:
        with self._read() as t:
            row, existing = self._object_and_users(t, object_id)
            if row is None:
                return None
            match = self._tag_match(t, "flow", flow_tags)
            candidates = [{"id": flow_id} for flow_id in existing if match(flow_id)]
        items, next_key = _page(candidates, lambda r: (r["id"],), flows.reverse, flows)
        return ObjectUsage(
            object=_stored_object(row),
            first_referenced_by_flow=row["first_flow_id"],
            referenced_by_flows=Page([item["id"] for item in items], next_key, flows.limit),
        )

    def find_objects(self, object_ids: list[str]) -> dict[str, StoredObject]:
        with self._read() as t:
            return {row["id"]: _stored_object(row) for row in _select_in(t["objects"], "id", object_ids)}

    def _object_instances(self, t: _Tx, object_id: str) -> tuple[dict[str, Any], list[str], list[dict[str, str]]]:
        row = self._object_in_use(t, object_id)
        if row is None:
            raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
        urls = json.loads(row["uncontrolled_urls"]) if row["uncontrolled_urls"] else []
        return row, storage_ids_from_column(row["storage_ids"]), urls

    @staticmethod
    def _set_object(t: _Tx, row: dict[str, Any], **values: Any) -> None:
        row.update(values)
        _update(t["objects"], "objects", [row], list(values))

    @_retried_on_conflict
    def add_uncontrolled_url(self, object_id: str, url: str, label: str) -> None:
        with self._write() as t:
            row, _, urls = self._object_instances(t, object_id)
            if any(existing["label"] == label for existing in urls):
                raise BadRequest(f"object {object_id} already has a URL labelled {label!r}")
            self._set_object(t, row, uncontrolled_urls=json.dumps([*urls, {"url": url, "label": label}]))

    @_retried_on_conflict
    def add_controlled_instance(self, object_id: str, storage_id: str) -> None:
        """Advertise a copy of the object's bytes on another storage backend (the caller made it)."""
        with self._write() as t:
            row, storage_ids, _ = self._object_instances(t, object_id)
            if storage_id in storage_ids:
                raise BadRequest(f"object {object_id} already has an instance on storage backend {storage_id}")
            self._set_object(t, row, storage_ids=storage_ids_column([*storage_ids, storage_id]))

    @_retried_on_conflict
    def remove_instance(self, object_id: str, storage_id: str | None, label: str | None) -> list[ReleasedMedia]:
        """Remove the controlled instance on `storage_id` (queueing its bytes for deletion, which the caller
        carries out), or the uncontrolled URL labelled `label`. The last instance of an object stays."""
        with self._write() as t:
            row, storage_ids, urls = self._object_instances(t, object_id)
            storage_ids, urls = instances_left(object_id, storage_ids, urls, storage_id, label)
            if storage_id is None:
                self._set_object(t, row, uncontrolled_urls=json.dumps(urls) if urls else None)
                return []
            self._set_object(t, row, storage_ids=storage_ids_column(storage_ids))
            return self._queue_release(t, [ReleasedMedia(object_id, storage_id)])

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
                json.loads(row["uncontrolled_urls"]) if row["uncontrolled_urls"] else None,
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
