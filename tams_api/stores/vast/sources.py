"""Sources: reading and listing them (with their collections, through their flows), saving them, and forgetting
them when no flow names them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ...clock import Instant
from ...model import Page, Source, SourceQuery, Tags
from ..metadata import SourceRecord
from ..shared import creation, source_values
from .rows import _all, _delete, _insert, _page, _select, _select_in, _sort, _update
from .session import Transactions, _guard, _Tx


class SourcesMixin(Transactions):
    """Sources exist for clients while a flow that is not soft-deleted names them."""

    @staticmethod
    def _flow_sources(t: _Tx, flow_ids: Iterable[str]) -> dict[str, str]:
        return {
            row["id"]: row["source_id"] for row in _select_in(t["flows"], "id", flow_ids, None, ["id", "source_id"])
        }

    def _source_links(self, t: _Tx, source_ids: Sequence[str]) -> dict[str, tuple[list[str], list[str]]]:
        """Per source: the sources its flows collect, and the sources whose flows collect its flows (flows that
        are not soft-deleted)."""
        own = self._live_flow_sources(t, source_ids)
        collections = t["flow_collections"]
        as_collector = _select_in(collections, "collector_id", own, None, ["collector_id", "member_id"])
        as_member = _select_in(collections, "member_id", own, None, ["collector_id", "member_id"])
        linked = {row["member_id"] for row in as_collector} | {row["collector_id"] for row in as_member}
        others = self._flow_sources(t, linked - self._hidden(t, linked))
        members: dict[str, set[str]] = {source_id: set() for source_id in source_ids}
        collectors: dict[str, set[str]] = {source_id: set() for source_id in source_ids}
        for row in as_collector:
            source_id, member = own[row["collector_id"]], others.get(row["member_id"])
            if member is not None and member != source_id:
                members[source_id].add(member)
        for row in as_member:
            source_id, collector = own[row["member_id"]], others.get(row["collector_id"])
            if collector is not None and collector != source_id:
                collectors[source_id].add(collector)
        return {source_id: (sorted(members[source_id]), sorted(collectors[source_id])) for source_id in source_ids}

    def _live_flow_sources(self, t: _Tx, source_ids: Iterable[str]) -> dict[str, str]:
        """The source of each flow of these sources that is not soft-deleted."""
        flows = _select_in(t["flows"], "source_id", source_ids, None, ["id", "source_id"])
        hidden = self._hidden(t, [row["id"] for row in flows])
        return {row["id"]: row["source_id"] for row in flows if row["id"] not in hidden}

    def _visible_sources(self, t: _Tx, source_ids: Iterable[str]) -> set[str]:
        """Those of the sources that exist for clients: a flow that is not soft-deleted names them."""
        return set(self._live_flow_sources(t, source_ids).values())

    @staticmethod
    def _hidden(t: _Tx, flow_ids: Iterable[str]) -> set[str]:
        """Those of the flows that are soft-deleted."""
        return {row["flow_id"] for row in _select_in(t["deleted_flows"], "flow_id", flow_ids, None, ["flow_id"])}

    def _sources_from_rows(self, t: _Tx, rows: list[dict[str, Any]]) -> list[Source]:
        ids = [row["id"] for row in rows]
        tags = self._load_tags(t, "source", ids)
        links = self._source_links(t, ids)
        return [
            Source(
                id=row["id"],
                format=row["format"],
                label=row["label"],
                description=row["description"],
                created_by=row["created_by"],
                updated_by=row["updated_by"],
                created=row["created"],
                updated=row["updated"],
                tags=tags[row["id"]],
                source_collection=[{"id": member} for member in links[row["id"]][0]],
                collected_by=links[row["id"]][1],
            )
            for row in rows
        ]

    def _source_rows(self, t: _Tx, source_id: str) -> list[dict[str, Any]]:
        table = t["sources"]
        return _select(table, table["id"] == source_id, row_ids=True)

    def get_source(self, t: _Tx, source_id: str) -> Source | None:
        rows = self._source_rows(t, source_id) if self._visible_sources(t, [source_id]) else []
        found = self._sources_from_rows(t, rows)
        return found[0] if found else None

    def list_sources(self, query: SourceQuery) -> Page[Source]:
        with self._read() as t:
            table = t["sources"]
            conditions = [table[c] == getattr(query, c) for c in ("label", "format") if getattr(query, c) is not None]
            rows = _select(table, _all(*conditions), ["id", "label", "created_ns", "updated_ns"])
            match = self._tag_match(t, "source", query.tags)
            rows = [row for row in rows if match(row["id"])]
            visible = self._visible_sources(t, [row["id"] for row in rows])
            rows = [row for row in rows if row["id"] in visible]
            if query.collected_by_ids is not None:
                links = self._source_links(t, [row["id"] for row in rows])
                wanted = set(query.collected_by_ids)
                rows = [
                    row for row in rows if (set(links[row["id"]][1]) & wanted if wanted else not links[row["id"]][1])
                ]
            key, descending = _sort(query.sort_by, query.page.reverse)
            page_rows, next_key = _page(rows, key, descending, query.page)
            full = {row["id"]: row for row in _select_in(table, "id", [row["id"] for row in page_rows])}
            items = self._sources_from_rows(t, [full[row["id"]] for row in page_rows])
        return Page(items, next_key, query.page.limit)

    def source_record(self, t: _Tx, source_id: str) -> SourceRecord | None:
        rows = self._source_rows(t, source_id)
        if not rows:
            return None
        row = rows[0]
        flows = _select(t["flows"], t["flows"]["source_id"] == source_id, ["id"])
        visible = bool({row["id"] for row in flows} - self._hidden(t, [row["id"] for row in flows]))
        names = ("format", "label", "description", "created_by", "updated_by")
        return SourceRecord(source_id, *(row[name] for name in names), len(flows), visible, key=rows)

    def save_source(self, t: _Tx, source: SourceRecord, stamp: Instant, tags: Tags | None = None) -> None:
        values = source_values(source, stamp)
        if source.key is None:
            _guard(t, f"source {source.id}")  # two writers that both found no such source would both insert it
            _insert(t["sources"], "sources", [{**values, **creation(source.id, stamp)}])
        else:
            for row in source.key:
                row.update(values)
            _update(t["sources"], "sources", source.key, list(values))
        if tags is not None:
            self._replace_tags(t, "source", source.id, tags)

    def _forget_unnamed_source(self, t: _Tx, source_id: str) -> None:
        """Sources exist while a flow names them."""
        flows = t["flows"]
        if not _select(flows, flows["source_id"] == source_id, ["id"], limit=1):
            _delete(t["sources"], self._source_rows(t, source_id))
            self._delete_all_tags(t, "source", source_id)
