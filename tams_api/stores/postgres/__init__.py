"""The shared metadata store on PostgreSQL: any number of API replicas and one worker on one database.

    connection.py  the connection pool, serializable writes retried, placeholders translated, the SQL dialect
    schema.py      the schema, its migrations, and dropping the store's tables

The statements are the SQL store's (stores/sql), as SQLite's are.
"""

from __future__ import annotations

from ..sql import SqlMetadataStore
from .connection import PostgresConnections

__all__ = ["PostgresMetadataStore"]


class PostgresMetadataStore(PostgresConnections, SqlMetadataStore):
    """The metadata store in one schema of a PostgreSQL database."""

    reads_inline = False  # a read is a round trip to the database server
