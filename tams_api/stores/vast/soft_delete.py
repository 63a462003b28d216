"""Soft delete (extension): marking flows hidden from the spec's endpoints (or no more), listing them."""

from __future__ import annotations

from ...clock import Instant
from ...model import DeletedFlow, Page, PageRequest
from ..metadata import FlowRecord
from .rows import _ACTIVE, _all, _delete, _eq, _insert, _page, _select, _select_in, _update
from .session import Transactions, _Tx


class SoftDeleteMixin(Transactions):
    """Soft-deleted flows: a `deleted_flows` row hides a flow, its segments and its source."""

    def set_soft_deleted(self, t: _Tx, flow: FlowRecord, stamp: Instant | None, by: str | None = None) -> None:
        # Writing the flow's row makes a concurrent write of the flow (a purge, a restore) conflict: first wins.
        _update(t["flows"], "flows", [flow.key], ["metadata"])
        table = t["deleted_flows"]
        if stamp is None:
            _delete(table, _select(table, table["flow_id"] == flow.id, ["flow_id"], row_ids=True))
        else:
            deleted = {"flow_id": flow.id, "deleted_at": stamp.text, "deleted_ns": stamp.ns, "deleted_by": by}
            _insert(table, "deleted_flows", [deleted])

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
