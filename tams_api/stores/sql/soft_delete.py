"""Soft delete of flows in the SQL store (extension): marking a flow soft-deleted or not, listing them."""

from __future__ import annotations

from ...clock import Instant
from ...model import DeletedFlow, Page, PageRequest
from ...paging import decode_key, encode_key
from ..metadata import FlowRecord
from .connection import Db, SqlConnections


class SoftDeleteMixin(SqlConnections):
    """Soft-deleted flows: hidden from the spec's endpoints, every row kept until restored or purged."""

    def set_soft_deleted(self, db: Db, flow: FlowRecord, stamp: Instant | None, by: str | None = None) -> None:
        if stamp is None:
            db.execute("DELETE FROM deleted_flows WHERE flow_id = ?", (flow.id,))
        else:
            db.execute(
                "INSERT INTO deleted_flows (flow_id, deleted_at, deleted_ns, deleted_by) VALUES (?, ?, ?, ?)",
                (flow.id, stamp.text, stamp.ns, by),
            )

    _DELETED_FLOW_COLUMNS = "d.flow_id, f.source_id, f.label, d.deleted_at, d.deleted_ns, d.deleted_by"

    def list_deleted_flows(self, page: PageRequest) -> Page[DeletedFlow]:
        """Oldest deletion first: the order the worker purges them in."""
        conditions, params = [], []
        if page.key is not None:
            conditions.append("(d.deleted_ns, d.flow_id) > (?, ?)")
            params += decode_key(page.key, 2, (0, ""))
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
