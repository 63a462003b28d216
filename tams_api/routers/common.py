"""What the routers share: the services they call and the parsing of the spec's query conventions."""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Message, Receive

from ..auth import ANONYMOUS, Authenticator, Principal, required_scope
from ..config import Settings
from ..errors import BadRequest, NotFound, PayloadTooLarge
from ..http import JsonResponse, no_content
from ..model import Deletion, PageRequest, TagFilter, TagValue
from ..readiness import Readiness
from ..stores.media import MediaStore, MediaStores
from ..stores.metadata import MetadataStore
from ..timerange import Bounds, parse_bounds
from ..worker import delete_released

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
UUID_LIST_PATTERN = UUID_PATTERN[1:-1]
UUID_LIST_EMPTY_PATTERN = rf"^(({UUID_LIST_PATTERN})(,{UUID_LIST_PATTERN})*)?$"
MIME_PATTERN = (
    r"^(application|audio|font|example|image|message|model|multipart|text|video|x-(?:[0-9A-Za-z!#$%&'*+.^_`|~-]+))"
    r"/([0-9A-Za-z!#$%&'*+.^_`|~-]+)$"
)
_UUID = re.compile(UUID_PATTERN)
R = TypeVar("R")
# Each tag filter is one SQL condition, and SQLite refuses expressions more than 1,000 deep.
MAX_TAG_FILTERS = 100


@dataclass(slots=True)
class Services:
    store: MetadataStore
    media: MediaStores
    settings: Settings
    readiness: Readiness = field(init=False, repr=False)

    def __post_init__(self) -> None:
        default = self.media.default
        self.readiness = Readiness(
            {"metadata store": self.store.probe, f"media store {default.backend.label!r}": default.probe}
        )

    async def read(self, query: Callable[[], R]) -> R:
        """Run a read of the metadata store from a request: inline when the store's reads are short local work
        (a thread hand-off would cost more than the read), else on the thread pool, off the event loop."""
        if self.store.reads_inline:
            return query()
        return await run_in_threadpool(query)

    def media_store(self, storage_id: str) -> MediaStore:
        """The media store of a storage backend a client named."""
        found = self.media.get(storage_id)
        if found is None:
            raise BadRequest(f"storage backend {storage_id} does not exist; see /service/storage-backends")
        return found


async def _services(request: Request) -> Services:
    # async so FastAPI calls it on the event loop: a sync dependency costs every request a threadpool round trip.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(_services)]


def authorize(request: Request) -> None:
    """Authenticate the request and check its scope; the principal is kept for who-did-what fields."""
    auth: Authenticator = request.app.state.auth
    if not auth.enabled:
        return
    principal = auth.authenticate(request.headers.get("authorization"), query_values(request).get("access_token"))
    auth.authorize(principal, required_scope(request.method, request.url.path))
    request.state.principal = principal


async def bounded_body(request: Request, limit: int) -> Receive:
    """Read the whole body, refusing it (413) as soon as it is longer than `limit`, and a `receive` that replays
    it: FastAPI would read any body whole before a route could look at its size."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is {declared} bytes; this service accepts at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is longer than {limit} bytes, the most this service accepts")
        chunks.append(chunk)
    replay: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def receive() -> Message:
        nonlocal replay
        if replay is None:
            return await request.receive()  # after the body: only a disconnect can come
        message, replay = replay, None
        return message

    return receive


class TamsRoute(APIRoute):
    """A route of the TAMS API: credentials and scope are checked, then the body is read within
    TAMS_MAX_BODY_BYTES, before FastAPI parses anything — an unauthenticated or oversized body is never decoded."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def gated(request: Request) -> Response:
            authorize(request)
            if request.method in ("POST", "PUT"):
                limit = request.app.state.services.settings.max_body_bytes
                request = Request(request.scope, await bounded_body(request, limit))
            return await handle(request)

        return gated


