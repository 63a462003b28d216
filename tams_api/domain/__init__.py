"""The TAMS rules, each written once: use cases that decide what the spec allows, over the metadata repository
(`tams_api.stores.metadata`), which stores and queries records without policy."""

from __future__ import annotations

from typing import TypeVar

from ..errors import NotFound

T = TypeVar("T")


def found(record: T | None, kind: str, record_id: str) -> T:
    """The resource a request names (a flow, a source, ...), which must exist: 404 otherwise."""
    if record is None:
        raise NotFound(f"{kind} {record_id} does not exist")
    return record
