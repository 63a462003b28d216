"""Every method and path of the spec's ENDPOINTS.txt is served and documented, and nothing else but the
extensions named here (kept off the spec's paths and out of the OpenAPI document)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from tams_api import EXTENSION_PREFIX
from tams_api.app import create_app
from tams_api.config import Settings

SPEC = Path(__file__).resolve().parents[2] / "shared" / "tams-spec"

# Served beyond the spec, each for a reason: media bytes of the filesystem store on signed URLs, probes and
# metrics for Kubernetes and Prometheus, and FastAPI's own documentation of the API.
EXTENSION_ROUTES = {
    ("PUT", "/media/{}/{}"),
    ("GET", "/media/{}/{}"),
    ("HEAD", "/media/{}/{}"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/ui"),
}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def spec_routes() -> set[tuple[str, str]]:
    routes = set()
    for line in (SPEC / "ENDPOINTS.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        method, path = line.split()[:2]
        routes.add((method, _shape(path)))
    return routes


@cache
def app() -> FastAPI:
    return create_app(Settings(data_dir=Path(tempfile.mkdtemp())))


def documented_routes() -> set[tuple[str, str]]:
    """Operations of the app's own OpenAPI document (generated from its routes)."""
    return {
        (method.upper(), _shape(path)) for path, operations in app().openapi()["paths"].items() for method in operations
    }


def _leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI keeps an included router whole
        yield from _leaf_routes(included.routes) if included is not None else (route,)


def served_routes() -> set[tuple[str, str]]:
    """Every method and path the app answers; Starlette's implicit HEAD of GET routes counts only where the
    spec or an extension means it."""
    return {
        (method, _shape(route.path))
        for route in _leaf_routes(app().routes)
        if isinstance(route, Route | APIRoute)
        for method in route.methods or ()
        if method != "HEAD" or (method, _shape(route.path)) in spec_routes() | EXTENSION_ROUTES
    }


def test_every_spec_route_is_served() -> None:
    missing = spec_routes() - documented_routes()
    assert not missing, f"spec routes not served: {sorted(missing)}"


def extension_routes(routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The vendor extensions (analytics, soft delete), all under their own prefix."""
    return {(method, path) for method, path in routes if path.startswith(f"{EXTENSION_PREFIX}/")}


def test_the_openapi_document_has_nothing_beyond_the_spec_but_the_prefixed_extensions() -> None:
    documented = documented_routes()
    assert extension_routes(documented), "the extensions are documented"
    assert documented - extension_routes(documented) <= spec_routes()


def test_nothing_is_served_beyond_the_spec_but_the_named_and_prefixed_extensions() -> None:
    served = served_routes()
    assert not any(path.startswith(EXTENSION_PREFIX) for _, path in spec_routes()), "the prefix is off the spec's"
    assert served - extension_routes(served) - spec_routes() == EXTENSION_ROUTES


SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")


def test_openapi_document_is_the_reviewed_one() -> None:
    """The OpenAPI document is what clients generate code from: a change to it (a route served ahead of FastAPI's
    router, a parameter parsed by hand) must be one someone meant. Update the snapshot when it is:
    `.venv/bin/python -c 'import tests.test_routes as t; t.write_snapshot()'`."""
    assert _document() == orjson.loads(SNAPSHOT.read_bytes()), "the OpenAPI document changed; see the docstring"


def _document() -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        document = create_app(Settings(data_dir=Path(data_dir))).openapi()
    document["info"].pop("version")  # the release's, changed by every release
    return document


def write_snapshot() -> None:
    SNAPSHOT.write_bytes(orjson.dumps(_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
