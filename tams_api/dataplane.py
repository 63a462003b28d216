"""The media data plane served ahead of FastAPI's middleware stack: segment windows, flows and objects are what
players and ingest ask most, and the stack's layers (Starlette's error middleware, FastAPI's own, ours), each wrapping
`send`, with FastAPI's route matching and exit stacks, cost more than such a request's own work. A DataPlaneRoute here
is matched by its path pattern and method and called as it is; every other request goes through the stack, whose
router also documents these routes. What the stack does for the others, the data plane does for its own requests,
once: errors answered by the one mapping (http.error_answer), HEAD answered with GET's headers and no body, and the
request counted and timed (metrics.RequestRecorder), the matched route left in the scope as FastAPI's router leaves
it."""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .http import error_answer
from .metrics import RequestRecorder
from .routers.common import DataPlaneRoute


class DataPlane:
    """The data-plane routes and how their requests are answered."""

    def __init__(self, routes: Iterable[DataPlaneRoute]) -> None:
        self.routes = tuple(routes)
        self.recorder = RequestRecorder()

    def route_of(self, scope: Scope) -> DataPlaneRoute | None:
        """The route of an HTTP request, its path parameters left in the scope; None if it is not the data plane's."""
        if scope["type"] == "http" and not scope.get("root_path"):
            path, method = scope["path"], scope["method"]
            for route in self.routes:
                if method in route.methods and (match := route.path_regex.match(path)):
                    scope["route"] = route
                    scope["path_params"] = match.groupdict()
                    return route
        return None

    async def serve(self, route: DataPlaneRoute, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive, send)
        try:
            response = await route.answer(request)
        except Exception as error:
            response = error_answer(request, error)
        try:
            # The answer's two messages as Response.__call__ sends them (data-plane answers are whole bodies, without
            # background tasks); a HEAD's body left out, its Content-Length GET's.
            await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else response.body})
        finally:
            self.recorder.record(scope, response.status_code, time.perf_counter() - started)


class DataPlaneApi(FastAPI):
    """FastAPI answering the requests of its `data_plane` (when it has one) before its middleware stack sees them.
    Requests that are traced (tracing.trace_requests) must all pass through the stack, which the spans wrap: the
    data plane is then None, and FastAPI's router serves its routes like any."""

    data_plane: DataPlane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.data_plane is not None and not self.root_path:
            route = self.data_plane.route_of(scope)
            if route is not None:
                scope["app"] = self  # as Starlette's __call__: request.app
                await self.data_plane.serve(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)
