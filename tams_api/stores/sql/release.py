"""Media to delete in the SQL store: objects released in the transaction that stops using them, the queue
of their bytes for the worker, and allocations that were never registered."""

from __future__ import annotations

from ...model import ReleasedMedia
from ...segment_rows import storage_ids_from_column
from .connection import Db, SqlConnections


class ReleaseMixin(SqlConnections):
    """Released media: forgotten objects whose bytes the worker deletes."""

    def _release_unreferenced(self, db: Db, object_ids: list[str]) -> list[ReleasedMedia]:
        """Release objects no segment references any more, and init objects no object uses any more."""
        unreferenced = [
            object_id
            for object_id in object_ids
            if not db.execute("SELECT 1 FROM segments WHERE object_id = ? LIMIT 1", (object_id,)).fetchone()
        ]
        init_object_ids = {
            row[0]
            for object_id in unreferenced
            for row in db.execute(
                "SELECT init_object_id FROM objects WHERE id = ? AND init_object_id IS NOT NULL", (object_id,)
            )
        }
        released = self._release(db, unreferenced)
        unused_inits = [
            init_object_id
            for init_object_id in sorted(init_object_ids)
            if not db.execute("SELECT 1 FROM objects WHERE init_object_id = ? LIMIT 1", (init_object_id,)).fetchone()
            and db.execute("SELECT 1 FROM objects WHERE id = ? AND registered = 0", (init_object_id,)).fetchone()
        ]
        return released + self._release(db, unused_inits)

    def _release(self, db: Db, object_ids: list[str]) -> list[ReleasedMedia]:
        """Forget objects and queue their media for deletion, in the caller's transaction."""
        released = []
        for object_id in object_ids:
            row = db.execute("SELECT storage_ids FROM objects WHERE id = ?", (object_id,)).fetchone()
            db.execute("DELETE FROM objects WHERE id = ?", (object_id,))
            # Uncontrolled URLs only: no bytes of ours to delete.
            released += self._queue_release(db, object_id, storage_ids_from_column(row[0] if row else None))
        return released

    @staticmethod
    def _queue_release(db: Db, object_id: str, storage_ids: list[str]) -> list[ReleasedMedia]:
        """Queue the bytes of an object's instances on these backends for deletion, in the caller's transaction."""
        released = [ReleasedMedia(object_id, storage_id) for storage_id in storage_ids]
        db.executemany(
            "INSERT INTO released_objects (id, storage_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(item.object_id, item.storage_id) for item in released],
        )
        return released

    def released_objects(self, limit: int) -> list[ReleasedMedia]:
        rows = self._query("SELECT id, storage_id FROM released_objects LIMIT ?", (limit,))
        return [ReleasedMedia(object_id, storage_id) for object_id, storage_id in rows]

    def forget_released(self, released: list[ReleasedMedia]) -> None:
        self.write(
            lambda db: db.executemany(
                "DELETE FROM released_objects WHERE id = ? AND storage_id = ?",
                [(item.object_id, item.storage_id) for item in released],
            )
        )

    def release_expired_allocations(self, allocated_before_ns: int) -> int:
        """Release objects allocated before the cut-off that no segment registered (nor uses as init object)."""

        def release(db: Db) -> int:
            expired = db.execute(
                "SELECT id FROM objects WHERE registered = 0 AND allocated_ns < ? "
                "AND NOT EXISTS (SELECT 1 FROM objects u WHERE u.init_object_id = objects.id) LIMIT 10000",
                (allocated_before_ns,),
            ).fetchall()
            return len(self._release(db, [object_id for (object_id,) in expired]))

        return self.write(release)
