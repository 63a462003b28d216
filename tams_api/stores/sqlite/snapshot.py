"""A SQLite store as a file a backup carries: a consistent copy of the live database, what it holds, and the mark a
restore leaves in it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .connection import BUSY_TIMEOUT

RESTORED_FROM = "x-tams-restored-from"  # the service_info key naming the backup a database was restored from


@dataclass(frozen=True, slots=True)
class Contents:
    """What a database holds, as a backup's manifest counts it."""

    schema_version: int
    sources: int
    flows: int
    segments: int
    objects: int

    @property
    def empty(self) -> bool:
        return not (self.sources or self.flows or self.segments or self.objects)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object whose bytes this store keeps, on the storage backends of `storage_ids`."""

    id: str
    storage_ids: tuple[str, ...]
    registered: bool


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000:.0f}")
    return db


def copy_database(live: Path, copy: Path) -> None:
    """A consistent copy of a database other processes keep writing: SQLite's online backup in one step, which
    reads one snapshot (a WAL reader, so writers go on) and never sees a half-written transaction, as a copy of the
    file and its WAL could."""
    source = _connect(live)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def contents(path: Path) -> Contents:
    db = _connect(path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

        def count(table: str) -> int:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] if table in tables else 0

        version = db.execute("PRAGMA user_version").fetchone()[0]
        return Contents(version, count("sources"), count("flows"), count("segments"), count("objects"))
    finally:
        db.close()


def stored_objects(path: Path) -> Iterator[StoredObject]:
    """The objects with bytes on a storage backend of ours (objects at uncontrolled URLs only have none)."""
    db = _connect(path)
    try:
        rows = db.execute("SELECT id, storage_ids, registered FROM objects WHERE storage_ids IS NOT NULL ORDER BY id")
        for object_id, storage_ids, registered in rows:
            yield StoredObject(object_id, tuple(storage_ids.split(",")), bool(registered))
    finally:
        db.close()


def check_integrity(path: Path) -> str | None:
    """What SQLite finds wrong with the file, or None."""
    db = _connect(path)
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as error:
        return str(error)
    finally:
        db.close()
    return None if problems == ["ok"] else "; ".join(problems[:3])


def restored_from(path: Path) -> str | None:
    db = _connect(path)
    try:
        row = db.execute("SELECT value FROM service_info WHERE key = ?", (RESTORED_FROM,)).fetchone()
    except sqlite3.OperationalError:  # no service_info table: not a store's database
        return None
    finally:
        db.close()
    return row[0] if row else None


def mark_restored(path: Path, backup_id: str) -> None:
    db = _connect(path)
    try:
        db.execute("INSERT OR REPLACE INTO service_info (key, value) VALUES (?, ?)", (RESTORED_FROM, backup_id))
    finally:
        db.close()


def remove_database(path: Path) -> None:
    """The file and what SQLite keeps beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
