"""Each answer's head and body in one write (tams_api/coalescing.py): uvicorn's own httptools protocol, fed a request
as the event loop would, writing to a transport that records each call."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from tams_api.coalescing import HOLD_AT_MOST, CoalescingHttpToolsProtocol

REQUEST = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """What the protocol sends, one entry per call that would be a system call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append(b"".join(list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def answer(*chunks: bytes, pause_before: int | None = None) -> Any:
    """An ASGI app answering 200 with `chunks` as its body; it waits a moment before chunk `pause_before`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        length = str(sum(map(len, chunks))).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
        for index, chunk in enumerate(chunks):
            if index == pause_before:
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    return app


def served(app: Any, gone_after_head: bool = False) -> list[bytes]:
    """The calls made while the protocol answers one request; with `gone_after_head` the peer leaves as the head is
    sent (the transport closing) and the app ends there."""
    transport = RecordingTransport()

    async def leaving(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        transport.closed = True

    async def serve() -> None:
        config = uvicorn.Config(leaving if gone_after_head else app, lifespan="off", log_level="critical")
        protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        await asyncio.gather(*protocol.tasks)
        await asyncio.sleep(0)  # the end of the loop's turn: nothing is held after it

    asyncio.run(serve())
    return transport.calls


def head_and_body(call: bytes) -> tuple[bytes, bytes]:
    head, _, body = call.partition(b"\r\n\r\n")
    return head, body


def test_a_head_and_its_body_go_in_one_write() -> None:
    calls = served(answer(b'["a","b"]'))
    [call] = calls
    head, body = head_and_body(call)
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b'["a","b"]'


def test_a_head_whose_body_takes_longer_goes_at_the_end_of_the_loops_turn() -> None:
    calls = served(answer(b"later", pause_before=0))
    head, tail = calls
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n") and tail == b"later"


def test_a_large_body_is_not_held_and_takes_the_held_head_with_it() -> None:
    large = b"x" * HOLD_AT_MOST
    calls = served(answer(large, large))
    first, second = calls
    assert head_and_body(first)[1] == large, "the head and the first chunk together"
    assert second == large, "the next large chunk at once, alone"


def test_small_chunks_go_in_pairs_and_the_last_at_the_end_of_the_turn() -> None:
    calls = served(answer(b"1", b"2", b"3"))
    assert [head_and_body(call)[1] if index == 0 else call for index, call in enumerate(calls)] == [
        b"1",
        b"23",
    ]


def test_a_head_held_when_the_peer_leaves_is_dropped_not_written_to_the_closing_transport() -> None:
    assert served(None, gone_after_head=True) == []
