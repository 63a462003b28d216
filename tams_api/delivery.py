"""Webhook delivery: one courier per listening webhook posts its events in outbox order.

A courier never gives up an event for a later one: it retries with exponential backoff and, after the
retry budget, puts the webhook in `error` with the reason. Its cursor in the store moves only past events
delivered (or not wanted), so a restart resumes where it stopped: delivery is at least once, and a restart
may repeat the events of the batch under way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import orjson

from .config import Settings
from .domain import objects, webhooks
from .errors import error_json
from .metrics import WEBHOOK_DELIVERIES, WEBHOOK_ERRORS
from .model import Event, Webhook
from .stores.media import MediaStores
from .stores.metadata import MetadataStore
from .webhooks import event_body, refusal, resolve, wants

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
            await asyncio.to_thread(webhooks.set_status, self.store, webhook.id, "started")
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
            await asyncio.to_thread(webhooks.advance, self.store, webhook.id, cursor)

    async def _deliver_or_give_up(self, event: Event, delivered: int) -> bool:
        """Deliver one event, retrying; False once the webhook is in error. `delivered`: the cursor so far,
        saved before the first retry so that a restart does not deliver those events again."""
        settings = self.settings
        for attempt in range(1, settings.webhook_max_attempts + 1):
            if attempt == 2:
                await asyncio.to_thread(webhooks.advance, self.store, self.webhook.id, delivered)
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
        url = httpx.URL(webhook.url)
        try:
            addresses = await self._addresses(url)
        except OSError as error:
            return f"{webhook.url}: {url.host} does not resolve ({error})"
        headers = {"Content-Type": "application/json"}
        if webhook.api_key_name and webhook.api_key_value is not None:
            headers[webhook.api_key_name] = webhook.api_key_value
        # In a thread: segment URLs of init objects read the metadata store.
        find_objects = functools.partial(objects.stored, self.store)
        body = orjson.dumps(await asyncio.to_thread(event_body, webhook, event, self.media, find_objects))
        problem = f"{webhook.url}: {url.host} resolves to no address"
        for address in addresses:
            try:
                response = await self.client.send(pinned_post(self.client, url, address, body, headers))
            except httpx.TimeoutException:
                return f"{webhook.url} did not answer within {self.settings.webhook_timeout:g} s"
            except httpx.HTTPError as error:
                problem = f"cannot reach {webhook.url}: {error.__class__.__name__} {error}".strip()
                if isinstance(error, httpx.ConnectError):
                    continue  # nothing was sent: the host's next address may answer
                return problem
            if 200 <= response.status_code < 300:
                return None
            return f"{webhook.url} answered {response.status_code}"
        return problem

    async def _addresses(self, url: httpx.URL) -> Sequence[str | None]:
        """Where this attempt connects: every address the host resolves to now, all vetted (the SSRF guard, as
        a name may resolve elsewhere than when it was registered, or from one lookup to the next); [None] (the
        host, resolved as it comes) when the guard is off. OSError when the host does not resolve."""
        if self.settings.webhook_allow_link_local:
            return [None]
        addresses = await asyncio.to_thread(resolve, url.raw_host)
        problem = refusal(self.webhook.url, addresses)
        if problem is not None:
            raise Undeliverable(problem)
        return addresses

    async def _give_up(self, event: Event, attempts: int, problem: str) -> bool:
        summary = f"gave up delivering {event.type} event {event.seq} after {attempts} attempt(s): {problem}"
        log.warning("webhook %s: %s", self.webhook.id, summary)
        WEBHOOK_ERRORS.inc()
        error = error_json("WebhookDeliveryFailed", summary)
        await asyncio.to_thread(webhooks.set_status, self.store, self.webhook.id, "error", error)
        return False


def pinned_post(
    client: httpx.AsyncClient, url: httpx.URL, address: str | None, body: bytes, headers: dict[str, str]
) -> httpx.Request:
    """The POST of `body` to `url` over a connection to `address` (None: wherever the host resolves then), so
    that the address connected to is the one vetted. The Host header, TLS SNI and the certificate check stay on
    the URL's host: httpcore verifies the certificate against `sni_hostname`."""
    if address is None:
        return client.build_request("POST", url, content=body, headers=headers)
    headers = {**headers, "Host": url.netloc.decode("ascii")}
    extensions: dict[str, str] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
        # The client pools connections by address: one whose certificate was checked for this name must not be
        # reused for another name at the same address.
        headers["Connection"] = "close"
    pinned = url.copy_with(host=address)
    return client.build_request("POST", pinned, content=body, headers=headers, extensions=extensions)
