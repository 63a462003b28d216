"""Rows of the VAST store's tables: predicates, selects, inserts, updates and deletes (pyarrow tables to and from
Python dicts), keyset pages of rows sorted in this process, and the conversions of rows several mixins share."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
import pyarrow as pa

from ...model import PageRequest
from ...paging import decode_key, encode_key
from .schema import ROW_ID, TABLES

_CHUNK = 1000  # values per `isin`: a chunk of a bulk registration at once, far below the SDK's request size limit
_ACTIVE = ["created", "started"]


def _all(*predicates: Any) -> Any:
    """AND of predicates (None when there is none: every row)."""
    given = [predicate for predicate in predicates if predicate is not None]
    return functools.reduce(operator.and_, given) if given else None


def _eq(table: Any, column: str, value: Any) -> Any:
    """`table[column] == value` as a predicate (also for booleans, which linters want compared otherwise)."""
    return table[column] == value


def _select(
    table: Any, predicate: Any = None, columns: Sequence[str] | None = None, row_ids: bool = False, limit: int = 0
) -> list[dict[str, Any]]:
    """Matching rows as dicts (in no order), every batch read inside the transaction."""
    names = list(columns) if columns is not None else None  # a copy: the SDK appends "$row_id" to the list
    reader = table.select(columns=names, predicate=predicate, internal_row_id=row_ids, limit_rows=limit or None)
    return reader.read_all().to_pylist()


def _select_in(
    table: Any,
    column: str,
    values: Iterable[Any],
    predicate: Any = None,
    columns: Sequence[str] | None = None,
    row_ids: bool = False,
) -> list[dict[str, Any]]:
    """Rows whose `column` is one of `values` (and match `predicate`), in chunks; none for no values."""
    values = sorted(set(values))
    rows: list[dict[str, Any]] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        rows += _select(table, _all(table[column].isin(chunk), predicate), columns, row_ids)
    return rows


def _arrow(table: Any, predicate: Any = None, columns: Sequence[str] | None = None) -> pa.Table:
    """Matching rows as one Arrow table (for Arrow compute, not Python loops)."""
    return table.select(columns=list(columns) if columns else None, predicate=predicate).read_all()


def _insert(table: Any, name: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        table.insert(pa.Table.from_pylist(rows, schema=TABLES[name]))


def _update(table: Any, name: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Set `columns` of rows selected with their `$row_id`."""
    if not rows:
        return
    fields = [pa.field(ROW_ID, pa.uint64()), *(TABLES[name].field(column) for column in columns)]
    data = {field.name: [row[field.name] for row in rows] for field in fields}
    table.update(pa.Table.from_pydict(data, schema=pa.schema(fields)), columns=list(columns))


def _delete(table: Any, rows: list[dict[str, Any]]) -> int:
    if rows:
        table.delete(pa.table({ROW_ID: pa.array([row[ROW_ID] for row in rows], pa.uint64())}))
    return len(rows)


def _page(
    rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], tuple], descending: bool, page: PageRequest
) -> tuple[list[dict[str, Any]], str | None]:
    """One keyset page of rows sorted by `key` (unique per row), and the next page's key."""
    keyed = sorted(((key(row), row) for row in rows), key=operator.itemgetter(0), reverse=descending)
    if page.key is not None:
        width = len(key(_KEY_PROBE))
        after = tuple(decode_key(page.key, width, like=keyed[0][0] if keyed else None))
        keyed = [(k, row) for k, row in keyed if (k < after if descending else k > after)]
    items = keyed[: page.limit]
    next_key = encode_key(list(items[-1][0])) if len(keyed) > page.limit else None
    return [row for _, row in items], next_key


class _Probe(dict):
    """A row where every column holds a placeholder: `len(key(_KEY_PROBE))` is the width of a sort key."""

    def __missing__(self, column: str) -> int:
        return 0


_KEY_PROBE = _Probe()


def _sort(sort_by: str, reverse: bool) -> tuple[Callable[[dict[str, Any]], tuple], bool]:
    """The keyset of a listing's sort, as the SQLite store orders it; (key, descending)."""
    if sort_by == "label":
        # Resources without a label sort by id, after the labelled ones (before them when reversed).
        return (lambda row: (int(row["label"] is None), row["label"] or row["id"], row["id"])), reverse
    column = f"{sort_by}_ns"
    return (lambda row: (row[column], row["id"])), not reverse


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# Rows as a select returns them: every column, NULL where not given.
TABLE_DEFAULTS: dict[str, dict[str, Any]] = {name: dict.fromkeys(schema.names) for name, schema in TABLES.items()}
