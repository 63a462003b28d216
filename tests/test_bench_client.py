"""The benchmark's closed-loop client (bench.harness.closed_loop) against a real socket server: every answer counted
once, whichever way its bytes arrive, and a failing answer fails the round."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bench.harness import HOST, closed_loop, get_request


def answer(status: int, body: bytes) -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


async def serve_and_load(total: int, connections: int, status_after: int | None = None) -> tuple[int, int]:
    """Run closed_loop against a server answering each GET with one answer in three writes (the last with the
    start of nothing else), 500 from the `status_after`-th request on; (completed, requests the server saw)."""
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):  # the client done and gone
            while await reader.readuntil(b"\r\n\r\n"):
                seen += 1
                whole = answer(500 if status_after is not None and seen > status_after else 200, b"x" * 300)
                for part in (whole[:10], whole[10:60], whole[60:]):  # split inside the head and the body
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0)

    server = await asyncio.start_server(handle, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        completed = await closed_loop(port, get_request(port, "/"), total, connections, 30)
    finally:
        server.close()
    return completed, seen


def test_the_closed_loop_counts_each_answer_once_and_stops_at_its_total() -> None:
    completed, seen = asyncio.run(serve_and_load(total=301, connections=8))
    assert (completed, seen) == (301, 301)


def test_a_failing_answer_fails_the_round() -> None:
    with pytest.raises(RuntimeError, match="answered 500"):
        asyncio.run(serve_and_load(total=100, connections=4, status_after=20))
