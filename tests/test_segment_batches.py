"""Registering segments in batches, on every metadata store: a chunk checks its segments against the stored segments it
lies among (read in one query, or past a bound one seek per segment), against one another and against the objects they
name (read at once), and answers as checking them one by one would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import STORE_BACKENDS, new_id, video_flow
from tams_api import timerange as tr
from tams_api.domain import flows
from tams_api.domain import objects as objects_domain
from tams_api.domain import segments as segments_domain
from tams_api.model import FlowWrite, NewSegment, PageRequest, SegmentFailure, SegmentQuery
from tams_api.routers.common import Services
from tams_api.stores.metadata import MetadataStore
from vast_fake import counting_selects

# Each metadata store once; the media store plays no part in registering.
METADATA_STORES = sorted({f"{backend.split('+')[0]}+filesystem" for backend in STORE_BACKENDS})
each_store = pytest.mark.parametrize("settings", METADATA_STORES, indirect=True)
sql_stores = pytest.mark.parametrize(
    "settings", [name for name in METADATA_STORES if not name.startswith("vast")], indirect=True
)

BOUND = segments_domain.STORED_SPANS_PER_SEGMENT


def held_elsewhere(
    timerange: str, object_id: str | None = None, object_timerange: str | None = None, **fields: Any
) -> NewSegment:
    """A segment of an object known by URL (nothing to allocate): `object-<timerange>` unless named."""
    bounds = tr.parse_bounds(timerange)
    object_id = object_id or f"object-{timerange}"
    urls = [{"url": f"http://media.example/{object_id}.ts", "label": "elsewhere"}]
    explicit = object_timerange is not None
    return NewSegment(
        object_id,
        timerange,
        bounds,
        object_timerange or timerange,
        bounds,
        explicit_object_timerange=explicit,
        get_urls=urls,
        **fields,
    )


def second(n: int) -> str:
    return f"[{n}:0_{n + 1}:0)"


def new_flow(store: MetadataStore) -> str:
    flow_id = new_id()
    document = video_flow(flow_id, new_id())
    metadata = {key: value for key, value in document.items() if key not in ("id", "source_id", "format")}
    flows.put(store, FlowWrite(flow_id, document["source_id"], document["format"], metadata, {}, [], None))
    return flow_id


def even_seconds_flow(store: MetadataStore, seconds: int) -> str:
    """A flow of one-second segments at every even second below `seconds`: a gap after each."""
    flow_id = new_flow(store)
    assert not segments_domain.register(store, flow_id, [held_elsewhere(second(n)) for n in range(0, seconds, 2)])
    return flow_id


def timeranges(store: MetadataStore, flow_id: str, window: str = "_") -> list[str]:
    page = store.list_segments(flow_id, SegmentQuery(PageRequest(10_000), tr.parse_bounds(window)))
    return [segment.timerange for segment in page.page.items]


def failures(found: list[SegmentFailure]) -> list[tuple[str, str]]:
    return [(failure.timerange, failure.summary) for failure in found]


def overlap(timerange: str, existing: str) -> str:
    return f"segment {timerange} overlaps the existing segment {existing}"


@pytest.fixture
def store(services: Services) -> MetadataStore:
    return services.store


@contextmanager
def store_calls(store: MetadataStore) -> Iterator[Callable[[], tuple[int, int]]]:
    """How often registering asks the store for the stored segments of a chunk, and for the one a segment may
    overlap, while inside."""
    with (
        mock.patch.object(store, "segments_within", wraps=store.segments_within) as within,
        mock.patch.object(store, "overlapping_segment", wraps=store.overlapping_segment) as seek,
    ):
        yield lambda: (within.call_count, seek.call_count)


@each_store
def test_a_chunk_among_stored_segments_deep_in_a_flow_fails_only_those_overlapping_them(store: MetadataStore) -> None:
    flow_id = even_seconds_flow(store, 1_000)
    chunk = [held_elsewhere(second(n)) for n in range(801, 841, 2)]  # the gaps between 801 and 841
    chunk[5:5] = [
        held_elsewhere("[810:500000000_811:0)"),  # within the stored [810:0_811:0)
        held_elsewhere("[819:500000000_820:500000000)"),  # across a gap into the stored [820:0_821:0)
        held_elsewhere("[829:0_829:500000000)"),  # in a gap, where the chunk's [829:0_830:0) comes later
    ]
    chunk.append(held_elsewhere("[841:0_841:1]"))  # touching the stored [840:0_841:0)
    with store_calls(store) as calls:
        registered = segments_domain.register(store, flow_id, chunk)
    assert calls() == (1, 0)  # the stored segments read at once
    assert failures(registered) == [
        ("[810:500000000_811:0)", overlap("[810:500000000_811:0)", "[810:0_811:0)")),
        ("[819:500000000_820:500000000)", overlap("[819:500000000_820:500000000)", "[820:0_821:0)")),
        ("[829:0_830:0)", overlap("[829:0_830:0)", "[829:0_829:500000000)")),
    ]
    expected = [second(n) for n in range(800, 829)] + ["[829:0_829:500000000)"] + [second(n) for n in range(830, 841)]
    assert timeranges(store, flow_id, "[800:0_843:0)") == [*expected, "[841:0_841:1]", second(842)]
    assert len(timeranges(store, flow_id)) == 500 + len(chunk) - 3


@each_store
def test_a_chunk_among_more_stored_segments_than_the_bound_seeks_one_per_segment(store: MetadataStore) -> None:
    """A few segments filling gaps far apart: more stored segments lie between them than the chunk may read."""
    flow_id = even_seconds_flow(store, 1_000)
    chunk = [
        held_elsewhere(second(101)),
        held_elsewhere("[500:999999999_501:0)"),  # the last nanosecond of the stored [500:0_501:0)
        held_elsewhere("[650:0_652:0)"),  # over the gap [651:0_652:0), from the stored [650:0_651:0)
        held_elsewhere("[651:0_651:500000000)"),
        held_elsewhere(second(901)),
    ]
    assert BOUND * len(chunk) < (901 - 101) // 2  # stored segments between the chunk's first and last
    with store_calls(store) as calls:
        registered = segments_domain.register(store, flow_id, chunk)
    assert calls() == (1, len(chunk))
    assert failures(registered) == [
        ("[500:999999999_501:0)", overlap("[500:999999999_501:0)", "[500:0_501:0)")),
        ("[650:0_652:0)", overlap("[650:0_652:0)", "[650:0_651:0)")),
    ]
    assert timeranges(store, flow_id, "[100:0_103:0)") == [second(100), second(101), second(102)]
    assert timeranges(store, flow_id, "[650:0_653:0)") == [second(650), "[651:0_651:500000000)", second(652)]
    assert timeranges(store, flow_id, "[900:0_902:0)") == [second(900), second(901)]


@each_store
def test_segments_of_one_chunk_are_checked_against_one_another_in_any_order(store: MetadataStore) -> None:
    flow_id = new_flow(store)
    chunk = [
        held_elsewhere("[10:0_12:0)"),
        held_elsewhere("[11:0_13:0)"),  # overlaps the first
        held_elsewhere("[5:0_6:0)"),  # before the first: fine
        held_elsewhere("[5:500000000_5:600000000)"),  # within the third
        held_elsewhere("[12:0_13:0)"),  # touches the first
        held_elsewhere("[4:0_20:0)"),  # over all of them: names the one starting last before its end
        held_elsewhere("(6:0_10:0)"),  # exclusive at both ends, between them
    ]
    assert failures(segments_domain.register(store, flow_id, chunk)) == [
        ("[11:0_13:0)", overlap("[11:0_13:0)", "[10:0_12:0)")),
        ("[5:500000000_5:600000000)", overlap("[5:500000000_5:600000000)", "[5:0_6:0)")),
        ("[4:0_20:0)", overlap("[4:0_20:0)", "[12:0_13:0)")),
    ]
    assert timeranges(store, flow_id) == ["[5:0_6:0)", "(6:0_10:0)", "[10:0_12:0)", "[12:0_13:0)"]
    # A chunk of segments overlapping both one of their own and a stored one names their own, checked first.
    chunk = [held_elsewhere("[20:0_30:0)"), held_elsewhere("[11:0_21:0)")]
    with store_calls(store) as calls:
        registered = segments_domain.register(store, flow_id, chunk)
    assert calls() == (1, 0)
    assert failures(registered) == [("[11:0_21:0)", overlap("[11:0_21:0)", "[20:0_30:0)"))]


@each_store
def test_objects_named_by_several_segments_of_a_chunk_and_by_stored_ones(store: MetadataStore) -> None:
    flow_id = new_flow(store)
    stored = held_elsewhere("[0:0_10:0)", "shared", object_timerange="[0:0_100:0)")
    assert not segments_domain.register(store, flow_id, [stored])
    unknown_bounds = tr.parse_bounds("[70:0_80:0)")
    chunk = [
        held_elsewhere("[10:0_20:0)", "shared"),  # re-uses the stored object
        held_elsewhere("[20:0_30:0)", "shared", key_frame_count=3),  # with another key_frame_count: refused
        held_elsewhere("[30:0_40:0)", "new", "[30:0_50:0)"),  # a new object ...
        held_elsewhere("[40:0_50:0)", "new"),  # ... re-used by a later segment of the chunk
        held_elsewhere("[45:0_55:0)", "late"),  # overlaps: its object is not made ...
        held_elsewhere("[55:0_65:0)", "late"),  # ... but by this one
        NewSegment("unknown", "[70:0_80:0)", unknown_bounds, "[70:0_80:0)", unknown_bounds),  # no get_urls
        held_elsewhere("[100:0_110:0)", "shared"),  # outside the object's timerange
    ]
    assert failures(segments_domain.register(store, flow_id, chunk)) == [
        ("[20:0_30:0)", "key_frame_count conflicts with the re-used object's"),
        ("[45:0_55:0)", overlap("[45:0_55:0)", "[40:0_50:0)")),
        (
            "[70:0_80:0)",
            f"object unknown is unknown: allocate it with POST /flows/{flow_id}/storage, or give get_urls for an "
            "object held elsewhere",
        ),
        (
            "[100:0_110:0)",
            "segment [100:0_110:0) (offset by ts_offset) is not within the re-used object's timerange [0:0_100:0)",
        ),
    ]
    assert timeranges(store, flow_id) == ["[0:0_10:0)", "[10:0_20:0)", "[30:0_40:0)", "[40:0_50:0)", "[55:0_65:0)"]
    objects = store.read(lambda tx: store.object_records(tx, {"shared", "new", "late", "unknown"}))
    assert sorted(objects) == ["late", "new", "shared"]
    assert (objects["new"].timerange, objects["late"].timerange) == ("[30:0_50:0)", "[55:0_65:0)")
    assert objects["shared"].timerange == "[0:0_100:0)"
    assert all(record.registered and record.first_flow_id == flow_id for record in objects.values())


@contextmanager
def counting_statements(store: MetadataStore) -> Iterator[list[str]]:
    """The statements (SQL stores) or selects (VAST) that the store's writes run while inside."""
    run: list[str] = []
    if type(store).__name__.startswith("Vast"):
        with counting_selects() as count:
            yield run
        run += ["select"] * count.calls
        return

    class Counting:
        def __init__(self, db: Any) -> None:
            self.db = db

        def execute(self, sql: str, *params: Any) -> Any:
            run.append(sql)
            return self.db.execute(sql, *params)

        def executemany(self, sql: str, params: Any) -> Any:
            run.append(sql)
            return self.db.executemany(sql, params)

    write = store.write
    store.write = lambda work: write(lambda db: work(Counting(db)))  # type: ignore[method-assign]
    try:
        yield run
    finally:
        del store.write  # type: ignore[method-assign]


