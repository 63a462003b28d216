"""`get_urls` of segments and objects, filtered as the client asked (query parameters or webhook options).

Signing a URL costs real time at listing sizes, so a controlled URL is signed only when the filters
(`accept_get_urls`, `accept_storage_ids`, `presigned`, `storage_backend_tag.*`) let it through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Segment, StoredObject, TagFilter, tags_match
from .stores.media import MediaStore, StorageBackend


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

    def wants_uncontrolled(self, label: str | None) -> bool:
        return (
            (self.accept_labels is None or (label is not None and label in self.accept_labels))
            and self.accept_storage_ids is None
            and self.presigned is not True
            and self._backend_tags_match(None)
        )


class UrlBuilder:
    """Builds `get_urls` for many objects of one request, deciding the filters once."""

    def __init__(self, media: MediaStore, options: UrlOptions) -> None:
        self.media = media
        self.options = options
        self.backend = media.backend
        self.controlled = options.wants_controlled(self.backend)

    def controlled_url(self, object_id: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"url": self.media.get_url(object_id), "presigned": True, "label": self.backend.label}
        if self.options.verbose:
            entry.update(self.backend.to_json())
            entry.pop("id")
            entry.pop("default_storage", None)
            entry["storage_id"] = self.backend.id
            entry["controlled"] = True
        return entry

    def get_urls(self, stored: StoredObject) -> list[dict[str, Any]]:
        urls = []
        if self.controlled and stored.storage_id == self.backend.id:
            urls.append(self.controlled_url(stored.id))
        for uncontrolled in stored.uncontrolled_urls:
            if self.options.wants_uncontrolled(uncontrolled.get("label")):
                entry = {"url": uncontrolled["url"], "label": uncontrolled["label"]}
                if self.options.verbose:
                    entry["controlled"] = False
                urls.append(entry)
        return urls

    def init_object(self, init_object_id: str) -> dict[str, Any]:
        """Init objects are allocated on this store's backend, like the media objects using them."""
        urls = [self.controlled_url(init_object_id)] if self.controlled else []
        return {"get_urls": urls}


def segment_json(segment: Segment, urls: UrlBuilder, include_object_timerange: bool) -> dict[str, Any]:
    stored = segment.object
    body: dict[str, Any] = {"object_id": stored.id, "timerange": segment.timerange}
    for name in ("ts_offset", "last_duration", "sample_offset", "sample_count"):
        value = getattr(segment, name)
        if value is not None:
            body[name] = value
    if stored.key_frame_count is not None:
        body["key_frame_count"] = stored.key_frame_count
    if include_object_timerange and stored.timerange is not None:
        body["object_timerange"] = stored.timerange
    body["get_urls"] = urls.get_urls(stored)
    if stored.init_object_id is not None:
        body["init_object"] = {"object_id": stored.init_object_id, **urls.init_object(stored.init_object_id)}
    return body
