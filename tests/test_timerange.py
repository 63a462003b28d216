"""TimeRange parsing and the closed int64 nanosecond bounds stores keep."""

import pytest

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