@each_store
@pytest.mark.parametrize("where", ["appended", "among-stored"])
def test_a_chunk_of_a_thousand_segments_costs_a_few_statements(store: MetadataStore, where: str) -> None:
    """One query of the stored segments, one of the objects, inserts of all the rows: not a query per segment."""
    flow_id = new_flow(store)
    even = [held_elsewhere(second(n)) for n in range(0, 4_000, 2)]
    assert not segments_domain.register(store, flow_id, even)
    gaps = [held_elsewhere(second(n)) for n in range(1_001, 3_001, 2)]
    after = [held_elsewhere(second(n)) for n in range(4_000, 5_000)]
    chunk = after if where == "appended" else gaps
    assert len(chunk) == segments_domain.BULK_CHUNK
    with counting_statements(store) as run:
        assert not segments_domain.register(store, flow_id, chunk)
    assert len(run) <= 20, run
    assert len(timeranges(store, flow_id)) == len(even) + len(chunk)


@sql_stores
def test_allocated_objects_take_what_their_first_segment_says_whatever_their_columns_held(store: MetadataStore) -> None:
    """The SQL stores register an allocated object with a short UPDATE where its optional columns are empty (as in any
    object not yet registered) and the segment sets none of them; every other object takes the full UPDATE."""
    flow_id = new_flow(store)
    object_ids = [f"allocated-{n}" for n in range(4)]
    objects_domain.allocate(store, flow_id, "storage", None, object_ids)

    def allocated(n: int, **fields: Any) -> NewSegment:
        bounds = tr.parse_bounds(second(n))
        return NewSegment(object_ids[n], second(n), bounds, second(n), bounds, **fields)

    for segment, full in ((allocated(0), False), (allocated(1, key_frame_count=3), True)):
        with counting_statements(store) as run:
            assert not segments_domain.register(store, flow_id, [segment])
        updates = [sql for sql in run if sql.startswith("UPDATE objects")]
        assert len(updates) == 1 and ("key_frame_count = ?" in updates[0]) == full, updates
    # An object not yet registered with a column set (never so through the API) takes the full UPDATE too.
    store.write(lambda db: db.execute("UPDATE objects SET key_frame_count = 7 WHERE id = ?", (object_ids[3],)))
    with counting_statements(store) as run:
        assert not segments_domain.register(store, flow_id, [allocated(2), allocated(3)])
    assert len([sql for sql in run if sql.startswith("UPDATE objects")]) == 2
    records = store.read(lambda tx: store.object_records(tx, set(object_ids)))
    assert [records[object_id].key_frame_count for object_id in object_ids] == [None, 3, None, None]
    assert [records[object_id].timerange for object_id in object_ids] == [second(n) for n in range(4)]
    assert all(record.registered and record.first_flow_id == flow_id for record in records.values())


