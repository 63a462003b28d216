"""The SQLite store's schema and its migrations: the version of a database is its `PRAGMA user_version`.

A new database gets SCHEMA at the latest version; one of an earlier version is brought to it by MIGRATIONS, each in
a transaction of its own (SQLite changes tables transactionally, the version included).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from ..migrations import Migration, Upgrade, adopt, upgrade
from .transaction import write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS service_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY, format TEXT, codec TEXT, label TEXT, created TEXT NOT NULL, document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY, format TEXT NOT NULL, label TEXT, description TEXT,
    created_by TEXT, updated_by TEXT, created TEXT NOT NULL, created_ns INTEGER NOT NULL,
    updated TEXT NOT NULL, updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS flows (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source_id TEXT NOT NULL,
    format TEXT NOT NULL, codec TEXT, label TEXT, profile_id TEXT, status TEXT,
    frame_width INTEGER, frame_height INTEGER, init_segments INTEGER NOT NULL DEFAULT 0,
    read_only INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL,
    created TEXT NOT NULL, created_ns INTEGER NOT NULL,
    metadata_updated TEXT NOT NULL, metadata_updated_ns INTEGER NOT NULL, segments_updated TEXT,
    seg_start_ns INTEGER, seg_end_ns INTEGER
);
CREATE INDEX IF NOT EXISTS flows_source ON flows (source_id);
CREATE INDEX IF NOT EXISTS flows_created ON flows (created_ns, id);
CREATE TABLE IF NOT EXISTS tags (
    kind TEXT NOT NULL, entity_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, entity_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tag_values (
    kind TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, entity_id TEXT NOT NULL,
    PRIMARY KEY (kind, name, value, entity_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tag_values_entity ON tag_values (kind, entity_id);
CREATE TABLE IF NOT EXISTS flow_collections (
    collector_id TEXT NOT NULL, position INTEGER NOT NULL, member_id TEXT NOT NULL, item TEXT NOT NULL,
    PRIMARY KEY (collector_id, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS flow_collections_member ON flow_collections (member_id);
CREATE TABLE IF NOT EXISTS segments (
    flow_pk INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    timerange TEXT NOT NULL, object_id TEXT NOT NULL, ts_offset TEXT, last_duration TEXT,
    sample_offset INTEGER, sample_count INTEGER,
    PRIMARY KEY (flow_pk, start_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_object ON segments (object_id, flow_pk);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, storage_ids TEXT, content_type TEXT, allocated_for TEXT, allocated_ns INTEGER,
    registered INTEGER NOT NULL DEFAULT 0, first_flow_id TEXT, timerange TEXT, key_frame_count INTEGER,
    init_object_id TEXT, uncontrolled_urls TEXT
) WITHOUT ROWID;
-- Partial: most objects have no init object, and NULL entries would make every allocation and registration
-- write one more random index page. Lookups are all `init_object_id = ...`, which this index serves.
CREATE INDEX IF NOT EXISTS objects_init ON objects (init_object_id) WHERE init_object_id IS NOT NULL;
-- Allocated objects not yet registered, by flow: what deleting a flow releases, without scanning every object.
CREATE INDEX IF NOT EXISTS objects_unregistered ON objects (allocated_for) WHERE registered = 0;
CREATE INDEX IF NOT EXISTS objects_allocated ON objects (allocated_ns) WHERE registered = 0;
-- Objects no metadata refers to any more, whose media the worker deletes: written in the transaction that
-- released them, so a crash between that commit and the media deletion forgets nothing.
-- One row per object and storage backend: an object can have controlled instances on several backends.
CREATE TABLE IF NOT EXISTS released_objects (
    id TEXT NOT NULL, storage_id TEXT NOT NULL, PRIMARY KEY (id, storage_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, status TEXT NOT NULL, owner TEXT, document TEXT NOT NULL,
    error TEXT, cursor INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_url ON webhooks (url, id);
-- The outbox: one row per change while any webhook listens, written in the change's own transaction.
-- AUTOINCREMENT: sequence numbers are never reused after pruning, so webhook cursors stay meaningful.
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, timestamp TEXT NOT NULL, flow_id TEXT,
    source_id TEXT, flow_collected_by TEXT NOT NULL, source_collected_by TEXT NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS delete_requests (
    id TEXT PRIMARY KEY, flow_id TEXT NOT NULL, to_delete TEXT NOT NULL, remaining TEXT NOT NULL,
    delete_flow INTEGER NOT NULL, status TEXT NOT NULL, created TEXT NOT NULL, created_ns INTEGER NOT NULL,
    created_by TEXT, updated TEXT NOT NULL, expiry TEXT, expiry_ns INTEGER, error TEXT
);
CREATE INDEX IF NOT EXISTS delete_requests_created ON delete_requests (created_ns, id);
CREATE INDEX IF NOT EXISTS delete_requests_status ON delete_requests (status, created_ns);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ns INTEGER NOT NULL);
-- Soft-deleted flows (extension, TAMS_SOFT_DELETE): their rows stay where they are, hidden from every read of the
-- spec's endpoints, until restored or purged by the worker after TAMS_SOFT_DELETE_RETENTION.
CREATE TABLE IF NOT EXISTS deleted_flows (
    flow_id TEXT PRIMARY KEY, deleted_at TEXT NOT NULL, deleted_ns INTEGER NOT NULL, deleted_by TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deleted_flows_deleted ON deleted_flows (deleted_ns, flow_id);
"""


