"""HTTP plumbing shared by the routers: JSON responses, paging headers, and the one place that maps
domain errors (and every other failure) to the spec's error JSON."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import URL
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TamsError,
    Unauthorized,
    Unavailable,
    error_json,
)
from .model import Page

log = logging.getLogger("tams_api")

STATUS_OF: dict[type[TamsError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    Unavailable: 503,
}


def status_of(error: TamsError) -> int:
    """The HTTP status of a domain error, by its class or the nearest mapped base class."""
    return next((STATUS_OF[cls] for cls in type(error).__mro__ if cls in STATUS_OF), 400)


class JsonResponse(Response):
    """A JSON document as a Starlette Response, its header lines encoded here in one pass: Response.__init__'s
    general rendering and header checks were a twentieth of a segment window's GET."""

    media_type = "application/json"

    def __init__(self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status
        self.background = None
        self.body = orjson.dumps(body)
        self.raw_headers = [(b"content-length", b"%d" % len(self.body)), (b"content-type", b"application/json")]
        if headers:
            self.raw_headers += [
                (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
            ]


def no_content() -> Response:
    return Response(status_code=204)


def error_response(status: int, error_type: str, summary: str, headers: Mapping[str, str] | None = None) -> Response:
    return JsonResponse(error_json(error_type, summary), status, headers)


def paging_headers(request: Request, page: Page[Any], **extra: str) -> dict[str, str]:
    """Link (rel=next, absent on the last page), X-Paging-NextKey and X-Paging-Limit, plus extras."""
    headers = {"X-Paging-Limit": str(page.limit)}
    if page.next_key is not None:
        # On the public URL, as media URLs: behind a proxy that ends TLS the request's own URL is not the client's.
        public = URL(request.app.state.services.settings.public_url.rstrip("/") + request.url.path)
        next_url = public.replace(query=request.url.include_query_params(page=page.next_key).query)
        headers["Link"] = f'<{next_url}>; rel="next"'
        headers["X-Paging-NextKey"] = page.next_key
    headers.update(extra)
    return headers


def listing_headers(request: Request, page: Page[Any], reverse: bool, **extra: str) -> dict[str, str]:
    """Paging headers of the listings that also report their count and order."""
    return paging_headers(
        request,
        page,
        **{"X-Paging-Count": str(len(page.items)), "X-Paging-Reverse-Order": str(reverse).lower()},
        **extra,
    )


def _validation_summary(error: RequestValidationError) -> str:
    [first, *_] = error.errors() or [{}]
    if first.get("type") == "json_invalid" and isinstance(error.body, str):
        return _json_problem(error.body, first["loc"][-1], first.get("ctx", {}).get("error", "invalid JSON"))
    problems = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else item.get("msg", "invalid"))
    return "; ".join(problems) or "invalid request"


def _json_problem(document: str, position: int, problem: str) -> str:
    """Where a body's JSON breaks, as an editor shows it (line and column from 1), in the parser's words."""
    line = document.count("\n", 0, position) + 1
    column = position - (document.rfind("\n", 0, position) + 1) + 1
    return f"the body is not valid JSON: {problem} at line {line}, column {column} (character {position + 1})"


def error_answer(request: Request, error: Exception) -> Response:
    """The spec's error JSON for any failure of a request, with the status its class maps to."""
    if isinstance(error, TamsError):
        status = status_of(error)
        headers = None
        if status == 401:
            headers = {"WWW-Authenticate": request.app.state.auth.challenge()}
        elif status == 503:
            headers = {"Retry-After": "1"}
        return error_response(status, type(error).__name__, error.summary, headers)
    if isinstance(error, RequestValidationError):
        return error_response(400, "BadRequest", _validation_summary(error))
    if isinstance(error, StarletteHTTPException):
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        return error_response(
            error.status_code, names.get(error.status_code, "HTTPError"), str(error.detail), error.headers
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "InternalError", "the service failed to handle this request; see its logs")


def install_error_handlers(app: FastAPI) -> None:
    async def answer(request: Request, error: Exception) -> Response:
        return error_answer(request, error)

    for error_class in (TamsError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(error_class, answer)


class HeadWithoutBody:
    """HEAD answers with the headers GET would send (Content-Length included) and no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, send_headers_only)
