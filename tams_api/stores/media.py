"""The media store interface: where object bytes live and the URLs clients use to move them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


@dataclass(frozen=True, slots=True)
class PutRequest:
    url: str
    content_type: str


class MediaStore(Protocol):
    backend: StorageBackend

    def put_request(self, object_id: str, content_type: str) -> PutRequest:
        """A presigned request a client makes, without TAMS credentials, to upload the object."""
        ...

    def get_url(self, object_id: str) -> str:
        """A presigned URL a client GETs, without TAMS credentials, to download the object."""
        ...

    def delete(self, object_ids: list[str]) -> None:
        """Delete the bytes of objects; objects that were never uploaded are no error."""
        ...
