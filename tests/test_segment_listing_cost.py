"""Every segment listing costs about a page, however deep into the flow it starts and whatever it filters.

Counted, never timed: SQLite's virtual machine steps, and the selects and rows the VAST store asks of its cluster
(the SDK fake). A listing that walked the flow up to its page would cost a hundred first pages here.
`bench/paging_depth.py` shows the time it takes on a real server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from helpers import fake_vast_store, fill_flow, new_fake_vast, segment_held_elsewhere
from tams_api import timerange as tr
from tams_api.model import PageRequest, SegmentPage, SegmentQuery
from tams_api.paging import encode_key
from tams_api.stores.metadata import MetadataStore
from tams_api.stores.sqlite import SqliteMetadataStore
from vast_fake import counting_selects

FLOW_ID = "b4a4e3c8-5d87-4d6c-9f55-3f0e2b1c7a10"
SOURCE_ID = "0c6f2d1e-8a3b-4f7e-a1d2-9b8c7e6f5a40"
PAGE = 100
NS = 1_000_000_000
# Big enough that walking 90 % of the flow costs far more than a page: SQLite's steps grow with the rows it walks,
# VAST's selects with the doublings of the slices a scan takes (loading the fake is the slower part).
SEGMENTS = {"sqlite": 20_000, "vast": 4_000}
STEPS_PER_TICK = 10  # SQLite calls the progress handler every this many virtual machine steps

Costs = dict[str, int]


@dataclass(frozen=True, slots=True)
class CountedFlow:
    """A flow of one-second segments in a store, and a listing of its segments with what the listing cost."""

    segments: int
    list_counted: Callable[[SegmentQuery], tuple[Costs, SegmentPage]]


class Ticks:
    """SQLite progress handler: counts its calls and never interrupts."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return 0


@contextmanager
def sqlite_flow(directory: Path, segments: int) -> Iterator[CountedFlow]:
    ticks = Ticks()
    connect = sqlite3.connect

    def counted(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.set_progress_handler(ticks, STEPS_PER_TICK)
        return db

    # Patched for the flow's whole life: the store opens its reader connections as reads first need them.
    with mock.patch.object(sqlite3, "connect", counted):
        store = SqliteMetadataStore(directory / "tams.sqlite")
        fill_flow(store, FLOW_ID, SOURCE_ID, segments)

        def list_counted(query: SegmentQuery) -> tuple[Costs, SegmentPage]:
            before = ticks.count
            page = store.list_segments(FLOW_ID, query)
            return {"SQLite steps": (ticks.count - before) * STEPS_PER_TICK}, page

        try:
            yield CountedFlow(segments, list_counted)
        finally:
            store.close()


def vast_flow(segments: int) -> CountedFlow:
    store: MetadataStore = fake_vast_store(new_fake_vast())
    fill_flow(store, FLOW_ID, SOURCE_ID, segments)

    def list_counted(query: SegmentQuery) -> tuple[Costs, SegmentPage]:
        with counting_selects() as count:
            page = store.list_segments(FLOW_ID, query)
        return {"VAST selects": count.calls, "VAST rows fetched": count.rows}, page

    return CountedFlow(segments, list_counted)


@pytest.fixture(scope="module", params=sorted(SEGMENTS))
def flow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CountedFlow]:
    segments = SEGMENTS[request.param]
    if request.param == "sqlite":
        with sqlite_flow(tmp_path_factory.mktemp("listing-cost"), segments) as counted:
            yield counted
    else:
        yield vast_flow(segments)


def query(
    reverse: bool = False, after: int | None = None, window: str = "_", object_at: int | None = None
) -> SegmentQuery:
    """A page of PAGE segments; after the segment starting at second `after`; of the object of the one at
    `object_at`."""
    key = None if after is None else encode_key([after * NS])
    object_id = None if object_at is None else segment_held_elsewhere(object_at).object_id
    return SegmentQuery(PageRequest(PAGE, key, reverse), tr.parse_bounds(window), object_id)


def timeranges(page: SegmentPage) -> list[str]:
    return [segment.timerange for segment in page.page.items]


@pytest.mark.parametrize("bounded", [False, True], ids=["whole-flow", "window"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_a_page_at_90_percent_depth_costs_what_the_first_page_costs(
    flow: CountedFlow, reverse: bool, bounded: bool
) -> None:
    """Paging seeks on one bound, the page key's and the window's together, not on the window's alone."""
    window = f"[100:0_{flow.segments - 100}:0)" if bounded else "_"
    depth = flow.segments // 10
    after = depth if reverse else flow.segments - depth
    first_costs, first = flow.list_counted(query(reverse, window=window))
    deep_costs, deep = flow.list_counted(query(reverse, after, window))
    assert len(first.page.items) == len(deep.page.items) == PAGE
    following = after - 1 if reverse else after + 1
    assert timeranges(deep)[0] == f"[{following}:0_{following + 1}:0)"
    for name, cost in deep_costs.items():
        assert cost <= 1.5 * first_costs[name], (name, deep_costs, first_costs)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_listing_by_object_costs_no_more_than_a_first_page(flow: CountedFlow, reverse: bool) -> None:
    """Segments of one object are looked up by object, not by walking the flow's time range for them."""
    near_the_end = flow.segments - 10
    first_costs, _ = flow.list_counted(query(reverse))
    object_costs, listed = flow.list_counted(query(reverse, object_at=near_the_end))
    assert timeranges(listed) == [f"[{near_the_end}:0_{near_the_end + 1}:0)"]
    for name, cost in object_costs.items():
        assert cost <= first_costs[name], (name, object_costs, first_costs)
