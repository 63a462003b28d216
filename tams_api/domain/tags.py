"""Tags of flows and sources: a name maps to a string or a list of strings."""

from __future__ import annotations

from ..errors import NotFound
from ..model import Tags, TagValue


def tag(tags: Tags, owner: str, owner_id: str, name: str) -> TagValue:
    """The value of the tag `name` of the flow or source (`owner`) `owner_id`."""
    if name not in tags:
        raise NotFound(f"{owner} {owner_id} has no tag {name!r}")
    return tags[name]


def with_tag(tags: Tags, owner: str, owner_id: str, name: str, value: TagValue | None) -> Tags:
    """The tags once `name` is set to `value`, or removed (None), which it must exist for."""
    if value is None:
        tag(tags, owner, owner_id, name)
        return {other: kept for other, kept in tags.items() if other != name}
    return {**tags, name: value}
