"""VAST store benchmark: what the store itself controls when it lists the segments of a long flow.

Run with `make bench-vast` (or `python -m bench.vast_store --help`). There is no VAST cluster here, so the
store runs over the SDK fake of the tests (tests/vast_fake.py), and what a cluster's latency would add cannot
be measured. What can: per `list_segments` call, the SDK calls it makes and the rows it fetches per segment it
returns (what a cluster would have to ship), with and without the window bound the flow's longest segment
gives (`start_ns >= window start - max_segment_ns`), and the store's own client-side time (sorting, keyset
paging, building segments) in µs per returned segment, the fake's time taken out. Then the API-level p50 of
the same requests (in-process, `TestClient`) on SQLite, as the baseline, and on VAST-over-the-fake, whose time
is mostly the fake's Arrow filtering, not a cluster's. See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

from fastapi.testclient import TestClient

from bench.harness import machine_info, progress, save_results, summarise_latency, timed_step
from tams_api import timerange as tr
from tams_api.app import create_app, open_services
from tams_api.model import PageRequest, SegmentQuery
from tams_api.paging import encode_key
from tams_api.stores.sqlite import SqliteMetadataStore
from tams_api.stores.vast.store import VastMetadataStore

# The tests' fake cluster and settings, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import VAST_SETTINGS, fake_vast_store, fill_flow, make_settings, new_fake_vast, segment_held_elsewhere
from vast_fake import counting_selects

FLOW_ID = "5fbec3b1-1b0f-417d-9059-8b94a47197ed"
SOURCE_ID = "2aa143ac-0ab7-4d75-bc32-5c00c13d186f"
NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    window: str  # a timerange
    key_at: int | None  # page after the segment starting at this second
    object_at: int | None = None  # only the segments of the object of the segment starting at this second


def scenarios(segments: int) -> list[Scenario]:
    return [
        Scenario("first page", "_", None),
        Scenario("page after a key mid-flow", "_", segments // 2),
        Scenario("page after a key at 90 % depth", "_", segments * 9 // 10),
        Scenario("10-segment window near the end", f"[{segments - 15}:0_{segments - 5}:0)", None),
        Scenario("object_id of a segment near the end", "_", None, segments - 10),
    ]


def object_id(scenario: Scenario) -> str | None:
    return None if scenario.object_at is None else segment_held_elsewhere(scenario.object_at).object_id


@dataclass(slots=True)
class StoreCost:
    """One scenario's `list_segments` as the store runs it (medians over the repeats)."""

    scenario: str
    window_bound: bool
    returned: int
    sdk_calls: int
    rows_fetched: int
    rows_per_segment: float
    store_us_per_segment: float  # the store's own time, the fake's taken out


@dataclass(slots=True)
class ApiLatency:
    scenario: str
    sqlite_p50_ms: float
    vast_fake_p50_ms: float


@contextmanager
def without_window_bound() -> Iterator[None]:
    """The store as if flows had no longest-segment bound: a window's scan starts at the flow's first segment."""

    def unbounded(self: VastMetadataStore, t: Any, flow: dict[str, Any], within: tr.Bounds) -> tuple[int, int]:
        return tr.INT64_MIN, within.end

    with mock.patch.object(VastMetadataStore, "_window", unbounded):
        yield


def query(scenario: Scenario, page: int) -> SegmentQuery:
    key = None if scenario.key_at is None else encode_key([scenario.key_at * NS])
    return SegmentQuery(PageRequest(page, key), tr.parse_bounds(scenario.window), object_id(scenario))


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def store_cost(store: VastMetadataStore, scenario: Scenario, page: int, repeats: int, window_bound: bool) -> StoreCost:
    calls, rows, store_us, returned = [], [], [], 0
    for _ in range(repeats):
        with counting_selects() as counter:
            started = time.perf_counter()
            listed = store.list_segments(FLOW_ID, query(scenario, page))
            elapsed = time.perf_counter() - started
        returned = len(listed.page.items)
        calls.append(counter.calls)
        rows.append(counter.rows)
        store_us.append((elapsed - counter.seconds) * 1e6 / max(returned, 1))
    return StoreCost(
        scenario=scenario.name,
        window_bound=window_bound,
        returned=returned,
        sdk_calls=int(median(calls)),
        rows_fetched=int(median(rows)),
        rows_per_segment=median(rows) / max(returned, 1),
        store_us_per_segment=median(store_us),
    )


