"""Deleting flows and segments: now when few segments go, else by a flow delete request the worker carries out a
chunk at a time (answered 202); soft delete (extension): a flow hidden from clients until restored or purged."""

from __future__ import annotations

import functools
import uuid

from .. import timerange as tr
from ..clock import Instant, instant_text, now
from ..errors import BadRequest, Forbidden, NotFound, error_json
from ..model import DeleteRequest, Deletion, ReleasedMedia
from ..stores.metadata import DeletedSegments, FlowRecord, MetadataStore, Transaction
from . import events, found, sources
from .flows import as_event, drop, writable

ACTIVE = ("created", "started")  # a delete request under way


def delete_flow(store: MetadataStore, flow_id: str, sync_limit: int, author: str | None) -> Deletion:
    """Delete the flow now when it has at most `sync_limit` segments, else leave it to a delete request."""
    return store.write(
        lambda tx: _delete_flow(store, tx, writable(store.flow_record(tx, flow_id), flow_id), sync_limit, author)
    )


def _delete_flow(
    store: MetadataStore, tx: Transaction, flow: FlowRecord, sync_limit: int, author: str | None
) -> Deletion:
    pending = store.pending_flow_delete(tx, flow.id)
    if pending is not None:
        return Deletion(deferred=pending)
    if store.more_covered_than(tx, flow, tr.EVERYTHING, sync_limit):
        return Deletion(deferred=_request(store, tx, flow.id, "_", True, author))
    return Deletion(released=drop(store, tx, flow))


def delete_segments(
    store: MetadataStore, flow_id: str, timerange: str, object_id: str | None, sync_limit: int, author: str | None
) -> Deletion:
    """Delete the segments `timerange` covers now when they are at most `sync_limit`, else leave them to a delete
    request (which cannot carry an object_id filter, so such deletes always happen now)."""
    within = tr.parse_bounds(timerange)

    def work(tx: Transaction) -> Deletion:
        flow = writable(store.flow_record(tx, flow_id), flow_id)
        if within.is_empty:
            return Deletion()
        if object_id is None and store.more_covered_than(tx, flow, within, sync_limit):
            return Deletion(deferred=_request(store, tx, flow_id, timerange, False, author))
        return Deletion(released=_delete_covered(store, tx, flow, within, object_id, None).released)

    return store.write(work)


def _delete_covered(
    store: MetadataStore, tx: Transaction, flow: FlowRecord, within: tr.Bounds, object_id: str | None, limit: int | None
) -> DeletedSegments:
    deleted = store.delete_covered(tx, flow, within, object_id, limit)
    if deleted.span is not None:
        span = deleted.span
        events.emit(
            store, tx, "flows/segments_deleted", lambda: {"flow_id": flow.id, "timerange": span}, flow_id=flow.id
        )
    return deleted


def _request(
    store: MetadataStore, tx: Transaction, flow_id: str, timerange: str, delete_flow: bool, author: str | None
) -> DeleteRequest:
    stamp = now()
    request = DeleteRequest(
        id=str(uuid.uuid4()),
        flow_id=flow_id,
        timerange_to_delete=timerange,
        timerange_remaining=tr.format_bounds(tr.parse_bounds(timerange)),
        delete_flow=delete_flow,
        status="created",
        created=stamp.text,
        updated=stamp.text,
        created_by=author,
    )
    store.save_delete_request(tx, request, stamp)
    return request


def continue_request(
    store: MetadataStore, request_id: str, chunk: int, retention_seconds: int
) -> tuple[DeleteRequest, list[ReleasedMedia]]:
    """One step of a delete request, in one transaction: delete up to `chunk` more segments, or, when none are
    left, the flow (if asked) and mark the request done. A crash between steps loses nothing."""
    return store.write(functools.partial(_continue, store, request_id, chunk, retention_seconds))


