"""The TAMS 8.2 spec as tests read it: its JSON schemas and what its OpenAPI document says each response is.

Everything here comes from the real spec directory (`../shared/tams-spec` beside the checkout), never from
the copy vendored into the package, so a test cannot pass because product and test share a mistake.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "tams-spec"
SCHEMA_DIR = SPEC_DIR / "schemas"
OPENAPI_PATH = SPEC_DIR / "TimeAddressableMediaStore.yaml"
ENDPOINTS_PATH = SPEC_DIR / "ENDPOINTS.txt"

# Schema files are registered as "schemas/<name>", the way the OpenAPI document names them; their own
# relative references ("uuid.json") then resolve beside them.
SCHEMA_PREFIX = "schemas/"
ERROR_SCHEMA = "error.json"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats only constrain strings
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # rejects e.g. month 13
    return True


@cache
def registry() -> Registry:
    resources = [
        (SCHEMA_PREFIX + path.name, Resource.from_contents(json.loads(path.read_text()), DRAFT202012))
        for path in sorted(SCHEMA_DIR.glob("*.json"))
    ]
    return Registry().with_resources(resources)


def schema_ref(name: str) -> dict[str, str]:
    """A schema that is spec schema file `name` (e.g. "flow-get.json")."""
    return {"$ref": SCHEMA_PREFIX + name}


def array_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": schema_ref(name)}


def problems(document: Any, schema: dict[str, Any] | str) -> list[str]:
    """Every way `document` fails `schema` (a spec schema file name or a schema using "schemas/..." refs)."""
    validator = Draft202012Validator(
        schema_ref(schema) if isinstance(schema, str) else schema,
        registry=registry(),
        format_checker=FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message[:300]}"
        for error in validator.iter_errors(document)
    ]


def assert_valid(document: Any, schema: dict[str, Any] | str) -> None:
    found = problems(document, schema)
    assert not found, f"body does not match {schema}:\n" + "\n".join(found) + f"\nbody: {document!r}"[:2000]


# -- the OpenAPI document -------------------------------------------------------------------------------


@cache
def openapi() -> dict[str, Any]:
    return yaml.load(OPENAPI_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def operation(method: str, path: str) -> dict[str, Any]:
    """The spec's operation for a method and a path template such as "/flows/{flowId}"."""
    paths = openapi()["paths"]
    assert path in paths, f"{path} is not a path of the spec"
    assert method.lower() in paths[path], f"the spec has no {method.upper()} {path}"
    return paths[path][method.lower()]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = openapi()
        for part in ref[2:].split("/"):
            target = target[part]
        return {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    return node


def documented_response(method: str, path: str, status: int) -> dict[str, Any]:
    responses = operation(method, path)["responses"]
    assert str(status) in responses, (
        f"{method.upper()} {path} answered {status}; the spec documents only {sorted(responses)}"
    )
    return _resolve(responses[str(status)])


@cache
def endpoints() -> list[tuple[str, str]]:
    """(METHOD, path template) of every operation ENDPOINTS.txt lists."""
    found = []
    for line in ENDPOINTS_PATH.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        method, path = line.split()[:2]
        found.append((method, path))
    return found


# -- responses ------------------------------------------------------------------------------------------

_HEADER_VALUE = {
    "integer": lambda text: int(text),
    "boolean": lambda text: {"true": True, "false": False}[text],
}
_LINK_NEXT = re.compile(r'^<(?P<url>[^>]+)>;\s*rel="?next"?$')


def next_link(response: httpx.Response) -> str | None:
    """The URL of `Link: <...>; rel="next"`, if the response has one."""
    link = response.headers.get("Link")
    if link is None:
        return None
    match = _LINK_NEXT.match(link.strip())
    assert match, f'Link header {link!r} is not of the form <url>; rel="next"'
    return match.group("url")


def _check_headers(response: httpx.Response, documented: dict[str, Any], body: Any) -> None:
    headers = response.headers
    for name, spec in documented.items():
        schema = spec.get("schema", {})
        if name in headers and schema.get("type") in _HEADER_VALUE:
            try:
                value = _HEADER_VALUE[schema["type"]](headers[name])
            except (KeyError, ValueError):
                raise AssertionError(f"header {name}: {headers[name]!r} is not a {schema['type']}") from None
        else:
            value = headers.get(name)
        if value is not None:
            assert_valid(value, schema)
    if "X-Paging-Limit" in documented:
        assert "X-Paging-Limit" in headers, "a paged listing must report X-Paging-Limit"
    if "X-Paging-Count" in documented:
        assert headers.get("X-Paging-Count") == str(len(body)), "X-Paging-Count must count the returned items"
    if "X-Paging-Reverse-Order" in documented:
        assert "X-Paging-Reverse-Order" in headers, "a listing must report X-Paging-Reverse-Order"
    if "X-Paging-Timerange" in documented and body:
        assert "X-Paging-Timerange" in headers, "a non-empty segment listing must report X-Paging-Timerange"
    if "Link" in documented:
        url = next_link(response)
        next_key = headers.get("X-Paging-NextKey")
        assert (url is None) == (next_key is None), "Link rel=next and X-Paging-NextKey come together"
        if url is not None:
            assert parse_qs(urlsplit(url).query).get("page") == [next_key], "Link must carry page=<X-Paging-NextKey>"


def check_response(response: httpx.Response, path: str) -> Any:
    """Assert `response` is one the spec documents for its request on `path` (a spec path template), and
    return its JSON body (None where the spec documents no body).

    Status codes must be documented; success bodies must match the schema the spec names; error bodies
    must be error.json; HEAD and bodiless responses must have no body; documented paging headers must hold.
    """
    method = response.request.method
    documented = documented_response(method, path, response.status_code)
    if method == "HEAD":
        assert response.content == b"", "HEAD must not return a body"
        return None
    if response.status_code >= 400:
        body = response.json()
        assert_valid(body, ERROR_SCHEMA)
        return body
    content = documented.get("content")
    if not content:
        assert response.content == b"", f"{method} {path} {response.status_code} has no body in the spec"
        return None
    assert response.headers["content-type"].split(";")[0] == "application/json"
    body = response.json()
    assert_valid(body, content["application/json"].get("schema", {}))
    _check_headers(response, documented.get("headers", {}), body)
    return body


def event_schema(event_type: str) -> dict[str, Any]:
    """The schema of a webhook event's body, from the spec's `webhooks` section."""
    return openapi()["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
