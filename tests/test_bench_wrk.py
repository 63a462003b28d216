"""The benchmark's throughput client (bench.wrk: wrk, from Debian's packages) against a real socket server: its
answers counted, the connections' spread read, and a failing answer failing the round."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import HOST, Server
from bench.wrk import install_wrk, parse_wrk, wrk_round

CONNECTIONS = 4


@pytest.fixture(scope="module", autouse=True)
def wrk() -> None:
    install_wrk()


def answer(status: int, body: bytes) -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


@contextlib.contextmanager
def answering(status_after: int | None = None) -> Iterator[tuple[int, list[int]]]:
    """A server on a thread of this process answering each GET in three writes (split inside the head and the
    body), 500 from the `status_after`-th on; its port, and the count of requests it saw."""
    seen = [0]
    ready = threading.Event()
    stop: list[asyncio.Future[None]] = []
    port: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):  # the client done and gone
            while await reader.readuntil(b"\r\n\r\n"):
                seen[0] += 1
                whole = answer(500 if status_after is not None and seen[0] > status_after else 200, b"x" * 300)
                for part in (whole[:10], whole[10:60], whole[60:]):
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0)

    async def serve() -> None:
        server = await asyncio.start_server(handle, HOST, 0)
        port.append(server.sockets[0].getsockname()[1])
        stop.append(asyncio.get_running_loop().create_future())
        ready.set()
        async with server:
            await stop[0]

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    ready.wait(10)
    try:
        yield port[0], seen
    finally:
        loop.call_soon_threadsafe(stop[0].set_result, None)
        thread.join(10)
        loop.close()


def test_a_round_counts_the_answers_and_the_connections_of_the_server() -> None:
    with answering() as (port, seen):
        counted = wrk_round(Server(os.getpid(), port, Path(".")), "/", 1, CONNECTIONS)
    # Requests still unanswered when wrk stopped were seen by the server and not counted: one per connection at most.
    assert 0 < counted.requests <= seen[0] <= counted.requests + CONNECTIONS
    assert counted.per_s == pytest.approx(counted.requests / counted.seconds)
    assert counted.connections_by_process == [CONNECTIONS]
    assert counted.client_cpu_seconds > 0


def test_a_failing_answer_fails_the_round() -> None:
    with answering(status_after=20) as (port, _), pytest.raises(RuntimeError, match="Non-2xx"):
        wrk_round(Server(os.getpid(), port, Path(".")), "/", 1, CONNECTIONS)


def test_the_report_is_read_and_failures_in_it_refused() -> None:
    report = (
        "Running 3s test @ http://127.0.0.1:8001/\n  1 threads and 8 connections\n"
        "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   350.10us   80.21us   5.12ms   91.02%\n"
        "  64512 requests in 3.00s, 9.84MB read\nRequests/sec:  21503.61\nTransfer/sec:      3.28MB\n"
    )
    assert parse_wrk(report) == (64512, 21503.61)
    for failure in ("  Socket errors: connect 0, read 3, write 0, timeout 0\n", "  Non-2xx or 3xx responses: 12\n"):
        with pytest.raises(RuntimeError, match="failures"):
            parse_wrk(report.replace("Requests/sec", failure + "Requests/sec"))
