"""Soft delete (extension): hiding flows from the spec's endpoints, restoring them, and purging them for good."""

from __future__ import annotations

from ...clock import now
from ...errors import BadRequest, NotFound
from ...model import DeletedFlow, Deletion, Page, PageRequest
from .rows import _ACTIVE, _all, _delete, _eq, _insert, _page, _select, _select_in, _update
from .session import Transactions, _retried_on_conflict


class SoftDeleteMixin(Transactions):
    """Soft-deleted flows: a `deleted_flows` row hides a flow, its segments and its source."""

    @_retried_on_conflict
    def soft_delete_flow(self, flow_id: str, deleted_by: str) -> Deletion:
        """Hide the flow (and what only it holds: its segments, and its source when no other flow names it)
        from the spec's endpoints, keeping every row for a restore; to clients it is deleted."""
        stamp = now()
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            pending = self._pending_flow_delete(t, flow_id)
            if pending is not None:
                return Deletion(deferred=pending)
            if self.listening(t):
                self.emit(t, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
            # Writing the flow's row makes a concurrent write of the flow conflict (first writer wins).
            _update(t["flows"], "flows", [row], ["metadata"])
            deleted = {"flow_id": flow_id, "deleted_at": stamp.text, "deleted_ns": stamp.ns, "deleted_by": deleted_by}
            _insert(t["deleted_flows"], "deleted_flows", [deleted])
            self._source_left(t, row["source_id"])
        return Deletion()

    @_retried_on_conflict
    def restore_flow(self, flow_id: str) -> None:
        with self._write() as t:
            table = t["deleted_flows"]
            deleted = _select(table, table["flow_id"] == flow_id, ["flow_id"], row_ids=True)
            row = self._flow_row(t, flow_id, hidden_too=True)
            if not deleted or row is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            if self._pending_flow_delete(t, flow_id) is not None:
                raise BadRequest(f"flow {flow_id} is being purged; it can no longer be restored")
            source_reappears = not self._visible_sources(t, [row["source_id"]])
            _update(t["flows"], "flows", [row], ["metadata"])  # conflicts with a concurrent purge or restore
            _delete(table, deleted)
            if self.listening(t):
                if source_reappears:
                    self._emit_source(t, "sources/created", row["source_id"])
                flow = self._flows_from_rows(t, [row])[0]
                self.emit(t, "flows/created", {"flow": flow.to_json()}, flow_id=flow_id)

    def list_deleted_flows(self, page: PageRequest) -> Page[DeletedFlow]:
        """Oldest deletion first: the order the worker purges them in."""
        with self._read() as t:
            deleted = _select(t["deleted_flows"])
            page_rows, next_key = _page(deleted, lambda row: (row["deleted_ns"], row["flow_id"]), False, page)
            flows = {
                row["id"]: row
                for row in _select_in(
                    t["flows"], "id", [row["flow_id"] for row in page_rows], None, ["id", "source_id", "label"]
                )
            }
        items = [
            DeletedFlow(
                row["flow_id"],
                flows[row["flow_id"]]["source_id"],
                flows[row["flow_id"]]["label"],
                row["deleted_at"],
                row["deleted_ns"],
                row["deleted_by"],
            )
            for row in page_rows
        ]
        return Page(items, next_key, page.limit)

    def deleted_flows_due(self, deleted_before_ns: int, limit: int) -> list[str]:
        """Soft-deleted flows whose retention has passed and whose purge has not begun, oldest first."""
        with self._read() as t:
            table = t["deleted_flows"]
            due = _select(table, table["deleted_ns"] < deleted_before_ns, ["flow_id", "deleted_ns"])
            requests = t["delete_requests"]
            purging = {
                row["flow_id"]
                for row in _select_in(
                    requests,
                    "flow_id",
                    [row["flow_id"] for row in due],
                    _all(_eq(requests, "delete_flow", True), requests["status"].isin(_ACTIVE)),
                    ["flow_id"],
                )
            }
        due.sort(key=lambda row: (row["deleted_ns"], row["flow_id"]))
        return [row["flow_id"] for row in due if row["flow_id"] not in purging][:limit]

    @_retried_on_conflict
    def purge_flow(self, flow_id: str, sync_limit: int) -> Deletion:
        """Delete a soft-deleted flow for good, as DELETE /flows/{id} would have (a delete request when large)."""
        with self._write() as t:
            table = t["deleted_flows"]
            deleted = _select(table, table["flow_id"] == flow_id, ["deleted_by"])
            row = self._flow_row(t, flow_id, hidden_too=True)
            if not deleted or row is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            return self._delete_flow(t, row, sync_limit, deleted[0]["deleted_by"])
