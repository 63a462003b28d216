"""Tags of sources, flows and webhooks in the SQL store: stored whole, and by value for tag filters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...model import TagFilter, Tags
from ..shared import tag_values
from .connection import Db, SqlConnections
from .rows import _one_of


class TagsMixin(SqlConnections):
    """Tags of any kind of record, in the caller's transaction, and the SQL of tag filters."""

    def _load_tags(self, db: Db, kind: str, ids: Sequence[str]) -> dict[str, Tags]:
        result: dict[str, Tags] = {entity_id: {} for entity_id in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = db.execute(
                f"SELECT entity_id, name, value FROM tags WHERE kind = ? AND {_one_of('entity_id', len(chunk))}",
                (kind, *chunk),
            )
            for entity_id, name, value in rows:
                result[entity_id][name] = json.loads(value)
        return result

    def _replace_tags(self, db: Db, kind: str, entity_id: str, tags: Tags) -> None:
        self._delete_all_tags(db, kind, entity_id)
        db.executemany(
            "INSERT INTO tags (kind, entity_id, name, value) VALUES (?, ?, ?, ?)",
            [(kind, entity_id, name, json.dumps(value)) for name, value in tags.items()],
        )
        db.executemany(
            "INSERT INTO tag_values (kind, name, value, entity_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(kind, name, item, entity_id) for name, value in tags.items() for item in tag_values(value)],
        )

    def _delete_all_tags(self, db: Db, kind: str, entity_id: str) -> None:
        db.execute("DELETE FROM tag_values WHERE kind = ? AND entity_id = ?", (kind, entity_id))
        db.execute("DELETE FROM tags WHERE kind = ? AND entity_id = ?", (kind, entity_id))

    @staticmethod
    def _tag_conditions(kind: str, id_column: str, tags: TagFilter) -> tuple[list[str], list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        for name, values in tags.values.items():
            conditions.append(
                "EXISTS (SELECT 1 FROM tag_values tv WHERE tv.kind = ? AND tv.name = ? "
                f"AND {_one_of('tv.value', len(values))} AND tv.entity_id = {id_column})"
            )
            params += [kind, name, *values]
        for name, exists in tags.exists.items():
            negation = "" if exists else "NOT "
            conditions.append(
                f"{negation}EXISTS (SELECT 1 FROM tags t WHERE t.kind = ? AND t.entity_id = {id_column} AND t.name = ?)"
            )
            params += [kind, name]
        return conditions, params
