"""SQL fragments and row helpers that several record kinds of the SQLite store share: flows that are not
soft-deleted, visible sources, stored objects from their columns, and keyset paging of listings."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from ...model import PageRequest, StoredObject
from ...paging import decode_key, encode_key
from ..shared import storage_ids_from_column


def _live(flow_id: str) -> str:
    """SQL: the flow whose id is the expression `flow_id` is not soft-deleted."""
    return f"{flow_id} NOT IN (SELECT flow_id FROM deleted_flows)"


# A source exists for clients while a flow that is not soft-deleted names it.
_SOURCE_VISIBLE = f"EXISTS (SELECT 1 FROM flows sf WHERE sf.source_id = sources.id AND {_live('sf.id')})"


def _rows_in(db: sqlite3.Connection, sql: str, values: Collection[Any]) -> Iterator[tuple]:
    """The rows of `sql` for each of `values`, bound to its `{values}` list 500 at a time (below SQLite's limit on
    bound variables)."""
    ordered = list(values)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        yield from db.execute(sql.format(values=",".join("?" * len(chunk))), chunk)


def _stored_object(
    object_id: str,
    storage_ids: str | None,
    timerange: str | None,
    key_frame_count: int | None,
    init_object_id: str | None,
    uncontrolled_urls: str | None,
) -> StoredObject:
    """An object from its columns, in the order of the objects table."""
    urls = json.loads(uncontrolled_urls) if uncontrolled_urls else []
    return StoredObject(
        object_id, storage_ids_from_column(storage_ids), timerange, key_frame_count, init_object_id, urls
    )


class _Keyset:
    """ORDER BY and the 'after this row' condition for one sort of a listing, all in one direction."""

    def __init__(self, columns: Sequence[str], descending: bool) -> None:
        self.columns = columns
        self.descending = descending

    def order_by(self) -> str:
        direction = " DESC" if self.descending else ""
        return ", ".join(column + direction for column in self.columns)

    def after(self, key: str) -> tuple[str, list[Any]]:
        values = decode_key(key, len(self.columns))
        operator = "<" if self.descending else ">"
        return f"({', '.join(self.columns)}) {operator} ({', '.join('?' * len(values))})", values

    def select(self) -> str:
        return ", ".join(self.columns)


def _sort_keyset(sort_by: str, reverse: bool, table: str) -> _Keyset:
    if sort_by == "label":
        # Resources without a label sort by id, after the labelled ones (before them when reversed).
        columns = (f"{table}.label IS NULL", f"COALESCE({table}.label, {table}.id)", f"{table}.id")
        return _Keyset(columns, descending=reverse)
    # created / updated / metadata_updated: most recent first by default.
    return _Keyset((f"{table}.{sort_by}_ns", f"{table}.id"), descending=not reverse)


def _page_rows(
    db: sqlite3.Connection,
    table: str,
    columns: str,
    conditions: list[str],
    params: list[Any],
    keyset: _Keyset,
    page: PageRequest,
) -> list[tuple]:
    """One page plus one row, to know whether a next page exists."""
    conditions = list(conditions)
    params = list(params)
    if page.key is not None:
        condition, values = keyset.after(page.key)
        conditions.append(condition)
        params += values
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    qualified = ", ".join(f"{table}.{column.strip()}" for column in columns.split(","))
    sql = f"SELECT {keyset.select()}, {qualified} FROM {table} {where} ORDER BY {keyset.order_by()} LIMIT ?"
    return db.execute(sql, (*params, page.limit + 1)).fetchall()


def _next_key(rows: list[tuple], keyset: _Keyset, limit: int) -> str | None:
    if len(rows) <= limit:
        return None
    return encode_key(rows[limit - 1][: len(keyset.columns)])


def _insert_row(db: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
    db.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values())
    )


def _update_row(db: sqlite3.Connection, table: str, values: dict[str, Any], key: str, key_value: Any) -> None:
    assignments = ", ".join(f"{name} = ?" for name in values)
    db.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", (*values.values(), key_value))
