"""Segment benchmark: registration, the segment window read against the floor of a bare ASGI endpoint, the
same read on several server processes, and memory, against real servers.

Run with `make bench` (or `python -m bench.segments --help` for a smaller run). See bench/README.md for what is
measured, how, and the targets. Every server is a separate process started here and always stopped here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from bench.harness import (
    Latency,
    Server,
    Target,
    Throughput,
    alternating_latencies,
    format_value,
    machine_info,
    process_tree,
    progress,
    read_status_kb,
    run_client,
    running_server,
    save_results,
    timed_step,
    wait_until_listening,
)
from bench.loading import LoadResult, executemany_floor, load_flow
from bench.wrk import install_wrk, wrk_round

WINDOW_SEGMENTS = 10  # segments a timed GET /flows/{id}/segments returns
WINDOW_GAP_FROM_END = 5  # the window ends this many segments before the flow's end: "near the end"
FLOOR_SEGMENTS = 100_000  # segments written by the executemany floor

# Targets of the issue.
TARGET_REGISTRATION_PER_S = 80_000.0
TARGET_P50_RATIO = 1.2
TARGET_FLOOR_RATIO = 0.33
TARGET_RSS_MB = 120.0
TARGET_WORKERS_SPEEDUP = 1.7


@dataclass(frozen=True, slots=True)
class Options:
    small: int
    large: int
    huge: int
    batch: int
    latency_requests: int
    latency_warmup: int
    latency_rounds: int
    throughput_seconds: int
    throughput_rounds: int
    connections: int
    workers: int
    fail_on_miss: bool
    keep_data: bool


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.segments", description=__doc__)
    parser.add_argument("--small", type=int, default=1_000, help="segments of the small flow (default 1000)")
    parser.add_argument("--large", type=int, default=1_000_000, help="segments of the large flow (default 1000000)")
    parser.add_argument(
        "--huge", type=int, default=10_000_000, help="segments of the huge flow, for latency only; 0: none (10000000)"
    )
    parser.add_argument("--batch", type=int, default=1_000, help="segments per POST (default 1000)")
    parser.add_argument("--latency-requests", type=int, default=2_000, help="timed GETs per flow (default 2000)")
    parser.add_argument("--latency-warmup", type=int, default=200, help="untimed GETs per flow first (default 200)")
    parser.add_argument("--latency-rounds", type=int, default=10, help="alternations between flows (default 10)")
    parser.add_argument("--throughput-seconds", type=int, default=3, help="seconds of each wrk round (default 3)")
    parser.add_argument("--throughput-rounds", type=int, default=5, help="rounds per server (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="TAMS_WORKERS of the second API server (default 2)")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--keep-data", action="store_true", help="keep the servers' temporary data dir")
    args = parser.parse_args(argv)
    for name in ("small", "large", "batch", "latency_requests", "latency_rounds", "throughput_seconds", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if min(args.small, args.large) < WINDOW_SEGMENTS + WINDOW_GAP_FROM_END:
        parser.error(f"--small and --large must be at least {WINDOW_SEGMENTS + WINDOW_GAP_FROM_END}")
    if 0 < args.huge < WINDOW_SEGMENTS + WINDOW_GAP_FROM_END:
        parser.error(f"--huge must be 0 or at least {WINDOW_SEGMENTS + WINDOW_GAP_FROM_END}")
    return Options(**vars(args))


# -- the timed reads -------------------------------------------------------------------------------------------------


def window_path(flow_id: str, segments: int) -> str:
    """GET of the WINDOW_SEGMENTS segments ending WINDOW_GAP_FROM_END seconds before the flow's end."""
    end = segments - WINDOW_GAP_FROM_END
    timerange = f"[{end - WINDOW_SEGMENTS}:0_{end}:0)"
    return f"/flows/{flow_id}/segments?timerange={quote(timerange, safe='')}"


def check_window(path: str, body: bytes) -> None:
    segments = orjson.loads(body)
    if len(segments) != WINDOW_SEGMENTS:
        raise RuntimeError(f"{path} returned {len(segments)} segments, expected {WINDOW_SEGMENTS}")


async def measure_latencies(port: int, paths: dict[str, str], options: Options) -> dict[str, Latency]:
    return await alternating_latencies(
        port, paths, options.latency_requests, options.latency_warmup, options.latency_rounds, check_window
    )


def measure_throughputs(targets: dict[str, tuple[Server, str]], options: Options) -> dict[str, Throughput]:
    """The same client (wrk, bench.wrk) for every server and path, after a one-second warm-up of each; rounds
    alternate between them so that drift and other load hit all alike; the median round counts."""
    results = {name: Throughput() for name in targets}
    for server, path in targets.values():
        wrk_round(server, path, 1, options.connections)
    for _ in range(options.throughput_rounds):
        for name, (server, path) in targets.items():
            results[name].rounds.append(wrk_round(server, path, options.throughput_seconds, options.connections))
    return results


