"""The PostgreSQL store's connections: a pool shared by every thread, serializable write transactions retried when
a concurrent writer (of this process or another replica) won, and the SQL store's statements translated to
psycopg's placeholders.

Serializable isolation makes each unit of work of the domain behave as if it ran alone, whichever replica runs
it: two writers racing on overlapping segments, the same new flow or the last flow of a source cannot both commit
what each checked alone. The loser is run again on a fresh snapshot and sees the winner's work.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import BadRequest, ConfigurationError, Unavailable
from ..sql.connection import Cursor, Dialect, Params, SqlConnections
from .schema import upgrade_database

R = TypeVar("R")

WRITE_ATTEMPTS = 12  # serializable transactions a write may lose in a row to concurrent writers before a 503
BACKOFF_S = 0.005  # the first retry waits up to this (full jitter), doubling with each lost attempt, up to:
BACKOFF_MAX_S = 0.25
# Lost to a concurrent transaction: nothing of the attempt was applied, and running it again may succeed.
_LOST = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)

DIALECT = Dialect(
    least=lambda a, b: f"LEAST({a}, {b})",
    greatest=lambda a, b: f"GREATEST({a}, {b})",
    json_text=lambda column, key: f"(({column})::jsonb ->> '{key}')",
    # Left to right from a numeric zero: every + and - of the int64 columns is done in numeric, never overflowing.
    exact=lambda expression: f"(0::numeric + {expression})",
    segments_of_object="segments s",
)

# SQLite's placeholders (`?`, `:name`) as psycopg's (`%s`, `%(name)s`); string literals and `::` casts kept, `%`
# doubled.
_TOKEN = re.compile(r"'(?:[^']|'')*'|::|\?|:(\w+)|%")


@functools.lru_cache(maxsize=4096)
def translated(sql: str) -> str:
    def replace(token: re.Match[str]) -> str:
        text = token.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if token.group(1):
            return f"%({token.group(1)})s"
        return text

    return _TOKEN.sub(replace, sql)


class _FlagDumper(Dumper):
    """Python booleans as SQLite stores them, 0 and 1: the store's flags are smallint columns."""

    oid = psycopg.adapters.types["int2"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _NumberLoader(Loader):
    """numeric as SQLite gives it: an int when whole (sums of durations), else a float (averages)."""

    def load(self, data: Any) -> int | float:
        number = Decimal(bytes(data).decode())
        return int(number) if number == number.to_integral_value() else float(number)


@contextmanager
def _storable() -> Iterator[None]:
    """Text PostgreSQL cannot hold (a NUL character, which JSON allows) is the client's to change: 400."""
    try:
        yield
    except psycopg.DataError as error:
        if "NUL" not in str(error):
            raise
        raise BadRequest("text with a NUL character (\\u0000) cannot be stored") from None


def connection_options(schema: str, password: str | None, timeout: float) -> dict[str, Any]:
    """How the store connects, besides the URL: autocommit (it begins its transactions), the search path."""
    options: dict[str, Any] = {
        "autocommit": True,
        "options": f"-c search_path={schema}",
        "connect_timeout": max(1, round(timeout)),
    }
    return options if password is None else {**options, "password": password}


@contextmanager
def connected(url: str, options: dict[str, Any]) -> Iterator[psycopg.Connection[Any]]:
    """One connection; what stops it or what is done on it (a wrong URL, password or database, no right to create
    the schema) is a configuration error naming the setting."""
    try:
        with psycopg.connect(url, **options) as connection:
            yield connection
    except (psycopg.OperationalError, psycopg.ProgrammingError) as error:
        raise ConfigurationError(f"TAMS_POSTGRES_URL: cannot use PostgreSQL: {_reason(error)}") from None


class PostgresDb:
    """A connection within a transaction, running the SQL store's statements."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        with _storable():
            return self._connection.execute(translated(sql), params)

    def executemany(self, sql: str, params: Iterable[Params]) -> Cursor:
        rows = list(params)
        cursor = self._connection.cursor()  # left open: closing forgets the rowcount (all executions', as sqlite3's)
        if rows:
            with _storable():
                cursor.executemany(translated(sql), rows)
        return cursor


class PostgresConnections(SqlConnections):
    """A pool of connections to one database, the store's tables in one schema of it (the search path)."""

    dialect = DIALECT

    def __init__(
        self, url: str, schema: str, password: str | None = None, pool_size: int = 10, timeout: float = 10.0
    ) -> None:
        self._timeout = timeout
        options = connection_options(schema, password, timeout)
        # A connection of its own first: what stops the store (a wrong URL, password or database) is said at once,
        # where a pool would keep trying in the background.
        with connected(url, options) as connection:
            self.schema_upgrade = upgrade_database(connection, schema)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=options,
            configure=_configure,
            timeout=timeout,
            name="tams-metadata",
            open=True,
        )

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a database out of reach or a pool busy past the timeout is a 503 to retry."""
        try:
            with self._pool.connection() as connection:
                yield connection
        except PoolTimeout:
            raise Unavailable(f"the metadata store had no free connection for {self._timeout:g} s; retry") from None
        except _LOST:  # operational errors too, for `write` to retry
            raise
        except psycopg.OperationalError as error:
            raise Unavailable(f"PostgreSQL is out of reach ({_reason(error)}); retry") from None

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[PostgresDb]:
        with self._connection() as connection:
            connection.execute(begin)
            try:
                yield PostgresDb(connection)
            except BaseException:
                if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _read(self) -> Any:
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    @contextmanager
    def _reader(self) -> Iterator[PostgresDb]:
        with self._connection() as connection:
            yield PostgresDb(connection)

    def write(self, work: Callable[[PostgresDb], R]) -> R:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._transaction("BEGIN ISOLATION LEVEL SERIALIZABLE") as db:
                    return work(db)
            except _LOST:
                if attempt == WRITE_ATTEMPTS:
                    break
                time.sleep(random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (attempt - 1))))
        raise Unavailable(f"the metadata store's write lost to concurrent writers {WRITE_ATTEMPTS} times; retry")

    def _next_event_seq(self, db: PostgresDb) -> int:
        # One row, updated by every transaction that emits: events are numbered in the order their transactions
        # commit, without gaps (a rolled-back update takes its number back), so a webhook's cursor skips none.
        return db.execute("UPDATE event_sequence SET last = last + 1 RETURNING last").fetchone()[0]

    def _last_event(self, db: PostgresDb) -> int:
        return db.execute("SELECT last FROM event_sequence").fetchone()[0]

    def close(self) -> None:
        self._pool.close()


def _configure(connection: psycopg.Connection[Any]) -> None:
    connection.adapters.register_loader("numeric", _NumberLoader)
    connection.adapters.register_dumper(bool, _FlagDumper)


def _reason(error: BaseException) -> str:
    """The first line of what the driver said."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
