"""Flow delete requests in the SQL store: deletes too large for one request, carried out a chunk at a time."""

from __future__ import annotations

from ...clock import Instant
from ...model import DeleteRequest, DeleteRequestQuery, Page
from ..shared import REQUEST_COLUMNS, delete_request_from_row, delete_request_values, new_delete_request
from .connection import Db, SqlConnections
from .rows import _insert_row, _is_null, _Keyset, _next_key, _page_rows, _sort_keyset, _update_row

_REQUEST_COLUMNS = ", ".join(REQUEST_COLUMNS)


class DeleteRequestsMixin(SqlConnections):
    """Flow delete requests."""

    @staticmethod
    def pending_flow_delete(db: Db, flow_id: str) -> DeleteRequest | None:
        pending = db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE flow_id = ? AND delete_flow = 1 "
            "AND status IN ('created', 'started')",
            (flow_id,),
        ).fetchone()
        return delete_request_from_row(pending) if pending is not None else None

    @staticmethod
    def get_delete_request(db: Db, request_id: str) -> DeleteRequest | None:
        row = db.execute(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,)).fetchone()
        return delete_request_from_row(row) if row else None

    @staticmethod
    def save_delete_request(db: Db, request: DeleteRequest, stamp: Instant, expiry: Instant | None = None) -> None:
        values = delete_request_values(request, stamp, expiry)
        if db.execute("SELECT 1 FROM delete_requests WHERE id = ?", (request.id,)).fetchone() is None:
            _insert_row(db, "delete_requests", {**values, **new_delete_request(request, stamp)})
        else:
            _update_row(db, "delete_requests", values, "id", request.id)

    def list_delete_requests(self, query: DeleteRequestQuery) -> Page[DeleteRequest]:
        if query.sort_by == "expiry":
            # Most recent expiry first; requests without one (not finished) after those with one, by id.
            expiry = "delete_requests.expiry_ns"
            columns = (f"1 - {_is_null(expiry)}", f"COALESCE({expiry}, 0)", "delete_requests.id")
            keyset = _Keyset(columns, (0, 0, ""), descending=not query.page.reverse)
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

    def forget_expired_delete_requests(self, before_ns: int) -> int:
        return self.write(
            lambda db: (
                db.execute(
                    "DELETE FROM delete_requests WHERE status IN ('done', 'error') AND expiry_ns <= ?", (before_ns,)
                ).rowcount
            )
        )
