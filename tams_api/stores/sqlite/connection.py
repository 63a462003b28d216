"""The SQLite store's connections: WAL mode, one writer, short transactions, a small pool of readers, and the
busy handling that turns a writer held too long into a 503 to retry."""

from __future__ import annotations

import functools
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ...errors import Unavailable
from ..sql.connection import Db, Dialect, SqlConnections
from .schema import upgrade_database
from .transaction import write_transaction

# How long a request waits for the writer (behind this process's other writes, or another process's on the same
# file) or for a reader connection before it is told to retry (503).
BUSY_TIMEOUT = 10.0
R = TypeVar("R")

READERS = 8  # reader connections; reads are short, and a 2-core server gains nothing from more


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return error.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class _BusyIsUnavailable:
    """SQLite's busy and locked errors mean another writer held the file past BUSY_TIMEOUT: for retrying. (A class
    rather than a generator: reads enter one on every request.)"""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        if isinstance(error, sqlite3.OperationalError) and _is_busy(error):
            raise Unavailable(f"the metadata store is busy ({error}); retry") from None


_busy_is_unavailable = _BusyIsUnavailable()


class _Reading:
    """A reader connection from `readers` while inside, its busy errors for retrying."""

    __slots__ = ("_db", "_readers")

    def __init__(self, readers: _Readers) -> None:
        self._readers = readers

    def __enter__(self) -> sqlite3.Connection:
        self._db = self._readers.take()
        return self._db

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        self._readers.give(self._db)
        _busy_is_unavailable.__exit__(kind, error, _)


class _Readers:
    """At most READERS reader connections, shared by whichever threads read: per-thread connections piled up as the
    server's worker threads came and went, up to 16 MB of page cache each. An idle one is taken and given back with a
    list's pop and append (atomic under the GIL, without a lock: the reads on the event loop take one per request);
    only a reader finding none idle when all are open waits, and only then is a giver told to wake it."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._idle: list[sqlite3.Connection] = []
        self._opened = 0  # counted when a thread takes the slot, before it connects: never over READERS
        self._waiting = 0
        self._given = threading.Condition()

    def __call__(self) -> _Reading:
        return _Reading(self)

    def take(self) -> sqlite3.Connection:
        try:
            return self._idle.pop()
        except IndexError:
            return self._open_or_wait()

    def give(self, db: sqlite3.Connection) -> None:
        self._idle.append(db)
        if self._waiting:  # read after the append: a waiter counted later finds the connection itself
            with self._given:
                self._given.notify()

    def _open_or_wait(self) -> sqlite3.Connection:
        with self._given:
            room = self._opened < READERS
            self._opened += room
            if not room:
                return self._wait()
        return self._connect()

    def _wait(self) -> sqlite3.Connection:
        deadline = time.monotonic() + BUSY_TIMEOUT
        self._waiting += 1
        try:
            while True:
                try:
                    return self._idle.pop()  # a thread not waiting may have taken the one given first
                except IndexError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Unavailable(
                            f"every metadata store reader was busy for {BUSY_TIMEOUT:g} s; retry"
                        ) from None
                    self._given.wait(left)
        finally:
            self._waiting -= 1


def _begin_immediate(db: sqlite3.Connection, deadline: float) -> None:
    """Take the file's write lock, trying every millisecond or so until the deadline. SQLite's own busy handler
    sleeps up to 100 ms between tries: a writer of another process would mostly miss the pauses between the
    chunks of a bulk and wait for the whole of it."""
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.0005, 0.0015))


DIALECT = Dialect(
    least=lambda a, b: f"MIN({a}, {b})",
    greatest=lambda a, b: f"MAX({a}, {b})",
    json_text=lambda column, key: f"json_extract({column}, '$.{key}')",
    exact=lambda expression: expression,  # SQLite turns an integer that overflows into a real
    # An object's segments in a flow are a range of this index (object_id, flow_pk, then the key's start_ns); left
    # to itself, SQLite walks the flow's range instead, looking for the object in every segment.
    segments_of_object="segments s INDEXED BY segments_object",
)


class SqliteConnections(SqlConnections):
    """The connections to the database file: the one writer, a pool of readers, and the transactions of
    both."""

    dialect = DIALECT

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._reader = _Readers(self._connect)  # a connection for a statement or a few (WAL readers never block)
        self._writer = self._connect()
        # With SQLite's busy timeout still on: a concurrent start's migration holds the write lock until it is done.
        self.schema_upgrade = upgrade_database(self._writer, self.path)
        self._writer.execute("PRAGMA busy_timeout=0")  # _begin_immediate waits for the write lock itself

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000:.0f}")
        db.execute("PRAGMA cache_size=-16000")  # 16 MB page cache per connection
        # Checkpoint every ~80 MB of WAL, not the default ~4 MB: allocation and registration touch the same
        # randomly placed object pages in successive transactions, and a wider window copies each back once.
        db.execute("PRAGMA wal_autocheckpoint=20000")
        with self._connections_lock:
            self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One writer at a time; the transaction commits on success and rolls back on any error. A writer that
        cannot begin within BUSY_TIMEOUT (behind other writes of this process, or of another on the same file)
        is told to retry: 503, never a 500."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        if not self._write_lock.acquire(timeout=BUSY_TIMEOUT):
            raise Unavailable(f"the metadata store was busy with other writes for {BUSY_TIMEOUT:g} s; retry")
        try:
            begin = functools.partial(_begin_immediate, deadline=deadline)
            with _busy_is_unavailable, write_transaction(self._writer, begin) as db:
                yield db
        finally:
            self._write_lock.release()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._reader() as db:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")

    def write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        with self._write() as db:
            return work(db)

    def _next_event_seq(self, db: Db) -> None:
        return None  # AUTOINCREMENT: one writer, numbers never reused, a rolled-back insert takes its number back

    def _last_event(self, db: Db) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
