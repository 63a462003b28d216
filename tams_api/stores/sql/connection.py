"""What the SQL metadata store needs of a database: transactions, a statement at a time, and the few SQL
fragments in which SQLite and PostgreSQL differ. Each backend (stores/sqlite, stores/postgres) provides them.

Statements are written once, with SQLite's placeholders (`?` and `:name`); the PostgreSQL backend translates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..migrations import Upgrade

R = TypeVar("R")
Params = Sequence[Any] | dict[str, Any]


class Cursor(Protocol):
    """The rows of one statement (DB-API)."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection within a transaction, as the store's statements use it."""

    def execute(self, sql: str, params: Params = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Params], /) -> Cursor:
        """`sql` for each of `params`; the cursor's rowcount is the rows they changed together."""
        ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """SQL that differs between the databases, as fragments the statements are built with."""

    least: Callable[[str, str], str]  # the smaller of two expressions
    greatest: Callable[[str, str], str]
    json_text: Callable[[str, str], str]  # the text of a top-level member of a JSON text column
    exact: Callable[[str], str]  # an integer expression whose arithmetic may pass int64 (segment durations)
    segments_of_object: str  # the segments table, aliased s, read by object (SQLite must be told its index)


class SqlConnections:
    """The database under the store: every mixin builds on these, and calls the others' methods through `self`,
    the store being all of them together. A backend implements the methods that raise here."""

    dialect: Dialect
    schema_upgrade: Upgrade

    def _read(self) -> AbstractContextManager[Db]:
        """A consistent snapshot across several statements."""
        raise NotImplementedError

    def _reader(self) -> AbstractContextManager[Db]:
        """A connection for one statement (its own snapshot)."""
        raise NotImplementedError

    def write(self, work: Callable[[Db], R]) -> R:
        """`work(db)` in one write transaction, run again when a concurrent writer won (so it only reads and
        writes through `db`)."""
        raise NotImplementedError

    def _next_event_seq(self, db: Db) -> int | None:
        """The number of an event to insert in this transaction (None: the database numbers it)."""
        raise NotImplementedError

    def _last_event(self, db: Db) -> int:
        """The number of the last event ever inserted (0 when none was)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def read(self, work: Callable[[Db], R]) -> R:
        with self._read() as db:
            return work(db)

    def _query(self, sql: str, params: Params = ()) -> list[tuple]:
        """The rows of one statement."""
        with self._reader() as db:
            return db.execute(sql, params).fetchall()

    def _query_one(self, sql: str, params: Params = ()) -> tuple | None:
        with self._reader() as db:
            return db.execute(sql, params).fetchone()

    def probe(self) -> None:
        self._query("SELECT name FROM leases LIMIT 1")
