"""Flow delete requests: creating them, reading and listing them, and the worker's steps through them."""

from __future__ import annotations

from typing import Any

from ...clock import Instant
from ...model import DeleteRequest, DeleteRequestQuery, Page
from ..shared import REQUEST_COLUMNS, delete_request_from_row, delete_request_values, new_delete_request
from .rows import _ACTIVE, _all, _delete, _eq, _insert, _page, _select, _sort, _update
from .session import Transactions, _guard, _retried_on_conflict, _Tx


class DeleteRequestsMixin(Transactions):
    """Deletions too large for one request, carried out by the worker in chunks."""

    @staticmethod
    def _request_rows(t: _Tx, request_id: str) -> list[dict[str, Any]]:
        requests = t["delete_requests"]
        return _select(requests, requests["id"] == request_id, row_ids=True)

    @staticmethod
    def _request(row: dict[str, Any]) -> DeleteRequest:
        return delete_request_from_row([row[column] for column in REQUEST_COLUMNS])

    def pending_flow_delete(self, t: _Tx, flow_id: str) -> DeleteRequest | None:
        requests = t["delete_requests"]
        where = _all(
            requests["flow_id"] == flow_id, _eq(requests, "delete_flow", True), requests["status"].isin(_ACTIVE)
        )
        pending = _select(requests, where)
        return self._request(pending[0]) if pending else None

    def get_delete_request(self, t: _Tx, request_id: str) -> DeleteRequest | None:
        rows = self._request_rows(t, request_id)
        return self._request(rows[0]) if rows else None

    def save_delete_request(
        self, t: _Tx, request: DeleteRequest, stamp: Instant, expiry: Instant | None = None
    ) -> None:
        values = delete_request_values(request, stamp, expiry)
        rows = self._request_rows(t, request.id)
        if rows:
            rows[0].update(values)
            _update(t["delete_requests"], "delete_requests", rows, list(values))
            return
        _guard(t, f"flow {request.flow_id}")  # against a second request for the same deletion
        _insert(t["delete_requests"], "delete_requests", [{**values, **new_delete_request(request, stamp)}])

    def list_delete_requests(self, query: DeleteRequestQuery) -> Page[DeleteRequest]:
        with self._read() as t:
            rows = _select(t["delete_requests"])
        if query.sort_by == "expiry":
            # Most recent expiry first; requests without one (not finished) after those with one, by id.
            def key(row: dict[str, Any]) -> tuple:
                return (int(row["expiry_ns"] is not None), row["expiry_ns"] or 0, row["id"])

            descending = not query.page.reverse
        else:
            key, descending = _sort("created", query.page.reverse)
        page_rows, next_key = _page(rows, key, descending, query.page)
        return Page([self._request(row) for row in page_rows], next_key, query.page.limit)

    def pending_delete_requests(self) -> list[str]:
        with self._read() as t:
            requests = t["delete_requests"]
            rows = _select(requests, requests["status"].isin(_ACTIVE), ["id", "created_ns"])
        return [row["id"] for row in sorted(rows, key=lambda row: (row["created_ns"], row["id"]))]

    @_retried_on_conflict
    def forget_expired_delete_requests(self, before_ns: int) -> int:
        with self._write() as t:
            requests = t["delete_requests"]
            where = _all(requests["status"].isin(["done", "error"]), requests["expiry_ns"] <= before_ns)
            return _delete(requests, _select(requests, where, ["id"], row_ids=True))