def _continue(
    store: MetadataStore, request_id: str, chunk: int, retention_seconds: int, tx: Transaction
) -> tuple[DeleteRequest, list[ReleasedMedia]]:
    request = found(store.get_delete_request(tx, request_id), "flow delete request", request_id)
    if request.status not in ACTIVE:
        return request, []
    stamp = now()
    request.updated = stamp.text
    flow = store.flow_record(tx, request.flow_id, soft_deleted_too=True)  # a purge works on a soft-deleted flow
    released: list[ReleasedMedia] = []
    expiry: Instant | None = None
    try:
        if flow is not None:
            writable(flow, flow.id)  # a flow made read-only since the request was made stays whole
    except Forbidden as refused:
        request.status, request.error = "error", error_json("Forbidden", refused.summary, stamp.text)
    else:
        remaining = tr.parse_bounds(request.timerange_remaining)
        last_start = None
        if flow is not None and not remaining.is_empty:
            deleted = _delete_covered(store, tx, flow, remaining, None, chunk)
            released, last_start = deleted.released, deleted.last_start
        if last_start is not None:
            request.status = "started"
            request.timerange_remaining = tr.format_bounds(tr.Bounds(last_start + 1, remaining.end))
        else:
            if flow is not None and request.delete_flow:
                released += drop(store, tx, flow)
            expiry_ns = stamp.ns + retention_seconds * 1_000_000_000
            expiry = Instant(instant_text(expiry_ns), expiry_ns)
            request.status, request.timerange_remaining, request.expiry = "done", "()", expiry.text
    store.save_delete_request(tx, request, stamp, expiry)
    return request, released


def get_request(store: MetadataStore, request_id: str) -> DeleteRequest:
    return found(store.read(lambda tx: store.get_delete_request(tx, request_id)), "flow delete request", request_id)


# -- soft delete -----------------------------------------------------------------------------------


def soft_delete(store: MetadataStore, flow_id: str, deleted_by: str) -> Deletion:
    """Hide the flow (and what only it holds: its segments, and its source when no other flow names it) from the
    spec's endpoints, keeping every row for a restore; to clients it is deleted."""

    def work(tx: Transaction) -> Deletion:
        flow = writable(store.flow_record(tx, flow_id), flow_id)
        pending = store.pending_flow_delete(tx, flow_id)
        if pending is not None:
            return Deletion(deferred=pending)
        events.emit(store, tx, "flows/deleted", lambda: {"flow_id": flow_id}, flow_id=flow_id)
        store.set_soft_deleted(tx, flow, now(), deleted_by)
        sources.left(store, tx, flow.source_id)
        return Deletion()

    return store.write(work)


def _soft_deleted(store: MetadataStore, tx: Transaction, flow_id: str) -> FlowRecord:
    flow = store.flow_record(tx, flow_id, soft_deleted_too=True)
    if flow is None or not flow.soft_deleted:
        raise NotFound(f"flow {flow_id} is not soft-deleted")
    return flow


def restore(store: MetadataStore, flow_id: str) -> None:
    """Bring a soft-deleted flow back, with its source if it was hidden with it."""

    def work(tx: Transaction) -> None:
        flow = _soft_deleted(store, tx, flow_id)
        if store.pending_flow_delete(tx, flow_id) is not None:
            raise BadRequest(f"flow {flow_id} is being purged; it can no longer be restored")
        source = store.source_record(tx, flow.source_id)
        store.set_soft_deleted(tx, flow, None)
        if source is None or not source.visible:
            sources.announce(store, tx, "sources/created", flow.source_id)
        events.emit(store, tx, "flows/created", lambda: as_event(store, tx, flow_id), flow_id=flow_id)

    store.write(work)


def purge(store: MetadataStore, flow_id: str, sync_limit: int) -> Deletion:
    """Delete a soft-deleted flow for good, as DELETE /flows/{id} would have (a delete request when large)."""

    def work(tx: Transaction) -> Deletion:
        flow = _soft_deleted(store, tx, flow_id)
        return _delete_flow(store, tx, flow, sync_limit, flow.deleted_by)

    return store.write(work)
