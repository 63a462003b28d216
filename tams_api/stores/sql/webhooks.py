"""Webhooks and the event outbox of the SQL store: events written in the transaction of the change they
report, webhooks with their cursors into the outbox."""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson

from ...model import Event, Page, Webhook, WebhookQuery
from ..shared import webhook_values
from .connection import Db, SqlConnections
from .rows import _insert_row, _Keyset, _next_key, _page_rows


class WebhooksMixin(SqlConnections):
    """Webhooks and the outbox."""

    @staticmethod
    def _listening(db: Db) -> bool:
        """Whether any webhook wants events: without one, changes write no outbox rows at all."""
        return (
            db.execute("SELECT 1 FROM webhooks WHERE status IN ('created', 'started') LIMIT 1").fetchone() is not None
        )

    def emit(self, db: Db, event: Callable[[], Event | None]) -> None:
        made = event() if self._listening(db) else None
        if made is None:
            return
        db.execute(
            "INSERT INTO events (seq, type, timestamp, flow_id, source_id, flow_collected_by, source_collected_by, "
            "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self._next_event_seq(db),
                made.type,
                made.timestamp,
                made.flow_id,
                made.source_id,
                orjson.dumps(made.flow_collected_by).decode(),
                orjson.dumps(made.source_collected_by).decode(),
                orjson.dumps(made.payload).decode(),
            ),
        )

    _WEBHOOK_COLUMNS = "id, url, status, owner, document, error, cursor"

    def _webhooks_from_rows(self, db: Db, rows: list[tuple]) -> list[Webhook]:
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

    def webhook_record(self, db: Db, webhook_id: str) -> Webhook | None:
        rows = db.execute(f"SELECT {self._WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)).fetchall()
        found = self._webhooks_from_rows(db, rows)
        return found[0] if found else None

    def list_webhooks(self, query: WebhookQuery) -> Page[Webhook]:
        conditions, params = self._tag_conditions("webhook", "webhooks.id", query.tags)
        keyset = _Keyset(("webhooks.url", "webhooks.id"), ("", ""), descending=query.page.reverse)
        with self._read() as db:
            rows = _page_rows(db, "webhooks", self._WEBHOOK_COLUMNS, conditions, params, keyset, query.page)
            items = self._webhooks_from_rows(db, [row[len(keyset.columns) :] for row in rows[: query.page.limit]])
        return Page(items, _next_key(rows, keyset, query.page.limit), query.page.limit)

    def active_webhooks(self) -> list[Webhook]:
        with self._read() as db:
            rows = db.execute(
                f"SELECT {self._WEBHOOK_COLUMNS} FROM webhooks WHERE status IN ('created', 'started')"
            ).fetchall()
            return self._webhooks_from_rows(db, rows)

    def put_webhook(self, db: Db, webhook: Webhook, from_now: bool) -> None:
        if from_now:
            webhook.cursor = self._last_event(db)
        db.execute("DELETE FROM webhooks WHERE id = ?", (webhook.id,))
        _insert_row(db, "webhooks", webhook_values(webhook))
        self._replace_tags(db, "webhook", webhook.id, webhook.tags)

    def delete_webhook(self, db: Db, webhook_id: str) -> None:
        db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        self._delete_all_tags(db, "webhook", webhook_id)

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
        return self.write(
            lambda db: (
                db.execute(
                    "DELETE FROM events WHERE seq <= COALESCE("
                    "(SELECT MIN(cursor) FROM webhooks WHERE status IN ('created', 'started')), "
                    "(SELECT MAX(seq) FROM events))"
                ).rowcount
            )
        )

    def undelivered_events(self) -> int:
        with self._read() as db:
            (behind,) = db.execute("SELECT MIN(cursor) FROM webhooks WHERE status IN ('created', 'started')").fetchone()
            # Events are numbered without gaps (see `_next_event_seq`).
            return 0 if behind is None else max(0, self._last_event(db) - behind)