@sql_stores
@pytest.mark.parametrize(
    ("layout", "statements"),
    [("allocated together", 1), ("among many others", 2), ("some unknown", 2)],
)
def test_the_objects_of_a_chunk_are_read_by_their_range_of_ids_or_else_one_by_one(
    store: MetadataStore, layout: str, statements: int
) -> None:
    """Objects allocated together (neighbouring ids) are read with one range of the key; ids among many others', or
    some that do not exist, are then sought one by one. Either way the records are exactly those asked for."""
    flow_id = new_flow(store)
    wanted = {f"object-{n:04d}-a" for n in range(200)}
    others = {f"object-{n:04d}-b" for n in range(200)} if layout == "among many others" else set()
    objects_domain.allocate(store, flow_id, "storage", None, sorted(wanted | others))
    asked = wanted | ({"object-0100-c", "object-9999"} if layout == "some unknown" else set())
    with counting_statements(store) as run:
        records = store.write(lambda db: store.object_records(db, asked))
    assert sorted(records) == sorted(wanted)
    assert all(records[object_id].id == object_id and not records[object_id].registered for object_id in wanted)
    assert all(records[object_id].allocated_for == flow_id for object_id in wanted)
    assert len(run) == statements, run


def test_each_field_of_a_posted_segment_is_read_into_its_own() -> None:
    post = {
        "object_id": "object-1",
        "timerange": "[10:0_11:0)",
        "ts_offset": "2:0",
        "last_duration": "0:40000000",
        "sample_offset": 3,
        "sample_count": 25,
        "key_frame_count": 1,
        "init_object_id": "init-1",
        "get_urls": [{"url": "http://media.example/1.ts", "label": "elsewhere"}],
    }
    [parsed], _ = segments_domain.parse_body([post], 10)
    assert segments_domain.new_segment(parsed) == NewSegment(
        object_id="object-1",
        timerange="[10:0_11:0)",
        bounds=tr.parse_bounds("[10:0_11:0)"),
        object_timerange="[8:0_9:0)",
        on_object_timeline=tr.parse_bounds("[8:0_9:0)"),
        ts_offset="2:0",
        explicit_object_timerange=False,
        last_duration="0:40000000",
        sample_offset=3,
        sample_count=25,
        key_frame_count=1,
        init_object_id="init-1",
        get_urls=[{"url": "http://media.example/1.ts", "label": "elsewhere"}],
    )
    with_object_timerange = segments_domain.new_segment({**parsed, "object_timerange": "[0:0_20:0)"})
    assert (with_object_timerange.object_timerange, with_object_timerange.explicit_object_timerange) == (
        "[0:0_20:0)",
        True,
    )


@settings(max_examples=300, deadline=None)
@given(
    starts=st.lists(st.integers(0, 60), unique=True, max_size=12).map(lambda starts: [s * 10 for s in starts]),
    probe=st.tuples(st.integers(-10, 620), st.integers(0, 30)),
)
def test_spans_find_the_overlapping_one_whatever_the_order_they_came_in(
    starts: list[int], probe: tuple[int, int]
) -> None:
    # Segments of ten units on distinct multiples of ten (so never overlapping), added in the order drawn.
    spans = segments_domain._Spans([])
    added = [(tr.Bounds(start, start + 9), f"span-{start}") for start in starts]
    for bounds, name in added:
        spans.add(bounds, name)
    asked = tr.Bounds(probe[0], probe[0] + probe[1])
    overlapping = [name for bounds, name in added if bounds.overlaps(asked)]
    found = spans.overlapping(asked)
    assert (found is None) == (not overlapping)
    assert found is None or found in overlapping
