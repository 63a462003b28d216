"""What the benchmarks share: server processes started and always stopped here, their CPU and memory from /proc,
a minimal HTTP/1.1 client for timed GETs, latency and throughput rounds, targets and results files."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import uvloop

HOST = "127.0.0.1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0
T = TypeVar("T")


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def sockets_on(port: int) -> dict[str, str]:
    """The TCP sockets of 127.0.0.1:`port` in /proc/net/tcp, their states by inode: 0A listening, 01 established."""
    local = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return {fields[9]: fields[3] for line in lines if (fields := line.split())[1] == local}


def listening_sockets(port: int) -> int:
    """Sockets listening on 127.0.0.1:`port`."""
    return sum(state == "0A" for state in sockets_on(port).values())


def wait_until_listening(port: int, sockets: int) -> None:
    """Until `sockets` sockets listen on the port (/proc/net/tcp state 0A): a server of several processes answers
    once its first listens, and connections opened before the others do would all go to that one."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if listening_sockets(port) >= sockets:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{sockets} sockets did not listen on port {port} within {SERVER_START_TIMEOUT_S:.0f} s")


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
    keep_data: bool,
    extra_env: dict[str, str] | None = None,
    data_dir: Path | None = None,
    module: str = "tams_api",
) -> Iterator[Server]:
    """One `python -m <module> serve` process (the TAMS API, or bench.bare_asgi) on a free local port and a fresh
    data dir (or the given one, then kept), stopped whatever happens."""
    given = data_dir is not None  # the caller's: left as it is
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="tams-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    port = free_port()
    command = [sys.executable, "-m", module, "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
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
        if keep_data and not given:
            progress(f"data kept in {data_dir}")
        elif not given:
            shutil.rmtree(data_dir, ignore_errors=True)


def read_status_kb(pid: int, field_name: str) -> int:
    """A `kB` line of /proc/<pid>/status, e.g. VmRSS (resident now) or VmHWM (resident peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field_name}")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants: with TAMS_WORKERS > 1, uvicorn's workers are children of the server."""
    pids = [pid]
    for current in pids:  # grows as children are found
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # it ended meanwhile
    return pids


def connections_by_process(pid: int, port: int) -> list[int]:
    """The connections to 127.0.0.1:`port` each process of a server holds (its socket fds matched with /proc/net/tcp):
    how the kernel spread them. The processes are those of its children that listen on the port (the workers of
    TAMS_WORKERS), else the server itself."""
    states = sockets_on(port)
    held = {process: _socket_inodes(process) & states.keys() for process in process_tree(pid)}
    workers = [process for process, inodes in held.items() if process != pid and "0A" in {states[i] for i in inodes}]
    return [sum(states[inode] == "01" for inode in held[process]) for process in workers or [pid]]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with suppress(FileNotFoundError):  # it ended meanwhile
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with suppress(OSError):
                inodes.add(os.readlink(fd).removeprefix("socket:[").removesuffix("]"))
    return inodes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants, all threads included (/proc/<pid>/stat fields 14
    and 15)."""
    total = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; skip past it
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def bytes_written(pid: int) -> int:
    """Bytes the process sent to the storage layer (`write_bytes` of /proc/<pid>/io), page cache included."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no write_bytes")


class RawConnection(asyncio.Protocol):
    """One keep-alive connection sending pre-encoded GETs and reading Content-Length answers. A Protocol on uvloop
    rather than asyncio streams: the client shares the machine's cores with the server, and what it spends per
    request caps the throughput the server can show (most of all with one server process per core)."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports do not subclass asyncio's
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        transport, connection = await asyncio.get_running_loop().create_connection(cls, HOST, port)
        connection.transport = transport
        return connection

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        end = head_end + 4 + content_length(self.buffer, head_end)
        if len(self.buffer) >= end and self.answer is not None and not self.answer.done():
            status, body = int(self.buffer[9:12]), bytes(self.buffer[head_end + 4 : end])
            del self.buffer[:end]
            self.answer.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("the server closed the connection"))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.answer

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def run_client(work: Coroutine[Any, Any, T]) -> T:
    """Run the timed clients on uvloop, as the server runs."""
    return uvloop.run(work)


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)[ \t]*\r\n", re.IGNORECASE)


def content_length(buffer: bytes | bytearray, head_end: int) -> int:
    """The Content-Length of the answer whose head ends at `head_end` (the index of its blank line)."""
    found = _CONTENT_LENGTH.search(buffer, 0, head_end + 2)
    if found is None:
        raise RuntimeError(f"response without Content-Length: {bytes(buffer[:head_end])!r}")
    return int(found[1])


def get_request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/json\r\n\r\n".encode()


async def checked_exchange(connection: RawConnection, request: bytes) -> bytes:
    status, body = await connection.exchange(request)
    if status != 200:
        raise RuntimeError(f"{request.split(b' ')[1].decode()} answered {status}: {body[:300]!r}")
    return body


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


@dataclass(slots=True)
class ThroughputRound:
    requests: int
    seconds: float
    server_cpu_seconds: float
    client_cpu_seconds: float  # the client's (wrk's): what it took of the cores the servers share
    connections_by_process: list[int]  # of the server's processes (harness.connections_by_process)

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

    @property
    def client_cpu_ms_per_request(self) -> float:
        return 1000 * sum(item.client_cpu_seconds for item in self.rounds) / sum(item.requests for item in self.rounds)


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


def save_results(document: Any, prefix: str = "") -> Path:
    """A benchmark's figures as JSON in bench/results/, named by the time of the run."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{prefix}{datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return path


def timed_step(description: str, step: Callable[[], Any]) -> Any:
    progress(f"{description} ...")
    started = time.perf_counter()
    value = step()
    progress(f"{description}: {time.perf_counter() - started:.1f} s")
    return value
