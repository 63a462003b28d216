"""TimeRange parsing and the closed int64 nanosecond bounds stores keep."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mediatimestamp.immutable import TimeRange

from tams_api import timerange as tr
from tams_api.errors import BadRequest


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("[0:0_10:0)", 0, 10_000_000_000 - 1),
        ("(0:0_10:0]", 1, 10_000_000_000),
        ("[5:0]", 5_000_000_000, 5_000_000_000),
        ("_", tr.INT64_MIN, tr.INT64_MAX),
        ("[1:0_", 1_000_000_000, tr.INT64_MAX),
        ("_1:0)", tr.INT64_MIN, 999_999_999),
        ("[-10:500_-1:0)", -10_000_000_500, -1_000_000_001),
        ("[1694429247:0_1694429248:0)", 1694429247_000_000_000, 1694429247_999_999_999),
    ],
)
def test_bounds_are_closed_nanoseconds(text: str, start: int, end: int) -> None:
    assert tr.parse_bounds(text) == tr.Bounds(start, end)


def test_never_is_empty() -> None:
    assert tr.parse_bounds("()").is_empty
    assert tr.parse_bounds("[10:0_5:0)").is_empty


def test_adjacent_ranges_do_not_overlap() -> None:
    first, second = tr.parse_bounds("[0:0_1:0)"), tr.parse_bounds("[1:0_2:0)")
    assert not first.overlaps(second)
    assert first.overlaps(tr.parse_bounds("[0:999999999]"))
    assert tr.parse_bounds("[1:0_2:0)").overlaps(tr.parse_bounds("[1:0]"))


def test_cover() -> None:
    assert tr.parse_bounds("[0:0_10:0)").covers(tr.parse_bounds("[2:0_10:0)"))
    assert not tr.parse_bounds("[0:0_10:0)").covers(tr.parse_bounds("[2:0_10:0]"))
    assert not tr.NOTHING.covers(tr.NOTHING)


@pytest.mark.parametrize(
    "text", ["", "x", "[", "[5:0)", "(5:0]", "[1:0__2:0)", "[01:0_2:0)", "[1:1000000000_2:0)", "[99999999999:0_"]
)
def test_invalid_ranges_are_refused(text: str) -> None:
    with pytest.raises(BadRequest):
        tr.parse_timerange(text)


def test_span_keeps_the_outer_inclusivity() -> None:
    assert tr.span("(0:0_1:0)", "[5:0_6:0]") == "(0:0_6:0]"
    assert tr.span("[1:0]", "[1:0]") == "[1:0]"


def test_shift_moves_to_the_object_timeline() -> None:
    shifted = tr.shift(tr.parse_timerange("[10:0_20:0)"), tr.parse_timestamp("-100:0"))
    assert str(shifted) == "[110:0_120:0)"


@settings(max_examples=400, derandomize=True)
@given(
    start=st.one_of(st.none(), st.tuples(st.integers(-(10**9), 10**10), st.integers(0, 999_999_999))),
    end=st.one_of(st.none(), st.tuples(st.integers(-(10**9), 10**10), st.integers(0, 999_999_999))),
    opening=st.sampled_from(["[", "(", ""]),
    closing=st.sampled_from(["]", ")", ""]),
    instant=st.booleans(),
)
def test_fast_bounds_agree_with_mediatimestamp(
    start: tuple[int, int] | None, end: tuple[int, int] | None, opening: str, closing: str, instant: bool
) -> None:
    """`parse_bounds` computes in integers; mediatimestamp is the reference it must match."""

    def text(timestamp: tuple[int, int] | None) -> str:
        if timestamp is None:
            return ""
        seconds, nanoseconds = timestamp
        return f"{'-' if seconds < 0 else ''}{abs(seconds)}:{nanoseconds}"

    if instant:
        if start is None or opening == "(" or closing == ")":
            return
        candidate = f"{opening}{text(start)}{closing}"
    else:
        candidate = f"{opening}{text(start)}_{text(end)}{closing}"
    try:
        reference = tr.bounds_of(tr.parse_timerange(candidate))
    except BadRequest:
        with pytest.raises(BadRequest):
            tr.parse_bounds(candidate)
        return
    assert tr.parse_bounds(candidate) == reference, candidate


@pytest.mark.parametrize("text", ["()", "_", "[-0:5_0:5]", "(0:0_0:1)", "[5:0_5:0)"])
def test_fast_bounds_edge_cases(text: str) -> None:
    assert tr.parse_bounds(text) == tr.bounds_of(tr.parse_timerange(text))


SEGMENT_TIMESTAMPS = st.tuples(st.integers(-(10**6), 10**6), st.integers(0, 999_999_999))


@settings(max_examples=400, derandomize=True)
@given(
    starts=st.tuples(SEGMENT_TIMESTAMPS, SEGMENT_TIMESTAMPS),
    lengths=st.tuples(st.integers(0, 3 * 10**9), st.integers(0, 3 * 10**9)),
    markers=st.tuples(*[st.sampled_from(["[", "(", ""]), st.sampled_from(["]", ")", ""])] * 2),
    negative_zero=st.booleans(),
)
def test_span_agrees_with_mediatimestamp(
    starts: tuple[tuple[int, int], tuple[int, int]],
    lengths: tuple[int, int],
    markers: tuple[str, str, str, str],
    negative_zero: bool,
) -> None:
    """`span` joins two segments' timeranges in integers; mediatimestamp's TimeRange is the reference."""

    def segment(start: tuple[int, int], length: int, opening: str, closing: str) -> str | None:
        begin = start[0] * 10**9 + (start[1] if start[0] >= 0 else -start[1])
        first, last = tr.format_timestamp(begin), tr.format_timestamp(begin + length)
        if negative_zero and begin == 0:
            first = "-0:0"  # the grammar allows it; mediatimestamp writes 0:0
        text = f"{opening}{first}]" if length == 0 and opening != "(" and closing != ")" else None
        text = text or f"{opening}{first}_{last}{closing}"
        return None if tr.parse_bounds(text).is_empty else text

    first = segment(starts[0], lengths[0], markers[0], markers[1])
    last = segment(max(starts), lengths[1], markers[2], markers[3])
    if first is None or last is None or tr.parse_bounds(first).start > tr.parse_bounds(last).start:
        return
    head, tail = tr.parse_timerange(first), tr.parse_timerange(last)
    inclusivity = (TimeRange.INCLUDE_START if head.includes_start() else 0) | (
        TimeRange.INCLUDE_END if tail.includes_end() else 0
    )
    assert tr.span(first, last) == str(TimeRange(head.start, tail.end, inclusivity)), (first, last)


# A segment's usual form, `[s:ns_s:ns)`, is read by a fast path of `parse_bounds`: around it, seconds of every length
# up to past what int64 nanoseconds hold, both signs, each marker, and near misses of the grammar (leading zeros, ten
# digits of nanoseconds, `+`, `_` inside a number).
_SECONDS = st.one_of(
    st.integers(-(10**11), 10**11),
    st.integers(-(2**63) // 10**9 - 2, -(2**63) // 10**9 + 2),
    st.integers(2**63 // 10**9 - 2, 2**63 // 10**9 + 2),
)
_TIMESTAMP_TEXT = st.one_of(
    st.builds(
        lambda seconds, nanoseconds, negative_zero: (
            f"{'-' if seconds < 0 or negative_zero else ''}{abs(seconds)}:{nanoseconds}"
        ),
        _SECONDS,
        st.integers(0, 999_999_999),
        st.booleans(),
    ),
    st.from_regex(r"\A[-+]?[0-9_]{1,12}:[0-9_]{1,10}\Z"),
)


@settings(max_examples=2000, derandomize=True)
@given(
    opening=st.sampled_from(["[", "("]),
    start=_TIMESTAMP_TEXT,
    end=_TIMESTAMP_TEXT,
    closing=st.sampled_from(["]", ")"]),
)
def test_both_ends_fast_path_agrees_with_mediatimestamp(opening: str, start: str, end: str, closing: str) -> None:
    text = f"{opening}{start}_{end}{closing}"
    try:
        reference = tr.bounds_of(tr.parse_timerange(text))
    except BadRequest as refused:
        assert tr._both_ends(text) is None, text  # left to the full grammar, which says why
        with pytest.raises(BadRequest, match=re.escape(refused.summary)):
            tr.parse_bounds(text)
        return
    fast = tr._both_ends(text)
    assert fast is not None, text  # every valid range of this form takes the fast path
    assert fast == reference == tr.parse_bounds(text), text


@settings(max_examples=1000, derandomize=True)
@given(
    opening=st.sampled_from(["[", "(", ""]),
    first=st.one_of(st.integers(-(10**12), 10**12), st.integers(-(2**63) + 1, 2**63 - 2)),
    length=st.one_of(st.integers(0, 3), st.integers(0, 10**19)),
    closing=st.sampled_from(["]", ")", ""]),
    instant=st.booleans(),
    offset=st.integers(-(2**63) + 1, 2**63 - 2),
)
def test_shifted_agrees_with_mediatimestamp(
    opening: str, first: int, length: int, closing: str, instant: bool, offset: int
) -> None:
    """What registering a segment with ts_offset stores as its object's timerange, in integers or not."""
    last = min(first + length, 2**63 - 2)
    if instant:
        if opening == "(" or closing == ")":
            return
        text = f"{opening}{tr.format_timestamp(first)}{closing}"
    else:
        text = f"{opening}{tr.format_timestamp(first)}_{tr.format_timestamp(last)}{closing}"
    bounds = tr.parse_bounds(text)
    if bounds.is_empty:
        return
    offset_text = tr.format_timestamp(offset)
    assert tr.shifted(text, bounds, offset) == str(tr.shift(tr.parse_timerange(text), tr.parse_timestamp(offset_text)))
