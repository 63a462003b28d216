"""Events: each change a webhook may hear of goes to the outbox in the transaction that makes it, with what webhook
filters look at (the flow's source, the collections of the flow and of its source at the time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..clock import now
from ..model import Event
from ..stores.metadata import MetadataStore, Transaction


def emit(
    store: MetadataStore,
    tx: Transaction,
    event_type: str,
    payload: Callable[[], dict[str, Any]],
    flow_id: str | None = None,
    source_id: str | None = None,
) -> None:
    """Put an event about the flow or the source in the outbox; `payload()` is only built when a webhook listens.
    A soft-deleted flow makes no event: clients were told it was deleted, so its purge is no news to them."""

    def event() -> Event | None:
        flow_collected_by: list[str] = []
        about = source_id
        if flow_id is not None:
            flow = store.get_flow(tx, flow_id)
            if flow is None:
                return None
            about, flow_collected_by = flow.source_id, flow.collected_by
        source = store.get_source(tx, about) if about is not None else None
        source_collected_by = source.collected_by if source is not None else []
        return Event(0, event_type, now().text, payload(), flow_id, about, flow_collected_by, source_collected_by)

    store.emit(tx, event)
