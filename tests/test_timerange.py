"""TimeRange parsing and the closed int64 nanosecond bounds stores keep."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
