"""Paging-depth benchmark: a segment listing costs what its page costs, wherever in the flow the page is.

Run with `make bench-paging` (or `python -m bench.paging_depth --help`; `--large 100000` for a quicker run). One
real server, as bench/segments.py starts it, with a small and a large flow loaded through the API. On each flow:
the first page of `GET /flows/{id}/segments` (limit 100), the page at 90 % depth, whose key is found as a client
finds it (following `Link` headers), and `?object_id=` of a segment's object near the end. Latencies, and their
ratios to the first page of the same flow. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import orjson

from bench.harness import (
    Latency,
    Server,
    alternating_latencies,
    machine_info,
    progress,
    running_server,
    save_results,
    timed_step,
)
from bench.loading import load_flow

# The tests' reading of the `Link` header, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from spec import next_link

PAGE = 100  # segments per timed page
WALK_PAGE = 1_000  # segments per page while walking to the deep page (the server's largest by default)
DEPTH = 0.9
OBJECT_FROM_END = 10  # the object of the segment this many before the flow's last
TARGET_RATIO = 1.5  # deep page, and object_id listing, over the first page, on the large flow
LISTINGS = ("first page", "page at 90 % depth", "object_id near the end")


@dataclass(frozen=True, slots=True)
class Options:
    small: int
    large: int
    batch: int
    requests: int
    warmup: int
    rounds: int
    keep_data: bool


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.paging_depth", description=__doc__)
    parser.add_argument("--small", type=int, default=1_000, help="segments of the small flow (default 1000)")
    parser.add_argument("--large", type=int, default=1_000_000, help="segments of the large flow (default 1000000)")
    parser.add_argument("--batch", type=int, default=1_000, help="segments per POST while loading (default 1000)")
    parser.add_argument("--requests", type=int, default=500, help="timed GETs per listing and flow (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed GETs per listing and flow (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="alternations between the listings (default 5)")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temporary data dir")
    args = parser.parse_args(argv)
    if min(args.small, args.large) < 1_000:
        parser.error("--small and --large must be at least 1000 segments")
    if min(args.batch, args.requests, args.rounds) < 1 or args.warmup < 0:
        parser.error("--batch, --requests and --rounds must be positive, --warmup not negative")
    return Options(
        args.small, args.large, args.batch, args.requests, args.warmup, args.rounds, keep_data=args.keep_data
    )


# -- the listings, found as a client finds them -----------------------------------------------------------------


def depth_of(segments: int) -> int:
    """Segments before the deep page: 90 % of the flow, in whole pages."""
    return int(segments * DEPTH) // PAGE * PAGE


def key_at_depth(client: httpx.Client, flow_id: str, depth: int) -> str:
    """The key of the page after the first `depth` segments, from the `Link` of the page before it, walked to in
    pages of WALK_PAGE (or PAGE when those do not end there): at most depth / PAGE requests."""
    walk_page = WALK_PAGE if depth % WALK_PAGE == 0 else PAGE
    url: str | None = f"/flows/{flow_id}/segments?limit={walk_page}"
    for _ in range(depth // walk_page):
        assert url is not None
        response = client.get(url)
        if response.status_code != 200 or len(response.json()) != walk_page:
            raise RuntimeError(f"GET {url} answered {response.status_code} with {len(response.json())} segments")
        url = next_link(response)
    if url is None:
        raise RuntimeError(f"flow {flow_id} has no segments after the first {depth}")
    return parse_qs(urlsplit(url).query)["page"][0]


def object_near_the_end(client: httpx.Client, flow_id: str, segments: int) -> str:
    """The object of segment `[n:0_n+1:0)`, n = OBJECT_FROM_END before the last (bench/segments.py loads these)."""
    n = segments - 1 - OBJECT_FROM_END
    response = client.get(f"/flows/{flow_id}/segments", params={"timerange": f"[{n}:0_{n + 1}:0)"})
    listed = response.json()
    if response.status_code != 200 or len(listed) != 1:
        raise RuntimeError(f"segment [{n}:0_{n + 1}:0) of flow {flow_id}: {response.status_code} {listed}")
    return listed[0]["object_id"]


def listing_paths(client: httpx.Client, flow_id: str, segments: int) -> dict[str, str]:
    base = f"/flows/{flow_id}/segments?limit={PAGE}"
    depth = depth_of(segments)
    key = timed_step(f"following Link headers {depth:,} segments deep", lambda: key_at_depth(client, flow_id, depth))
    return {
        LISTINGS[0]: base,
        LISTINGS[1]: f"{base}&page={quote(key, safe='')}",
        LISTINGS[2]: f"{base}&object_id={quote(object_near_the_end(client, flow_id, segments), safe='')}",
    }


def expected_counts(paths: dict[str, dict[str, str]]) -> dict[str, int]:
    """Segments each timed path must list: a full page, or the one segment of the object."""
    return {path: 1 if name == LISTINGS[2] else PAGE for flow in paths.values() for name, path in flow.items()}


# -- the run ----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FlowFigures:
    segments: int
    latency: dict[str, Latency]

    def ratio(self, listing: str) -> float:
        """p50 of a listing over the p50 of the first page."""
        return self.latency[listing].p50_ms / self.latency[LISTINGS[0]].p50_ms


def measure(server: Server, paths: dict[str, dict[str, str]], options: Options) -> dict[str, dict[str, Latency]]:
    """All listings of both flows alternating on one connection, so that other load hits them alike."""
    expected = expected_counts(paths)

    def check(path: str, body: bytes) -> None:
        listed = len(orjson.loads(body))
        if listed != expected[path]:
            raise RuntimeError(f"GET {path} listed {listed} segments, expected {expected[path]}")

    labelled = {f"{flow} flow, {name}": (flow, name) for flow, listings in paths.items() for name in listings}
    latencies = asyncio.run(
        alternating_latencies(
            server.port,
            {label: paths[flow][name] for label, (flow, name) in labelled.items()},
            options.requests,
            options.warmup,
            options.rounds,
            check,
        )
    )
    measured: dict[str, dict[str, Latency]] = {flow: {} for flow in paths}
    for label, (flow, name) in labelled.items():
        measured[flow][name] = latencies[label]
    return measured


def run(options: Options) -> dict[str, Any]:
    load_average = {"start": os.getloadavg()[0]}
    started = time.perf_counter()
    sizes = {"small": options.small, "large": options.large}
    flow_ids = {flow: str(uuid.uuid4()) for flow in sizes}
    with running_server(options.keep_data) as server, httpx.Client(base_url=server.base_url, timeout=300) as client:
        for flow, segments in sizes.items():
            load = functools.partial(load_flow, client, server, flow_ids[flow], segments, options.batch)
            timed_step(f"loading {segments:,} segments", load)
        paths = {flow: listing_paths(client, flow_ids[flow], segments) for flow, segments in sizes.items()}
        measured = timed_step("latency of the listings", lambda: measure(server, paths, options))
    load_average["end"] = os.getloadavg()[0]
    figures = {flow: FlowFigures(sizes[flow], measured[flow]) for flow in sizes}
    return {
        "options": asdict(options),
        "machine": machine_info(),
        "load_average_1min": load_average,
        "wall_seconds": time.perf_counter() - started,
        "flows": {
            flow: {
                "segments": item.segments,
                "latency_ms": {name: asdict(latency) for name, latency in item.latency.items()},
                "p50_over_first_page": {name: item.ratio(name) for name in LISTINGS},
            }
            for flow, item in figures.items()
        },
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        "| Flow | Listing | p50 | p90 | p99 | p50 / first page |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for flow in results["flows"].values():
        for name in LISTINGS:
            latency = flow["latency_ms"][name]
            lines.append(
                f"| {flow['segments']:,} | {name} | {latency['p50_ms']:.2f} ms | {latency['p90_ms']:.2f} ms | "
                f"{latency['p99_ms']:.2f} ms | {flow['p50_over_first_page'][name]:.2f} x |"
            )
    large = results["flows"]["large"]
    lines.append("")
    for name in LISTINGS[1:]:
        ratio = large["p50_over_first_page"][name]
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        lines.append(
            f"{name}, {large['segments']:,} segments: {ratio:.2f} x the first page (<= {TARGET_RATIO} x) {verdict}"
        )
    load = results["load_average_1min"]
    lines.append(f"1-min load average at start / end: {load['start']:.2f} / {load['end']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    results = run(parse_options(argv))
    print(report(results))
    progress(f"results saved to {save_results(results, 'paging-')}")


if __name__ == "__main__":
    main()
