"""The embedded metadata store: SQLite in WAL mode, one writer, short transactions.

Segments live in a WITHOUT ROWID table clustered on (flow_pk, start_ns). Because segments of a flow
never overlap, the segment with the greatest start at or before a point also has the greatest end, so
overlap checks and window queries are index seeks whatever the flow's size.
"""

from __future__ import annotations

import json
import queue
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from .. import timerange as tr
from ..clock import instant_text, now
from ..errors import BadRequest, Forbidden, NotFound, TamsError, Unavailable, error_json
from ..model import (
    DeletedFlow,
    DeleteRequest,
    DeleteRequestQuery,
    Deletion,
    Event,
    Flow,
    FlowQuery,
    FlowUsage,
    FlowWrite,
    FormatDistribution,
    NewSegment,
    ObjectUsage,
    Page,
    PageRequest,
    Profile,
    ProfileQuery,
    ReleasedMedia,
    Segment,
    SegmentFailure,
    SegmentPage,
    SegmentQuery,
    ServiceInfo,
    Source,
    SourceQuery,
    StorageUsage,
    StoredObject,
    TagFilter,
    Tags,
    TagValue,
    TimerangeAnalysis,
    Webhook,
    WebhookQuery,
    segment_record,
)
from .shared import (
    REQUEST_COLUMNS,
    bindable,
    decode_key,
    decode_segment_key,
    delete_request_from_row,
    encode_key,
    flow_columns,
    format_counts,
    instances_by_storage_id,
    instances_left,
    profile_document,
    profile_from_row,
    reuse_problem,
    sign,
    storage_ids_column,
    storage_ids_from_column,
    tag_values,
    timerange_analysis,
)
from .sqlite_schema import upgrade_database

_REQUEST_COLUMNS = ", ".join(REQUEST_COLUMNS)


# How long a request waits for the writer (behind this process's other writes, or another process's on the same
# file) or for a reader connection before it is told to retry (503).
BUSY_TIMEOUT = 10.0
READERS = 8  # reader connections; reads are short, and a 2-core server gains nothing from more
BULK_CHUNK = 1000  # segments registered per transaction: about 30 ms of holding the writer
CHUNK_PAUSE = 0.002  # seconds between two chunks of a bulk, for writers waiting here or in another process


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return error.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@contextmanager
def _busy_is_unavailable() -> Iterator[None]:
    """SQLite's busy and locked errors mean another writer held the file past BUSY_TIMEOUT: for retrying."""
    try:
        yield
    except sqlite3.OperationalError as error:
        if not _is_busy(error):
            raise
        raise Unavailable(f"the metadata store is busy ({error}); retry") from None


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


def _live(flow_id: str) -> str:
    """SQL: the flow whose id is the expression `flow_id` is not soft-deleted."""
    return f"{flow_id} NOT IN (SELECT flow_id FROM deleted_flows)"


# A source exists for clients while a flow that is not soft-deleted names it.
_SOURCE_VISIBLE = f"EXISTS (SELECT 1 FROM flows sf WHERE sf.source_id = sources.id AND {_live('sf.id')})"

_SEGMENT_COLUMNS = (
    "s.timerange, s.ts_offset, s.last_duration, s.sample_offset, s.sample_count, "
    "o.id, o.storage_ids, o.timerange, o.key_frame_count, o.init_object_id, o.uncontrolled_urls"
)


# The flow's key and the lowest start a segment overlapping the window can have, within the listing's statement
# (its own snapshot): the start of the segment straddling the window start, if any (only the segment just before
# the start can reach into the window), else the window start.
_FLOW_PK = f"(SELECT pk FROM flows WHERE id = :flow_id AND {_live('id')})"
_WINDOW_LOWEST_START = (
    f"COALESCE((SELECT CASE WHEN p.end_ns >= :start THEN p.start_ns ELSE :start END FROM segments p "
    f"WHERE p.flow_pk = {_FLOW_PK} AND p.start_ns < :start ORDER BY p.start_ns DESC LIMIT 1), :start)"
)


def _stored_object(
    object_id: str,
    storage_ids: str | None,
    timerange: str | None,
    key_frame_count: int | None,
    init_object_id: str | None,
    uncontrolled_urls: str | None,
) -> StoredObject:
    """An object from its columns, in the order of the objects table."""
    urls = json.loads(uncontrolled_urls) if uncontrolled_urls else []
    return StoredObject(
        object_id, storage_ids_from_column(storage_ids), timerange, key_frame_count, init_object_id, urls
    )


class _Keyset:
    """ORDER BY and the 'after this row' condition for one sort of a listing, all in one direction."""

    def __init__(self, columns: Sequence[str], descending: bool) -> None:
        self.columns = columns
        self.descending = descending

    def order_by(self) -> str:
        direction = " DESC" if self.descending else ""
        return ", ".join(column + direction for column in self.columns)

    def after(self, key: str) -> tuple[str, list[Any]]:
        values = decode_key(key, len(self.columns))
        operator = "<" if self.descending else ">"
        return f"({', '.join(self.columns)}) {operator} ({', '.join('?' * len(values))})", values

    def select(self) -> str:
        return ", ".join(self.columns)


def _sort_keyset(sort_by: str, reverse: bool, table: str) -> _Keyset:
    if sort_by == "label":
        # Resources without a label sort by id, after the labelled ones (before them when reversed).
        columns = (f"{table}.label IS NULL", f"COALESCE({table}.label, {table}.id)", f"{table}.id")
        return _Keyset(columns, descending=reverse)
    # created / updated / metadata_updated: most recent first by default.
    return _Keyset((f"{table}.{sort_by}_ns", f"{table}.id"), descending=not reverse)


