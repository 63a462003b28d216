"""Sources: each comes into being with its first flow and is gone for clients once no flow that is not soft-deleted
names it; a client changes its label, description and tags."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..clock import Instant, now
from ..errors import BadRequest
from ..model import FlowWrite, Source, TagValue
from ..stores.metadata import FlowRecord, MetadataStore, SourceRecord, Transaction
from . import events, found
from .tags import with_tag

# A change of a source, made in a transaction at an instant.
_Change = Callable[[SourceRecord, Transaction, Instant], None]


def get(store: MetadataStore, source_id: str) -> Source:
    return found(store.read(lambda tx: store.get_source(tx, source_id)), "source", source_id)


def set_property(store: MetadataStore, source_id: str, name: str, value: str | None, author: str | None) -> None:
    """Set (or, with None, remove) the source's label or description."""
    assert name in ("label", "description")

    def change(source: SourceRecord, tx: Transaction, stamp: Instant) -> None:
        setattr(source, name, value)
        store.save_source(tx, source, stamp)

    _update(store, source_id, author, change)


def set_tag(store: MetadataStore, source_id: str, name: str, value: TagValue | None, author: str | None) -> None:
    """Set (or, with None, remove) a tag of the source."""

    def change(source: SourceRecord, tx: Transaction, stamp: Instant) -> None:
        tags = found(store.get_source(tx, source_id), "source", source_id).tags
        store.save_source(tx, source, stamp, tags=with_tag(tags, "source", source_id, name, value))

    _update(store, source_id, author, change)


def _update(store: MetadataStore, source_id: str, author: str | None, change: _Change) -> None:
    store.write(functools.partial(_updated, store, source_id, author, change))


def _updated(store: MetadataStore, source_id: str, author: str | None, change: _Change, tx: Transaction) -> None:
    record = store.source_record(tx, source_id)
    source = found(record if record is not None and record.visible else None, "source", source_id)
    source.updated_by = author
    change(source, tx, now())
    announce(store, tx, "sources/updated", source_id)


def join(store: MetadataStore, tx: Transaction, flow: FlowWrite, previous: FlowRecord | None, stamp: Instant) -> bool:
    """The flow names its source: a source comes into being with its first flow, taking the flow's label and
    description, and has its flows' format. True when the source appears to clients (new, or back from being
    hidden with all its flows soft-deleted)."""
    source = store.source_record(tx, flow.source_id)
    if source is None:
        new = SourceRecord(
            flow.source_id,
            flow.format,
            flow.metadata.get("label"),
            flow.metadata.get("description"),
            created_by=flow.author,
            updated_by=flow.author,
        )
        store.save_source(tx, new, stamp)
        return True
    if source.format != flow.format:
        named_already = previous is not None and previous.source_id == flow.source_id
        if source.flow_count > int(named_already):
            raise BadRequest(
                f"flow format {flow.format} conflicts with format {source.format} of source {flow.source_id}"
            )
        source.format = flow.format
        store.save_source(tx, source, stamp)
    return not source.visible


def left(store: MetadataStore, tx: Transaction, source_id: str) -> None:
    """A flow left the source (it went, was soft-deleted or names another source): without a flow that is not
    soft-deleted, the source is gone for clients."""
    source = store.source_record(tx, source_id)
    if source is None or not source.visible:
        announce(store, tx, "sources/deleted", source_id)


def announce(store: MetadataStore, tx: Transaction, event_type: str, source_id: str) -> None:
    """Tell the webhooks that listen what became of the source."""

    def payload() -> dict[str, Any]:
        if event_type == "sources/deleted":
            return {"source_id": source_id}
        return {"source": found(store.get_source(tx, source_id), "source", source_id).to_json()}

    events.emit(store, tx, event_type, payload, source_id=source_id)
