"""What the metadata stores can bind of a value a client sent, and the one refusal of a value they cannot."""

from __future__ import annotations

import re
from typing import Any

from . import timerange as tr
from .errors import BadRequest

_SURROGATE = re.compile("[\ud800-\udfff]")


def bindable(value: Any) -> bool:
    """Whether a store can bind a value a client sent: null, a float, Unicode text or a 64-bit integer."""
    if isinstance(value, int):  # bool included
        return tr.INT64_MIN <= value <= tr.INT64_MAX
    if isinstance(value, str):
        return _SURROGATE.search(value) is None  # lone surrogates are legal JSON escapes, not Unicode
    return value is None or isinstance(value, float)


def check_bindable(name: str, value: Any) -> None:
    """Refuse the value of the field or filter `name` unless a store can bind it."""
    if not bindable(value):
        raise BadRequest(f"{name} is outside the 64-bit integer range the service stores")