class SqliteMetadataStore:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._idle_readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._writer = self._connect()
        # With SQLite's busy timeout still on: a concurrent start's migration holds the write lock until it is done.
        self.schema_upgrade = upgrade_database(self._writer, self.path)
        self._writer.execute("PRAGMA busy_timeout=0")  # _begin_immediate waits for the write lock itself

    # -- connections and transactions -------------------------------------------------------------

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
            db = self._writer
            with _busy_is_unavailable():
                _begin_immediate(db, deadline)
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        finally:
            self._write_lock.release()

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A reader connection for a statement or a few (WAL readers never block, nor wait for the writer). At
        most READERS of them, shared by whichever threads read: per-thread connections piled up as the server's
        worker threads came and went, up to 16 MB of page cache each."""
        try:
            db = self._idle_readers.get_nowait()
        except queue.Empty:
            with self._connections_lock:
                room = len(self._connections) <= READERS  # the writer is one of them
            try:
                db = self._connect() if room else self._idle_readers.get(timeout=BUSY_TIMEOUT)
            except queue.Empty:
                raise Unavailable(f"every metadata store reader was busy for {BUSY_TIMEOUT:g} s; retry") from None
        try:
            with _busy_is_unavailable():
                yield db
        finally:
            self._idle_readers.put(db)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot across several statements."""
        with self._reader() as db:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
        """The rows of one statement (its own snapshot)."""
        with self._reader() as db:
            return db.execute(sql, params).fetchall()

    def _query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        with self._reader() as db:
            return db.execute(sql, params).fetchone()

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()

    def probe(self) -> None:
        self._query("SELECT name FROM leases LIMIT 1")

    # -- service -----------------------------------------------------------------------------------

    def get_service_info(self, defaults: ServiceInfo) -> ServiceInfo:
        with self._read() as db:
            stored = dict(db.execute("SELECT key, value FROM service_info").fetchall())
        return ServiceInfo(
            name=stored.get("name", defaults.name), description=stored.get("description", defaults.description)
        )

    def update_service_info(self, name: str | None, description: str | None) -> None:
        with self._write() as db:
            for key, value in (("name", name), ("description", description)):
                if value is not None:
                    db.execute("INSERT OR REPLACE INTO service_info (key, value) VALUES (?, ?)", (key, value))

    # -- profiles ----------------------------------------------------------------------------------

    def get_profile(self, profile_id: str) -> Profile | None:
        row = self._query_one("SELECT id, created, document FROM profiles WHERE id = ?", (profile_id,))
        return profile_from_row(row) if row else None

    def list_profiles(self, query: ProfileQuery) -> Page[Profile]:
        conditions, params = [], []
        for column in ("format", "codec", "label"):
            value = getattr(query, column)
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if query.page.key is not None:
            conditions.append("id > ?")
            params.append(decode_key(query.page.key, 1)[0])
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._query(
            f"SELECT id, created, document FROM profiles {where} ORDER BY id LIMIT ?",
            (*params, query.page.limit + 1),
        )
        next_key = encode_key([rows[query.page.limit - 1][0]]) if len(rows) > query.page.limit else None
        return Page([profile_from_row(row) for row in rows[: query.page.limit]], next_key, query.page.limit)

    def create_profile(self, profile: Profile) -> None:
        metadata = profile.flow_metadata
        with self._write() as db:
            if db.execute("SELECT 1 FROM profiles WHERE id = ?", (profile.id,)).fetchone():
                raise BadRequest(f"profile {profile.id} exists already; profiles cannot be changed, create a new one")
            db.execute(
                "INSERT INTO profiles (id, format, codec, label, created, document) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    profile.id,
                    metadata.get("format"),
                    metadata.get("codec"),
                    profile.details.get("label"),
                    profile.created,
                    profile_document(profile),
                ),
            )

    # -- tags --------------------------------------------------------------------------------------

    def _load_tags(self, db: sqlite3.Connection, kind: str, ids: Sequence[str]) -> dict[str, Tags]:
        result: dict[str, Tags] = {entity_id: {} for entity_id in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            placeholders = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT entity_id, name, value FROM tags WHERE kind = ? AND entity_id IN ({placeholders})",
                (kind, *chunk),
            )
            for entity_id, name, value in rows:
                result[entity_id][name] = json.loads(value)
        return result

    def _put_tag(self, db: sqlite3.Connection, kind: str, entity_id: str, name: str, value: TagValue) -> None:
        self._delete_tag(db, kind, entity_id, name)
        db.execute(
            "INSERT INTO tags (kind, entity_id, name, value) VALUES (?, ?, ?, ?)",
            (kind, entity_id, name, json.dumps(value)),
        )
        db.executemany(
            "INSERT OR IGNORE INTO tag_values (kind, name, value, entity_id) VALUES (?, ?, ?, ?)",
            [(kind, name, item, entity_id) for item in tag_values(value)],
        )

    def _delete_tag(self, db: sqlite3.Connection, kind: str, entity_id: str, name: str) -> bool:
        db.execute("DELETE FROM tag_values WHERE kind = ? AND entity_id = ? AND name = ?", (kind, entity_id, name))
        deleted = db.execute("DELETE FROM tags WHERE kind = ? AND entity_id = ? AND name = ?", (kind, entity_id, name))
        return deleted.rowcount > 0

    def _replace_tags(self, db: sqlite3.Connection, kind: str, entity_id: str, tags: Tags) -> None:
        self._delete_all_tags(db, kind, entity_id)
        for name, value in tags.items():
            self._put_tag(db, kind, entity_id, name, value)

    def _delete_all_tags(self, db: sqlite3.Connection, kind: str, entity_id: str) -> None:
        db.execute("DELETE FROM tag_values WHERE kind = ? AND entity_id = ?", (kind, entity_id))
        db.execute("DELETE FROM tags WHERE kind = ? AND entity_id = ?", (kind, entity_id))

    @staticmethod
    def _tag_conditions(kind: str, id_column: str, tags: TagFilter) -> tuple[list[str], list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        for name, values in tags.values.items():
            conditions.append(
                "EXISTS (SELECT 1 FROM tag_values tv WHERE tv.kind = ? AND tv.name = ? "
                f"AND tv.value IN ({','.join('?' * len(values))}) AND tv.entity_id = {id_column})"
            )
            params += [kind, name, *values]
        for name, exists in tags.exists.items():
            negation = "" if exists else "NOT "
            conditions.append(
                f"{negation}EXISTS (SELECT 1 FROM tags t WHERE t.kind = ? AND t.entity_id = {id_column} AND t.name = ?)"
            )
            params += [kind, name]
        return conditions, params

    # -- sources -----------------------------------------------------------------------------------

    _SOURCE_COLUMNS = "id, format, label, description, created_by, updated_by, created, updated"

    def _sources_from_rows(self, db: sqlite3.Connection, rows: list[tuple]) -> list[Source]:
        ids = [row[0] for row in rows]
        tags = self._load_tags(db, "source", ids)
        sources = []
        for source_id, fmt, label, description, created_by, updated_by, created, updated in rows:
            members = db.execute(
                "SELECT DISTINCT member.source_id FROM flows collector "
                "JOIN flow_collections c ON c.collector_id = collector.id "
                "JOIN flows member ON member.id = c.member_id "
                f"WHERE collector.source_id = ? AND member.source_id != ? AND {_live('collector.id')} "
                f"AND {_live('member.id')} ORDER BY member.source_id",
                (source_id, source_id),
            ).fetchall()
            sources.append(
                Source(
                    id=source_id,
                    format=fmt,
                    label=label,
                    description=description,
                    created_by=created_by,
                    updated_by=updated_by,
                    created=created,
                    updated=updated,
                    tags=tags[source_id],
                    source_collection=[{"id": member} for (member,) in members],
                    collected_by=self._source_collected_by(db, source_id),
                )
            )
        return sources

    @staticmethod
    def _source_collected_by(db: sqlite3.Connection, source_id: str) -> list[str]:
        """Sources of flows that collect flows of this source: the source's collections."""
        rows = db.execute(
            "SELECT DISTINCT collector.source_id FROM flows member "
            "JOIN flow_collections c ON c.member_id = member.id "
            "JOIN flows collector ON collector.id = c.collector_id "
            f"WHERE member.source_id = ? AND collector.source_id != ? AND {_live('collector.id')} "
            f"AND {_live('member.id')} ORDER BY collector.source_id",
            (source_id, source_id),
        ).fetchall()
        return [collector for (collector,) in rows]

    def get_source(self, source_id: str) -> Source | None:
        with self._read() as db:
            rows = db.execute(
                f"SELECT {self._SOURCE_COLUMNS} FROM sources WHERE id = ? AND {_SOURCE_VISIBLE}", (source_id,)
            ).fetchall()
            found = self._sources_from_rows(db, rows)
        return found[0] if found else None

    def list_sources(self, query: SourceQuery) -> Page[Source]:
        conditions, params = self._tag_conditions("source", "sources.id", query.tags)
        conditions.append(_SOURCE_VISIBLE)
        for column in ("label", "format"):
            value = getattr(query, column)
            if value is not None:
                conditions.append(f"sources.{column} = ?")
                params.append(value)
        if query.collected_by_ids is not None:
            collectors = (
                "SELECT 1 FROM flows member JOIN flow_collections c ON c.member_id = member.id "
                "JOIN flows collector ON collector.id = c.collector_id "
                "WHERE member.source_id = sources.id AND collector.source_id != sources.id "
                f"AND {_live('member.id')} AND {_live('collector.id')}"
            )
            if query.collected_by_ids:
                ids = query.collected_by_ids
                conditions.append(f"EXISTS ({collectors} AND collector.source_id IN ({','.join('?' * len(ids))}))")
                params += ids
            else:
                conditions.append(f"NOT EXISTS ({collectors})")
        keyset = _sort_keyset(query.sort_by, query.page.reverse, "sources")
        with self._read() as db:
            rows = self._page_rows(db, "sources", self._SOURCE_COLUMNS, conditions, params, keyset, query.page)
            items = self._sources_from_rows(db, [row[len(keyset.columns) :] for row in rows[: query.page.limit]])
        return Page(items, self._next_key(rows, keyset, query.page.limit), query.page.limit)

    @staticmethod
    def _page_rows(
        db: sqlite3.Connection,
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

    @staticmethod
    def _next_key(rows: list[tuple], keyset: _Keyset, limit: int) -> str | None:
        if len(rows) <= limit:
            return None
        return encode_key(rows[limit - 1][: len(keyset.columns)])

    def set_source_property(self, source_id: str, name: str, value: str | None, updated_by: str | None) -> None:
        assert name in ("label", "description")
        stamp = now()
        with self._write() as db:
            updated = db.execute(
                f"UPDATE sources SET {name} = ?, updated_by = ?, updated = ?, updated_ns = ? "
                f"WHERE id = ? AND {_SOURCE_VISIBLE}",
                (value, updated_by, stamp.text, stamp.ns, source_id),
            )
            if updated.rowcount == 0:
                raise NotFound(f"source {source_id} does not exist")
            self._emit_source(db, "sources/updated", source_id)

    def set_source_tag(self, source_id: str, name: str, value: TagValue | None, updated_by: str | None) -> None:
        stamp = now()
        with self._write() as db:
            updated = db.execute(
                f"UPDATE sources SET updated_by = ?, updated = ?, updated_ns = ? WHERE id = ? AND {_SOURCE_VISIBLE}",
                (updated_by, stamp.text, stamp.ns, source_id),
            )
            if updated.rowcount == 0:
                raise NotFound(f"source {source_id} does not exist")
            if value is not None:
                self._put_tag(db, "source", source_id, name, value)
            elif not self._delete_tag(db, "source", source_id, name):
                raise NotFound(f"source {source_id} has no tag {name!r}")
            self._emit_source(db, "sources/updated", source_id)

    # -- flows -------------------------------------------------------------------------------------

    _FLOW_COLUMNS = "pk, id, source_id, metadata, created, metadata_updated, segments_updated"

    def _flows_from_rows(self, db: sqlite3.Connection, rows: list[tuple]) -> list[Flow]:
        ids = [row[1] for row in rows]
        tags = self._load_tags(db, "flow", ids)
        flows = []
        for _pk, flow_id, source_id, metadata, created, metadata_updated, segments_updated in rows:
            collection = db.execute(
                f"SELECT item FROM flow_collections WHERE collector_id = ? AND {_live('member_id')} ORDER BY position",
                (flow_id,),
            ).fetchall()
            collected_by = db.execute(
                f"SELECT DISTINCT collector_id FROM flow_collections WHERE member_id = ? AND {_live('collector_id')} "
                "ORDER BY collector_id",
                (flow_id,),
            ).fetchall()
            flows.append(
                Flow(
                    id=flow_id,
                    source_id=source_id,
                    metadata=json.loads(metadata),
                    created=created,
                    metadata_updated=metadata_updated,
                    segments_updated=segments_updated,
                    tags=tags[flow_id],
                    flow_collection=[json.loads(item) for (item,) in collection],
                    collected_by=[collector for (collector,) in collected_by],
                )
            )
        return flows

    def _flow_row(self, db: sqlite3.Connection, flow_id: str) -> tuple | None:
        return db.execute(
            f"SELECT {self._FLOW_COLUMNS} FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)
        ).fetchone()

    def get_flow(self, flow_id: str) -> Flow | None:
        with self._read() as db:
            row = self._flow_row(db, flow_id)
            return self._flows_from_rows(db, [row])[0] if row else None

    def list_flows(self, query: FlowQuery) -> Page[Flow]:
        conditions, params = self._tag_conditions("flow", "flows.id", query.tags)
        conditions.append(_live("flows.id"))
        for column in ("source_id", "format", "codec", "profile_id", "label", "status", "frame_width", "frame_height"):
            value = getattr(query, column)
            if value is not None:
                if not bindable(value):
                    raise BadRequest(f"{column} is outside the 64-bit integer range the service stores")
                conditions.append(f"flows.{column} = ?")
                params.append(value)
        if query.init_segments is not None:
            conditions.append("flows.init_segments = ?")
            params.append(int(query.init_segments))
        if query.timerange is not None:
            if query.timerange.is_empty:
                conditions.append("flows.seg_start_ns IS NULL")  # an empty range selects flows with no content
            else:
                conditions.append("flows.seg_start_ns <= ? AND flows.seg_end_ns >= ?")
                params += [query.timerange.end, query.timerange.start]
        if query.collected_by_ids is not None:
            if query.collected_by_ids:
                ids = query.collected_by_ids
                conditions.append(
                    "EXISTS (SELECT 1 FROM flow_collections c WHERE c.member_id = flows.id "
                    f"AND c.collector_id IN ({','.join('?' * len(ids))}) AND {_live('c.collector_id')})"
                )
                params += ids
            else:
                conditions.append(
                    "NOT EXISTS (SELECT 1 FROM flow_collections c WHERE c.member_id = flows.id "
                    f"AND {_live('c.collector_id')})"
                )
        keyset = _sort_keyset(query.sort_by, query.page.reverse, "flows")
        with self._read() as db:
            rows = self._page_rows(db, "flows", self._FLOW_COLUMNS, conditions, params, keyset, query.page)
            items = self._flows_from_rows(db, [row[len(keyset.columns) :] for row in rows[: query.page.limit]])
        return Page(items, self._next_key(rows, keyset, query.page.limit), query.page.limit)

    def _writable_flow(self, db: sqlite3.Connection, flow_id: str) -> tuple:
        row = db.execute(
            f"SELECT pk, read_only, metadata FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"flow {flow_id} does not exist")
        if row[1]:
            raise Forbidden(f"flow {flow_id} is read-only")
        return row

    def _check_collection(self, db: sqlite3.Connection, flow_id: str, collection: list[dict[str, Any]]) -> None:
        for item in collection:
            if item["id"] == flow_id:
                raise BadRequest("a flow cannot collect itself")
            if db.execute(f"SELECT 1 FROM flows WHERE id = ? AND {_live('id')}", (item["id"],)).fetchone() is None:
                raise BadRequest(f"flow_collection names flow {item['id']}, which does not exist")

    def _write_collection(self, db: sqlite3.Connection, flow_id: str, collection: list[dict[str, Any]]) -> None:
        db.execute("DELETE FROM flow_collections WHERE collector_id = ?", (flow_id,))
        db.executemany(
            "INSERT INTO flow_collections (collector_id, position, member_id, item) VALUES (?, ?, ?, ?)",
            [(flow_id, position, item["id"], json.dumps(item)) for position, item in enumerate(collection)],
        )

    def _touch_metadata(
        self, db: sqlite3.Connection, flow_id: str, metadata: dict[str, Any], updated_by: str | None
    ) -> None:
        """Store changed metadata with a new metadata_version, metadata_updated and updated_by."""
        stamp = now()
        sign(metadata, updated_by, metadata)
        metadata["metadata_version"] = str(uuid.uuid4())
        columns = flow_columns(metadata["format"], metadata)
        assignments = ", ".join(f"{name} = ?" for name in columns)
        db.execute(
            f"UPDATE flows SET {assignments}, metadata = ?, metadata_updated = ?, metadata_updated_ns = ? WHERE id = ?",
            (*columns.values(), json.dumps(metadata), stamp.text, stamp.ns, flow_id),
        )
        if self._listening(db):
            flow = self._flows_from_rows(db, [self._flow_row(db, flow_id)])[0]
            self._emit(db, "flows/updated", {"flow": flow.to_json()}, flow_id=flow_id)

    def put_flow(self, flow: FlowWrite) -> tuple[Flow, bool]:
        stamp = now()
        metadata = dict(flow.metadata)
        metadata["format"] = flow.format
        with self._write() as db:
            # A soft-deleted flow of that id is purged now: to clients it is deleted, and a PUT creates the flow anew.
            hidden = db.execute(
                "SELECT pk FROM flows WHERE id = ? AND id IN (SELECT flow_id FROM deleted_flows)", (flow.id,)
            ).fetchone()
            if hidden is not None:
                self._drop_flow(db, flow.id, hidden[0])
            existing = db.execute(
                "SELECT source_id, read_only, metadata FROM flows WHERE id = ?", (flow.id,)
            ).fetchone()
            if existing is not None and existing[1]:
                raise Forbidden(f"flow {flow.id} is read-only")
            self._check_collection(db, flow.id, flow.flow_collection)
            new_source = self._ensure_source(db, flow, stamp)
            previous = json.loads(existing[2]) if existing else None
            sign(metadata, flow.author, previous)
            # A client may set metadata_version (e.g. carried over from another store); otherwise a change
            # of metadata gets a new one.
            previous_version = previous.get("metadata_version") if previous else None
            if metadata.get("metadata_version") in (None, previous_version):
                metadata["metadata_version"] = str(uuid.uuid4())
            columns = flow_columns(flow.format, metadata)
            if existing is None:
                names = ", ".join(columns)
                db.execute(
                    f"INSERT INTO flows (id, source_id, {names}, metadata, created, created_ns, "
                    "metadata_updated, metadata_updated_ns) "
                    f"VALUES (?, ?, {', '.join('?' * len(columns))}, ?, ?, ?, ?, ?)",
                    (
                        flow.id,
                        flow.source_id,
                        *columns.values(),
                        json.dumps(metadata),
                        stamp.text,
                        stamp.ns,
                        stamp.text,
                        stamp.ns,
                    ),
                )
            else:
                assignments = ", ".join(f"{name} = ?" for name in columns)
                db.execute(
                    f"UPDATE flows SET source_id = ?, {assignments}, metadata = ?, metadata_updated = ?, "
                    "metadata_updated_ns = ? WHERE id = ?",
                    (flow.source_id, *columns.values(), json.dumps(metadata), stamp.text, stamp.ns, flow.id),
                )
                if existing[0] != flow.source_id:
                    self._source_left(db, existing[0])
            self._replace_tags(db, "flow", flow.id, flow.tags)
            self._write_collection(db, flow.id, flow.flow_collection)
            stored = self._flows_from_rows(db, [self._flow_row(db, flow.id)])[0]
            if self._listening(db):
                if new_source:
                    self._emit_source(db, "sources/created", flow.source_id)
                event_type = "flows/created" if existing is None else "flows/updated"
                self._emit(db, event_type, {"flow": stored.to_json()}, flow_id=flow.id)
        return stored, existing is None

    def _ensure_source(self, db: sqlite3.Connection, flow: FlowWrite, stamp: Any) -> bool:
        """Sources come into being with their first flow (True when this one did); a flow must match its
        source's format."""
        source = db.execute("SELECT format FROM sources WHERE id = ?", (flow.source_id,)).fetchone()
        if source is None:
            db.execute(
                "INSERT INTO sources (id, format, label, description, created_by, updated_by, created, created_ns, "
                "updated, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    flow.source_id,
                    flow.format,
                    flow.metadata.get("label"),
                    flow.metadata.get("description"),
                    flow.author,
                    flow.author,
                    stamp.text,
                    stamp.ns,
                    stamp.text,
                    stamp.ns,
                ),
            )
            return True
        # A source whose flows are all soft-deleted is hidden: it comes back with this flow.
        reappears = not self._source_has_live_flow(db, flow.source_id)
        if source[0] != flow.format:
            others = db.execute(
                "SELECT COUNT(*) FROM flows WHERE source_id = ? AND id != ?", (flow.source_id, flow.id)
            ).fetchone()[0]
            if others:
                raise BadRequest(
                    f"flow format {flow.format} conflicts with format {source[0]} of source {flow.source_id}"
                )
            db.execute("UPDATE sources SET format = ? WHERE id = ?", (flow.format, flow.source_id))
        return reappears

    @staticmethod
    def _source_has_live_flow(db: sqlite3.Connection, source_id: str) -> bool:
        return (
            db.execute(f"SELECT 1 FROM flows WHERE source_id = ? AND {_live('id')} LIMIT 1", (source_id,)).fetchone()
            is not None
        )

    def _source_left(self, db: sqlite3.Connection, source_id: str, announce: bool = True) -> None:
        """A flow left the source: without flows that are not soft-deleted it is gone for clients (announced
        unless it was gone already), and without any flow it is forgotten."""
        if self._source_has_live_flow(db, source_id):
            return
        if announce:
            self._emit_source(db, "sources/deleted", source_id)
        if db.execute("SELECT 1 FROM flows WHERE source_id = ? LIMIT 1", (source_id,)).fetchone() is None:
            db.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            self._delete_all_tags(db, "source", source_id)

    @staticmethod
    def _pending_flow_delete(db: sqlite3.Connection, flow_id: str) -> DeleteRequest | None:
        pending = db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE flow_id = ? AND delete_flow = 1 "
            "AND status IN ('created', 'started')",
            (flow_id,),
        ).fetchone()
        return delete_request_from_row(pending) if pending is not None else None

    def delete_flow(self, flow_id: str, sync_limit: int, created_by: str | None) -> Deletion:
        """Delete the flow now when it has at most `sync_limit` segments, else leave it to a delete request."""
        with self._write() as db:
            pk = self._writable_flow(db, flow_id)[0]
            return self._delete_flow(db, flow_id, pk, sync_limit, created_by)

    def _delete_flow(
        self, db: sqlite3.Connection, flow_id: str, pk: int, sync_limit: int, created_by: str | None
    ) -> Deletion:
        pending = self._pending_flow_delete(db, flow_id)
        if pending is not None:
            return Deletion(deferred=pending)
        if self._more_covered_than(db, pk, tr.EVERYTHING, sync_limit):
            return Deletion(deferred=self._create_delete_request(db, flow_id, "_", True, created_by))
        return Deletion(released=self._drop_flow(db, flow_id, pk))

    # -- soft delete (extension) -------------------------------------------------------------------

    def soft_delete_flow(self, flow_id: str, deleted_by: str) -> Deletion:
        """Hide the flow (and what only it holds: its segments, and its source when no other flow names it)
        from the spec's endpoints, keeping every row for a restore; to clients it is deleted."""
        stamp = now()
        with self._write() as db:
            self._writable_flow(db, flow_id)
            pending = self._pending_flow_delete(db, flow_id)
            if pending is not None:
                return Deletion(deferred=pending)
            if self._listening(db):
                self._emit(db, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
            db.execute(
                "INSERT INTO deleted_flows (flow_id, deleted_at, deleted_ns, deleted_by) VALUES (?, ?, ?, ?)",
                (flow_id, stamp.text, stamp.ns, deleted_by),
            )
            source_id = db.execute("SELECT source_id FROM flows WHERE id = ?", (flow_id,)).fetchone()[0]
            self._source_left(db, source_id)
        return Deletion()

    def restore_flow(self, flow_id: str) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM deleted_flows WHERE flow_id = ?", (flow_id,)).fetchone() is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            if self._pending_flow_delete(db, flow_id) is not None:
                raise BadRequest(f"flow {flow_id} is being purged; it can no longer be restored")
            source_id = db.execute("SELECT source_id FROM flows WHERE id = ?", (flow_id,)).fetchone()[0]
            source_reappears = not self._source_has_live_flow(db, source_id)
            db.execute("DELETE FROM deleted_flows WHERE flow_id = ?", (flow_id,))
            if self._listening(db):
                if source_reappears:
                    self._emit_source(db, "sources/created", source_id)
                flow = self._flows_from_rows(db, [self._flow_row(db, flow_id)])[0]
                self._emit(db, "flows/created", {"flow": flow.to_json()}, flow_id=flow_id)

    _DELETED_FLOW_COLUMNS = "d.flow_id, f.source_id, f.label, d.deleted_at, d.deleted_ns, d.deleted_by"

    def list_deleted_flows(self, page: PageRequest) -> Page[DeletedFlow]:
        """Oldest deletion first: the order the worker purges them in."""
        conditions, params = [], []
        if page.key is not None:
            conditions.append("(d.deleted_ns, d.flow_id) > (?, ?)")
            params += decode_key(page.key, 2)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._query(
            f"SELECT {self._DELETED_FLOW_COLUMNS} FROM deleted_flows d JOIN flows f ON f.id = d.flow_id {where} "
            "ORDER BY d.deleted_ns, d.flow_id LIMIT ?",
            (*params, page.limit + 1),
        )
        next_key = encode_key([rows[page.limit - 1][4], rows[page.limit - 1][0]]) if len(rows) > page.limit else None
        return Page([DeletedFlow(*row) for row in rows[: page.limit]], next_key, page.limit)

    def deleted_flows_due(self, deleted_before_ns: int, limit: int) -> list[str]:
        """Soft-deleted flows whose retention has passed and whose purge has not begun, oldest first."""
        rows = self._query(
            "SELECT flow_id FROM deleted_flows d WHERE deleted_ns < ? AND NOT EXISTS (SELECT 1 FROM delete_requests r "
            "WHERE r.flow_id = d.flow_id AND r.delete_flow = 1 AND r.status IN ('created', 'started')) "
            "ORDER BY deleted_ns, flow_id LIMIT ?",
            (deleted_before_ns, limit),
        )
        return [flow_id for (flow_id,) in rows]

    def purge_flow(self, flow_id: str, sync_limit: int) -> Deletion:
        """Delete a soft-deleted flow for good, as DELETE /flows/{id} would have (a delete request when large)."""
        with self._write() as db:
            row = db.execute(
                "SELECT f.pk, d.deleted_by FROM deleted_flows d JOIN flows f ON f.id = d.flow_id WHERE d.flow_id = ?",
                (flow_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            return self._delete_flow(db, flow_id, row[0], sync_limit, row[1])

    def _drop_flow(self, db: sqlite3.Connection, flow_id: str, pk: int) -> list[ReleasedMedia]:
        if self._listening(db):
            self._emit(db, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
        # A soft-deleted flow was announced deleted already, and so was its source if the flow held it.
        hidden = db.execute("DELETE FROM deleted_flows WHERE flow_id = ?", (flow_id,)).rowcount > 0
        source_id = db.execute("SELECT source_id FROM flows WHERE pk = ?", (pk,)).fetchone()[0]
        object_ids = [row[0] for row in db.execute("SELECT DISTINCT object_id FROM segments WHERE flow_pk = ?", (pk,))]
        db.execute("DELETE FROM segments WHERE flow_pk = ?", (pk,))
        released = self._release_unreferenced(db, object_ids)
        # Objects allocated for this flow but never registered can no longer be used, unless they are init
        # objects that objects of other flows still use.
        unused = db.execute(
            "SELECT id FROM objects WHERE allocated_for = ? AND registered = 0 "
            "AND NOT EXISTS (SELECT 1 FROM objects u WHERE u.init_object_id = objects.id)",
            (flow_id,),
        ).fetchall()
        released += self._release(db, [object_id for (object_id,) in unused])
        db.execute("DELETE FROM flows WHERE pk = ?", (pk,))
        db.execute("DELETE FROM flow_collections WHERE collector_id = ? OR member_id = ?", (flow_id, flow_id))
        self._delete_all_tags(db, "flow", flow_id)
        self._source_left(db, source_id, announce=not hidden)
        return released

    def set_flow_property(self, flow_id: str, name: str, value: Any | None, updated_by: str | None) -> None:
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            if name == "avg_bit_rate" and metadata.get("profile_id"):
                raise BadRequest(
                    f"avg_bit_rate comes from profile {metadata['profile_id']}: "
                    "unlink the flow first by setting profile_id to '' in a PUT of the flow"
                )
            if value is None:
                metadata.pop(name, None)
            else:
                metadata[name] = value
            self._touch_metadata(db, flow_id, metadata, updated_by)

    def set_flow_read_only(self, flow_id: str, read_only: bool, updated_by: str | None) -> None:
        with self._write() as db:
            row = db.execute(f"SELECT metadata FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)).fetchone()
            if row is None:
                raise NotFound(f"flow {flow_id} does not exist")
            metadata = json.loads(row[0])
            metadata["read_only"] = read_only
            self._touch_metadata(db, flow_id, metadata, updated_by)

    def set_flow_tag(self, flow_id: str, name: str, value: TagValue | None, updated_by: str | None) -> None:
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            if value is not None:
                self._put_tag(db, "flow", flow_id, name, value)
            elif not self._delete_tag(db, "flow", flow_id, name):
                raise NotFound(f"flow {flow_id} has no tag {name!r}")
            self._touch_metadata(db, flow_id, metadata, updated_by)

    def set_flow_collection(self, flow_id: str, collection: list[dict[str, Any]], updated_by: str | None) -> None:
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            self._check_collection(db, flow_id, collection)
            self._write_collection(db, flow_id, collection)
            self._touch_metadata(db, flow_id, metadata, updated_by)

    # -- segments ----------------------------------------------------------------------------------

    @staticmethod
    def _preceding(db: sqlite3.Connection, flow_pk: int, at_or_before: int) -> tuple | None:
        """(start_ns, end_ns, timerange) of the segment with the greatest start <= the given point."""
        return db.execute(
            "SELECT start_ns, end_ns, timerange FROM segments WHERE flow_pk = ? AND start_ns <= ? "
            "ORDER BY start_ns DESC LIMIT 1",
            (flow_pk, at_or_before),
        ).fetchone()

    def flow_timerange(self, flow_id: str, within: tr.Bounds) -> str:
        with self._read() as db:
            row = db.execute(f"SELECT pk FROM flows WHERE id = ? AND {_live('id')}", (flow_id,)).fetchone()
            if row is None:
                raise NotFound(f"flow {flow_id} does not exist")
            first, last = self._overlapping_ends(db, row[0], within)
        return tr.span(first, last) if first else "()"

    def _overlapping_ends(
        self, db: sqlite3.Connection, flow_pk: int, within: tr.Bounds
    ) -> tuple[str, str] | tuple[None, None]:
        """Timeranges of the first and last segments that overlap `within`."""
        if within.is_empty:
            return None, None
        last = self._preceding(db, flow_pk, within.end)
        if last is None or last[1] < within.start:
            return None, None
        first = self._preceding(db, flow_pk, within.start - 1) if within.start > tr.INT64_MIN else None
        if first is None or first[1] < within.start:
            first = db.execute(
                "SELECT start_ns, end_ns, timerange FROM segments WHERE flow_pk = ? AND start_ns >= ? "
                "ORDER BY start_ns LIMIT 1",
                (flow_pk, within.start),
            ).fetchone()
        return first[2], last[2]

    def add_segments(self, flow_id: str, segments: list[NewSegment]) -> list[SegmentFailure]:
        """Register segments in transactions of BULK_CHUNK, so that a large bulk never holds the writer (and other
        writers of the file waiting) for long. Each segment is stored whole or reported in the failures."""
        failures: list[SegmentFailure] = []
        for start in range(0, max(len(segments), 1), BULK_CHUNK):
            if start:
                time.sleep(CHUNK_PAUSE)
            try:
                failures += self._add_segment_chunk(flow_id, segments[start : start + BULK_CHUNK])
            except TamsError as refused:
                if start == 0:
                    raise  # nothing stored: the request as a whole is refused
                # The flow changed between two chunks (deleted, made read-only) or the store stayed busy.
                failures += [
                    SegmentFailure(left.object_id, left.timerange, refused.summary) for left in segments[start:]
                ]
                break
        return failures

    def _add_segment_chunk(self, flow_id: str, segments: list[NewSegment]) -> list[SegmentFailure]:
        failures: list[SegmentFailure] = []
        stamp = now()
        with self._write() as db:
            flow_pk, _, metadata = self._writable_flow(db, flow_id)
            if not json.loads(metadata).get("container"):
                raise BadRequest(f"flow {flow_id} has no 'container': set it before registering segments")
            added: list[NewSegment] = []
            for segment in segments:
                problem = self._register_segment(db, flow_id, flow_pk, segment)
                if problem is None:
                    added.append(segment)
                else:
                    failures.append(SegmentFailure(segment.object_id, segment.timerange, problem))
            if added:
                lowest = min(segment.bounds.start for segment in added)
                highest = max(segment.bounds.end for segment in added)
                db.execute(
                    "UPDATE flows SET segments_updated = ?4, seg_start_ns = MIN(COALESCE(seg_start_ns, ?1), ?1), "
                    "seg_end_ns = MAX(COALESCE(seg_end_ns, ?2), ?2) WHERE pk = ?3",
                    (lowest, highest, flow_pk, stamp.text),
                )
                if self._listening(db):
                    self._emit_segments_added(db, flow_id, added)
        return failures

    def _emit_segments_added(self, db: sqlite3.Connection, flow_id: str, added: list[NewSegment]) -> None:
        objects = self._stored_objects(db, sorted({segment.object_id for segment in added}))
        records = [
            segment_record(
                Segment(
                    timerange=segment.timerange,
                    object=objects[segment.object_id],
                    ts_offset=segment.ts_offset,
                    last_duration=segment.last_duration,
                    sample_offset=segment.sample_offset,
                    sample_count=segment.sample_count,
                )
            )
            for segment in added
        ]
        self._emit(db, "flows/segments_added", {"flow_id": flow_id, "segments": records}, flow_id=flow_id)

    @staticmethod
    def _stored_objects(db: sqlite3.Connection, object_ids: list[str]) -> dict[str, StoredObject]:
        found = {}
        for start in range(0, len(object_ids), 500):
            chunk = object_ids[start : start + 500]
            rows = db.execute(
                "SELECT id, storage_ids, timerange, key_frame_count, init_object_id, uncontrolled_urls FROM objects "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                found[row[0]] = _stored_object(*row)
        return found

    def _register_segment(self, db: sqlite3.Connection, flow_id: str, flow_pk: int, segment: NewSegment) -> str | None:
        """Check one segment against what is stored and write it; the reason it was refused otherwise."""
        bounds = segment.bounds
        before = self._preceding(db, flow_pk, bounds.end)
        if before is not None and before[1] >= bounds.start:
            return f"segment {segment.timerange} overlaps the existing segment {before[2]}"
        problem = self._role_problem(db, flow_id, segment)
        if problem is not None:
            return problem
        row = db.execute(
            "SELECT registered, allocated_for, timerange, key_frame_count, init_object_id FROM objects WHERE id = ?",
            (segment.object_id,),
        ).fetchone()
        if row is None:
            if not segment.get_urls:
                return (
                    f"object {segment.object_id} is unknown: allocate it with POST /flows/{flow_id}/storage, "
                    "or give get_urls for an object held elsewhere"
                )
            db.execute(
                "INSERT INTO objects (id, registered, first_flow_id, timerange, key_frame_count, init_object_id, "
                "uncontrolled_urls) VALUES (?, 1, ?, ?, ?, ?, ?)",
                (
                    segment.object_id,
                    flow_id,
                    segment.object_timerange,
                    segment.key_frame_count,
                    segment.init_object_id,
                    json.dumps(segment.get_urls),
                ),
            )
        elif not row[0]:
            if row[1] != flow_id:
                return f"object {segment.object_id} was allocated for flow {row[1]}, not for this flow"
            db.execute(
                "UPDATE objects SET registered = 1, first_flow_id = ?, timerange = ?, key_frame_count = ?, "
                "init_object_id = ?, uncontrolled_urls = ? WHERE id = ?",
                (
                    flow_id,
                    segment.object_timerange,
                    segment.key_frame_count,
                    segment.init_object_id,
                    json.dumps(segment.get_urls) if segment.get_urls else None,
                    segment.object_id,
                ),
            )
        else:
            problem = reuse_problem(segment, stored_timerange=row[2], key_frame_count=row[3], init_object_id=row[4])
            if problem is not None:
                return problem
        db.execute(
            "INSERT INTO segments (flow_pk, start_ns, end_ns, timerange, object_id, ts_offset, last_duration, "
            "sample_offset, sample_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                flow_pk,
                bounds.start,
                bounds.end,
                segment.timerange,
                segment.object_id,
                segment.ts_offset,
                segment.last_duration,
                segment.sample_offset,
                segment.sample_count,
            ),
        )
        return None

    @staticmethod
    def _role_problem(db: sqlite3.Connection, flow_id: str, segment: NewSegment) -> str | None:
        """Media objects and init objects keep their roles, and an init object must be known here."""
        if db.execute("SELECT 1 FROM objects WHERE init_object_id = ? LIMIT 1", (segment.object_id,)).fetchone():
            return f"object {segment.object_id} is an init object; it cannot be the media object of a segment"
        if segment.init_object_id is None:
            return None
        init = db.execute("SELECT registered FROM objects WHERE id = ?", (segment.init_object_id,)).fetchone()
        if init is None:
            return f"init object {segment.init_object_id} is unknown: allocate it with POST /flows/{flow_id}/storage"
        if init[0]:
            return f"object {segment.init_object_id} is the media object of a segment; it cannot be an init object"
        return None

    def list_segments(self, flow_id: str, query: SegmentQuery) -> SegmentPage:
        window = query.window
        if window.is_empty:
            return SegmentPage(Page([], None, query.page.limit), None)
        lowest, highest, params = self._segment_starts(query.page)
        params.update(flow_id=flow_id, start=window.start, end=window.end, limit=query.page.limit + 1)
        conditions = [f"s.flow_pk = {_FLOW_PK}", f"s.start_ns >= {lowest}", f"s.start_ns <= {highest}"]
        # An object's segments in a flow are a range of its index (object_id, flow_pk, then the key's start_ns);
        # left to itself, SQLite walks the flow's range instead, looking for the object in every segment.
        segments_table = "segments s"
        if query.object_id is not None:
            segments_table = "segments s INDEXED BY segments_object"
            conditions.append("s.object_id = :object_id")
            params["object_id"] = query.object_id
        direction = "DESC" if query.page.reverse else "ASC"
        rows = self._query(
            f"SELECT s.start_ns, {_SEGMENT_COLUMNS} FROM {segments_table} JOIN objects o ON o.id = s.object_id "
            f"WHERE {' AND '.join(conditions)} ORDER BY s.start_ns {direction} LIMIT :limit",
            params,
        )
        page_rows = rows[: query.page.limit]
        segments = [
            Segment(
                timerange=timerange,
                ts_offset=ts_offset,
                last_duration=last_duration,
                sample_offset=sample_offset,
                sample_count=sample_count,
                object=_stored_object(*object_columns),
            )
            for _start, timerange, ts_offset, last_duration, sample_offset, sample_count, *object_columns in page_rows
        ]
        next_key = encode_key([rows[query.page.limit - 1][0]]) if len(rows) > query.page.limit else None
        span = None
        if segments:
            earliest, latest = (segments[-1], segments[0]) if query.page.reverse else (segments[0], segments[-1])
            span = tr.span(earliest.timerange, latest.timerange)
        return SegmentPage(Page(segments, next_key, query.page.limit), span)

    @staticmethod
    def _segment_starts(page: PageRequest) -> tuple[str, str, dict[str, Any]]:
        """SQL for the lowest and highest start of a page's segments, with their parameters. The page key is folded
        into one of them: given two bounds on one side, SQLite seeks on one and filters by the other, and seeking
        on the window's made a page deep into a flow read every segment before it."""
        if page.key is None:
            return _WINDOW_LOWEST_START, ":end", {}
        after = {"after": decode_segment_key(page.key)}
        # In SQL, not Python: `:after + 1` past int64 becomes a float that no start reaches, not an overflow.
        if page.reverse:
            return _WINDOW_LOWEST_START, "MIN(:end, :after - 1)", after
        return f"MAX({_WINDOW_LOWEST_START}, :after + 1)", ":end", after

    def delete_segments(
        self, flow_id: str, timerange: str, object_id: str | None, sync_limit: int, created_by: str | None
    ) -> Deletion:
        """Delete the segments `timerange` covers now when they are at most `sync_limit`, else leave them to a
        delete request (which cannot carry an object_id filter, so such deletes always happen now)."""
        within = tr.parse_bounds(timerange)
        with self._write() as db:
            flow_pk = self._writable_flow(db, flow_id)[0]
            if within.is_empty:
                return Deletion()
            if object_id is None and self._more_covered_than(db, flow_pk, within, sync_limit):
                return Deletion(deferred=self._create_delete_request(db, flow_id, timerange, False, created_by))
            return Deletion(released=self._delete_covered(db, flow_id, flow_pk, within, object_id, None)[0])

    @staticmethod
    def _covered(within: tr.Bounds, object_id: str | None) -> tuple[str, list[Any]]:
        """Segments of a flow completely covered by a range (and of one object)."""
        where = "flow_pk = ? AND start_ns >= ? AND start_ns <= ? AND end_ns <= ?"
        params: list[Any] = [within.start, within.end, within.end]
        if object_id is not None:
            where += " AND object_id = ?"
            params.append(object_id)
        return where, params

    def _more_covered_than(self, db: sqlite3.Connection, flow_pk: int, within: tr.Bounds, limit: int) -> bool:
        where, params = self._covered(within, None)
        found = db.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM segments WHERE {where} LIMIT ?)", (flow_pk, *params, limit + 1)
        ).fetchone()[0]
        return found > limit

    def _delete_covered(
        self,
        db: sqlite3.Connection,
        flow_id: str,
        flow_pk: int,
        within: tr.Bounds,
        object_id: str | None,
        limit: int | None,
    ) -> tuple[list[ReleasedMedia], int | None]:
        """Delete the first `limit` (or all) covered segments; the released objects and the start of the last
        segment deleted (None when there was none)."""
        where, params = self._covered(within, object_id)
        rows = db.execute(
            f"SELECT start_ns, timerange, object_id FROM segments WHERE {where} ORDER BY start_ns LIMIT ?",
            (flow_pk, *params, -1 if limit is None else limit),
        ).fetchall()
        if not rows:
            return [], None
        last_start = rows[-1][0]
        db.execute(f"DELETE FROM segments WHERE {where} AND start_ns <= ?", (flow_pk, *params, last_start))
        first = db.execute(
            "SELECT start_ns FROM segments WHERE flow_pk = ? ORDER BY start_ns LIMIT 1", (flow_pk,)
        ).fetchone()
        last = self._preceding(db, flow_pk, tr.INT64_MAX)
        db.execute(
            "UPDATE flows SET segments_updated = ?, seg_start_ns = ?, seg_end_ns = ? WHERE pk = ?",
            (now().text, first[0] if first else None, last[1] if last else None, flow_pk),
        )
        if self._listening(db):
            deleted = {"flow_id": flow_id, "timerange": tr.span(rows[0][1], rows[-1][1])}
            self._emit(db, "flows/segments_deleted", deleted, flow_id=flow_id)
        released = self._release_unreferenced(db, sorted({row[2] for row in rows}))
        return released, last_start

    def _release_unreferenced(self, db: sqlite3.Connection, object_ids: list[str]) -> list[ReleasedMedia]:
        """Release objects no segment references any more, and init objects no object uses any more."""
        unreferenced = [
            object_id
            for object_id in object_ids
            if not db.execute("SELECT 1 FROM segments WHERE object_id = ? LIMIT 1", (object_id,)).fetchone()
        ]
        init_object_ids = {
            row[0]
            for object_id in unreferenced
            for row in db.execute(
                "SELECT init_object_id FROM objects WHERE id = ? AND init_object_id IS NOT NULL", (object_id,)
            )
        }
        released = self._release(db, unreferenced)
        unused_inits = [
            init_object_id
            for init_object_id in sorted(init_object_ids)
            if not db.execute("SELECT 1 FROM objects WHERE init_object_id = ? LIMIT 1", (init_object_id,)).fetchone()
            and db.execute("SELECT 1 FROM objects WHERE id = ? AND registered = 0", (init_object_id,)).fetchone()
        ]
        return released + self._release(db, unused_inits)

    def _release(self, db: sqlite3.Connection, object_ids: list[str]) -> list[ReleasedMedia]:
        """Forget objects and queue their media for deletion, in the caller's transaction."""
        released = []
        for object_id in object_ids:
            row = db.execute("SELECT storage_ids FROM objects WHERE id = ?", (object_id,)).fetchone()
            db.execute("DELETE FROM objects WHERE id = ?", (object_id,))
            # Uncontrolled URLs only: no bytes of ours to delete.
            released += self._queue_release(db, object_id, storage_ids_from_column(row[0] if row else None))
        return released

    @staticmethod
    def _queue_release(db: sqlite3.Connection, object_id: str, storage_ids: list[str]) -> list[ReleasedMedia]:
        """Queue the bytes of an object's instances on these backends for deletion, in the caller's transaction."""
        released = [ReleasedMedia(object_id, storage_id) for storage_id in storage_ids]
        db.executemany(
            "INSERT OR IGNORE INTO released_objects (id, storage_id) VALUES (?, ?)",
            [(item.object_id, item.storage_id) for item in released],
        )
        return released

    # -- objects -----------------------------------------------------------------------------------

    def allocate_objects(self, flow_id: str, storage_id: str, content_type: str, object_ids: list[str]) -> None:
        stamp = now()
        with self._write() as db:
            metadata = json.loads(self._writable_flow(db, flow_id)[2])
            if not metadata.get("container"):
                raise BadRequest(f"flow {flow_id} has no 'container': set it before allocating storage")
            for start in range(0, len(object_ids), 500):
                chunk = object_ids[start : start + 500]
                taken = db.execute(
                    f"SELECT id FROM objects WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1", chunk
                ).fetchone()
                if taken is not None:
                    raise BadRequest(f"object_id {taken[0]} is already in use")
            if len(set(object_ids)) != len(object_ids):
                raise BadRequest("object_ids must not repeat")
            db.executemany(
                "INSERT INTO objects (id, storage_ids, content_type, allocated_for, allocated_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (object_id, storage_ids_column([storage_id]), content_type, flow_id, stamp.ns)
                    for object_id in object_ids
                ],
            )

    # Objects exist for clients once a segment of a flow that is not soft-deleted uses them, as its media object
    # or as its init object.
    _IN_USE = (
        f"(EXISTS (SELECT 1 FROM segments s JOIN flows f ON f.pk = s.flow_pk WHERE s.object_id = o.id "
        f"AND {_live('f.id')}) OR EXISTS (SELECT 1 FROM objects u JOIN segments s ON s.object_id = u.id "
        f"JOIN flows f ON f.pk = s.flow_pk WHERE u.init_object_id = o.id AND {_live('f.id')}))"
    )

    def get_object(self, object_id: str, flows: PageRequest, flow_tags: TagFilter) -> ObjectUsage | None:
        with self._read() as db:
            row = db.execute(
                "SELECT storage_ids, timerange, key_frame_count, init_object_id, uncontrolled_urls, first_flow_id "
                f"FROM objects o WHERE id = ? AND {self._IN_USE}",
                (object_id,),
            ).fetchone()
            if row is None:
                return None
            conditions, params = self._tag_conditions("flow", "f.id", flow_tags)
            conditions.append(_live("f.id"))
            # Flows whose segments use the object, as their media object or as their init object.
            conditions.insert(
                0,
                "f.pk IN (SELECT flow_pk FROM segments WHERE object_id = ? UNION "
                "SELECT s.flow_pk FROM segments s JOIN objects u ON u.id = s.object_id WHERE u.init_object_id = ?)",
            )
            params[:0] = [object_id, object_id]
            if flows.key is not None:
                conditions.append("f.id < ?" if flows.reverse else "f.id > ?")
                params.append(decode_key(flows.key, 1)[0])
            direction = "DESC" if flows.reverse else "ASC"
            flow_ids = [
                flow_id
                for (flow_id,) in db.execute(
                    f"SELECT f.id FROM flows f WHERE {' AND '.join(conditions)} ORDER BY f.id {direction} LIMIT ?",
                    (*params, flows.limit + 1),
                )
            ]
        *object_columns, first_flow_id = row
        next_key = encode_key([flow_ids[flows.limit - 1]]) if len(flow_ids) > flows.limit else None
        return ObjectUsage(
            object=_stored_object(object_id, *object_columns),
            first_referenced_by_flow=first_flow_id,
            referenced_by_flows=Page(flow_ids[: flows.limit], next_key, flows.limit),
        )

    def find_objects(self, object_ids: list[str]) -> dict[str, StoredObject]:
        with self._read() as db:
            return self._stored_objects(db, object_ids)

    def _object_instances(self, db: sqlite3.Connection, object_id: str) -> tuple[list[str], list[dict[str, str]]]:
        row = db.execute(
            f"SELECT storage_ids, uncontrolled_urls FROM objects o WHERE id = ? AND {self._IN_USE}", (object_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
        return storage_ids_from_column(row[0]), json.loads(row[1]) if row[1] else []

    def _set_uncontrolled_urls(self, db: sqlite3.Connection, object_id: str, urls: list[dict[str, str]]) -> None:
        db.execute(
            "UPDATE objects SET uncontrolled_urls = ? WHERE id = ?", (json.dumps(urls) if urls else None, object_id)
        )

    def _set_storage_ids(self, db: sqlite3.Connection, object_id: str, storage_ids: list[str]) -> None:
        db.execute("UPDATE objects SET storage_ids = ? WHERE id = ?", (storage_ids_column(storage_ids), object_id))

    def add_uncontrolled_url(self, object_id: str, url: str, label: str) -> None:
        with self._write() as db:
            _, urls = self._object_instances(db, object_id)
            if any(existing["label"] == label for existing in urls):
                raise BadRequest(f"object {object_id} already has a URL labelled {label!r}")
            self._set_uncontrolled_urls(db, object_id, [*urls, {"url": url, "label": label}])

    def add_controlled_instance(self, object_id: str, storage_id: str) -> None:
        """Advertise a copy of the object's bytes on another storage backend (the caller made it)."""
        with self._write() as db:
            storage_ids, _ = self._object_instances(db, object_id)
            if storage_id in storage_ids:
                raise BadRequest(f"object {object_id} already has an instance on storage backend {storage_id}")
            self._set_storage_ids(db, object_id, [*storage_ids, storage_id])

    def remove_instance(self, object_id: str, storage_id: str | None, label: str | None) -> list[ReleasedMedia]:
        """Remove the controlled instance on `storage_id` (queueing its bytes for deletion, which the caller
        carries out), or the uncontrolled URL labelled `label`. The last instance of an object stays."""
        with self._write() as db:
            storage_ids, urls = instances_left(object_id, *self._object_instances(db, object_id), storage_id, label)
            if storage_id is None:
                self._set_uncontrolled_urls(db, object_id, urls)
                return []
            self._set_storage_ids(db, object_id, storage_ids)
            return self._queue_release(db, object_id, [storage_id])

    # -- webhooks and the outbox -------------------------------------------------------------------

    @staticmethod
    def _listening(db: sqlite3.Connection) -> bool:
        """Whether any webhook wants events: without one, changes write no outbox rows at all."""
        return (
            db.execute("SELECT 1 FROM webhooks WHERE status IN ('created', 'started') LIMIT 1").fetchone() is not None
        )

    def _emit(
        self,
        db: sqlite3.Connection,
        event_type: str,
        payload: dict[str, Any],
        flow_id: str | None = None,
        source_id: str | None = None,
    ) -> None:
        """Write an event to the outbox, in the transaction of the change it reports, with what webhook
        filters look at: the flow's source and the collections of the flow and of its source."""
        flow_collected_by: list[str] = []
        if flow_id is not None:
            if db.execute("SELECT 1 FROM deleted_flows WHERE flow_id = ?", (flow_id,)).fetchone():
                return  # clients were told the flow was deleted: its purge is no news to them
            source_id = db.execute("SELECT source_id FROM flows WHERE id = ?", (flow_id,)).fetchone()[0]
            flow_collected_by = [
                collector
                for (collector,) in db.execute(
                    "SELECT DISTINCT collector_id FROM flow_collections WHERE member_id = ? ORDER BY collector_id",
                    (flow_id,),
                )
            ]
        db.execute(
            "INSERT INTO events (type, timestamp, flow_id, source_id, flow_collected_by, source_collected_by, "
            "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event_type,
                now().text,
                flow_id,
                source_id,
                orjson.dumps(flow_collected_by).decode(),
                orjson.dumps(self._source_collected_by(db, source_id) if source_id else []).decode(),
                orjson.dumps(payload).decode(),
            ),
        )

    def _emit_source(self, db: sqlite3.Connection, event_type: str, source_id: str) -> None:
        if not self._listening(db):
            return
        if event_type == "sources/deleted":
            payload: dict[str, Any] = {"source_id": source_id}
        else:
            rows = db.execute(f"SELECT {self._SOURCE_COLUMNS} FROM sources WHERE id = ?", (source_id,)).fetchall()
            payload = {"source": self._sources_from_rows(db, rows)[0].to_json()}
        self._emit(db, event_type, payload, source_id=source_id)

    @staticmethod
    def _last_event(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    _WEBHOOK_COLUMNS = "id, url, status, owner, document, error, cursor"

    def _webhooks_from_rows(self, db: sqlite3.Connection, rows: list[tuple]) -> list[Webhook]:
        tags = self._load_tags(db, "webhook", [row[0] for row in rows])
        webhooks = []
        for webhook_id, url, status, owner, document, error, cursor in rows:
            details = json.loads(document)
            webhooks.append(
                Webhook(
                    id=webhook_id,
                    url=url,
                    events=details["events"],
                    status=status,
                    api_key_name=details.get("api_key_name"),
                    api_key_value=details.get("api_key_value"),
                    options=details["options"],
                    tags=tags[webhook_id],
                    error=json.loads(error) if error else None,
                    owner=owner,
                    cursor=cursor,
                )
            )
        return webhooks

    def _webhook(self, db: sqlite3.Connection, webhook_id: str) -> Webhook | None:
        rows = db.execute(f"SELECT {self._WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)).fetchall()
        found = self._webhooks_from_rows(db, rows)
        return found[0] if found else None

    def get_webhook(self, webhook_id: str) -> Webhook | None:
        with self._read() as db:
            return self._webhook(db, webhook_id)

    def list_webhooks(self, query: WebhookQuery) -> Page[Webhook]:
        conditions, params = self._tag_conditions("webhook", "webhooks.id", query.tags)
        keyset = _Keyset(("webhooks.url", "webhooks.id"), descending=query.page.reverse)
        with self._read() as db:
            rows = self._page_rows(db, "webhooks", self._WEBHOOK_COLUMNS, conditions, params, keyset, query.page)
            items = self._webhooks_from_rows(db, [row[len(keyset.columns) :] for row in rows[: query.page.limit]])
        return Page(items, self._next_key(rows, keyset, query.page.limit), query.page.limit)

    def active_webhooks(self) -> list[Webhook]:
        with self._read() as db:
            rows = db.execute(
                f"SELECT {self._WEBHOOK_COLUMNS} FROM webhooks WHERE status IN ('created', 'started')"
            ).fetchall()
            return self._webhooks_from_rows(db, rows)

    def _write_webhook(self, db: sqlite3.Connection, webhook: Webhook) -> None:
        document = {
            "events": webhook.events,
            "api_key_name": webhook.api_key_name,
            "api_key_value": webhook.api_key_value,
            "options": webhook.options,
        }
        db.execute(
            "INSERT OR REPLACE INTO webhooks (id, url, status, owner, document, error, cursor) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                webhook.id,
                webhook.url,
                webhook.status,
                webhook.owner,
                json.dumps(document),
                json.dumps(webhook.error) if webhook.error else None,
                webhook.cursor,
            ),
        )
        self._replace_tags(db, "webhook", webhook.id, webhook.tags)

    def save_webhook(self, webhook: Webhook, change: Callable[[Webhook | None], Webhook]) -> Webhook:
        """Create or replace a webhook with what `change` makes of the stored one (None when new), in one
        transaction. A webhook that starts listening receives the events from now on."""
        with self._write() as db:
            stored = self._webhook(db, webhook.id)
            updated = change(stored)
            if updated.active and (stored is None or not stored.active):
                updated.cursor = self._last_event(db)
            self._write_webhook(db, updated)
            return updated

    def delete_webhook(self, webhook_id: str) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount == 0:
                raise NotFound(f"webhook {webhook_id} does not exist")
            self._delete_all_tags(db, "webhook", webhook_id)

    def set_webhook_status(self, webhook_id: str, status: str, error: dict[str, str] | None = None) -> None:
        """The worker's transitions (created -> started, started -> error), unless a client changed it meanwhile."""
        with self._write() as db:
            db.execute(
                "UPDATE webhooks SET status = ?, error = ? WHERE id = ? AND status IN ('created', 'started')",
                (status, json.dumps(error) if error else None, webhook_id),
            )

    def advance_webhook(self, webhook_id: str, cursor: int) -> None:
        with self._write() as db:
            db.execute("UPDATE webhooks SET cursor = MAX(cursor, ?) WHERE id = ?", (cursor, webhook_id))

    def events_after(self, seq: int, limit: int) -> list[Event]:
        rows = self._query(
            "SELECT seq, type, timestamp, payload, flow_id, source_id, flow_collected_by, source_collected_by "
            "FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [
            Event(
                seq=row[0],
                type=row[1],
                timestamp=row[2],
                payload=json.loads(row[3]),
                flow_id=row[4],
                source_id=row[5],
                flow_collected_by=json.loads(row[6]),
                source_collected_by=json.loads(row[7]),
            )
            for row in rows
        ]

    def prune_events(self) -> int:
        """Drop events every listening webhook has had; all of them when none listens."""
        with self._write() as db:
            return db.execute(
                "DELETE FROM events WHERE seq <= COALESCE("
                "(SELECT MIN(cursor) FROM webhooks WHERE status IN ('created', 'started')), "
                "(SELECT MAX(seq) FROM events))"
            ).rowcount

    def undelivered_events(self) -> int:
        with self._read() as db:
            (behind,) = db.execute("SELECT MIN(cursor) FROM webhooks WHERE status IN ('created', 'started')").fetchone()
            # Events are numbered without gaps: one writer, and a rolled-back transaction takes its numbers back.
            return 0 if behind is None else max(0, self._last_event(db) - behind)

    # -- flow delete requests ----------------------------------------------------------------------

    def _create_delete_request(
        self, db: sqlite3.Connection, flow_id: str, timerange: str, delete_flow: bool, created_by: str | None
    ) -> DeleteRequest:
        stamp = now()
        request_id = str(uuid.uuid4())
        remaining = tr.format_bounds(tr.parse_bounds(timerange))
        db.execute(
            "INSERT INTO delete_requests (id, flow_id, to_delete, remaining, delete_flow, status, created, created_ns, "
            "created_by, updated) VALUES (?, ?, ?, ?, ?, 'created', ?, ?, ?, ?)",
            (request_id, flow_id, timerange, remaining, int(delete_flow), stamp.text, stamp.ns, created_by, stamp.text),
        )
        return delete_request_from_row(
            db.execute(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,)).fetchone()
        )

    def get_delete_request(self, request_id: str) -> DeleteRequest | None:
        row = self._query_one(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,))
        return delete_request_from_row(row) if row else None

    def list_delete_requests(self, query: DeleteRequestQuery) -> Page[DeleteRequest]:
        if query.sort_by == "expiry":
            # Most recent expiry first; requests without one (not finished) after those with one, by id.
            columns = (
                "delete_requests.expiry_ns IS NOT NULL",
                "COALESCE(delete_requests.expiry_ns, 0)",
                "delete_requests.id",
            )
            keyset = _Keyset(columns, descending=not query.page.reverse)
        else:
            keyset = _sort_keyset("created", query.page.reverse, "delete_requests")
        with self._read() as db:
            rows = self._page_rows(db, "delete_requests", _REQUEST_COLUMNS, [], [], keyset, query.page)
        items = [delete_request_from_row(row[len(keyset.columns) :]) for row in rows[: query.page.limit]]
        return Page(items, self._next_key(rows, keyset, query.page.limit), query.page.limit)

    def pending_delete_requests(self) -> list[str]:
        rows = self._query(
            "SELECT id FROM delete_requests WHERE status IN ('created', 'started') ORDER BY created_ns, id"
        )
        return [request_id for (request_id,) in rows]

    def continue_delete_request(
        self, request_id: str, chunk: int, retention_seconds: int
    ) -> tuple[DeleteRequest, list[ReleasedMedia]]:
        """One step of a delete request, in one transaction: delete up to `chunk` more segments, or, when none
        are left, the flow (if asked) and mark the request done. A crash between steps loses nothing."""
        with self._write() as db:
            row = db.execute(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,)).fetchone()
            if row is None:
                raise NotFound(f"flow delete request {request_id} does not exist")
            request = delete_request_from_row(row)
            if request.status not in ("created", "started"):
                return request, []
            stamp = now()
            flow = db.execute("SELECT pk, read_only FROM flows WHERE id = ?", (request.flow_id,)).fetchone()
            released: list[ReleasedMedia] = []
            changes: dict[str, Any] = {"updated": stamp.text}
            if flow is not None and flow[1]:
                changes.update(
                    status="error",
                    error=json.dumps(error_json("Forbidden", f"flow {request.flow_id} is read-only", stamp.text)),
                )
            else:
                remaining = tr.parse_bounds(request.timerange_remaining)
                last_start = None
                if flow is not None and not remaining.is_empty:
                    released, last_start = self._delete_covered(db, request.flow_id, flow[0], remaining, None, chunk)
                if last_start is not None:
                    changes.update(
                        status="started", remaining=tr.format_bounds(tr.Bounds(last_start + 1, remaining.end))
                    )
                else:
                    if flow is not None and request.delete_flow:
                        released += self._drop_flow(db, request.flow_id, flow[0])
                    expiry = stamp.ns + retention_seconds * 1_000_000_000
                    changes.update(status="done", remaining="()", expiry=instant_text(expiry), expiry_ns=expiry)
            assignments = ", ".join(f"{name} = ?" for name in changes)
            db.execute(f"UPDATE delete_requests SET {assignments} WHERE id = ?", (*changes.values(), request_id))
            row = db.execute(f"SELECT {_REQUEST_COLUMNS} FROM delete_requests WHERE id = ?", (request_id,)).fetchone()
            return delete_request_from_row(row), released

    def forget_expired_delete_requests(self, before_ns: int) -> int:
        with self._write() as db:
            return db.execute(
                "DELETE FROM delete_requests WHERE status IN ('done', 'error') AND expiry_ns <= ?", (before_ns,)
            ).rowcount

    # -- media to delete ---------------------------------------------------------------------------

    def released_objects(self, limit: int) -> list[ReleasedMedia]:
        rows = self._query("SELECT id, storage_id FROM released_objects LIMIT ?", (limit,))
        return [ReleasedMedia(object_id, storage_id) for object_id, storage_id in rows]

    def forget_released(self, released: list[ReleasedMedia]) -> None:
        with self._write() as db:
            db.executemany(
                "DELETE FROM released_objects WHERE id = ? AND storage_id = ?",
                [(item.object_id, item.storage_id) for item in released],
            )

    def release_expired_allocations(self, allocated_before_ns: int) -> int:
        """Release objects allocated before the cut-off that no segment registered (nor uses as init object)."""
        with self._write() as db:
            expired = db.execute(
                "SELECT id FROM objects WHERE registered = 0 AND allocated_ns < ? "
                "AND NOT EXISTS (SELECT 1 FROM objects u WHERE u.init_object_id = objects.id) LIMIT 10000",
                (allocated_before_ns,),
            ).fetchall()
            return len(self._release(db, [object_id for (object_id,) in expired]))

    # -- analytics (extension): SQL aggregates, flows that are not soft-deleted ----------------------

    def flow_usage(self, limit: int) -> list[FlowUsage]:
        """The `limit` flows with the most segments (then the longest duration, then by id)."""
        rows = self._query(
            "SELECT f.id, f.label, f.format, COUNT(s.start_ns), COALESCE(SUM(s.end_ns - s.start_ns + 1), 0) AS d "
            f"FROM flows f LEFT JOIN segments s ON s.flow_pk = f.pk WHERE {_live('f.id')} GROUP BY f.pk "
            "ORDER BY 4 DESC, 5 DESC, f.id LIMIT ?",
            (limit,),
        )
        return [FlowUsage(*row) for row in rows]

    def format_distribution(self) -> FormatDistribution:
        with self._read() as db:
            total = db.execute(f"SELECT COUNT(*) FROM flows WHERE {_live('id')}").fetchone()[0]
            counts = {
                name: db.execute(f"SELECT {expression}, COUNT(*) FROM flows WHERE {_live('id')} GROUP BY 1").fetchall()
                for name, expression in (
                    ("format", "format"),
                    ("codec", "codec"),
                    ("container", "json_extract(metadata, '$.container')"),
                )
            }
        return FormatDistribution(
            total, format_counts(counts["format"]), format_counts(counts["codec"]), format_counts(counts["container"])
        )

    def storage_usage(self) -> StorageUsage:
        with self._read() as db:
            by_column = db.execute("SELECT storage_ids, COUNT(*) FROM objects GROUP BY storage_ids").fetchall()
            media, unregistered, uncontrolled_only = db.execute(
                "SELECT COALESCE(SUM(registered = 1), 0), COALESCE(SUM(registered = 0), 0), "
                "COALESCE(SUM(registered = 1 AND storage_ids IS NULL), 0) FROM objects"
            ).fetchone()
            awaiting = db.execute("SELECT COUNT(*) FROM released_objects").fetchone()[0]
        return StorageUsage(instances_by_storage_id(by_column), media, unregistered, uncontrolled_only, awaiting)

    def timerange_analysis(self, owner: str, owner_id: str, max_gaps: int) -> TimerangeAnalysis:
        """Coverage of the segments of a flow, or of every flow of a source together ("flow" or "source")."""
        with self._read() as db:
            column = "id" if owner == "flow" else "source_id"
            flows = db.execute(
                f"SELECT pk, id FROM flows WHERE {column} = ? AND {_live('id')} ORDER BY id", (owner_id,)
            ).fetchall()
            if not flows:
                raise NotFound(f"{owner} {owner_id} does not exist")
            pks = [pk for pk, _ in flows]
            segments = f"SELECT start_ns, end_ns FROM segments WHERE flow_pk IN ({','.join('?' * len(pks))})"
            count, shortest, longest, mean, first, last = db.execute(
                "SELECT COUNT(*), MIN(end_ns - start_ns + 1), MAX(end_ns - start_ns + 1), AVG(end_ns - start_ns + 1), "
                f"MIN(start_ns), MAX(end_ns) FROM ({segments})",
                pks,
            ).fetchone()
            # A gap opens before a segment starting after everything earlier has ended (segments of several
            # flows may overlap: `reach` is the latest end so far).
            gaps = (
                "SELECT reach + 1 AS gap_start, start_ns - 1 AS gap_end FROM (SELECT start_ns, MAX(end_ns) OVER "
                "(ORDER BY start_ns, end_ns ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach "
                f"FROM ({segments})) WHERE start_ns > reach + 1"
            )
            first_gaps = db.execute(f"{gaps} ORDER BY gap_start LIMIT ?", (*pks, max_gaps)).fetchall()
            gap_totals = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(gap_end - gap_start + 1), 0) FROM ({gaps})", pks
            ).fetchone()
        return timerange_analysis(
            [flow_id for _, flow_id in flows], (count, shortest, longest, mean), first, last, first_gaps, gap_totals
        )

    # -- the worker's lease ------------------------------------------------------------------------

    def claim_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew a named lease; False while another holder's lease is current."""
        stamp = time.time_ns()
        with self._write() as db:
            row = db.execute("SELECT holder, expires_ns FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != holder and row[1] > stamp:
                return False
            db.execute(
                "INSERT OR REPLACE INTO leases (name, holder, expires_ns) VALUES (?, ?, ?)",
                (name, holder, stamp + int(seconds * 1_000_000_000)),
            )
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
