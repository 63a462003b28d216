"""Page keys: the opaque `page` a listing hands out as its next key and takes back. A key holds the sort values
of the last item of the page before (`encode_key`); the storage backends' listing, which no store serves, uses an
offset. A key the service did not issue, or issued for another listing, is a bad request."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

from .bindable import bindable
from .errors import BadRequest

# A key this service issues is one row's sort values (ids, times, a label or URL): far shorter. A longer one is
# refused before it costs any decoding (and is not echoed back).
MAX_PAGE_KEY_LENGTH = 16 * 1024
# ASCII digits only: str.isdigit() also accepts "²", which int() refuses, and int() refuses 4,300+ digits.
_OFFSET = re.compile(r"[0-9]{1,9}")


def encode_key(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values), separators=(",", ":")).encode()).decode()


def decode_key(key: str, length: int, like: Sequence[Any] | None = None) -> list[Any]:
    """The `length` sort values of a page key `encode_key` made, each of the type of its value in `like` when
    given (a sort key of the listing); anything else a client sends is a bad request."""
    if len(key) > MAX_PAGE_KEY_LENGTH:
        raise BadRequest(f"invalid page key: longer than {MAX_PAGE_KEY_LENGTH} characters")
    try:
        values = json.loads(base64.urlsafe_b64decode(key.encode()))
    except (ValueError, UnicodeError, RecursionError) as error:  # RecursionError: JSON nested too deep
        raise _invalid(key) from error
    if not (
        isinstance(values, list)
        and len(values) == length
        and all(map(bindable, values))
        and (like is None or all(type(value) is type(sample) for value, sample in zip(values, like, strict=True)))
    ):
        raise _invalid(key, "it belongs to another listing or sort order")
    return values


def decode_segment_key(key: str) -> int:
    """The start (int64 nanoseconds) of the last segment of the page before, from a segment listing's key."""
    return decode_key(key, 1, like=(0,))[0]


def decode_offset(key: str) -> int:
    """The number of items the pages before returned, from a key that counts them."""
    if not _OFFSET.fullmatch(key):
        raise _invalid(key)
    return int(key)


def _invalid(key: str, why: str | None = None) -> BadRequest:
    return BadRequest(f"invalid page key {key!r}" + (f": {why}" if why else ""))