def _statements(script: str) -> list[str]:
    """The statements of a script, to run one by one inside a transaction (`executescript` commits first)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements


def _run(script: str) -> Callable[[sqlite3.Connection], None]:
    def run(db: sqlite3.Connection) -> None:
        for statement in _statements(script):
            db.execute(statement)

    return run


def _several_backends(db: sqlite3.Connection) -> None:
    """Objects on several storage backends (commit 24d449b): only what is still old changes, because databases of
    two releases without a recorded version (7fa2873, 1b0dfde) have this already."""
    if "storage_id" in [column[1] for column in db.execute("PRAGMA table_info(objects)")]:
        # A single storage id is a list of one in the comma-separated column.
        db.execute("ALTER TABLE objects RENAME COLUMN storage_id TO storage_ids")
    key = [column[1] for column in db.execute("PRAGMA table_info(released_objects)") if column[5]]
    if key != ["id", "storage_id"]:  # a row per object, not per object and backend (or no table: fails, naming it)
        _run("""
        CREATE TABLE released_objects_by_backend (
            id TEXT NOT NULL, storage_id TEXT NOT NULL, PRIMARY KEY (id, storage_id)
        ) WITHOUT ROWID;
        -- Rows without a storage id were never written: objects at uncontrolled URLs only have no bytes of ours.
        INSERT INTO released_objects_by_backend SELECT id, storage_id FROM released_objects
            WHERE storage_id IS NOT NULL;
        DROP TABLE released_objects;
        ALTER TABLE released_objects_by_backend RENAME TO released_objects;
        """)(db)


# Version 1: databases from before versions were recorded (user_version 0), which hold the schema of main before
# several storage backends (0a6ab88 to 38ea025) or, for two merges, already version 2's. Databases from the first
# hours of the project lack some of its tables (released_objects, webhooks, ...): migrating them to version 2 fails,
# naming the missing table.
MIGRATIONS: list[Migration[sqlite3.Connection]] = [
    Migration(1, "adopt a database from before schema versions were recorded", adopt),
    Migration(
        2,
        "objects on several storage backends: objects.storage_ids, a released_objects row per backend",
        _several_backends,
    ),
    Migration(
        3,
        "soft delete: the deleted_flows table",
        _run("""
        CREATE TABLE IF NOT EXISTS deleted_flows (
            flow_id TEXT PRIMARY KEY, deleted_at TEXT NOT NULL, deleted_ns INTEGER NOT NULL, deleted_by TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS deleted_flows_deleted ON deleted_flows (deleted_ns, flow_id);
        """),
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


class _Database:
    """A SQLite file as a `VersionedStore`."""

    setting = "TAMS_SQLITE_PATH"
    retried: tuple[type[Exception], ...] = ()  # one writer at a time: BEGIN IMMEDIATE waits for the others

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db = db
        self.place = f"SQLite {path}"

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        # The write lock first: a concurrent start waits (SQLite's busy timeout), then reads our version.
        return write_transaction(self.db, lambda db: db.execute("BEGIN IMMEDIATE"))

    def version(self, db: sqlite3.Connection) -> int | None:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is None:
            return None
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def create(self, db: sqlite3.Connection) -> None:
        _run(SCHEMA)(db)

    def record(self, db: sqlite3.Connection, version: int) -> None:
        db.execute(f"PRAGMA user_version = {version:d}")


def upgrade_database(db: sqlite3.Connection, path: str) -> Upgrade:
    """Create or migrate the database on this connection (in autocommit mode; its busy timeout is how long a
    concurrent start's migration may hold the write lock before this one fails)."""
    return upgrade(_Database(db, path), MIGRATIONS)
