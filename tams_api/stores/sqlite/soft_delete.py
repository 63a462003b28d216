"""Soft delete of flows in the SQLite store (extension): hiding a flow, restoring it, listing and purging."""

from __future__ import annotations

from ...clock import now
from ...errors import BadRequest, NotFound
from ...model import DeletedFlow, Deletion, Page, PageRequest
from ...paging import decode_key, encode_key
from .connection import SqliteConnections


class SoftDeleteMixin(SqliteConnections):
    """Soft-deleted flows: hidden from the spec's endpoints, every row kept until restored or purged."""

    def soft_delete_flow(self, flow_id: str, deleted_by: str) -> Deletion:
        """Hide the flow (and what only it holds: its segments, and its source when no other flow names it)
        from the spec's endpoints, keeping every row for a restore; to clients it is deleted."""
        stamp = now()
        with self._write() as db:
            self._writable_flow(db, flow_id)
            pending = self._pending_flow_delete(db, flow_id)
            if pending is not None:
                return Deletion(deferred=pending)
            if self.listening(db):
                self.emit(db, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
            db.execute(
                "INSERT INTO deleted_flows (flow_id, deleted_at, deleted_ns, deleted_by) VALUES (?, ?, ?, ?)",
                (flow_id, stamp.text, stamp.ns, deleted_by),
            )
            source_id = db.execute("SELECT source_id FROM flows WHERE id = ?", (flow_id,)).fetchone()[0]
            self._source_left(db, source_id)
        return Deletion()

    def restore_flow(self, flow_id: str) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM deleted_flows WHERE flow_id = ?", (flow_id,)).fetchone() is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            if self._pending_flow_delete(db, flow_id) is not None:
                raise BadRequest(f"flow {flow_id} is being purged; it can no longer be restored")
            source_id = db.execute("SELECT source_id FROM flows WHERE id = ?", (flow_id,)).fetchone()[0]
            source_reappears = not self._source_has_live_flow(db, source_id)
            db.execute("DELETE FROM deleted_flows WHERE flow_id = ?", (flow_id,))
            if self.listening(db):
                if source_reappears:
                    self._emit_source(db, "sources/created", source_id)
                flow = self._flows_from_rows(db, [self._flow_row(db, flow_id)])[0]
                self.emit(db, "flows/created", {"flow": flow.to_json()}, flow_id=flow_id)

    _DELETED_FLOW_COLUMNS = "d.flow_id, f.source_id, f.label, d.deleted_at, d.deleted_ns, d.deleted_by"

    def list_deleted_flows(self, page: PageRequest) -> Page[DeletedFlow]:
        """Oldest deletion first: the order the worker purges them in."""
        conditions, params = [], []
        if page.key is not None:
            conditions.append("(d.deleted_ns, d.flow_id) > (?, ?)")
            params += decode_key(page.key, 2)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._query(
            f"SELECT {self._DELETED_FLOW_COLUMNS} FROM deleted_flows d JOIN flows f ON f.id = d.flow_id {where} "
            "ORDER BY d.deleted_ns, d.flow_id LIMIT ?",
            (*params, page.limit + 1),
        )
        next_key = encode_key([rows[page.limit - 1][4], rows[page.limit - 1][0]]) if len(rows) > page.limit else None
        return Page([DeletedFlow(*row) for row in rows[: page.limit]], next_key, page.limit)

    def deleted_flows_due(self, deleted_before_ns: int, limit: int) -> list[str]:
        """Soft-deleted flows whose retention has passed and whose purge has not begun, oldest first."""
        rows = self._query(
            "SELECT flow_id FROM deleted_flows d WHERE deleted_ns < ? AND NOT EXISTS (SELECT 1 FROM delete_requests r "
            "WHERE r.flow_id = d.flow_id AND r.delete_flow = 1 AND r.status IN ('created', 'started')) "
            "ORDER BY deleted_ns, flow_id LIMIT ?",
            (deleted_before_ns, limit),
        )
        return [flow_id for (flow_id,) in rows]

    def purge_flow(self, flow_id: str, sync_limit: int) -> Deletion:
        """Delete a soft-deleted flow for good, as DELETE /flows/{id} would have (a delete request when large)."""
        with self._write() as db:
            row = db.execute(
                "SELECT f.pk, d.deleted_by FROM deleted_flows d JOIN flows f ON f.id = d.flow_id WHERE d.flow_id = ?",
                (flow_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            return self._delete_flow(db, flow_id, row[0], sync_limit, row[1])
