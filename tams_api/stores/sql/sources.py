"""Sources in the SQL store: read, listed, saved, and forgotten when no flow names them."""

from __future__ import annotations

from ...clock import Instant
from ...model import Page, Source, SourceQuery, Tags
from ..metadata import SourceRecord
from ..shared import creation, source_values
from .connection import Db, SqlConnections
from .rows import _SOURCE_VISIBLE, _insert_row, _live, _next_key, _one_of, _page_rows, _sort_keyset, _update_row


class SourcesMixin(SqlConnections):
    """Sources: they exist while a flow names them, and are visible while a flow that is not soft-deleted does."""

    _SOURCE_COLUMNS = "id, format, label, description, created_by, updated_by, created, updated"

    def _sources_from_rows(self, db: Db, rows: list[tuple]) -> list[Source]:
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
    def _source_collected_by(db: Db, source_id: str) -> list[str]:
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

    def get_source(self, db: Db, source_id: str) -> Source | None:
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
                conditions.append(f"EXISTS ({collectors} AND {_one_of('collector.source_id', len(ids))})")
                params += ids
            else:
                conditions.append(f"NOT EXISTS ({collectors})")
        keyset = _sort_keyset(query.sort_by, query.page.reverse, "sources")
        with self._read() as db:
            rows = _page_rows(db, "sources", self._SOURCE_COLUMNS, conditions, params, keyset, query.page)
            items = self._sources_from_rows(db, [row[len(keyset.columns) :] for row in rows[: query.page.limit]])
        return Page(items, _next_key(rows, keyset, query.page.limit), query.page.limit)

    def source_record(self, db: Db, source_id: str) -> SourceRecord | None:
        row = db.execute(
            "SELECT format, label, description, created_by, updated_by, "
            f"(SELECT COUNT(*) FROM flows WHERE source_id = sources.id), {_SOURCE_VISIBLE} FROM sources WHERE id = ?",
            (source_id,),
        ).fetchone()
        return None if row is None else SourceRecord(source_id, *row[:6], visible=bool(row[6]), key=source_id)

    def save_source(self, db: Db, source: SourceRecord, stamp: Instant, tags: Tags | None = None) -> None:
        values = source_values(source, stamp)
        if source.key is None:
            _insert_row(db, "sources", {**values, **creation(source.id, stamp)})
        else:
            _update_row(db, "sources", values, "id", source.id)
        if tags is not None:
            self._replace_tags(db, "source", source.id, tags)

    def _forget_unnamed_source(self, db: Db, source_id: str) -> None:
        """Sources exist while a flow names them."""
        if db.execute("SELECT 1 FROM flows WHERE source_id = ? LIMIT 1", (source_id,)).fetchone() is None:
            db.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            self._delete_all_tags(db, "source", source_id)
