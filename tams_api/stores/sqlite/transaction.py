"""A write transaction on one SQLite connection in autocommit mode: the store's writes and its migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def write_transaction(
    db: sqlite3.Connection, begin: Callable[[sqlite3.Connection], object]
) -> Iterator[sqlite3.Connection]:
    """Begun by `begin` (which takes the file's write lock), committed on leaving, rolled back on any exception,
    a failed COMMIT included."""
    begin(db)
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
