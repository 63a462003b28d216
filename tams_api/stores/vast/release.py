"""Media to delete: releasing objects no segment uses any more, queueing the bytes of their instances for deletion
(`released_objects`), and what the worker reads and forgets of that queue."""

from __future__ import annotations

from ...model import ReleasedMedia
from ...segment_rows import storage_ids_from_column
from .rows import _all, _delete, _eq, _insert, _select, _select_in
from .session import Transactions, _retried_on_conflict, _Tx


class ReleaseMixin(Transactions):
    """Releasing objects and the queue of media to delete."""

    def _release_unreferenced(self, t: _Tx, object_ids: list[str]) -> list[ReleasedMedia]:
        """Release objects no segment references any more, and init objects no object uses any more."""
        referenced = {
            row["object_id"] for row in _select_in(t["segments"], "object_id", object_ids, None, ["object_id"])
        }
        unreferenced = [object_id for object_id in object_ids if object_id not in referenced]
        objects = t["objects"]
        init_object_ids = {
            row["init_object_id"]
            for row in _select_in(objects, "id", unreferenced, None, ["init_object_id"])
            if row["init_object_id"] is not None
        }
        released = self._release(t, unreferenced)
        still_used = self.init_objects_in_use(t, init_object_ids)
        unregistered = {
            row["id"] for row in _select_in(objects, "id", init_object_ids, _eq(objects, "registered", False), ["id"])
        }
        unused_inits = sorted((init_object_ids - still_used) & unregistered)
        return released + self._release(t, unused_inits)

    @staticmethod
    def _release(t: _Tx, object_ids: list[str]) -> list[ReleasedMedia]:
        """Forget objects and queue their media for deletion, in the caller's transaction."""
        objects = t["objects"]
        rows = _select_in(objects, "id", object_ids, None, ["id", "storage_ids"], row_ids=True)
        _delete(objects, rows)
        # Uncontrolled URLs only: no bytes of ours to delete.
        released = [
            ReleasedMedia(row["id"], storage_id)
            for row in rows
            for storage_id in storage_ids_from_column(row["storage_ids"])
        ]
        return ReleaseMixin._queue_release(t, released)

    @staticmethod
    def _queue_release(t: _Tx, released: list[ReleasedMedia]) -> list[ReleasedMedia]:
        """Queue bytes of object instances for deletion, in the caller's transaction (each once)."""
        queued = t["released_objects"]
        already = {
            (row["id"], row["storage_id"])
            for row in _select_in(queued, "id", {item.object_id for item in released}, None, ["id", "storage_id"])
        }
        new = [item for item in released if (item.object_id, item.storage_id) not in already]
        _insert(queued, "released_objects", [{"id": item.object_id, "storage_id": item.storage_id} for item in new])
        return released

    def released_objects(self, limit: int) -> list[ReleasedMedia]:
        with self._read() as t:
            rows = _select(t["released_objects"], limit=limit) if limit > 0 else []
        return [ReleasedMedia(row["id"], row["storage_id"]) for row in rows]

    @_retried_on_conflict
    def forget_released(self, released: list[ReleasedMedia]) -> None:
        forgotten = {(item.object_id, item.storage_id) for item in released}
        with self._write() as t:
            queued = t["released_objects"]
            rows = _select_in(queued, "id", {object_id for object_id, _ in forgotten}, None, row_ids=True)
            _delete(queued, [row for row in rows if (row["id"], row["storage_id"]) in forgotten])

    @_retried_on_conflict
    def release_expired_allocations(self, allocated_before_ns: int) -> int:
        """Release objects allocated before the cut-off that no segment registered (nor uses as init object)."""
        with self._write() as t:
            objects = t["objects"]
            where = _all(_eq(objects, "registered", False), objects["allocated_ns"] < allocated_before_ns)
            expired = {row["id"] for row in _select(objects, where, ["id"], limit=10000)}
            expired -= self.init_objects_in_use(t, expired)
            return len(self._release(t, sorted(expired)))
