"""TAMS TimeRange strings on BBC's `mediatimestamp`, and the closed int64 nanosecond bounds stores keep.

A stored range is two integers, both inclusive: `(s` becomes `s+1`, `e)` becomes `e-1`, and unbounded
ends become the int64 extremes. Integer comparison on these is exact at nanosecond resolution, which
floats and datetimes are not at TAI magnitudes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediatimestamp.immutable import TimeRange, Timestamp

from .errors import BadRequest

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_NS_PER_SEC = 1_000_000_000
_MAX_SECONDS_DIGITS = len(str(INT64_MAX // _NS_PER_SEC))

# The spec's own patterns (schemas/timerange.json, schemas/timestamp.json).
_TIMESTAMP = r"-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})"
TIMERANGE_PATTERN = re.compile(rf"^(\[|\()?({_TIMESTAMP})?(_({_TIMESTAMP})?)?(\]|\))?$")
TIMESTAMP_PATTERN = re.compile(rf"^{_TIMESTAMP}$")
_TIMESTAMP_RE = re.compile(_TIMESTAMP)


@dataclass(frozen=True, slots=True)
class Bounds:
    """Closed nanosecond bounds of a TimeRange; empty when start > end."""

    start: int
    end: int

    @property
    def is_empty(self) -> bool:
        return self.start > self.end

    def overlaps(self, other: Bounds) -> bool:
        return not (self.is_empty or other.is_empty) and self.start <= other.end and other.start <= self.end

    def covers(self, other: Bounds) -> bool:
        return not (self.is_empty or other.is_empty) and self.start <= other.start and other.end <= self.end


EVERYTHING = Bounds(INT64_MIN, INT64_MAX)
NOTHING = Bounds(0, -1)


def _check_in_range(text: str) -> None:
    """mediatimestamp clamps out-of-range timestamps silently; refuse them instead."""
    for match in _TIMESTAMP_RE.finditer(text):
        seconds = match.group(1)
        # int() refuses 4,300 digits or more; seconds longer than int64 nanoseconds hold are out of range anyway.
        in_range = len(seconds) <= _MAX_SECONDS_DIGITS
        if in_range:
            sign = -1 if match.group(0).startswith("-") else 1
            nanoseconds = sign * (int(seconds) * _NS_PER_SEC + int(match.group(2)))
            in_range = INT64_MIN < nanoseconds < INT64_MAX
        if not in_range:
            raise BadRequest(f"timestamp {match.group(0)[:40]!r} is outside the supported range (int64 nanoseconds)")


def parse_timerange(text: str) -> TimeRange:
    """Parse a TimeRange string exactly as the spec defines it, or raise BadRequest."""
    match = TIMERANGE_PATTERN.match(text)
    if match is None or text in ("", "[", "(", "]", ")"):
        raise BadRequest(f"invalid timerange {text!r}: expected e.g. '[0:0_10:0)', '_', '()' or '[5:0]'")
    has_separator = "_" in text
    has_timestamp = match.group(2) is not None or match.group(6) is not None
    if not has_separator and has_timestamp and (text.startswith("(") or text.endswith(")")):
        raise BadRequest(f"invalid timerange {text!r}: an instantaneous timerange cannot use exclusive markers")
    if not has_separator and not has_timestamp and text != "()":
        raise BadRequest(f"invalid timerange {text!r}")
    _check_in_range(text)
    return TimeRange.from_str(text)


def parse_timestamp(text: str) -> Timestamp:
    if not TIMESTAMP_PATTERN.match(text):
        raise BadRequest(f"invalid timestamp {text!r}: expected '<seconds>:<nanoseconds>'")
    _check_in_range(text)
    return Timestamp.from_str(text)


def bounds_of(timerange: TimeRange) -> Bounds:
    if timerange.is_empty():
        return NOTHING
    start = INT64_MIN
    end = INT64_MAX
    if timerange.start is not None:
        start = timerange.start.to_nanosec() + (0 if timerange.includes_start() else 1)
    if timerange.end is not None:
        end = timerange.end.to_nanosec() - (0 if timerange.includes_end() else 1)
    return Bounds(start, end)


def parse_bounds(text: str) -> Bounds:
    return bounds_of(parse_timerange(text))


def shift(timerange: TimeRange, offset: Timestamp) -> TimeRange:
    """The range moved earlier by `offset` (segment timeline -> media object timeline)."""
    if timerange.is_empty():
        return timerange
    start = None if timerange.start is None else timerange.start - offset
    end = None if timerange.end is None else timerange.end - offset
    return TimeRange(start, end, timerange.inclusivity)


def span(first: str, last: str) -> str:
    """The TimeRange from the start of `first` to the end of `last` (first starts no later than last)."""
    head = TimeRange.from_str(first)
    tail = TimeRange.from_str(last)
    inclusivity = (TimeRange.INCLUDE_START if head.includes_start() else 0) | (
        TimeRange.INCLUDE_END if tail.includes_end() else 0
    )
    return str(TimeRange(head.start, tail.end, inclusivity))
