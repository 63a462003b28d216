"""The project's own OpenAPI document: FastAPI's routes, with request and response bodies described by the
spec's JSON schemas (placed under components/schemas), so docs and schema-driven tests speak TAMS."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from . import schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _ref(value.removesuffix(".json"))["$ref"] if key == "$ref" else _rewrite_refs(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


STRING = {"type": "string"}
BIT_RATE = {"type": "integer", "minimum": 0}
TAG_VALUE = {"oneOf": [STRING, _array(STRING)]}

REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/service", "post"): _ref("service-post"),
    ("/service/profiles/{profile_id}", "post"): _ref("profile"),
    ("/sources/{source_id}/tags/{name}", "put"): TAG_VALUE,
    ("/sources/{source_id}/label", "put"): STRING,
    ("/sources/{source_id}/description", "put"): STRING,
    ("/flows/{flow_id}", "put"): _ref("flow-put"),
    ("/flows/{flow_id}/tags/{name}", "put"): TAG_VALUE,
    ("/flows/{flow_id}/label", "put"): STRING,
    ("/flows/{flow_id}/description", "put"): STRING,
    ("/flows/{flow_id}/max_bit_rate", "put"): BIT_RATE,
    ("/flows/{flow_id}/avg_bit_rate", "put"): BIT_RATE,
    ("/flows/{flow_id}/read_only", "put"): {"type": "boolean"},
    ("/flows/{flow_id}/flow_collection", "put"): _ref("flow-collection"),
    ("/flows/{flow_id}/segments", "post"): {"oneOf": [_ref("flow-segment-post"), _array(_ref("flow-segment-post"))]},
    ("/flows/{flow_id}/storage", "post"): _ref("flow-storage-post"),
    ("/objects/{object_id}/instances", "post"): _ref("objects-instances-post"),
    ("/service/webhooks", "post"): _ref("webhook-post"),
    ("/service/webhooks/{webhook_id}", "put"): _ref("webhook-put"),
}

# Success bodies per (path, method, status); None: no body.
RESPONSE_BODIES: dict[tuple[str, str], dict[str, dict[str, Any] | None]] = {
    ("/", "get"): {"200": _array(STRING)},
    ("/service", "get"): {"200": _ref("service")},
    ("/service", "post"): {"200": None},
    ("/service/storage-backends", "get"): {"200": _ref("storage-backends-list")},
    ("/service/profiles", "get"): {"200": _array(_ref("profile"))},
    ("/service/profiles/{profile_id}", "get"): {"200": _ref("profile")},
    ("/service/profiles/{profile_id}", "post"): {"201": _ref("profile")},
    ("/sources", "get"): {"200": _array(_ref("source"))},
    ("/sources/{source_id}", "get"): {"200": _ref("source")},
    ("/sources/{source_id}/tags", "get"): {"200": _ref("tags")},
    ("/sources/{source_id}/tags/{name}", "get"): {"200": TAG_VALUE},
    ("/sources/{source_id}/label", "get"): {"200": STRING},
    ("/sources/{source_id}/description", "get"): {"200": STRING},
    ("/flows", "get"): {"200": _array(_ref("flow-get"))},
    ("/flows/{flow_id}", "get"): {"200": _ref("flow-get")},
    ("/flows/{flow_id}", "put"): {"201": _ref("flow-get"), "204": None},
    ("/flows/{flow_id}/tags", "get"): {"200": _ref("tags")},
    ("/flows/{flow_id}/tags/{name}", "get"): {"200": TAG_VALUE},
    ("/flows/{flow_id}/label", "get"): {"200": STRING},
    ("/flows/{flow_id}/description", "get"): {"200": STRING},
    ("/flows/{flow_id}/max_bit_rate", "get"): {"200": BIT_RATE},
    ("/flows/{flow_id}/avg_bit_rate", "get"): {"200": BIT_RATE},
    ("/flows/{flow_id}/read_only", "get"): {"200": {"type": "boolean"}},
    ("/flows/{flow_id}/flow_collection", "get"): {"200": _ref("flow-collection")},
    ("/flows/{flow_id}/segments", "get"): {"200": _array(_ref("flow-segment"))},
    ("/flows/{flow_id}/segments", "post"): {"200": _ref("flow-segment-bulk-failure"), "201": None},
    ("/flows/{flow_id}/storage", "post"): {"201": _ref("flow-storage")},
    ("/objects/{object_id}", "get"): {"200": _ref("object")},
    ("/objects/{object_id}/instances", "post"): {"201": None},
    ("/objects/{object_id}/instances", "delete"): {"204": None},
    ("/flows/{flow_id}", "delete"): {"202": _ref("deletion-request"), "204": None},
    ("/flows/{flow_id}/segments", "delete"): {"202": _ref("deletion-request"), "204": None},
    ("/service/webhooks", "get"): {"200": _array(_ref("webhook-get"))},
    ("/service/webhooks", "post"): {"201": _ref("webhook-get")},
    ("/service/webhooks/{webhook_id}", "get"): {"200": _ref("webhook-get")},
    ("/service/webhooks/{webhook_id}", "put"): {"201": _ref("webhook-get")},
    ("/service/webhooks/{webhook_id}", "delete"): {"204": None},
    ("/flow-delete-requests", "get"): {"200": _array(_ref("deletion-request"))},
    ("/flow-delete-requests/{request_id}", "get"): {"200": _ref("deletion-request")},
}

ERROR = {"description": "Error", "content": {"application/json": {"schema": _ref("error")}}}


def _json(schema: dict[str, Any] | None, description: str = "") -> dict[str, Any]:
    if schema is None:
        return {"description": description or "No content"}
    return {"description": description or "Success", "content": {"application/json": {"schema": schema}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("ValidationError", "HTTPValidationError"):
        components.pop(name, None)
    for file_name, contents in schemas.all_schemas().items():
        components[file_name.removesuffix(".json")] = _rewrite_refs(contents)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            documented = RESPONSE_BODIES.get((path, "get" if method == "head" else method))
            if documented is not None:
                for status in [status for status in responses if status.startswith("2")]:
                    del responses[status]  # FastAPI's generic success entry
                for status, body in documented.items():
                    responses[status] = _json(None if method == "head" else body)
            responses["400"] = ERROR
            responses["404"] = ERROR
            if method in ("put", "post", "delete"):
                responses["403"] = ERROR
            if method == "head":
                responses["400"] = {"description": "Bad request"}
                responses["404"] = {"description": "Not found"}
            request_body = REQUEST_BODIES.get((path, method))
            if request_body is not None:
                operation["requestBody"] = {
                    "required": not path.endswith("/storage"),  # the storage request's body is optional
                    "content": {"application/json": {"schema": request_body}},
                }
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
