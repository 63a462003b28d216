"""SQL fragments and row helpers that several record kinds of the SQL store share: flows that are not
soft-deleted, visible sources, and keyset paging of listings."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from ...model import PageRequest
from ...paging import decode_key, encode_key
from .connection import Db


def _live(flow_id: str) -> str:
    """SQL: the flow whose id is the expression `flow_id` is not soft-deleted."""
    return f"{flow_id} NOT IN (SELECT flow_id FROM deleted_flows)"


def _one_of(expression: str, count: int) -> str:
    """SQL: `expression` equals one of `count` bound values; false when there are none (`IN ()` is SQLite's
    alone)."""
    return f"{expression} IN ({','.join('?' * count)})" if count else "1 = 0"


# A source exists for clients while a flow that is not soft-deleted names it.
_SOURCE_VISIBLE = f"EXISTS (SELECT 1 FROM flows sf WHERE sf.source_id = sources.id AND {_live('sf.id')})"


_IN_VALUES = 1000  # far below the databases' limits on bound variables; a chunk of a bulk registration at once


def _rows_in(db: Db, sql: str, values: Collection[Any]) -> Iterator[tuple]:
    """The rows of `sql` for each of `values`, bound to its `{values}` list _IN_VALUES at a time."""
    ordered = list(values)
    for start in range(0, len(ordered), _IN_VALUES):
        chunk = ordered[start : start + _IN_VALUES]
        yield from db.execute(sql.format(values=",".join("?" * len(chunk))), chunk)


class _Keyset:
    """ORDER BY and the 'after this row' condition for one sort of a listing, all in one direction. `like` has a
    value of each column's type: a key of other types is refused, not compared with the columns."""

    def __init__(self, columns: Sequence[str], like: Sequence[Any], descending: bool) -> None:
        self.columns = columns
        self.like = like
        self.descending = descending

    def order_by(self) -> str:
        direction = " DESC" if self.descending else ""
        return ", ".join(column + direction for column in self.columns)

    def after(self, key: str) -> tuple[str, list[Any]]:
        values = decode_key(key, len(self.columns), self.like)
        operator = "<" if self.descending else ">"
        return f"({', '.join(self.columns)}) {operator} ({', '.join('?' * len(values))})", values

    def select(self) -> str:
        return ", ".join(self.columns)


def _sort_keyset(sort_by: str, reverse: bool, table: str) -> _Keyset:
    if sort_by == "label":
        # Resources without a label sort by id, after the labelled ones (before them when reversed).
        columns = (_is_null(f"{table}.label"), f"COALESCE({table}.label, {table}.id)", f"{table}.id")
        return _Keyset(columns, (0, "", ""), descending=reverse)
    # created / updated / metadata_updated: most recent first by default.
    return _Keyset((f"{table}.{sort_by}_ns", f"{table}.id"), (0, ""), descending=not reverse)


def _is_null(column: str) -> str:
    """SQL: 1 when the column is null, else 0 (an integer in every database, where IS NULL is not)."""
    return f"CASE WHEN {column} IS NULL THEN 1 ELSE 0 END"


def _page_rows(
    db: Db,
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


def _insert_row(db: Db, table: str, values: dict[str, Any]) -> None:
    db.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values())
    )


def _update_row(db: Db, table: str, values: dict[str, Any], key: str, key_value: Any) -> None:
    assignments = ", ".join(f"{name} = ?" for name in values)
    db.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", (*values.values(), key_value))
