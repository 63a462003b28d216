"""Webhooks and the outbox: events written in the transaction of the change they report, webhooks and their
cursors, reading and pruning events."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

from ...model import Event, Page, Webhook, WebhookQuery
from ..shared import webhook_values
from .rows import _ACTIVE, _delete, _insert, _json, _page, _select, _update
from .session import Transactions, _guard, _retried_on_conflict, _Tx


class WebhooksMixin(Transactions):
    """Webhooks and events."""

    @staticmethod
    def _listening(t: _Tx) -> bool:
        """Whether any webhook wants events: without one, changes write no outbox rows at all."""
        if t.listening is None:
            webhooks = t["webhooks"]
            t.listening = bool(_select(webhooks, webhooks["status"].isin(_ACTIVE), ["id"], limit=1))
        return t.listening

    @staticmethod
    def _counter(t: _Tx) -> list[dict[str, Any]]:
        counters = t["counters"]
        return _select(counters, counters["name"] == "events", row_ids=True)

    def _last_event(self, t: _Tx) -> int:
        return max((row["value"] for row in self._counter(t)), default=0)

    def _next_seq(self, t: _Tx) -> int:
        """The next event sequence number; updating the counter row makes concurrent event writers conflict."""
        rows = self._counter(t)
        seq = max((row["value"] for row in rows), default=0) + 1
        if rows:
            for row in rows:
                row["value"] = seq
            _update(t["counters"], "counters", rows, ["value"])
        else:
            _guard(t, "counter events")
            _insert(t["counters"], "counters", [{"name": "events", "value": seq}])
        return seq

    def emit(self, t: _Tx, event: Callable[[], Event | None]) -> None:
        made = event() if self._listening(t) else None
        if made is None:
            return
        row = {
            "seq": self._next_seq(t),
            "type": made.type,
            "timestamp": made.timestamp,
            "flow_id": made.flow_id,
            "source_id": made.source_id,
            "flow_collected_by": _json(made.flow_collected_by),
            "source_collected_by": _json(made.source_collected_by),
            "payload": _json(made.payload),
        }
        _insert(t["events"], "events", [row])

    def _webhooks_from_rows(self, t: _Tx, rows: list[dict[str, Any]]) -> list[Webhook]:
        tags = self._load_tags(t, "webhook", [row["id"] for row in rows])
        webhooks = []
        for row in rows:
            details = json.loads(row["document"])
            webhooks.append(
                Webhook(
                    id=row["id"],
                    url=row["url"],
                    events=details["events"],
                    status=row["status"],
                    api_key_name=details.get("api_key_name"),
                    api_key_value=details.get("api_key_value"),
                    options=details["options"],
                    tags=tags[row["id"]],
                    error=json.loads(row["error"]) if row["error"] else None,
                    owner=row["owner"],
                    cursor=row["cursor"],
                )
            )
        return webhooks

    @staticmethod
    def _webhook_rows(t: _Tx, webhook_id: str) -> list[dict[str, Any]]:
        webhooks = t["webhooks"]
        return _select(webhooks, webhooks["id"] == webhook_id, row_ids=True)

    def webhook_record(self, t: _Tx, webhook_id: str) -> Webhook | None:
        found = self._webhooks_from_rows(t, self._webhook_rows(t, webhook_id))
        return found[0] if found else None

    def list_webhooks(self, query: WebhookQuery) -> Page[Webhook]:
        with self._read() as t:
            match = self._tag_match(t, "webhook", query.tags)
            rows = [row for row in _select(t["webhooks"]) if match(row["id"])]
            page_rows, next_key = _page(rows, lambda row: (row["url"], row["id"]), query.page.reverse, query.page)
            items = self._webhooks_from_rows(t, page_rows)
        return Page(items, next_key, query.page.limit)

    def active_webhooks(self) -> list[Webhook]:
        with self._read() as t:
            webhooks = t["webhooks"]
            return self._webhooks_from_rows(t, _select(webhooks, webhooks["status"].isin(_ACTIVE)))

    def put_webhook(self, t: _Tx, webhook: Webhook, from_now: bool) -> None:
        _guard(t, f"webhook {webhook.id}")  # two writers of one new webhook: the second conflicts
        if from_now:
            webhook.cursor = self._last_event(t)
        _delete(t["webhooks"], self._webhook_rows(t, webhook.id))
        _insert(t["webhooks"], "webhooks", [webhook_values(webhook)])
        self._replace_tags(t, "webhook", webhook.id, webhook.tags)

    def delete_webhook(self, t: _Tx, webhook_id: str) -> None:
        _delete(t["webhooks"], self._webhook_rows(t, webhook_id))
        self._delete_all_tags(t, "webhook", webhook_id)

    def events_after(self, seq: int, limit: int) -> list[Event]:
        with self._read() as t:
            events = t["events"]
            # Sequence numbers have no gaps after a webhook's cursor: the next `limit` lie in (seq, seq + limit].
            rows = _select(events, events["seq"].between(seq + 1, seq + limit))
            if len(rows) < limit:  # a gap (pruned below a cursor): look further, unbounded but rare
                rows = _select(events, events["seq"] > seq)
        rows = sorted(rows, key=operator.itemgetter("seq"))[:limit]
        return [
            Event(
                seq=row["seq"],
                type=row["type"],
                timestamp=row["timestamp"],
                payload=json.loads(row["payload"]),
                flow_id=row["flow_id"],
                source_id=row["source_id"],
                flow_collected_by=json.loads(row["flow_collected_by"]),
                source_collected_by=json.loads(row["source_collected_by"]),
            )
            for row in rows
        ]

    @_retried_on_conflict
    def prune_events(self) -> int:
        """Drop events every listening webhook has had; all of them when none listens."""
        with self._write() as t:
            cursors = self._listening_cursors(t)
            events = t["events"]
            where = None if not cursors else events["seq"] <= min(cursors)
            return _delete(events, _select(events, where, ["seq"], row_ids=True))

    def undelivered_events(self) -> int:
        with self._read() as t:
            cursors = self._listening_cursors(t)
            # Sequence numbers have no gaps (see `_next_seq`): the backlog is a difference.
            return max(0, self._last_event(t) - min(cursors)) if cursors else 0

    @staticmethod
    def _listening_cursors(t: _Tx) -> list[int]:
        webhooks = t["webhooks"]
        return [row["cursor"] for row in _select(webhooks, webhooks["status"].isin(_ACTIVE), ["cursor"])]
