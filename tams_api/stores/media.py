"""The media store interface: where object bytes live and the URLs clients use to move them."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from .. import clock
from ..errors import NotFound


@dataclass(frozen=True, slots=True)
class StorageBackend:
    """A storage backend as `/service/storage-backends` lists it."""

    id: str
    label: str
    provider: str
    store_product: str
    store_type: str = "http_object_store"
    region: str | None = None
    availability_zone: str | None = None
    default_storage: bool = False
    tags: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "store_type": self.store_type,
            "provider": self.provider,
            "store_product": self.store_product,
        }
        for name in ("region", "availability_zone"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.default_storage:
            body["default_storage"] = True
        if self.tags:
            body["tags"] = self.tags
        return body


class MediaMissing(NotFound):
    """No bytes were uploaded for the object on the backend."""

    def __init__(self, object_id: str, backend: StorageBackend) -> None:
        super().__init__(f"object {object_id} has no media on storage backend {backend.label}")


@dataclass(frozen=True, slots=True)
class PutRequest:
    url: str
    content_type: str


class MediaStore(Protocol):
    backend: StorageBackend

    def put_request(self, object_id: str, content_type: str) -> PutRequest:
        """A presigned request a client makes, without TAMS credentials, to upload the object."""
        ...

    def get_urls(self, object_ids: Sequence[str]) -> list[str]:
        """Presigned URLs a client GETs, without TAMS credentials, to download the objects: one each, in order."""
        ...

    def delete(self, object_ids: list[str]) -> None:
        """Delete the bytes of objects; objects that were never uploaded are no error."""
        ...

    def reader(self, object_id: str) -> AbstractContextManager[StoredMedia]:
        """The object's bytes, for copying them to another store; NotFound when none were uploaded."""
        ...

    def write(self, object_id: str, content_type: str, source: BinaryIO) -> None:
        """Store the object's bytes, read from `source` to its end."""
        ...

    def probe(self) -> None:
        """Raise what keeps the store from taking and serving bytes now (readiness); changes nothing."""
        ...


@dataclass(frozen=True, slots=True)
class StoredMedia:
    content_type: str
    stream: BinaryIO


class ReusedUrls:
    """Objects' GET URLs, each reused while more than half its lifetime remains, for the `size` objects asked most
    recently (0: none kept). A listing asked again and again (players polling a live window) then costs a lookup per
    URL rather than a signature."""

    def __init__(self, size: int, lifetime: int) -> None:
        self.size = size
        self.lifetime = lifetime
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, object_ids: Sequence[str], sign: Callable[[str, float], str]) -> list[str]:
        """The objects' URLs, in order: each a kept one, or `sign(object_id, now)`'s, then kept. The clock is read
        once for them all."""
        now = clock.seconds()
        urls = []
        for object_id in object_ids:
            kept = self._urls.get(object_id)
            if kept is not None and kept[1] > now:
                # Each step is atomic under the GIL; another request's eviction between the two is no harm.
                try:  # noqa: SIM105 (contextlib.suppress costs a listing of ten segments 2 us)
                    self._urls.move_to_end(object_id)
                except KeyError:
                    pass
                urls.append(kept[0])
            else:
                urls.append(self._signed(object_id, now, sign))
        return urls

    def _signed(self, object_id: str, now: float, sign: Callable[[str, float], str]) -> str:
        url = sign(object_id, now)
        if self.size:
            self._urls[object_id] = (url, now + self.lifetime / 2)
            while len(self._urls) > self.size:
                with suppress(KeyError):  # emptied meanwhile by other requests' evictions
                    self._urls.popitem(last=False)
        return url

    def forget(self, object_ids: list[str]) -> None:
        for object_id in object_ids:
            self._urls.pop(object_id, None)


class MediaStores:
    """The media stores of the configured storage backends, by storage id; one of them is the default."""

    def __init__(self, default: MediaStore, *others: MediaStore) -> None:
        self.default = default
        self._by_id = {store.backend.id: store for store in (default, *others)}

    def get(self, storage_id: str) -> MediaStore | None:
        return self._by_id.get(storage_id)

    def __iter__(self) -> Iterator[MediaStore]:
        return iter(self._by_id.values())


class CountingReader:
    """A binary stream that counts and checksums (SHA-256) the bytes read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.count = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.count += len(chunk)
        self.digest.update(chunk)
        return chunk


@dataclass(frozen=True, slots=True)
class Copied:
    size: int
    sha256: str


def copy_media(source: MediaStore, target: MediaStore, object_id: str) -> Copied:
    """Copy an object's bytes and content type from one store to another, streaming (objects can be large)."""
    with source.reader(object_id) as media:
        counted = CountingReader(media.stream)
        target.write(object_id, media.content_type, counted)  # type: ignore[arg-type]  # write() only reads
    return Copied(counted.count, counted.digest.hexdigest())