# -- results -------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    options: Options
    machine: dict[str, Any]
    loads: dict[str, LoadResult] = field(default_factory=dict)
    floor_per_s: float = 0.0
    latency: dict[str, Latency] = field(default_factory=dict)
    throughput: dict[str, Throughput] = field(default_factory=dict)
    worker_processes: int = 0
    rss_after_load_mb: float = 0.0
    rss_final_mb: float = 0.0
    rss_peak_mb: float = 0.0
    database_mb: float = 0.0
    wall_seconds: float = 0.0
    load_average: dict[str, float] = field(default_factory=dict)  # other work on the machine skews figures

    @property
    def deepest(self) -> str:
        return "huge" if "huge" in self.latency else "large"

    def ratio(self, name: str, baseline: str) -> float:
        return self.throughput[name].median_per_s / self.throughput[baseline].median_per_s

    def workers_bound(self) -> float:
        """The most the server of several processes could give over one process, on cores it shares with the
        client, at the CPU a request cost each side in this run: one process is bound by its own core (1 / S1),
        several by the CPU of the machine, client included (cores / (Sn + Cn))."""
        one, several = self.throughput["window"], self.throughput["workers"]
        cpus = min(self.options.workers, self.machine["cpus"])
        spent = several.server_cpu_ms_per_request + several.client_cpu_ms_per_request
        return cpus * one.server_cpu_ms_per_request / spent

    def targets(self) -> list[Target]:
        large = self.loads["large"]
        deepest = self.loads[self.deepest].segments
        return [
            Target(
                f"registration into the {large.segments:,}-segment flow (segment POSTs)",
                large.registration_per_s,
                TARGET_REGISTRATION_PER_S,
                "seg/s",
                at_least=True,
            ),
            Target(
                f"window GET p50, {deepest:,} / {self.loads['small'].segments:,} segments",
                self.latency[self.deepest].p50_ms / self.latency["small"].p50_ms,
                TARGET_P50_RATIO,
                "x",
                at_least=False,
            ),
            Target(
                "window GET / bare Starlette throughput", self.ratio("window", "bare"), TARGET_FLOOR_RATIO, "x", True
            ),
            Target(
                f"window GET, {self.options.workers} workers / 1 worker",
                self.ratio("workers", "window"),
                TARGET_WORKERS_SPEEDUP,
                "x",
                at_least=True,
            ),
            Target("server RSS after load and queries", self.rss_final_mb, TARGET_RSS_MB, "MB", at_least=False),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": datetime.now(UTC).isoformat(),
            "options": asdict(self.options),
            "machine": self.machine,
            "load": {
                name: {
                    **asdict(load),
                    "registration_per_s": load.registration_per_s,
                    "registration_per_server_cpu_s": load.registration_per_server_cpu_s,
                    "kib_written_per_segment": load.kib_written_per_segment,
                    "overall_per_s": load.overall_per_s,
                }
                for name, load in self.loads.items()
            },
            "executemany_floor_per_s": self.floor_per_s,
            "latency_ms": {name: asdict(value) for name, value in self.latency.items()},
            "throughput": {
                name: {
                    "median_per_s": value.median_per_s,
                    "server_cpu_ms_per_request": value.server_cpu_ms_per_request,
                    "client_cpu_ms_per_request": value.client_cpu_ms_per_request,
                    "rounds": [{**asdict(item), "per_s": item.per_s} for item in value.rounds],
                }
                for name, value in self.throughput.items()
            },
            "worker_processes": self.worker_processes,
            "workers_bound": self.workers_bound(),
            "memory_mb": {
                "rss_after_load": self.rss_after_load_mb,
                "rss_final": self.rss_final_mb,
                "rss_peak": self.rss_peak_mb,
                "database_files": self.database_mb,
            },
            "wall_seconds": self.wall_seconds,
            "load_average_1min": self.load_average,
            "targets": [target.to_json() for target in self.targets()],
        }


def registration_rows(load: LoadResult) -> list[tuple[str, str]]:
    count = f"{load.segments:,}"
    last = load.stages[-1]
    return [
        (
            f"registration {count}: segment POSTs",
            f"{load.registration_per_s:,.0f} seg/s ({load.registration_per_server_cpu_s:,.0f} per server CPU-s)",
        ),
        ("  the last tenth of them", f"{last.post_per_s:,.0f} seg/s ({last.post_per_server_cpu_s:,.0f} per CPU-s)"),
        (f"registration {count}: overall, with allocation", f"{load.overall_per_s:,.0f} seg/s"),
        ("  server writes to storage per segment", f"{load.kib_written_per_segment:.1f} KiB"),
    ]


