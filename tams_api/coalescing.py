"""uvicorn's HTTP protocol (httptools) with each answer's head and body going to the socket in one write.

uvicorn writes the status line and headers as the app starts its answer, and the body as it comes: two system calls
per answer, and on a keep-alive connection two TCP segments that the client wakes for in turn. Here a write waits
until the next one or the end of the event loop's turn, whichever comes first, and the two go together: a head and
its body leave as one, a head whose body takes longer leaves at the end of the turn as before. Large writes (media
bodies) are not held: they go at once, with a head still held before them.

    uvicorn.run(app, http=CoalescingHttpToolsProtocol)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HOLD_AT_MOST = 64 * 1024  # bytes: a write this long goes at once (no small write is waiting to join)


class HeldWrites:
    """A connection's transport as uvicorn's response cycles see it: each small write waits for the next or for the
    end of the loop's turn; everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))  # one vectored write on uvloop
        elif len(data) >= HOLD_AT_MOST:
            self._transport.write(data)
        else:
            self._held = data
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # the peer gone: nobody to send it to
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through HeldWrites (its flow control stays on the transport itself)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeldWrites(transport, self.loop)  # type: ignore[assignment]
