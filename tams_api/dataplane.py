"""The media data plane served ahead of FastAPI's router and of our other middleware: segment windows, flows and
objects are what players and ingest ask most, and FastAPI's route matching, exit stacks, exception wrappers and each
middleware's wrapped `send` cost more than such a request's own work. A DataPlaneRoute here is matched by its path
pattern and method and called as it is; every other request goes on to the app, which also documents these routes.
What the middleware it skips does for the others, the data plane does for its own requests, once: errors answered by
the one mapping (http.error_answer), HEAD answered with GET's headers and no body, and the request counted and timed
(metrics.RequestRecorder), the matched route left in the scope as FastAPI's router leaves it."""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .http import error_answer
from .metrics import RequestRecorder
from .routers.common import DataPlaneRoute


class DataPlane:
    """ASGI middleware serving the data-plane routes itself; to be the outermost of the app's own middleware."""

    def __init__(self, app: ASGIApp, routes: Iterable[DataPlaneRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.recorder = RequestRecorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path, method = scope["path"], scope["method"]
            for route in self.routes:
                if method in route.methods and (match := route.path_regex.match(path)):
                    scope["route"] = route
                    scope["path_params"] = match.groupdict()
                    await self._serve(route, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: DataPlaneRoute, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive, send)
        try:
            response = await route.handle(request)
        except Exception as error:
            response = error_answer(request, error)
        try:
            # The answer's two messages as Response.__call__ sends them (data-plane answers are whole bodies, without
            # background tasks); a HEAD's body left out, its Content-Length GET's.
            await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else response.body})
        finally:
            self.recorder.record(scope, response.status_code, time.perf_counter() - started)
