"""The media data plane served ahead of FastAPI's router: segment windows, flows and objects are what players and
ingest ask most, and FastAPI's route matching, exit stacks and exception wrappers cost more than such a request's
own work. A DataPlaneRoute here is matched by its path pattern and method and called as it is; every other
request goes on to FastAPI, which also documents these routes. Errors are answered by the one mapping
(http.error_answer); the matched route is left in the scope for RequestMetrics, as FastAPI's router does."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .http import error_answer
from .routers.common import DataPlaneRoute


class DataPlane:
    """ASGI middleware serving the data-plane routes itself."""

    def __init__(self, app: ASGIApp, routes: Iterable[DataPlaneRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)

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

    @staticmethod
    async def _serve(route: DataPlaneRoute, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await route.handle(request)
        except Exception as error:
            response = error_answer(request, error)
        await response(scope, receive, send)
