"""`get_urls` of segments and objects, filtered as the client asked (query parameters or webhook options).

Signing a URL costs real time at listing sizes, so a controlled URL is signed only when the filters
(`accept_get_urls`, `accept_storage_ids`, `presigned`, `storage_backend_tag.*`) let it through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import StoredObject, TagFilter, tags_match
from .segment_rows import (
    ObjectColumns,
    SegmentRow,
    storage_ids_column,
    storage_ids_from_column,
    uncontrolled_urls_column,
    uncontrolled_urls_from_column,
)
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


Placement = tuple[tuple[str, dict[str, Any]], ...]


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
        self._placements: dict[str | None, Placement] = {}

    def get_urls_of(self, objects: Sequence[ObjectColumns]) -> list[list[dict[str, Any]]]:
        """Each object's `get_urls`, in order."""
        alike = {(columns[-2], columns[-1]) for columns in objects}
        if len(alike) == 1:
            storage_ids, uncontrolled_urls = alike.pop()
            if uncontrolled_urls is None:  # instances on the same backends and no others, as a flow's objects mostly
                return self._controlled_urls_alike(objects, self._placement(storage_ids))
        every = self._controlled_urls(objects)
        for urls, columns in zip(every, objects, strict=True):
            if columns[-1]:
                urls += self._uncontrolled_urls(uncontrolled_urls_from_column(columns[-1]))
        return every

    def _controlled_urls_alike(
        self, objects: Sequence[ObjectColumns], placement: Placement
    ) -> list[list[dict[str, Any]]]:
        """The controlled URLs of objects with the same placement: its stores' URLs of all the objects, zipped."""
        if not placement:
            return [[] for _ in objects]
        object_ids = [columns[-3] for columns in objects]
        if len(placement) == 1:  # one backend, as most objects have
            [(storage_id, entry)] = placement
            return [[{"url": url, **entry}] for url in self.controlled[storage_id].get_urls(object_ids)]
        by_store = [
            [{"url": url, **entry} for url in self.controlled[storage_id].get_urls(object_ids)]
            for storage_id, entry in placement
        ]
        return [list(entries) for entries in zip(*by_store, strict=True)]

    def _controlled_urls(self, objects: Sequence[ObjectColumns]) -> list[list[dict[str, Any]]]:
        """The controlled URLs of objects on different backends, each store asked for all of its objects' at once."""
        placements = [self._placement(columns[-2]) for columns in objects]
        asked: dict[str, list[str]] = {storage_id: [] for storage_id in self.controlled}
        for columns, placement in zip(objects, placements, strict=True):
            for storage_id, _ in placement:
                asked[storage_id].append(columns[-3])
        # Each store's URLs, one per object asked for, taken in the order they were asked for.
        given = {
            storage_id: iter(self.controlled[storage_id].get_urls(ids)) for storage_id, ids in asked.items() if ids
        }
        return [
            [{"url": next(given[storage_id]), **entry} for storage_id, entry in placement] for placement in placements
        ]

    def _placement(self, storage_ids: str | None) -> Placement:
        """The controlled stores whose URLs an object with these instances (their column) gets, in the instances'
        order, each with what its entries say besides the URL: decided once a request for each set of backends, which
        the objects of a flow mostly share. Instances on backends not configured here have no URLs to give."""
        found = self._placements.get(storage_ids)
        if found is not None:
            return found
        placement = self._placements[storage_ids] = tuple(
            (storage_id, self._described[storage_id])
            for storage_id in storage_ids_from_column(storage_ids)
            if storage_id in self.controlled
        )
        return placement

    def get_urls(self, stored: StoredObject) -> list[dict[str, Any]]:
        columns = (
            stored.id,
            storage_ids_column(stored.storage_ids),
            uncontrolled_urls_column(stored.uncontrolled_urls),
        )
        return self.get_urls_of([columns])[0]

    def _uncontrolled_urls(self, uncontrolled_urls: list[dict[str, str]]) -> list[dict[str, Any]]:
        urls = []
        for uncontrolled in uncontrolled_urls:
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


def segments_json(rows: Sequence[SegmentRow], urls: UrlBuilder, include_object_timerange: bool) -> list[dict[str, Any]]:
    """The segments as the spec's JSON, with their objects' `get_urls`."""
    every = []
    for row, get_urls in zip(rows, urls.get_urls_of(rows), strict=True):
        (
            _,
            timerange,
            ts_offset,
            last_duration,
            sample_offset,
            sample_count,
            object_timerange,
            key_frame_count,
            init_object_id,
            object_id,
            _,
            _,
        ) = row  # unpacked: a NamedTuple's fields by name are slower
        body: dict[str, Any] = {"object_id": object_id, "timerange": timerange}
        if ts_offset is not None:
            body["ts_offset"] = ts_offset
        if last_duration is not None:
            body["last_duration"] = last_duration
        if sample_offset is not None:
            body["sample_offset"] = sample_offset
        if sample_count is not None:
            body["sample_count"] = sample_count
        if key_frame_count is not None:
            body["key_frame_count"] = key_frame_count
        if include_object_timerange and object_timerange is not None:
            body["object_timerange"] = object_timerange
        body["get_urls"] = get_urls
        if init_object_id is not None:
            body["init_object"] = {"object_id": init_object_id, **urls.init_object(init_object_id)}
        every.append(body)
    return every
