"""`tams-api serve` with TAMS_WORKERS=2, as a real server on 127.0.0.1: two processes answer on the one port, on the
embedded stores they share (SQLite, the filesystem store and its URL signing key), /metrics counts what both
answered, and SIGTERM stops them all."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from background import unused_port, wait_for
from bench.harness import connections_by_process, listening_sockets
from helpers import new_id, video_flow

WORKERS = 2


class Connection:
    """One keep-alive connection to the server, so that the process that accepted it answers all its requests."""

    def __init__(self, port: int) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, bytes]:
        content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        if body is not None and not isinstance(body, bytes):
            headers.setdefault("Content-Type", "application/json")
        self.http.request(method, path, body=content, headers=headers)
        response = self.http.getresponse()
        return response.status, response.read()

    def json(self, method: str, path: str, body: Any = None, expected: int = 200) -> Any:
        status, content = self.request(method, path, body)
        assert status == expected, content
        return json.loads(content) if content else None

    @property
    def local_port(self) -> int:
        assert self.http.sock is not None
        return self.http.sock.getsockname()[1]

    def close(self) -> None:
        self.http.close()


def children(pid: int) -> set[int]:
    """The worker processes (and multiprocessing's resource tracker) of the server `pid`."""
    return {
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    }


def serving_pid(server_port: int, client_port: int, candidates: set[int]) -> int | None:
    """The process holding the server end of the client's connection (its socket in /proc/net/tcp, then whose file
    descriptor that socket is)."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    inodes = {
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[1:3] == [local, remote]
    }
    for pid in candidates:
        try:
            descriptors = {os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()}
        except FileNotFoundError:
            continue
        if any(f"socket:[{inode}]" in descriptors for inode in inodes):
            return pid
    return None


@contextmanager
def served_by_workers(data_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = unused_port()
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("TAMS_", "PROMETHEUS_"))}
    environment |= {
        "TAMS_DATA_DIR": str(data_dir),
        "TAMS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TAMS_WORKERS": str(WORKERS),
    }
    command = [sys.executable, "-m", "tams_api", "serve", "--port", str(port), "--log-level", "warning"]
    # Its own process group: the worker processes outlive a supervisor killed outright, and must go too.
    server = subprocess.Popen(command, env=environment, start_new_session=True)
    try:

        def answers() -> bool:
            try:
                connection = Connection(port)
                try:
                    return connection.request("GET", "/health")[0] == 200
                finally:
                    connection.close()
            except OSError:
                return False

        wait_for(answers, 60, f"the API on port {port}")
        yield server, port
    finally:
        if server.poll() is None:
            server.terminate()  # the supervisor stops its processes
            with suppress(subprocess.TimeoutExpired):
                server.wait(timeout=30)
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # whatever is left of its group
        server.wait()


def requests_counted(connection: Connection, route: str) -> float:
    """tams_api_requests_total of GETs of `route` answered 200, as /metrics reports it."""
    text = connection.request("GET", "/metrics")[1].decode()
    pattern = rf'^tams_api_requests_total\{{method="GET",route="{re.escape(route)}",status="200"\}} (\S+)$'
    return sum(float(match) for match in re.findall(pattern, text, re.MULTILINE))


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_two_worker_processes_share_the_port_the_stores_and_the_metrics(tmp_path: Path) -> None:
    with served_by_workers(tmp_path) as (server, port), ExitStack() as stack:
        # A connection belongs to the process that accepted it: open connections until both processes hold one.
        by_pid: dict[int, Connection] = {}

        def another_process_answered() -> bool:
            connection = Connection(port)
            stack.callback(connection.close)
            assert connection.request("GET", "/health")[0] == 200
            pid = serving_pid(port, connection.local_port, children(server.pid))
            assert pid is not None, "no worker process holds the connection"
            by_pid.setdefault(pid, connection)
            return len(by_pid) == WORKERS

        wait_for(another_process_answered, 60, "connections answered by both processes")
        first, second = by_pid.values()

        # Writes of one process are read by the other, both ways.
        flows = {}
        for writer, reader in ((first, second), (second, first)):
            flow_id = new_id()
            writer.json("PUT", f"/flows/{flow_id}", video_flow(flow_id, new_id()), expected=201)
            assert reader.json("GET", f"/flows/{flow_id}")["id"] == flow_id
            flows[flow_id] = (writer, reader)
        # Media: a URL one process signed is honoured by the other (one signing key, made by whichever came first).
        flow_id, (writer, reader) = next(iter(flows.items()))
        [media_object] = writer.json("POST", f"/flows/{flow_id}/storage", {"limit": 1}, expected=201)["media_objects"]
        put_url = urlsplit(media_object["put_url"]["url"])
        content_type = media_object["put_url"]["content-type"]
        status, _ = reader.request(
            "PUT", f"{put_url.path}?{put_url.query}", b"media bytes", **{"Content-Type": content_type}
        )
        assert status in (200, 201, 204)
        segment = {"object_id": media_object["object_id"], "timerange": "[0:0_1:0)"}
        reader.json("POST", f"/flows/{flow_id}/segments", segment, expected=201)
        [listed] = writer.json("GET", f"/flows/{flow_id}/segments")
        assert listed["object_id"] == media_object["object_id"]

        # /metrics, from either process, counts the requests both answered.
        route = "/flows/{flow_id}"
        before = requests_counted(first, route)
        asked = 0
        for connection in (first, second, first, second, second):
            for flow_id in flows:
                connection.json("GET", f"/flows/{flow_id}")
                asked += 1
        # Counted as each response ends, maybe just after the client has it: polled until then.
        wait_for(lambda: requests_counted(first, route) == before + asked, 10, "the count of both processes")
        wait_for(lambda: requests_counted(second, route) == before + asked, 10, "the count of both processes")

        metrics_directory = dict(
            line.split("=", 1)
            for line in Path(f"/proc/{next(iter(by_pid))}/environ").read_text().split("\0")
            if "=" in line
        )["PROMETHEUS_MULTIPROC_DIR"]
        assert Path(metrics_directory).is_dir()
        stack.close()

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in by_pid)  # both stopped with it, reaped by it
    assert not Path(metrics_directory).exists()  # the server's temporary directory went with it


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_connections_opened_together_are_spread_over_the_processes(tmp_path: Path) -> None:
    """Keep-alive connections a proxy or a load generator opens at once: on one shared listening socket, the first
    process to wake accepted them all and the other idled."""
    with served_by_workers(tmp_path) as (server, port), ExitStack() as stack:
        # A process serves once it listens; the first may answer before the other does.
        wait_for(lambda: listening_sockets(port) == WORKERS, 60, f"a listening socket of each of {WORKERS} processes")
        connections = [Connection(port) for _ in range(16)]
        for connection in connections:
            stack.callback(connection.close)
            connection.http.connect()  # all 16 wait to be accepted before any is used
        for connection in connections:
            assert connection.request("GET", "/health")[0] == 200
        spread = connections_by_process(server.pid, port)  # the benchmark's count, which this checks too
        # By their addresses: all 16 on one of two processes would happen once in 32,768 runs.
        assert len(spread) == WORKERS and sum(spread) == 16 and min(spread) > 0, spread
