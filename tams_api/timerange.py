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
# The form nearly every segment's timerange takes: both timestamps, each end marked. Read straight into integers, it
# costs a quarter of the full grammar; anything else (and seconds longer than int64 nanoseconds may hold) takes the
# full grammar. Same grammar for each timestamp as `_TIMESTAMP`, the sign apart.
_SECONDS = rf"(0|[1-9][0-9]{{0,{_MAX_SECONDS_DIGITS - 1}}})"
_BOTH_ENDS = re.compile(rf"([\[(])(-?){_SECONDS}:(0|[1-9][0-9]{{0,8}})_(-?){_SECONDS}:(0|[1-9][0-9]{{0,8}})([\])])")


@dataclass(slots=True)  # not frozen: a frozen dataclass is made at three times the cost, twice per registered segment
class Bounds:
    """Closed nanosecond bounds of a TimeRange; empty when start > end. Never changed once made."""

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


def _nanoseconds(timestamp: str, seconds: str, nanoseconds: str) -> int:
    """A matched timestamp as int64 nanoseconds; mediatimestamp would clamp out-of-range values silently."""
    # int() refuses 4,300 digits or more; seconds longer than int64 nanoseconds hold are out of range anyway.
    if len(seconds) <= _MAX_SECONDS_DIGITS:
        sign = -1 if timestamp.startswith("-") else 1
        value = sign * (int(seconds) * _NS_PER_SEC + int(nanoseconds))
        if INT64_MIN < value < INT64_MAX:
            return value
    raise BadRequest(f"timestamp {timestamp[:40]!r} is outside the supported range (int64 nanoseconds)")


def not_a_timerange(text: str) -> str:
    """What a person reads of a string that is no timerange, in a query or in a body alike."""
    return f"{text[:80]!r} is not a timerange: expected e.g. '[0:0_10:0)', '_', '()' or '[5:0]'"


def not_a_timestamp(text: str) -> str:
    """What a person reads of a string that is no timestamp, in a query or in a body alike."""
    return f"{text[:80]!r} is not a timestamp: expected '<seconds>:<nanoseconds>', e.g. '10:0' or '-1:500000000'"


def pattern_problem(pattern: str, text: str) -> str | None:
    """A person's words for `text` failing the spec's timerange or timestamp pattern, rather than the regular
    expression; None for any other pattern."""
    explain = {TIMERANGE_PATTERN.pattern: not_a_timerange, TIMESTAMP_PATTERN.pattern: not_a_timestamp}.get(pattern)
    return None if explain is None else explain(text)


def _match_timerange(text: str) -> re.Match[str]:
    """Check a TimeRange string against the spec's grammar and rules, with its timestamps in range."""
    match = TIMERANGE_PATTERN.match(text)
    if match is None or text in ("", "[", "(", "]", ")"):
        raise BadRequest(not_a_timerange(text))
    has_separator = match.group(5) is not None
    has_timestamp = match.group(2) is not None or match.group(6) is not None
    if not has_separator and has_timestamp and (text.startswith("(") or text.endswith(")")):
        raise BadRequest(f"invalid timerange {text!r}: an instantaneous timerange cannot use exclusive markers")
    if not has_separator and not has_timestamp and text != "()":
        raise BadRequest(f"invalid timerange {text!r}")
    for timestamp, seconds, nanoseconds in (match.group(2, 3, 4), match.group(6, 7, 8)):
        if timestamp is not None:
            _nanoseconds(timestamp, seconds, nanoseconds)
    return match


def parse_timerange(text: str) -> TimeRange:
    """Parse a TimeRange string exactly as the spec defines it, or raise BadRequest."""
    _match_timerange(text)
    return TimeRange.from_str(text)


def parse_bounds(text: str) -> Bounds:
    """The closed nanosecond bounds of a TimeRange string, in integer arithmetic straight from the grammar.

    Registering a segment needs only these, and this is several times faster than going through a
    TimeRange object (a segment's usual `[s:ns_s:ns)` faster still); tests check it agrees with
    `bounds_of(parse_timerange(text))` (mediatimestamp).
    """
    both_ends = _both_ends(text)
    if both_ends is not None:
        return both_ends
    match = _match_timerange(text)
    if text == "()":
        return NOTHING
    first, last = match.group(2, 3, 4), match.group(6, 7, 8)
    if match.group(5) is None:  # an instant: [t]
        last = first
    start = INT64_MIN if first[0] is None else _nanoseconds(*first) + (1 if match.group(1) == "(" else 0)
    end = INT64_MAX if last[0] is None else _nanoseconds(*last) - (1 if match.group(9) == ")" else 0)
    return Bounds(start, end) if start <= end else NOTHING


