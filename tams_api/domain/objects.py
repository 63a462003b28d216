"""Media objects and their instances: allocating objects for a flow's media, what clients see of an object (only
once a segment uses it), and where it is held: controlled copies on storage backends and uncontrolled URLs."""

from __future__ import annotations

import functools

from ..clock import now
from ..errors import BadRequest, NotFound
from ..metrics import MEDIA_BYTES_WRITTEN
from ..model import ObjectUsage, Page, PageRequest, ReleasedMedia, StoredObject, TagFilter
from ..stores.media import MediaStore, MediaStores, copy_media
from ..stores.metadata import MetadataStore, ObjectRecord, Transaction
from .flows import writable


def allocate(
    store: MetadataStore, flow_id: str, storage_id: str, content_type: str | None, object_ids: list[str]
) -> str:
    """Allocate objects for the flow's media on the storage backend `storage_id`; the content type their media is
    uploaded with (`content_type`, or else the flow's container)."""
    return store.write(functools.partial(_allocate, store, flow_id, storage_id, content_type, object_ids))


def _allocate(
    store: MetadataStore,
    flow_id: str,
    storage_id: str,
    content_type: str | None,
    object_ids: list[str],
    tx: Transaction,
) -> str:
    flow = writable(store.flow_record(tx, flow_id), flow_id)
    container = flow.metadata.get("container")
    if not container:
        raise BadRequest(f"flow {flow_id} has no 'container': set it before allocating storage")
    if not object_ids:
        raise BadRequest("object_ids must not be empty")
    taken = store.object_records(tx, set(object_ids))
    if taken:
        first = next(object_id for object_id in object_ids if object_id in taken)
        raise BadRequest(f"object_id {first} is already in use")
    if len(set(object_ids)) != len(object_ids):
        raise BadRequest("object_ids must not repeat")
    chosen = container if content_type is None else content_type
    store.insert_allocated(tx, flow, storage_id, chosen, object_ids, now())
    return chosen


def usage(store: MetadataStore, object_id: str, flows: PageRequest, flow_tags: TagFilter) -> ObjectUsage:
    """The object and a page of the flows using it (those with `flow_tags`)."""
    record, users = store.read(functools.partial(_seen, store, object_id, flows, flow_tags))
    return ObjectUsage(object=record.stored(), first_referenced_by_flow=record.first_flow_id, referenced_by_flows=users)


def stored(store: MetadataStore, object_ids: list[str]) -> dict[str, StoredObject]:
    """Those of the objects that exist, by id, whether a segment uses them or they are only allocated (as init
    objects usually are)."""
    records = store.read(lambda tx: store.object_records(tx, set(object_ids)))
    return {object_id: record.stored() for object_id, record in records.items()}


def add_url(store: MetadataStore, media: MediaStores, object_id: str, url: str, label: str) -> None:
    """Advertise an uncontrolled instance of the object: `url`, under a label none of its URLs and no storage
    backend has."""
    if any(backend.backend.label == label for backend in media):
        raise BadRequest(f"label {label!r} belongs to a storage backend; choose another")
    store.write(functools.partial(_add_url, store, object_id, url, label))


def _add_url(store: MetadataStore, object_id: str, url: str, label: str, tx: Transaction) -> None:
    record = _instances(store, object_id, tx)
    urls = record.uncontrolled_urls or []
    if any(existing["label"] == label for existing in urls):
        raise BadRequest(f"object {object_id} already has a URL labelled {label!r}")
    record.uncontrolled_urls = [*urls, {"url": url, "label": label}]
    store.save_instances(tx, record, [])


def copy_instance(store: MetadataStore, media: MediaStores, object_id: str, target: MediaStore) -> None:
    """The spec's controlled copy: copy the object's bytes to the target backend from one of its controlled
    instances, then advertise the copy in its `get_urls` (only once it is complete)."""
    record = store.read(functools.partial(_instances, store, object_id))
    _refuse_second(record, target.backend.id)
    sources = [backend for storage_id in record.storage_ids if (backend := media.get(storage_id)) is not None]
    if not sources:
        # Copying in from an uncontrolled URL would make this service fetch arbitrary URLs; not offered.
        raise BadRequest("copying an object held only at uncontrolled URLs into this store is not supported")
    try:
        copied = copy_media(sources[0], target, object_id)
    except NotFound as missing:
        raise BadRequest(f"{missing.summary}: upload it before copying it") from None
    MEDIA_BYTES_WRITTEN.labels(target.backend.label).inc(copied.size)
    try:
        store.write(functools.partial(_add_controlled, store, object_id, target.backend.id))
    except NotFound:
        target.delete([object_id])  # the object went while its bytes were copied: nothing refers to the copy
        raise


def _add_controlled(store: MetadataStore, object_id: str, storage_id: str, tx: Transaction) -> None:
    record = _instances(store, object_id, tx)
    _refuse_second(record, storage_id)
    record.storage_ids = [*record.storage_ids, storage_id]
    store.save_instances(tx, record, [])


def _refuse_second(record: ObjectRecord, storage_id: str) -> None:
    if storage_id in record.storage_ids:
        raise BadRequest(f"object {record.id} already has an instance on storage backend {storage_id}")


def remove_instance(
    store: MetadataStore, media: MediaStores, object_id: str, storage_id: str | None, label: str | None
) -> list[ReleasedMedia]:
    """Remove the object's controlled instance on `storage_id` (or on the backend labelled `label`), or its
    uncontrolled URL labelled `label`; the media released, for the caller to delete once this is committed."""
    if storage_id is None:
        named = next((backend.backend for backend in media if backend.backend.label == label), None)
        if named is not None:
            storage_id, label = named.id, None
    if (storage_id is None) == (label is None):
        raise BadRequest("give exactly one of storage_id and label")
    return store.write(functools.partial(_remove_instance, store, object_id, storage_id, label))


def _remove_instance(
    store: MetadataStore, object_id: str, storage_id: str | None, label: str | None, tx: Transaction
) -> list[ReleasedMedia]:
    record = _instances(store, object_id, tx)
    released: list[ReleasedMedia] = []
    if storage_id is not None:
        if storage_id not in record.storage_ids:
            raise NotFound(f"object {object_id} has no instance on storage backend {storage_id}")
        record.storage_ids = [kept for kept in record.storage_ids if kept != storage_id]
        released.append(ReleasedMedia(object_id, storage_id))
    else:
        urls = record.uncontrolled_urls or []
        kept = [existing for existing in urls if existing["label"] != label]
        if len(kept) == len(urls):
            raise NotFound(f"object {object_id} has no URL labelled {label!r}")
        record.uncontrolled_urls = kept
    # The spec's SHOULD: an object keeps at least one instance.
    if not record.storage_ids and not record.uncontrolled_urls:
        raise BadRequest("an object's last instance cannot be deleted: delete the segments using it")
    store.save_instances(tx, record, released)
    return released


def _instances(store: MetadataStore, object_id: str, tx: Transaction) -> ObjectRecord:
    return _seen(store, object_id, PageRequest(limit=1), TagFilter(), tx)[0]


def _seen(
    store: MetadataStore, object_id: str, flows: PageRequest, flow_tags: TagFilter, tx: Transaction
) -> tuple[ObjectRecord, Page[str]]:
    """The object and a page of the flows using it, if clients can see it: once a segment of a flow that is not
    soft-deleted uses it. One allocated but not yet registered against a segment is still 404, as the spec
    requires."""
    record = store.object_records(tx, {object_id}).get(object_id)
    users = None if record is None else store.object_flows(tx, object_id, flows, flow_tags)
    if record is None or users is None:
        raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
    return record, users
