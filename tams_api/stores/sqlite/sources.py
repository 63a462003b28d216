"""Sources in the SQLite store: read, listed, changed, and their coming and going with their flows."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...clock import now
from ...errors import BadRequest, NotFound
from ...model import FlowWrite, Page, Source, SourceQuery, TagValue
from .connection import SqliteConnections
from .rows import _SOURCE_VISIBLE, _live, _next_key, _page_rows, _sort_keyset


class SourcesMixin(SqliteConnections):
    """Sources: they exist while a flow names them, and are visible while a flow that is not soft-deleted does."""

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
            rows = _page_rows(db, "sources", self._SOURCE_COLUMNS, conditions, params, keyset, query.page)
            items = self._sources_from_rows(db, [row[len(keyset.columns) :] for row in rows[: query.page.limit]])
        return Page(items, _next_key(rows, keyset, query.page.limit), query.page.limit)

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
