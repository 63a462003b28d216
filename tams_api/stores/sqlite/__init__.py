"""The embedded metadata store: SQLite in WAL mode, one writer, short transactions.

    connection.py   connections, the reader pool, transactions, busy handling, the SQL dialect
    schema.py       the schema and its migrations
    transaction.py  a write transaction on a connection

The statements are the SQL store's (stores/sql).
"""

from __future__ import annotations

from ..sql import SqlMetadataStore
from .connection import SqliteConnections

__all__ = ["SqliteMetadataStore"]


class SqliteMetadataStore(SqliteConnections, SqlMetadataStore):
    """The metadata store on one SQLite file."""

    reads_inline = True  # WAL readers never wait for the writer; a window read is ~20 us of CPU