def _both_ends(text: str) -> Bounds | None:
    """`parse_bounds` of a range of the form `[s:ns_s:ns)` (either marker at either end); None for any other text,
    or timestamps outside int64 nanoseconds (which the full grammar refuses, in its words)."""
    match = _BOTH_ENDS.fullmatch(text)
    if match is None:
        return None
    opening, start_sign, start_seconds, start_nanoseconds, end_sign, end_seconds, end_nanoseconds, closing = (
        match.groups()
    )
    start = int(start_seconds) * _NS_PER_SEC + int(start_nanoseconds)
    end = int(end_seconds) * _NS_PER_SEC + int(end_nanoseconds)
    if start_sign:
        start = -start
    if end_sign:
        end = -end
    if not (INT64_MIN < start < INT64_MAX and INT64_MIN < end < INT64_MAX):
        return None
    if opening == "(":
        start += 1
    if closing == ")":
        end -= 1
    return Bounds(start, end) if start <= end else NOTHING


def shifted(text: str, bounds: Bounds, offset: int) -> str:
    """`str(shift(parse_timerange(text), offset))` for the range `text` of non-empty finite `bounds` (its
    `parse_bounds`), `offset` in nanoseconds: in integers where `text` has both timestamps, through mediatimestamp
    otherwise (an instant, or one written as `[t_t]`)."""
    opening, closing = text[0], text[-1]
    if opening in "[(" and closing in "])" and "_" in text:  # both timestamps: bounds are finite
        # The timestamps as written, from the closed bounds.
        start = bounds.start - (1 if opening == "(" else 0)
        end = bounds.end + (1 if closing == ")" else 0)
        if start < end:  # mediatimestamp writes `[t_t]` as `[t]`
            return f"{opening}{format_timestamp(start - offset)}_{format_timestamp(end - offset)}{closing}"
    return str(shift(parse_timerange(text), Timestamp.from_nanosec(offset)))


def timestamp_nanoseconds(text: str) -> int:
    match = TIMESTAMP_PATTERN.match(text)
    if match is None:
        raise BadRequest(not_a_timestamp(text))
    return _nanoseconds(text, match.group(1), match.group(2))


def parse_timestamp(text: str) -> Timestamp:
    timestamp_nanoseconds(text)  # validates, and refuses what mediatimestamp would clamp
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
    return Bounds(start, end) if start <= end else NOTHING  # e.g. (0:0_0:1) holds no nanosecond


def shift(timerange: TimeRange, offset: Timestamp) -> TimeRange:
    """The range moved earlier by `offset` (segment timeline -> media object timeline)."""
    if timerange.is_empty():
        return timerange
    start = None if timerange.start is None else timerange.start - offset
    end = None if timerange.end is None else timerange.end - offset
    return TimeRange(start, end, timerange.inclusivity)


def format_timestamp(nanoseconds: int) -> str:
    seconds, rest = divmod(abs(nanoseconds), _NS_PER_SEC)
    return f"{'-' if nanoseconds < 0 else ''}{seconds}:{rest}"


def format_bounds(bounds: Bounds) -> str:
    """The TimeRange string of closed nanosecond bounds; unbounded ends stay open."""
    if bounds.is_empty:
        return "()"
    start = "" if bounds.start == INT64_MIN else f"[{format_timestamp(bounds.start)}"
    end = "" if bounds.end == INT64_MAX else f"{format_timestamp(bounds.end)}]"
    return f"{start}_{end}"


def span(first: str, last: str) -> str:
    """The TimeRange from the start of `first` to the end of `last`, two segments' timeranges (neither empty, first
    starting no later than last), as mediatimestamp writes it: a paging header of every listing, so in integers
    straight from the grammar (a test checks it against mediatimestamp). A missing bracket is inclusive."""
    # The usual `[a_b)` and `[c_d)` give `[a_d)` as they are written: the grammar allows one other way to write a
    # value (-0:0), and a span of one nanosecond reads as an instant.
    head, separator, _ = first.partition("_")
    _, tail_separator, tail = last.rpartition("_")
    start_text, end_text = head[1:], tail[:-1]
    if (
        separator
        and tail_separator
        and head[:1] in ("[", "(")
        and tail[-1:] in ("]", ")")
        and start_text != end_text
        and "-0:0" not in (start_text, end_text)
    ):
        return f"{head}_{tail}"
    head, tail = _match_timerange(first), _match_timerange(last)
    start = _nanoseconds(*head.group(2, 3, 4))
    end = _nanoseconds(*(tail.group(6, 7, 8) if tail.group(5) is not None else tail.group(2, 3, 4)))
    opening = "(" if head.group(1) == "(" else "["
    closing = ")" if tail.group(9) == ")" else "]"
    if start == end and opening == "[" and closing == "]":
        return f"[{format_timestamp(start)}]"
    return f"{opening}{format_timestamp(start)}_{format_timestamp(end)}{closing}"