class DataPlaneRoute(APIRoute):
    """A read of the media data plane (segment windows, flows, objects: what players and ingest ask most), served by
    tams_api.dataplane ahead of FastAPI's router and documented by FastAPI as any route. Its endpoint is an ordinary
    sync endpoint whose parameters are the request, the services, path parameters and str, int or bool query
    parameters; they are found here once, from its signature, rather than by FastAPI's dependency solver on every
    request, and the endpoint runs where the store's reads should run (Services.read)."""

    def __init__(self, path: str, endpoint: Callable[..., Response], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self._request_arguments: list[str] = []
        self._services_arguments: list[str] = []
        self._path_arguments: list[str] = []
        query: list[QueryParam] = []
        hints = typing.get_type_hints(endpoint)
        for name, parameter in inspect.signature(endpoint).parameters.items():
            if hints[name] is Request:
                self._request_arguments.append(name)
            elif hints[name] is Services:
                self._services_arguments.append(name)
            elif name in self.param_convertors:
                self._path_arguments.append(name)
            else:
                query.append(QueryParam.of(name, hints[name], parameter.default))
        self._query = QueryForm(*query) if query else None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.answer

    async def answer(self, request: Request) -> Response:
        authorize(request)
        services: Services = request.app.state.services
        arguments = self._query.parse(request) if self._query else {}
        for name in self._request_arguments:
            arguments[name] = request
        for name in self._services_arguments:
            arguments[name] = services
        for name in self._path_arguments:
            arguments[name] = request.path_params[name]
        return await services.read(functools.partial(self.endpoint, **arguments))


def data_plane_router(**options: Any) -> APIRouter:
    """A router of data-plane routes (see DataPlaneRoute)."""
    return APIRouter(route_class=DataPlaneRoute, **options)


def tams_router(**options: Any) -> APIRouter:
    """A router of TAMS API routes (see TamsRoute)."""
    return APIRouter(route_class=TamsRoute, **options)


def principal(request: Request) -> Principal:
    """Who is asking: ANONYMOUS when authentication is off, or lets the request in without credentials."""
    return getattr(request.state, "principal", ANONYMOUS)


def principal_name(request: Request) -> str | None:
    """Who is asking, for created_by and ownership; None when nobody is known."""
    asking = principal(request)
    return None if asking is ANONYMOUS else asking.name


def get_and_head(router: APIRouter, path: str, **options: Any) -> Callable[[Callable], Callable]:
    """Register an endpoint for GET and for HEAD (which answers with GET's headers and no body)."""

    def register(endpoint: Callable) -> Callable:
        router.get(path, **options)(endpoint)
        router.head(path, include_in_schema=True, **{k: v for k, v in options.items() if k != "responses"})(endpoint)
        return endpoint

    return register


async def representable_json_body(request: Request) -> None:
    """Refuse a JSON body the service could not send back: text with lone surrogates (legal JSON escapes, not
    Unicode), integers beyond 64 bits or nesting deeper than orjson encodes. Stored, they would fail every read."""
    if request.method not in ("PUT", "POST"):
        return
    try:
        body = await request.json()  # FastAPI has parsed JSON bodies already; Starlette keeps the result
    except (ValueError, RecursionError):
        return  # not JSON: the endpoint refuses it
    try:
        orjson.dumps(body)
    except orjson.JSONEncodeError as error:
        raise BadRequest(f"the request body cannot be stored as JSON: {error}") from None


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A query parameter parsed by hand, for hot endpoints: FastAPI's per-parameter machinery costs about
    40 us a parameter, more than the segment query itself. `openapi()` documents it as FastAPI would."""

    name: str
    kind: type[bool] | type[int] | type[str] = str
    default: bool | int | str | None = None  # when the request does not give it

    @classmethod
    def of(cls, name: str, annotation: Any, default: Any) -> QueryParam:
        """The parameter an endpoint declares as `name: annotation = default` (str, int or bool, or None of them)."""
        kinds = {bool, int, str} & set(typing.get_args(annotation) or (annotation,))
        if len(kinds) != 1:
            raise TypeError(f"query parameter {name}: {annotation} is not one of str, int or bool")
        return cls(name, kinds.pop(), None if default is inspect.Parameter.empty else default)

    def openapi(self) -> dict[str, Any]:
        schema_type = {bool: "boolean", int: "integer", str: "string"}[self.kind]
        return {"name": self.name, "in": "query", "required": False, "schema": {"type": schema_type}}

    def parse(self, raw: str) -> bool | int | str:
        if self.kind is bool:
            lowered = raw.lower()
            if lowered in _TRUE or lowered in _FALSE:
                return lowered in _TRUE
            raise BadRequest(f"query parameter {self.name} must be true or false")
        if self.kind is int:
            if not _INTEGER.match(raw):
                raise BadRequest(f"query parameter {self.name} must be an integer")
            return int(raw)
        return raw


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_INTEGER = re.compile(r"^[+-]?[0-9]{1,4000}$")  # int() refuses 4,300 digits or more


_QUERY_ITEMS = "tams_api.query_items"  # the scope key of a request's parsed query string


def query_items(request: Request) -> list[tuple[str, str]]:
    """The request's query parameters in order, as Starlette's QueryParams holds them (urllib's parse_qsl of the
    query string's Latin-1 text, blank values kept), parsed once per request in half the time: QueryParams was a
    fifteenth of a segment window's GET. Kept in the scope, as Starlette keeps its state."""
    items = request.scope.get(_QUERY_ITEMS)
    if items is None:
        items = request.scope[_QUERY_ITEMS] = _parse_query_string(request.scope["query_string"])
    return items


def _parse_query_string(query_string: bytes) -> list[tuple[str, str]]:
    items = []
    for part in query_string.decode("latin-1").split("&"):
        if part:
            name, _, value = part.partition("=")
            if "+" in part:
                name, value = name.replace("+", " "), value.replace("+", " ")
            items.append((_unquote(name), _unquote(value)))
    return items


# The escapes of ASCII characters, hex digits in either case: a query string's usual escapes ("%5B", "%3A", ...).
_ASCII_ESCAPES = {high + low: chr(int(high + low, 16)) for high in "01234567" for low in "0123456789abcdefABCDEF"}


def _unquote(text: str) -> str:
    """urllib's `unquote`, in half the time when every escape is of an ASCII character."""
    if "%" not in text:
        return text
    head, *escaped = text.split("%")
    parts = [head]
    for part in escaped:
        character = _ASCII_ESCAPES.get(part[:2])
        if character is None:  # a byte beyond ASCII (UTF-8 to decode), or not an escape: urllib's rules
            return unquote(text)
        parts += (character, part[2:])
    return "".join(parts)


def query_values(request: Request) -> dict[str, str]:
    """Each query parameter's value, the last one where it is given more than once (as QueryParams.get)."""
    return dict(query_items(request))


class QueryForm:
    """The query parameters an endpoint reads, parsed by hand (see QueryParam)."""

    def __init__(self, *params: QueryParam) -> None:
        self.params = params
        self._defaults = {param.name: param.default for param in params}
        self._by_name = {param.name: param for param in params}

    def parse(self, request: Request) -> dict[str, Any]:
        """The parameters' values, their defaults where the query string does not give them (it gives few)."""
        values = self._defaults.copy()
        for name, raw in query_values(request).items():
            param = self._by_name.get(name)
            if param is not None:
                values[name] = param.parse(raw)
        return values

    def openapi(self) -> dict[str, Any]:
        """What FastAPI's `openapi_extra` takes to document them."""
        return {"parameters": [param.openapi() for param in self.params]}


def require_uuid(value: str, what: str) -> str:
    """Ids in paths must be UUIDs as the spec defines them; anything else names nothing here (404)."""
    if not _UUID.match(value):
        raise NotFound(f"{what} id {value!r} is not a valid UUID")
    return value


def page_request(settings: Settings, limit: int | None, page: str | None, reverse: bool = False) -> PageRequest:
    """The page a listing serves. The spec sets no bounds on `limit` and documents no error for it on several
    listings, so any integer is served: clamped to 1..max_page_limit, the limit used reported in X-Paging-Limit.
    An empty `page` is no key (the first page), as a client that fills in `page={next key}` sends on the first."""
    chosen = settings.default_page_limit if limit is None else max(1, min(limit, settings.max_page_limit))
    return PageRequest(limit=chosen, key=page or None, reverse=reverse)


def tag_filter(request: Request, prefix: str = "tag") -> TagFilter:
    """`{prefix}.{name}=a,b` and `{prefix}_exists.{name}=true|false` query parameters."""
    tags = TagFilter()
    for key, value in query_items(request):
        if key.startswith(f"{prefix}."):
            name = key[len(prefix) + 1 :]
            # The spec's url-tag-list: values joined by commas, or none (`tag.x=`), which no tag value matches.
            values = value.split(",") if value else []
            if not name or "" in values:
                raise BadRequest(f"invalid tag filter {key}={value!r}: expected a comma-separated list of values")
            tags.values[name] = values
        elif key.startswith(f"{prefix}_exists."):
            name = key[len(prefix) + 8 :]
            if not name or value not in ("true", "false"):
                raise BadRequest(f"invalid tag filter {key}={value!r}: expected true or false")
            tags.exists[name] = value == "true"
    if len(tags.values) + len(tags.exists) > MAX_TAG_FILTERS:
        raise BadRequest(f"too many {prefix} filters: at most {MAX_TAG_FILTERS} are supported")
    return tags


def uuid_list(value: str | None, what: str) -> list[str] | None:
    if value is None:
        return None
    ids = [item for item in value.split(",") if item]
    for item in ids:
        if not _UUID.match(item):
            raise BadRequest(f"{what} must be a comma-separated list of UUIDs")
    return ids


def timerange_bounds(value: str | None) -> Bounds | None:
    return None if value is None else parse_bounds(value)


# -- values and answers several resources share ----------------------------------------------------

Format = Literal[
    "urn:x-nmos:format:video",
    "urn:x-tam:format:image",
    "urn:x-nmos:format:audio",
    "urn:x-nmos:format:data",
    "urn:x-nmos:format:multi",
]


def tag_value(body: Any) -> TagValue:
    if isinstance(body, str) or (isinstance(body, list) and all(isinstance(item, str) for item in body)):
        return body
    raise BadRequest("a tag value must be a string or an array of strings")


def string_value(body: Any, what: str) -> str:
    if not isinstance(body, str):
        raise BadRequest(f"{what} must be a JSON string")
    return body


def deletion_response(services: ServicesDep, deletion: Deletion) -> Response:
    """204 when the deletion is done (its media deleted now), 202 and where to follow a deferred one."""
    if deletion.deferred is not None:
        location = f"/flow-delete-requests/{deletion.deferred.id}"
        return JsonResponse(deletion.deferred.to_json(), status=202, headers={"Location": location})
    delete_released(services.store, services.media, deletion.released)
    return no_content()
