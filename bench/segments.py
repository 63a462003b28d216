"""Segment benchmark: bulk registration, windowed segment queries and memory, against one real server.

Run with `make bench` (or `python -m bench.segments --help` for a smaller run). See bench/README.md for what
is measured, how, and the targets. The server is a separate process started here and always stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

HOST = "127.0.0.1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0
WINDOW_SEGMENTS = 10  # segments a timed GET /flows/{id}/segments returns
WINDOW_GAP_FROM_END = 5  # the window ends this many segments before the flow's end: "near the end"

# Targets of the issue.
TARGET_REGISTRATION_PER_S = 10_000.0
TARGET_P50_RATIO = 1.5
TARGET_THROUGHPUT_RATIO = 0.40
TARGET_RSS_MB = 200.0

# A video flow adapted from the spec's examples/flow-get-200-video-h264.json for PUT: server-managed
# fields (generation, created, *_updated, collected_by) dropped; "container" kept, storage needs it.
VIDEO_FLOW: dict[str, Any] = {
    "description": "Big Buck Bunny",
    "label": "bbb",
    "format": "urn:x-nmos:format:video",
    "tags": {"input_quality": "contribution"},
    "codec": "video/h264",
    "container": "video/mp2t",
    "avg_bit_rate": 2479,
    "segment_duration": {"numerator": 1},
    "essence_parameters": {
        "frame_rate": {"numerator": 24, "denominator": 1},
        "frame_width": 1280,
        "frame_height": 720,
        "bit_depth": 8,
        "interlace_mode": "progressive",
        "colorspace": "BT709",
        "transfer_characteristic": "SDR",
        "aspect_ratio": {"numerator": 16, "denominator": 9},
        "pixel_aspect_ratio": {"numerator": 1, "denominator": 1},
        "component_type": "YCbCr",
        "vert_chroma_subs": 2,
        "horiz_chroma_subs": 2,
        "avc_parameters": {"profile": 100, "level": 31, "flags": 0},
    },
}


# -- options ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    small: int
    large: int
    batch: int
    latency_requests: int
    latency_warmup: int
    latency_rounds: int
    throughput_requests: int
    throughput_warmup: int
    throughput_rounds: int
    connections: int
    time_limit_s: float
    fail_on_miss: bool
    keep_data: bool


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.segments", description=__doc__)
    parser.add_argument("--small", type=int, default=1_000, help="segments of the small flow (default 1000)")
    parser.add_argument("--large", type=int, default=1_000_000, help="segments of the large flow (default 1000000)")
    parser.add_argument("--batch", type=int, default=1_000, help="segments per POST (default 1000)")
    parser.add_argument("--latency-requests", type=int, default=2_000, help="timed GETs per flow (default 2000)")
    parser.add_argument("--latency-warmup", type=int, default=200, help="untimed GETs per flow first (default 200)")
    parser.add_argument("--latency-rounds", type=int, default=10, help="alternations between flows (default 10)")
    parser.add_argument("--throughput-requests", type=int, default=3_000, help="GETs per round (default 3000)")
    parser.add_argument("--throughput-warmup", type=int, default=300, help="untimed GETs per endpoint (default 300)")
    parser.add_argument("--throughput-rounds", type=int, default=5, help="rounds per endpoint (default 5)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections (default 4)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="max seconds of one throughput round")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temporary data dir")
    args = parser.parse_args(argv)
    for name in ("small", "large", "batch", "latency_requests", "latency_rounds", "throughput_requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.small < WINDOW_SEGMENTS + WINDOW_GAP_FROM_END:
        parser.error(f"--small must be at least {WINDOW_SEGMENTS + WINDOW_GAP_FROM_END}")
    return Options(
        small=args.small,
        large=args.large,
        batch=args.batch,
        latency_requests=args.latency_requests,
        latency_warmup=args.latency_warmup,
        latency_rounds=args.latency_rounds,
        throughput_requests=args.throughput_requests,
        throughput_warmup=args.throughput_warmup,
        throughput_rounds=args.throughput_rounds,
        connections=args.connections,
        time_limit_s=args.time_limit,
        fail_on_miss=args.fail_on_miss,
        keep_data=args.keep_data,
    )


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the server process ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    pid: int
    port: int
    data_dir: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def server_environment(data_dir: Path, port: int) -> dict[str, str]:
    # Inherited TAMS_* settings could point the server at someone's real data; start from defaults.
    env = {name: value for name, value in os.environ.items() if not name.startswith("TAMS_")}
    env["TAMS_DATA_DIR"] = str(data_dir)
    env["TAMS_PUBLIC_URL"] = f"http://{HOST}:{port}"
    return env


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited during start-up with status {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {SERVER_START_TIMEOUT_S:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def print_log_tail(log_path: Path, lines: int = 30) -> None:
    if log_path.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
        print("--- last lines of the server log ---", *tail, sep="\n", file=sys.stderr)


@contextmanager
def running_server(
    keep_data: bool, extra_env: dict[str, str] | None = None, data_dir: Path | None = None
) -> Iterator[Server]:
    """One `tams-api serve` process on a free local port and a fresh data dir (or the given one, then kept),
    stopped whatever happens."""
    keep_data = keep_data or data_dir is not None
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="tams-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    port = free_port()
    command = [sys.executable, "-m", "tams_api", "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    with open(log_path, "wb") as log:
        env = {**server_environment(data_dir, port), **(extra_env or {})}
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        server = Server(pid=process.pid, port=port, data_dir=data_dir)
        wait_until_ready(process, server.base_url)
        progress(f"server pid {process.pid} on {server.base_url}, data in {data_dir}")
        yield server
    except BaseException:
        print_log_tail(log_path)
        raise
    finally:
        stop(process)
        if keep_data:
            progress(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def read_status_kb(pid: int, field_name: str) -> int:
    """A `kB` line of /proc/<pid>/status, e.g. VmRSS (resident now) or VmHWM (resident peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field_name}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included (/proc/<pid>/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; skip past it
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bytes_written(pid: int) -> int:
    """Bytes the process sent to the storage layer (`write_bytes` of /proc/<pid>/io), page cache included."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no write_bytes")


# -- loading flows through the API -----------------------------------------------------------------


@dataclass(slots=True)
class Spent:
    """Wall-clock time, the server's CPU time and its writes to storage, spent on one kind of request."""

    seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    server_write_bytes: int = 0


@contextmanager
def spending(spent: Spent, pid: int) -> Iterator[None]:
    cpu_before = cpu_seconds(pid)
    written_before = bytes_written(pid)
    started = time.perf_counter()
    yield
    spent.seconds += time.perf_counter() - started
    spent.server_cpu_seconds += cpu_seconds(pid) - cpu_before
    spent.server_write_bytes += bytes_written(pid) - written_before


@dataclass(slots=True)
class Stage:
    """Registration rates over one tenth of a load: shows whether they fall as the flow grows."""

    segments_done: int
    post_per_s: float
    post_per_server_cpu_s: float


@dataclass(slots=True)
class LoadResult:
    segments: int
    posts: Spent = field(default_factory=Spent)
    allocation: Spent = field(default_factory=Spent)
    wall_seconds: float = 0.0
    stages: list[Stage] = field(default_factory=list)

    @property
    def registration_per_s(self) -> float:
        return self.segments / self.posts.seconds

    @property
    def registration_per_server_cpu_s(self) -> float:
        """What one fully available core would sustain: independent of other load on the machine."""
        return self.segments / max(self.posts.server_cpu_seconds, 1e-9)  # CPU time counts in 10 ms ticks

    @property
    def overall_per_s(self) -> float:
        return self.segments / self.wall_seconds

    @property
    def kib_written_per_segment(self) -> float:
        """Storage writes (SQLite WAL and checkpoints) per segment, allocation included."""
        return (self.posts.server_write_bytes + self.allocation.server_write_bytes) / 1024 / self.segments


def create_flow(client: httpx.Client, flow_id: str) -> None:
    body = {**VIDEO_FLOW, "id": flow_id, "source_id": str(uuid.uuid4())}
    response = client.put(f"/flows/{flow_id}", json=body)
    if response.status_code not in (201, 204):
        raise RuntimeError(f"PUT /flows/{flow_id} answered {response.status_code}: {response.text}")


def allocate_object_ids(client: httpx.Client, flow_id: str, count: int) -> list[str]:
    object_ids: list[str] = []
    while len(object_ids) < count:
        response = client.post(f"/flows/{flow_id}/storage", json={"limit": count - len(object_ids)})
        if response.status_code != 201:
            raise RuntimeError(f"POST /flows/{flow_id}/storage answered {response.status_code}: {response.text}")
        object_ids += [item["object_id"] for item in response.json()["media_objects"]]
    return object_ids[:count]


def segments_body(first: int, object_ids: list[str]) -> bytes:
    """Contiguous one-second segments [n:0_n+1:0) from `first`, one allocated object each."""
    return orjson.dumps(
        [
            {"object_id": object_id, "timerange": f"[{n}:0_{n + 1}:0)"}
            for n, object_id in enumerate(object_ids, start=first)
        ]
    )


def post_segments(client: httpx.Client, flow_id: str, body: bytes) -> None:
    response = client.post(f"/flows/{flow_id}/segments", content=body, headers={"Content-Type": "application/json"})
    if response.status_code != 201:
        raise RuntimeError(f"POST /flows/{flow_id}/segments answered {response.status_code}: {response.text[:500]}")


def stage_since(mark: tuple[int, Spent], done: int, posts: Spent) -> Stage:
    """Rates of the segment POSTs since `mark` (segments done then, and what the POSTs had spent then)."""
    done_before, spent_before = mark
    segments = done - done_before
    return Stage(
        segments_done=done,
        post_per_s=segments / (posts.seconds - spent_before.seconds),
        post_per_server_cpu_s=segments / max(posts.server_cpu_seconds - spent_before.server_cpu_seconds, 1e-9),
    )


def load_flow(client: httpx.Client, server: Server, flow_id: str, count: int, batch: int) -> LoadResult:
    """Create a flow and register `count` segments in bodies of `batch`; allocation and POSTs are timed apart."""
    result = LoadResult(segments=count)
    create_flow(client, flow_id)
    stage_size = max(count // 10, batch)
    mark = (0, Spent())
    started = time.perf_counter()
    for first in range(0, count, batch):
        size = min(batch, count - first)
        with spending(result.allocation, server.pid):
            object_ids = allocate_object_ids(client, flow_id, size)
        body = segments_body(first, object_ids)
        with spending(result.posts, server.pid):
            post_segments(client, flow_id, body)
        done = first + size
        if done - mark[0] >= stage_size or done == count:
            stage = stage_since(mark, done, result.posts)
            result.stages.append(stage)
            progress(
                f"  {done:,} / {count:,} segments; the last {done - mark[0]:,} at {stage.post_per_s:,.0f} seg/s "
                f"in POSTs ({stage.post_per_server_cpu_s:,.0f} per server CPU-second)"
            )
            mark = (done, Spent(result.posts.seconds, result.posts.server_cpu_seconds))
    result.wall_seconds = time.perf_counter() - started
    return result


# -- a minimal keep-alive HTTP/1.1 client for the timed GETs ---------------------------------------
# A general client (httpx) spends more CPU per request than this server does on GET /, and client and
# server share the machine's cores: the client would then set the pace and flatten every comparison.


class RawConnection:
    """One keep-alive connection sending pre-encoded GETs and reading Content-Length bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = content_length(head)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"response without Content-Length: {head!r}")


def get_request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/json\r\n\r\n".encode()


async def checked_exchange(connection: RawConnection, request: bytes) -> bytes:
    status, body = await connection.exchange(request)
    if status != 200:
        raise RuntimeError(f"{request.split(b' ')[1].decode()} answered {status}: {body[:300]!r}")
    return body


def window_path(flow_id: str, segments: int) -> str:
    """GET of the WINDOW_SEGMENTS segments ending WINDOW_GAP_FROM_END seconds before the flow's end."""
    end = segments - WINDOW_GAP_FROM_END
    timerange = f"[{end - WINDOW_SEGMENTS}:0_{end}:0)"
    return f"/flows/{flow_id}/segments?timerange={quote(timerange, safe='')}"


# -- latency ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Latency:
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summarise_latency(samples_s: list[float]) -> Latency:
    ordered = sorted(sample * 1000 for sample in samples_s)
    return Latency(
        requests=len(ordered),
        p50_ms=percentile(ordered, 0.50),
        p90_ms=percentile(ordered, 0.90),
        p99_ms=percentile(ordered, 0.99),
        mean_ms=sum(ordered) / len(ordered),
        min_ms=ordered[0],
        max_ms=ordered[-1],
    )


def check_window(path: str, body: bytes) -> None:
    segments = orjson.loads(body)
    if len(segments) != WINDOW_SEGMENTS:
        raise RuntimeError(f"the timed window returned {len(segments)} segments, expected {WINDOW_SEGMENTS}")


async def measure_latencies(port: int, paths: dict[str, str], options: Options) -> dict[str, Latency]:
    return await alternating_latencies(
        port, paths, options.latency_requests, options.latency_warmup, options.latency_rounds, check_window
    )


async def alternating_latencies(
    port: int, paths: dict[str, str], requests: int, warmup: int, rounds: int, check: Callable[[str, bytes], None]
) -> dict[str, Latency]:
    """`requests` sequential GETs of each path on one connection, the paths alternating in `rounds` so that drift
    hits all of them alike, after `warmup` untimed GETs each; `check(path, body)` sees each path's first answer."""
    encoded = {name: get_request(port, path) for name, path in paths.items()}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    per_round = max(1, requests // rounds)
    connection = await RawConnection.open(port)
    try:
        for name, request in encoded.items():
            check(paths[name], await checked_exchange(connection, request))
            for _ in range(warmup):
                await checked_exchange(connection, request)
        for _ in range(rounds):
            for name, request in encoded.items():
                for _ in range(per_round):
                    started = time.perf_counter()
                    await checked_exchange(connection, request)
                    samples[name].append(time.perf_counter() - started)
    finally:
        await connection.close()
    return {name: summarise_latency(values) for name, values in samples.items()}


# -- throughput ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ThroughputRound:
    requests: int
    seconds: float
    server_cpu_seconds: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


@dataclass(slots=True)
class Throughput:
    rounds: list[ThroughputRound] = field(default_factory=list)

    @property
    def median_per_s(self) -> float:
        rates = sorted(item.per_s for item in self.rounds)
        middle = len(rates) // 2
        return rates[middle] if len(rates) % 2 else (rates[middle - 1] + rates[middle]) / 2

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * sum(item.server_cpu_seconds for item in self.rounds) / sum(item.requests for item in self.rounds)


async def closed_loop(port: int, request: bytes, total: int, connections: int, time_limit_s: float) -> int:
    """`connections` clients each send their next GET as soon as the last is answered; the count completed."""
    opened = [await RawConnection.open(port) for _ in range(connections)]
    remaining = total
    completed = 0
    deadline = time.perf_counter() + time_limit_s

    async def client(connection: RawConnection) -> None:
        nonlocal remaining, completed
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            await checked_exchange(connection, request)
            completed += 1

    try:
        await asyncio.gather(*(client(connection) for connection in opened))
    finally:
        for connection in opened:
            await connection.close()
    return completed


async def timed_round(server: Server, request: bytes, options: Options) -> ThroughputRound:
    cpu_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    completed = await closed_loop(
        server.port, request, options.throughput_requests, options.connections, options.time_limit_s
    )
    return ThroughputRound(completed, time.perf_counter() - started, cpu_seconds(server.pid) - cpu_before)


async def measure_throughputs(server: Server, paths: dict[str, str], options: Options) -> dict[str, Throughput]:
    """Same client setup for every endpoint; rounds alternate between endpoints, the median round counts."""
    requests = {name: get_request(server.port, path) for name, path in paths.items()}
    results = {name: Throughput() for name in paths}
    for request in requests.values():
        await closed_loop(server.port, request, options.throughput_warmup, options.connections, options.time_limit_s)
    for _ in range(options.throughput_rounds):
        for name, request in requests.items():
            results[name].rounds.append(await timed_round(server, request, options))
    return results


# -- targets and report ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: float
    limit: float
    unit: str
    at_least: bool  # True: measured must be >= limit; False: <= limit

    @property
    def passed(self) -> bool:
        return self.measured >= self.limit if self.at_least else self.measured <= self.limit

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass(slots=True)
class Results:
    options: Options
    machine: dict[str, Any]
    small_load: LoadResult | None = None
    large_load: LoadResult | None = None
    latency: dict[str, Latency] = field(default_factory=dict)
    throughput: dict[str, Throughput] = field(default_factory=dict)
    rss_after_load_mb: float = 0.0
    rss_final_mb: float = 0.0
    rss_peak_mb: float = 0.0
    database_mb: float = 0.0
    wall_seconds: float = 0.0
    load_average: dict[str, float] = field(default_factory=dict)  # other work on the machine skews figures

    def targets(self) -> list[Target]:
        assert self.large_load is not None
        p50_ratio = self.latency["large"].p50_ms / self.latency["small"].p50_ms
        throughput_ratio = self.throughput["segments"].median_per_s / self.throughput["trivial"].median_per_s
        return [
            Target(
                f"registration, {self.large_load.segments:,}-segment flow (segment POSTs)",
                self.large_load.registration_per_s,
                TARGET_REGISTRATION_PER_S,
                "seg/s",
                at_least=True,
            ),
            Target("segments GET p50, large / small flow", p50_ratio, TARGET_P50_RATIO, "x", at_least=False),
            Target("segments GET / trivial GET throughput", throughput_ratio, TARGET_THROUGHPUT_RATIO, "x", True),
            Target("server RSS after load and queries", self.rss_final_mb, TARGET_RSS_MB, "MB", at_least=False),
        ]

    def to_json(self) -> dict[str, Any]:
        loads = {"small": self.small_load, "large": self.large_load}
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
                for name, load in loads.items()
                if load is not None
            },
            "latency_ms": {name: asdict(value) for name, value in self.latency.items()},
            "throughput": {
                name: {
                    "median_per_s": value.median_per_s,
                    "server_cpu_ms_per_request": value.server_cpu_ms_per_request,
                    "rounds": [{**asdict(item), "per_s": item.per_s} for item in value.rounds],
                }
                for name, value in self.throughput.items()
            },
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


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def format_value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f} x"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:,.0f} {unit}"


def registration_rows(load: LoadResult) -> list[tuple[str, str]]:
    count = f"{load.segments:,}"
    last = load.stages[-1]
    return [
        (
            f"registration {count}: segment POSTs",
            f"{load.registration_per_s:,.0f} seg/s ({load.registration_per_server_cpu_s:,.0f} per server CPU-s)",
        ),
        (
            "  the last tenth of them",
            f"{last.post_per_s:,.0f} seg/s ({last.post_per_server_cpu_s:,.0f} per server CPU-s)",
        ),
        (f"registration {count}: overall, with allocation", f"{load.overall_per_s:,.0f} seg/s"),
        ("  server writes to storage per segment", f"{load.kib_written_per_segment:.1f} KiB"),
    ]


def report_lines(results: Results) -> list[str]:
    small, large = results.small_load, results.large_load
    assert small is not None and large is not None
    lat_s, lat_l = results.latency["small"], results.latency["large"]
    thr_t, thr_s = results.throughput["trivial"], results.throughput["segments"]
    n_s, n_l = f"{small.segments:,}", f"{large.segments:,}"
    figures = [
        *registration_rows(small),
        *registration_rows(large),
        (f"segments GET {n_s}: p50 / p90 / p99", f"{lat_s.p50_ms:.2f} / {lat_s.p90_ms:.2f} / {lat_s.p99_ms:.2f} ms"),
        (f"segments GET {n_l}: p50 / p90 / p99", f"{lat_l.p50_ms:.2f} / {lat_l.p90_ms:.2f} / {lat_l.p99_ms:.2f} ms"),
        (
            "throughput GET / (trivial)",
            f"{thr_t.median_per_s:,.0f} req/s ({thr_t.server_cpu_ms_per_request:.3f} ms CPU)",
        ),
        (
            f"throughput segments GET {n_l}",
            f"{thr_s.median_per_s:,.0f} req/s ({thr_s.server_cpu_ms_per_request:.3f} ms CPU)",
        ),
        (
            "  server CPU per request, trivial / segments",
            f"{thr_t.server_cpu_ms_per_request / thr_s.server_cpu_ms_per_request:.2f} x",
        ),
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
        comparison = ">=" if target.at_least else "<="
        wanted = f"{comparison} {format_value(target.limit, target.unit)}"
        verdict = "PASS" if target.passed else "FAIL"
        lines.append(
            f"  {target.name:<{name_width}}  {format_value(target.measured, target.unit):>14}  {wanted:>16}  {verdict}"
        )
    return lines


def save_results(document: Any, prefix: str = "") -> Path:
    """A benchmark's figures as JSON in bench/results/, named by the time of the run."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{prefix}{datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return path


# -- the run ---------------------------------------------------------------------------------------


def database_mb(data_dir: Path) -> float:
    """The SQLite database with its WAL and shared-memory files."""
    return sum(item.stat().st_size for item in data_dir.glob("tams.sqlite*")) / 1e6


def timed_step(description: str, step: Callable[[], Any]) -> Any:
    progress(f"{description} ...")
    started = time.perf_counter()
    value = step()
    progress(f"{description}: {time.perf_counter() - started:.1f} s")
    return value


def run(options: Options) -> Results:
    results = Results(options=options, machine=machine_info())
    results.load_average["start"] = os.getloadavg()[0]
    started = time.perf_counter()
    small_id, large_id = str(uuid.uuid4()), str(uuid.uuid4())
    with running_server(options.keep_data) as server, httpx.Client(base_url=server.base_url, timeout=300) as client:
        results.small_load = timed_step(
            f"loading {options.small:,} segments",
            lambda: load_flow(client, server, small_id, options.small, options.batch),
        )
        results.large_load = timed_step(
            f"loading {options.large:,} segments",
            lambda: load_flow(client, server, large_id, options.large, options.batch),
        )
        results.rss_after_load_mb = read_status_kb(server.pid, "VmRSS") / 1024
        windows = {"small": window_path(small_id, options.small), "large": window_path(large_id, options.large)}
        results.latency = timed_step(
            "latency of windowed segment GETs", lambda: asyncio.run(measure_latencies(server.port, windows, options))
        )
        endpoints = {"trivial": "/", "segments": windows["large"]}
        results.throughput = timed_step(
            "throughput, trivial vs segments GET", lambda: asyncio.run(measure_throughputs(server, endpoints, options))
        )
        results.rss_final_mb = read_status_kb(server.pid, "VmRSS") / 1024
        results.rss_peak_mb = read_status_kb(server.pid, "VmHWM") / 1024
        results.database_mb = database_mb(server.data_dir)
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
