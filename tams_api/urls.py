"""`get_urls` of segments and objects, filtered as the client asked (query parameters or webhook options).

Signing a URL costs real time at listing sizes, so a controlled URL is signed only when the filters
(`accept_get_urls`, `accept_storage_ids`, `presigned`, `storage_backend_tag.*`) let it through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Segment, StoredObject, TagFilter, tags_match
from .stores.media import MediaStore, MediaStores, StorageBackend


@dataclass(slots=True)
class UrlOptions:
    accept_labels: set[str] | None = None  # None: no filtering; empty: no URLs at all
    accept_storage_ids: set[str] | None = None  # None or empty: no filtering
    presigned: bool | None = None
    verbose: bool = False
    backend_tags: TagFilter = field(default_factory=TagFilter)

    def _backend_tags_match(self, backend: StorageBackend | None) -> bool:
        if not self.backend_tags.values and not self.backend_tags.exists:
            return True
        return backend is not None and tags_match(backend.tags, self.backend_tags)

    def wants_controlled(self, backend: StorageBackend) -> bool:
        return (
            (self.accept_labels is None or backend.label in self.accept_labels)
            and (self.accept_storage_ids is None or backend.id in self.accept_storage_ids)
            and self.presigned is not False
            and self._backend_tags_match(backend)
        )

    def is_plain(self) -> bool:
        """Every URL wanted, with no more than url and label: what players ask."""
        return (
            self.accept_labels is None
            and self.accept_storage_ids is None
            and self.presigned is None
            and not self.verbose
            and not self.backend_tags.values
            and not self.backend_tags.exists
        )

    def wants_uncontrolled(self, label: str | None) -> bool:
        return (
            (self.accept_labels is None or (label is not None and label in self.accept_labels))
            and self.accept_storage_ids is None
            and self.presigned is not True
            and self._backend_tags_match(None)
        )


Choice = tuple[dict[str, MediaStore], dict[str, dict[str, Any]]]


def _choice(media: MediaStores, options: UrlOptions) -> Choice:
    """The stores whose controlled URLs the filters let through, by storage id, and what their entries say besides
    the URL."""
    controlled = {store.backend.id: store for store in media if options.wants_controlled(store.backend)}
    return controlled, {storage_id: _description(store.backend, options) for storage_id, store in controlled.items()}


@functools.lru_cache(maxsize=4)  # the servers' stores, each made once (tests make more)
def _plain_choice(media: MediaStores) -> Choice:
    return _choice(media, UrlOptions())


def _description(backend: StorageBackend, options: UrlOptions) -> dict[str, Any]:
    entry: dict[str, Any] = {"presigned": True, "label": backend.label}
    if options.verbose:
        entry.update(backend.to_json())
        entry.pop("id")
        entry.pop("default_storage", None)
        entry["storage_id"] = backend.id
        entry["controlled"] = True
    return entry


class UrlBuilder:
    """Builds `get_urls` for many objects of one request, deciding the filters once per storage backend and asking each
    store for the URLs of all the objects at once."""

    def __init__(
        self,
        media: MediaStores,
        options: UrlOptions,
        find_objects: Callable[[list[str]], dict[str, StoredObject]],
    ) -> None:
        self.options = options
        self.controlled, self._described = _plain_choice(media) if options.is_plain() else _choice(media, options)
        self._find_objects = find_objects
        self._init_objects: dict[str, StoredObject | None] = {}

    def get_urls_of(self, objects: Sequence[StoredObject]) -> list[list[dict[str, Any]]]:
        """Each object's `get_urls`, in order."""
        # By storage id: the store's URLs of the objects with an instance there, and what its entries say besides.
        made: dict[str, tuple[dict[str, str], dict[str, Any]]] = {}
        for storage_id, store in self.controlled.items():
            object_ids = [stored.id for stored in objects if storage_id in stored.storage_ids]
            by_id = dict(zip(object_ids, store.get_urls(object_ids), strict=True))
            made[storage_id] = (by_id, self._described[storage_id])
        every = []
        for stored in objects:  # a loop rather than a comprehension per object: a tenth of a listing's URL making
            urls = []
            for storage_id in stored.storage_ids:
                found = made.get(storage_id)  # None: instances on backends not configured here have no URLs to give
                if found is not None:
                    urls.append({"url": found[0][stored.id], **found[1]})
            if stored.uncontrolled_urls:
                urls += self._uncontrolled_urls(stored)
            every.append(urls)
        return every

    def get_urls(self, stored: StoredObject) -> list[dict[str, Any]]:
        return self.get_urls_of([stored])[0]

    def _uncontrolled_urls(self, stored: StoredObject) -> list[dict[str, Any]]:
        urls = []
        for uncontrolled in stored.uncontrolled_urls:
            if self.options.wants_uncontrolled(uncontrolled.get("label")):
                entry = {"url": uncontrolled["url"], "label": uncontrolled["label"]}
                if self.options.verbose:
                    entry["controlled"] = False
                urls.append(entry)
        return urls

    def init_object(self, init_object_id: str) -> dict[str, Any]:
        """An init object's URLs are those of its own instances (the spec does not cascade instances to init
        objects); looked up once per request, as the segments of a flow mostly share one."""
        if init_object_id not in self._init_objects:
            self._init_objects[init_object_id] = self._find_objects([init_object_id]).get(init_object_id)
        init = self._init_objects[init_object_id]
        return {"get_urls": [] if init is None else self.get_urls(init)}


def segments_json(
    segments: Sequence[Segment], urls: UrlBuilder, include_object_timerange: bool
) -> list[dict[str, Any]]:
    """The segments as the spec's JSON, with their objects' `get_urls`."""
    get_urls = urls.get_urls_of([segment.object for segment in segments])
    return [
        _segment_json(segment, found, urls, include_object_timerange)
        for segment, found in zip(segments, get_urls, strict=True)
    ]


def _segment_json(
    segment: Segment, get_urls: list[dict[str, Any]], urls: UrlBuilder, include_object_timerange: bool
) -> dict[str, Any]:
    stored = segment.object
    body: dict[str, Any] = {"object_id": stored.id, "timerange": segment.timerange}
    # Attribute by attribute: a loop of getattr over their names takes three times as long (~140 ns a segment).
    if segment.ts_offset is not None:
        body["ts_offset"] = segment.ts_offset
    if segment.last_duration is not None:
        body["last_duration"] = segment.last_duration
    if segment.sample_offset is not None:
        body["sample_offset"] = segment.sample_offset
    if segment.sample_count is not None:
        body["sample_count"] = segment.sample_count
    if stored.key_frame_count is not None:
        body["key_frame_count"] = stored.key_frame_count
    if include_object_timerange and stored.timerange is not None:
        body["object_timerange"] = stored.timerange
    body["get_urls"] = get_urls
    if stored.init_object_id is not None:
        body["init_object"] = {"object_id": stored.init_object_id, **urls.init_object(stored.init_object_id)}
    return body