def report_lines(results: Results) -> list[str]:
    large = results.loads["large"]
    figures = [row for load in results.loads.values() for row in registration_rows(load)]
    figures.append(
        (
            f"executemany floor, {FLOOR_SEGMENTS:,} segments",
            f"{results.floor_per_s:,.0f} seg/s (registration is {large.registration_per_s / results.floor_per_s:.0%})",
        )
    )
    for name, latency in results.latency.items():
        figures.append(
            (
                f"window GET, {results.loads[name].segments:,} segments: p50 / p90 / p99",
                f"{latency.p50_ms:.3f} / {latency.p90_ms:.3f} / {latency.p99_ms:.3f} ms",
            )
        )
    labels = {
        "bare": "bare Starlette list (bench.bare_asgi)",
        "window": f"window GET {large.segments:,}, 1 worker",
        "workers": f"window GET {large.segments:,}, {results.options.workers} workers",
    }
    for name, label in labels.items():
        throughput = results.throughput[name]
        figures.append(
            (
                f"throughput {label}",
                f"{throughput.median_per_s:,.0f} req/s ({throughput.server_cpu_ms_per_request * 1000:.0f} us CPU, "
                f"client {throughput.client_cpu_ms_per_request * 1000:.0f} us)",
            )
        )
    splits = ", ".join(":".join(map(str, item.connections_by_process)) for item in results.throughput["workers"].rounds)
    figures += [
        (f"  processes of the server with TAMS_WORKERS={results.options.workers}", str(results.worker_processes)),
        ("  its connections by process, each round", splits),
        ("  its bound at the CPU a request cost: cores S1 / (Sn + Cn)", f"{results.workers_bound():.2f} x"),
        (
            "server RSS after load / final / peak",
            f"{results.rss_after_load_mb:.1f} / {results.rss_final_mb:.1f} / {results.rss_peak_mb:.1f} MB",
        ),
        ("database files on disk", f"{results.database_mb:.1f} MB"),
        ("total bench wall time", f"{results.wall_seconds:.1f} s"),
        (
            "1-min load average at start / end",
            f"{results.load_average['start']:.2f} / {results.load_average['end']:.2f}",
        ),
    ]
    width = max(len(name) for name, _ in figures)
    lines = ["", f"Figures ({results.machine['cpus']} CPUs, {results.options.connections} connections):"]
    lines += [f"  {name:<{width}}  {value}" for name, value in figures]
    lines += ["", "Targets:"]
    targets = results.targets()
    name_width = max(len(target.name) for target in targets)
    for target in targets:
        wanted = f"{'>=' if target.at_least else '<='} {format_value(target.limit, target.unit)}"
        verdict = "PASS" if target.passed else "FAIL"
        lines.append(
            f"  {target.name:<{name_width}}  {format_value(target.measured, target.unit):>14}  {wanted:>16}  {verdict}"
        )
    return lines


# -- the run ---------------------------------------------------------------------------------------------------------


def database_mb(data_dir: Path) -> float:
    """The SQLite database with its WAL and shared-memory files."""
    return sum(item.stat().st_size for item in data_dir.glob("tams.sqlite*")) / 1e6


def run(options: Options) -> Results:
    install_wrk()
    results = Results(options=options, machine=machine_info())
    results.load_average["start"] = os.getloadavg()[0]
    started = time.perf_counter()
    sizes = {"small": options.small, "large": options.large, "huge": options.huge}
    flows = {name: str(uuid.uuid4()) for name, size in sizes.items() if size}
    data_dir = Path(tempfile.mkdtemp(prefix="tams-bench-"))
    try:
        with running_server(False, data_dir=data_dir) as server:
            with httpx.Client(base_url=server.base_url, timeout=300) as client:
                for name, flow_id in flows.items():
                    results.loads[name] = timed_step(
                        f"loading {sizes[name]:,} segments",
                        lambda: load_flow(client, server, flow_id, sizes[name], options.batch),  # noqa: B023
                    )
            results.rss_after_load_mb = read_status_kb(server.pid, "VmRSS") / 1024
            windows = {name: window_path(flow_id, sizes[name]) for name, flow_id in flows.items()}
            results.latency = timed_step(
                "latency of window GETs", lambda: run_client(measure_latencies(server.port, windows, options))
            )
            workers_env = {"TAMS_WORKERS": str(options.workers)}
            with (
                running_server(False, data_dir=data_dir / "bare", module="bench.bare_asgi") as bare,
                running_server(False, workers_env, data_dir=data_dir) as workers,
            ):
                wait_until_listening(workers.port, options.workers)
                results.worker_processes = len(process_tree(workers.pid)) - (options.workers > 1)
                targets = {
                    "bare": (bare, "/"),
                    "window": (server, windows["large"]),
                    "workers": (workers, windows["large"]),
                }
                results.throughput = timed_step(
                    "throughput: bare Starlette, window GET on 1 and on several workers",
                    lambda: measure_throughputs(targets, options),
                )
            results.rss_final_mb = read_status_kb(server.pid, "VmRSS") / 1024
            results.rss_peak_mb = read_status_kb(server.pid, "VmHWM") / 1024
        results.database_mb = database_mb(data_dir)
        end = options.large
        results.floor_per_s = timed_step(
            "executemany floor",
            lambda: executemany_floor(data_dir / "tams.sqlite", flows["large"], end, FLOOR_SEGMENTS, options.batch),
        )
    finally:
        if options.keep_data:
            progress(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    results.wall_seconds = time.perf_counter() - started
    results.load_average["end"] = os.getloadavg()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    results = run(options)
    print("\n".join(report_lines(results)))
    path = save_results(results.to_json())
    print(f"\nResults written to {path}")
    missed = [target for target in results.targets() if not target.passed]
    return 1 if missed and options.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
