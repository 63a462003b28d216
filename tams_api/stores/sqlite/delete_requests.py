"""Flow delete requests in the SQLite store: deletes too large for one request, carried out a chunk at a time."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from ... import timerange as tr
from ...clock import instant_text, now
from ...errors import error_json
from ...model import DeleteRequest, DeleteRequestQuery, Page, ReleasedMedia
from ..shared import REQUEST_COLUMNS, delete_request_from_row
from .connection import SqliteConnections
from .rows import _Keyset, _next_key, _page_rows, _sort_keyset

_REQUEST_COLUMNS = ", ".join(REQUEST_COLUMNS)


class DeleteRequestsMixin(SqliteConnections):
    """Flow delete requests."""

    @staticmethod
    def _pending_flow_delete(db: sqlite3.Connection, flow_id: str) -> DeleteRequest | None:
        pending = db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE flow_id = ? AND delete_flow = 1 "
            "AND status IN ('created', 'started')",
            (flow_id,),
        ).fetchone()
        return delete_request_from_row(pending) if pending is not None else None

    def _create_delete_request(
        self, db: sqlite3.Connection, flow_id: str, timerange: str, delete_flow: bool, created_by: str | None
    ) -> DeleteRequest:
        stamp = now()
        request_id = str(uuid.uuid4())
        remaining = tr.format_bounds(tr.parse_bounds(timerange))
        db.execute(
            "INSERT INTO delete_requests (id, flow_id, to_delete, remaining, delete_flow, status, created, created_ns, "
            "created_by, updated) VALUES (?, ?, ?, ?, ?, 'created', ?, ?, ?, ?)",
            (request_id, flow_id, timerange, remaining, int(delete_flow), stamp.text, stamp.ns, created_by, stamp.text),
        )
        return delete_request_from_row(
            db.execute(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,)).fetchone()
        )

    def get_delete_request(self, request_id: str) -> DeleteRequest | None:
        row = self._query_one(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,))
        return delete_request_from_row(row) if row else None

    def list_delete_requests(self, query: DeleteRequestQuery) -> Page[DeleteRequest]:
        if query.sort_by == "expiry":
            # Most recent expiry first; requests without one (not finished) after those with one, by id.
            columns = (
                "delete_requests.expiry_ns IS NOT NULL",
                "COALESCE(delete_requests.expiry_ns, 0)",
                "delete_requests.id",
            )
            keyset = _Keyset(columns, descending=not query.page.reverse)
        else:
            keyset = _sort_keyset("created", query.page.reverse, "delete_requests")
        with self._read() as db:
            rows = _page_rows(db, "delete_requests", _REQUEST_COLUMNS, [], [], keyset, query.page)
        items = [delete_request_from_row(row[len(keyset.columns) :]) for row in rows[: query.page.limit]]
        return Page(items, _next_key(rows, keyset, query.page.limit), query.page.limit)

    def pending_delete_requests(self) -> list[str]:
        rows = self._query(
            "SELECT id FROM delete_requests WHERE status IN ('created', 'started') ORDER BY created_ns, id"
        )
        return [request_id for (request_id,) in rows]

    def continue_delete_request(
        self, request_id: str, chunk: int, retention_seconds: int
    ) -> tuple[DeleteRequest, list[ReleasedMedia]] | None:
        """One step of a delete request, in one transaction: delete up to `chunk` more segments, or, when none
        are left, the flow (if asked) and mark the request done. A crash between steps loses nothing. None when
        there is no such request."""
        with self._write() as db:
            row = db.execute(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,)).fetchone()
            if row is None:
                return None
            request = delete_request_from_row(row)
            if request.status not in ("created", "started"):
                return request, []
            stamp = now()
            flow = db.execute("SELECT pk, read_only FROM flows WHERE id = ?", (request.flow_id,)).fetchone()
            released: list[ReleasedMedia] = []
            changes: dict[str, Any] = {"updated": stamp.text}
            if flow is not None and flow[1]:
                changes.update(
                    status="error",
                    error=json.dumps(error_json("Forbidden", f"flow {request.flow_id} is read-only", stamp.text)),
                )
            else:
                remaining = tr.parse_bounds(request.timerange_remaining)
                last_start = None
                if flow is not None and not remaining.is_empty:
                    released, last_start = self._delete_covered(db, request.flow_id, flow[0], remaining, None, chunk)
                if last_start is not None:
                    changes.update(
                        status="started", remaining=tr.format_bounds(tr.Bounds(last_start + 1, remaining.end))
                    )
                else:
                    if flow is not None and request.delete_flow:
                        released += self._drop_flow(db, request.flow_id, flow[0])
                    expiry = stamp.ns + retention_seconds * 1_000_000_000
                    changes.update(status="done", remaining="()", expiry=instant_text(expiry), expiry_ns=expiry)
            assignments = ", ".join(f"{name} = ?" for name in changes)
            db.execute(f"UPDATE delete_requests SET {assignments} WHERE id = ?", (*changes.values(), request_id))
            row = db.execute(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,)).fetchone()
            return delete_request_from_row(row), released

    def forget_expired_delete_requests(self, before_ns: int) -> int:
        with self._write() as db:
            return db.execute(
                "DELETE FROM delete_requests WHERE status IN ('done', 'error') AND expiry_ns <= ?", (before_ns,)
            ).rowcount
