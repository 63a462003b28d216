"""The background worker: webhook delivery, flow delete requests, and deletion of released media.

One worker works per store at a time (a lease in the store sees to it), inside the API process
(`TAMS_RUN_WORKER`, the default) or alone as `tams-api worker`, so that API replicas can scale. All its
state is in the store: a worker that dies mid-way is replaced by the next one to take the lease, which
carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from contextlib import suppress
from typing import TYPE_CHECKING

from . import clock
from .config import Settings
from .domain import deletes
from .errors import NotFound
from .model import ReleasedMedia, Webhook
from .stores.media import MediaStores
from .stores.metadata import MetadataStore

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("tams_api.worker")

LEASE = "worker"
HOUSEKEEPING_SECONDS = 30.0
DELETE_SECONDS_PER_STEP = 1.0  # then the worker looks at its other work again
PURGES_PER_STEP = 100  # soft-deleted flows purged per step; the rest wait for the next


def delete_released(store: MetadataStore, media: MediaStores, released: list[ReleasedMedia]) -> None:
    """Delete released media from the backends that hold it and take it off the store's list of media to
    delete. Media on backends not configured here stays listed (see `Worker.collect_garbage`)."""
    by_backend: dict[str, list[ReleasedMedia]] = defaultdict(list)
    for item in released:
        by_backend[item.storage_id].append(item)
    for storage_id, items in by_backend.items():
        backend_store = media.get(storage_id)
        if backend_store is not None:
            backend_store.delete([item.object_id for item in items])
            store.forget_released(items)


class Worker:
    def __init__(self, store: MetadataStore, media: MediaStores, settings: Settings) -> None:
        self.store = store
        self.media = media
        self.settings = settings
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._couriers: dict[str, tuple[Webhook, asyncio.Task[None]]] = {}
        # Made with the first courier: httpx, its TLS context and connection pool cost ~12 MB resident, which a
        # store without webhooks does without.
        self._client: httpx.AsyncClient | None = None
        self._lease_renewed = -settings.worker_lease_seconds
        self._housekept = -HOUSEKEEPING_SECONDS

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; errors are logged and the work goes on."""
        try:
            while not stop.is_set():
                try:
                    if await self._hold_lease():
                        await self.step()
                    else:
                        await self._stop_couriers()
                except Exception:
                    log.exception("worker step failed; trying again")
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.worker_poll_interval)
        finally:
            await self._stop_couriers()
            if self._client is not None:
                await self._client.aclose()
                self._client = None
            await asyncio.to_thread(self.store.release_lease, LEASE, self.holder)

    async def _hold_lease(self) -> bool:
        """Take or renew the store's worker lease, renewing when a third of it has passed."""
        seconds = self.settings.worker_lease_seconds
        if time.monotonic() - self._lease_renewed < seconds / 3:
            return True
        held = await asyncio.to_thread(self.store.claim_lease, LEASE, self.holder, seconds)
        self._lease_renewed = time.monotonic() if held else -seconds
        return held

    async def step(self) -> None:
        await self._sync_couriers()
        await asyncio.to_thread(self.purge_soft_deleted_flows)
        await asyncio.to_thread(self.work_on_delete_requests)
        await asyncio.to_thread(self.collect_garbage)
        if time.monotonic() - self._housekept >= HOUSEKEEPING_SECONDS:
            await asyncio.to_thread(self.housekeeping)
            self._housekept = time.monotonic()

    # -- webhooks ----------------------------------------------------------------------------------

    async def _sync_couriers(self) -> None:
        """One courier per listening webhook, restarted when the webhook's registration changes."""
        # Couriers that ended before the read below: a courier ends after writing why (e.g. the webhook's error), so
        # the read sees that. One that ends during the read is left for the next round, when a read sees its write:
        # restarted from a read made before it, it would deliver again what it had given up on.
        ended = {webhook_id for webhook_id, (_, task) in self._couriers.items() if task.done()}
        active = {webhook.id: webhook for webhook in await asyncio.to_thread(self.store.active_webhooks)}
        for webhook_id, (webhook, task) in list(self._couriers.items()):
            current = active.get(webhook_id)
            if webhook_id in ended or current is None or _registration(current) != _registration(webhook):
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
                del self._couriers[webhook_id]
        for webhook_id, webhook in active.items():
            if webhook_id not in self._couriers:
                from .delivery import Courier  # it imports httpx: see __init__

                courier = Courier(webhook, self.store, self.media, self.settings, self._http_client())
                self._couriers[webhook_id] = (webhook, asyncio.create_task(courier.run()))

    def _http_client(self) -> httpx.AsyncClient:
        """The webhook receivers' client, made on first use (see __init__)."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=self.settings.webhook_timeout, follow_redirects=False)
        return self._client

    async def _stop_couriers(self) -> None:
        for _, task in self._couriers.values():
            task.cancel()
        for _, task in self._couriers.values():
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._couriers.clear()

    # -- deletions ---------------------------------------------------------------------------------

    def work_on_delete_requests(self) -> None:
        """Step through pending delete requests, oldest first, for about a second."""
        deadline = time.monotonic() + DELETE_SECONDS_PER_STEP
        for request_id in self.store.pending_delete_requests():
            while time.monotonic() < deadline:
                try:
                    request, released = deletes.continue_request(
                        self.store, request_id, self.settings.delete_chunk_size, self.settings.delete_request_retention
                    )
                except NotFound:
                    break  # gone meanwhile: nothing left to do for it
                delete_released(self.store, self.media, released)
                if request.status not in ("created", "started"):
                    break
            else:
                return

    def purge_soft_deleted_flows(self) -> None:
        """Delete for good the soft-deleted flows whose retention has passed, as DELETE /flows/{id} would have:
        at once, or through a flow delete request (worked on next) when the flow is large."""
        cutoff = clock.time_ns() - self.settings.soft_delete_retention * 1_000_000_000
        for flow_id in self.store.deleted_flows_due(cutoff, PURGES_PER_STEP):
            with suppress(NotFound):  # restored meanwhile
                deletion = deletes.purge(self.store, flow_id, self.settings.delete_sync_limit)
                delete_released(self.store, self.media, deletion.released)

    def collect_garbage(self) -> None:
        """Delete the media of released objects (left over by a crash, or released by housekeeping)."""
        while batch := self.store.released_objects(500):
            delete_released(self.store, self.media, batch)
            elsewhere = [item for item in batch if self.media.get(item.storage_id) is None]
            if elsewhere:
                log.warning("forgetting %d released objects on storage backends not configured here", len(elsewhere))
                self.store.forget_released(elsewhere)

    def housekeeping(self) -> None:
        now_ns = clock.time_ns()
        self.store.prune_events()
        self.store.release_expired_allocations(now_ns - self.settings.object_timeout * 1_000_000_000)
        self.store.forget_expired_delete_requests(now_ns)


def _registration(webhook: Webhook) -> tuple:
    """What a courier delivers by: a change of any of it restarts the courier."""
    return (webhook.url, webhook.events, webhook.api_key_name, webhook.api_key_value, webhook.options)


class WorkerThread:
    """Runs a worker on its own event loop in a thread: the API process's in-process worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        await self.worker.run(self._stop)

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="tams-worker", daemon=True)
        self._thread.start()
        self._started.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
