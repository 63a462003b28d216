"""Flow delete requests: creating them, reading and listing them, and the worker's steps through them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from ... import timerange as tr
from ...clock import instant_text, now
from ...errors import error_json
from ...model import DeleteRequest, DeleteRequestQuery, Page, ReleasedMedia
from ..shared import REQUEST_COLUMNS, delete_request_from_row
from .rows import _ACTIVE, TABLE_DEFAULTS, _all, _delete, _insert, _page, _select, _sort, _update
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

    def _create_delete_request(
        self, t: _Tx, flow_id: str, timerange: str, delete_flow: bool, created_by: str | None
    ) -> DeleteRequest:
        _guard(t, f"flow {flow_id}")  # against a second request for the same deletion
        stamp = now()
        row = {
            "id": str(uuid.uuid4()),
            "flow_id": flow_id,
            "to_delete": timerange,
            "remaining": tr.format_bounds(tr.parse_bounds(timerange)),
            "delete_flow": delete_flow,
            "status": "created",
            "created": stamp.text,
            "created_ns": stamp.ns,
            "created_by": created_by,
            "updated": stamp.text,
        }
        _insert(t["delete_requests"], "delete_requests", [row])
        return self._request({**TABLE_DEFAULTS["delete_requests"], **row})

    def get_delete_request(self, request_id: str) -> DeleteRequest | None:
        with self._read() as t:
            rows = self._request_rows(t, request_id)
        return self._request(rows[0]) if rows else None

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
    def continue_delete_request(
        self, request_id: str, chunk: int, retention_seconds: int
    ) -> tuple[DeleteRequest, list[ReleasedMedia]] | None:
        """One step of a delete request, in one transaction: delete up to `chunk` more segments, or, when none
        are left, the flow (if asked) and mark the request done. A crash between steps loses nothing. None when
        there is no such request."""
        with self._write() as t:
            rows = self._request_rows(t, request_id)
            if not rows:
                return None
            row = rows[0]
            request = self._request(row)
            if request.status not in _ACTIVE:
                return request, []
            stamp = now()
            flow = self._flow_row(t, request.flow_id, hidden_too=True)  # a purge works on a soft-deleted flow
            released: list[ReleasedMedia] = []
            changes: dict[str, Any] = {"updated": stamp.text}
            if flow is not None and flow["read_only"]:
                error = error_json("Forbidden", f"flow {request.flow_id} is read-only", stamp.text)
                changes.update(status="error", error=json.dumps(error))
            else:
                remaining = tr.parse_bounds(request.timerange_remaining)
                last_start = None
                if flow is not None and not remaining.is_empty:
                    released, last_start = self._delete_covered(t, flow, remaining, None, chunk)
                if last_start is not None:
                    changes.update(
                        status="started", remaining=tr.format_bounds(tr.Bounds(last_start + 1, remaining.end))
                    )
                else:
                    if flow is not None and request.delete_flow:
                        released += self._drop_flow(t, flow)
                    expiry = stamp.ns + retention_seconds * 1_000_000_000
                    changes.update(status="done", remaining="()", expiry=instant_text(expiry), expiry_ns=expiry)
            row.update(changes)
            _update(t["delete_requests"], "delete_requests", [row], list(changes))
            return self._request(row), released

    @_retried_on_conflict
    def forget_expired_delete_requests(self, before_ns: int) -> int:
        with self._write() as t:
            requests = t["delete_requests"]
            where = _all(requests["status"].isin(["done", "error"]), requests["expiry_ns"] <= before_ns)
            return _delete(requests, _select(requests, where, ["id"], row_ids=True))