def api_p50_ms(client: TestClient, scenario: Scenario, page: int, repeats: int) -> float:
    path = f"/flows/{FLOW_ID}/segments?limit={page}&timerange={quote(scenario.window, safe='')}"
    if scenario.key_at is not None:
        path += f"&page={encode_key([scenario.key_at * NS])}"
    if scenario.object_at is not None:
        path += f"&object_id={object_id(scenario)}"
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return summarise_latency(samples).p50_ms


# -- the run ----------------------------------------------------------------------------------------------------


def run(segments: int, page: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        vast_settings = make_settings(Path(directory) / "vast", **VAST_SETTINGS)
        sqlite_settings = make_settings(Path(directory) / "sqlite")
        sqlite_settings.data_dir.mkdir()
        vast_store = fake_vast_store(new_fake_vast())
        timed_step(
            f"loading {segments} segments into the VAST store (fake)",
            lambda: fill_flow(vast_store, FLOW_ID, SOURCE_ID, segments),
        )
        sqlite_store = SqliteMetadataStore(sqlite_settings.resolved_sqlite_path)
        timed_step(
            f"loading {segments} segments into SQLite", lambda: fill_flow(sqlite_store, FLOW_ID, SOURCE_ID, segments)
        )
        sqlite_store.close()

        costs = []
        for scenario in scenarios(segments):
            costs.append(store_cost(vast_store, scenario, page, repeats, window_bound=True))
            with without_window_bound():
                costs.append(store_cost(vast_store, scenario, page, repeats, window_bound=False))
            progress(f"store cost: {scenario.name}")

        latencies = []
        vast_app = create_app(services=open_services(vast_settings, vast_store))
        with TestClient(create_app(sqlite_settings)) as sqlite_api, TestClient(vast_app) as vast_api:
            for scenario in scenarios(segments):
                sqlite_p50 = api_p50_ms(sqlite_api, scenario, page, repeats)
                vast_p50 = api_p50_ms(vast_api, scenario, page, repeats)
                latencies.append(ApiLatency(scenario.name, sqlite_p50, vast_p50))
                progress(f"API p50: {scenario.name}")
    return {
        "options": {"segments": segments, "page": page, "repeats": repeats},
        "machine": machine_info(),
        "store_cost": [asdict(cost) for cost in costs],
        "api_p50": [asdict(latency) for latency in latencies],
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        "| Listing | Window bound | Segments | SDK calls | Rows fetched | Rows / segment | Store µs / segment |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cost in results["store_cost"]:
        lines.append(
            f"| {cost['scenario']} | {'yes' if cost['window_bound'] else 'no'} | {cost['returned']} | "
            f"{cost['sdk_calls']} | {cost['rows_fetched']} | {cost['rows_per_segment']:.1f} | "
            f"{cost['store_us_per_segment']:.1f} |"
        )
    lines += ["", "| Listing | SQLite p50 | VAST over the fake p50 |", "| --- | --- | --- |"]
    for latency in results["api_p50"]:
        lines.append(
            f"| {latency['scenario']} | {latency['sqlite_p50_ms']:.2f} ms | {latency['vast_fake_p50_ms']:.2f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.vast_store", description=__doc__)
    parser.add_argument("--segments", type=int, default=100_000, help="segments of the flow (default 100000)")
    parser.add_argument("--page", type=int, default=100, help="segments per listed page (default 100)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per measurement (default 30)")
    args = parser.parse_args(argv)
    if args.segments < 20 or args.page < 1 or args.repeats < 1:
        parser.error("--segments must be at least 20, --page and --repeats positive")
    results = run(args.segments, args.page, args.repeats)
    print(report(results))
    progress(f"results saved to {save_results(results, 'vast-')}")


if __name__ == "__main__":
    main()
