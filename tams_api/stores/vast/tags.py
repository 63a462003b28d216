"""Tags of sources, flows and webhooks: the `tags` rows of each entity, and `tag_values`
(one row per value, for tag filters)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from ...model import TagFilter, Tags
from ..shared import tag_values
from .rows import _all, _delete, _insert, _select, _select_in
from .session import Transactions, _Tx


class TagsMixin(Transactions):
    """Reading, writing and filtering by tags, in the caller's transaction."""

    @staticmethod
    def _load_tags(t: _Tx, kind: str, ids: Sequence[str]) -> dict[str, Tags]:
        result: dict[str, Tags] = {entity_id: {} for entity_id in ids}
        table = t["tags"]
        for row in _select_in(table, "entity_id", ids, table["kind"] == kind, ["entity_id", "name", "value"]):
            result[row["entity_id"]][row["name"]] = json.loads(row["value"])
        return result

    def _replace_tags(self, t: _Tx, kind: str, entity_id: str, tags: Tags) -> None:
        self._delete_all_tags(t, kind, entity_id)
        tag_rows = [{"kind": kind, "entity_id": entity_id, "name": n, "value": json.dumps(v)} for n, v in tags.items()]
        _insert(t["tags"], "tags", tag_rows)
        value_rows = [
            {"kind": kind, "name": name, "value": item, "entity_id": entity_id}
            for name, value in tags.items()
            for item in sorted(set(tag_values(value)))
        ]
        _insert(t["tag_values"], "tag_values", value_rows)

    @staticmethod
    def _delete_all_tags(t: _Tx, kind: str, entity_id: str) -> None:
        for table_name in ("tag_values", "tags"):
            table = t[table_name]
            _delete(table, _select(table, _all(table["kind"] == kind, table["entity_id"] == entity_id), ["kind"], True))

    @staticmethod
    def _tag_match(t: _Tx, kind: str, tags: TagFilter) -> Callable[[str], bool]:
        """Whether an entity passes a tag filter, from the few tag rows the filter names."""
        include: set[str] | None = None
        exclude: set[str] = set()
        for name, values in tags.values.items():
            table = t["tag_values"]
            where = _all(table["kind"] == kind, table["name"] == name)
            found = {row["entity_id"] for row in _select_in(table, "value", values, where, ["entity_id"])}
            include = found if include is None else include & found
        for name, exists in tags.exists.items():
            table = t["tags"]
            found = {row["entity_id"] for row in _select(table, _all(table["kind"] == kind, table["name"] == name))}
            if exists:
                include = found if include is None else include & found
            else:
                exclude |= found
        return lambda entity_id: (include is None or entity_id in include) and entity_id not in exclude
