"""Webhook delivery: one courier per listening webhook posts its events in outbox order.

A courier never gives up an event for a later one: it retries with exponential backoff and, after the
retry budget, puts the webhook in `error` with the reason. Its cursor in the store moves only past events
delivered (or not wanted), so a restart resumes where it stopped: delivery is at least once, and a restart
may repeat the events of the batch under way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
import orjson

from .clock import now
from .config import Settings
from .metrics import WEBHOOK_DELIVERIES, WEBHOOK_ERRORS
from .model import Event, Webhook
from .stores.media import MediaStores
from .stores.metadata import MetadataStore
from .webhooks import event_body, url_problem, wants

log = logging.getLogger("tams_api.delivery")
BATCH = 100


class Undeliverable(Exception):
    """The webhook's URL must not be called (SSRF guard): no retry helps."""


@dataclass(slots=True)
class Courier:
    webhook: Webhook
    store: MetadataStore
    media: MediaStores
    settings: Settings
    client: httpx.AsyncClient

    async def run(self) -> None:
        webhook = self.webhook
        if webhook.status == "created":
            await asyncio.to_thread(self.store.set_webhook_status, webhook.id, "started")
        cursor = webhook.cursor
        while True:
            events = await asyncio.to_thread(self.store.events_after, cursor, BATCH)
            if not events:
                await asyncio.sleep(self.settings.worker_poll_interval)
                continue
            for event in events:
                if wants(webhook, event) and not await self._deliver_or_give_up(event, cursor):
                    return
                cursor = event.seq
            # Once per batch: a write per event would contend with the API for the store's writer.
            await asyncio.to_thread(self.store.advance_webhook, webhook.id, cursor)

    async def _deliver_or_give_up(self, event: Event, delivered: int) -> bool:
        """Deliver one event, retrying; False once the webhook is in error. `delivered`: the cursor so far,
        saved before the first retry so that a restart does not deliver those events again."""
        settings = self.settings
        for attempt in range(1, settings.webhook_max_attempts + 1):
            if attempt == 2:
                await asyncio.to_thread(self.store.advance_webhook, self.webhook.id, delivered)
            try:
                problem = await self._post(event)
            except Undeliverable as refused:
                WEBHOOK_DELIVERIES.labels("refused").inc()
                return await self._give_up(event, attempt, str(refused))
            WEBHOOK_DELIVERIES.labels("delivered" if problem is None else "failed").inc()
            if problem is None:
                return True
            if attempt == settings.webhook_max_attempts:
                return await self._give_up(event, attempt, problem)
            delay = min(settings.webhook_retry_initial * 2 ** (attempt - 1), settings.webhook_retry_max)
            log.info("webhook %s: %s; retrying in %.1f s", self.webhook.id, problem, delay)
            await asyncio.sleep(delay)
        return False

    async def _post(self, event: Event) -> str | None:
        """POST the event; None on success, else what went wrong."""
        webhook = self.webhook
        await self._check_address()
        headers = {"Content-Type": "application/json"}
        if webhook.api_key_name and webhook.api_key_value is not None:
            headers[webhook.api_key_name] = webhook.api_key_value
        # In a thread: segment URLs of init objects read the metadata store.
        body = orjson.dumps(await asyncio.to_thread(event_body, webhook, event, self.media, self.store.find_objects))
        try:
            response = await self.client.post(webhook.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return f"{webhook.url} did not answer within {self.settings.webhook_timeout:g} s"
        except httpx.HTTPError as error:
            return f"cannot reach {webhook.url}: {error.__class__.__name__} {error}".strip()
        if 200 <= response.status_code < 300:
            return None
        return f"{webhook.url} answered {response.status_code}"

    async def _check_address(self) -> None:
        """The SSRF guard again at delivery: a name may resolve elsewhere than when it was registered."""
        if self.settings.webhook_allow_link_local:
            return
        host = httpx.URL(self.webhook.url).host
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            return  # the POST reports that the name does not resolve
        problem = url_problem(self.webhook.url, [str(info[4][0]) for info in infos], allow_link_local=False)
        if problem is not None:
            raise Undeliverable(problem)

    async def _give_up(self, event: Event, attempts: int, problem: str) -> bool:
        summary = f"gave up delivering {event.type} event {event.seq} after {attempts} attempt(s): {problem}"
        log.warning("webhook %s: %s", self.webhook.id, summary)
        WEBHOOK_ERRORS.inc()
        error = {"type": "WebhookDeliveryFailed", "summary": summary, "time": now().text}
        await asyncio.to_thread(self.store.set_webhook_status, self.webhook.id, "error", error)
        return False
