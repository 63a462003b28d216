"""The spec's own JSON schemas (vendored in `spec_schemas/`), used to validate request bodies."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .errors import BadRequest
from .timerange import pattern_problem


@cache
def _registry() -> Registry:
    folder = resources.files("tams_api") / "spec_schemas"
    entries = []
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            contents = json.loads(item.read_text())
            entries.append((item.name, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(entries)


def schema(name: str) -> dict[str, Any]:
    return _registry().contents(name)


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": name}, registry=_registry())


def check(name: str, document: Any, what: str) -> None:
    """Raise BadRequest naming the first problem if `document` does not match spec schema `name`."""
    error = best_match(validator(name).iter_errors(document))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        if error.validator in ("oneOf", "anyOf", "not"):
            message = f"does not match exactly one of the forms the spec allows ({error.validator})"
        elif error.validator == "pattern" and (
            explained := pattern_problem(error.validator_value, str(error.instance))
        ):
            message = explained
        else:
            message = error.message[:300]
        raise BadRequest(f"invalid {what}{f' at {where}' if where else ''}: {message}")


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every vendored schema by file name (for the OpenAPI document)."""
    folder = resources.files("tams_api") / "spec_schemas"
    return {item.name: json.loads(item.read_text()) for item in folder.iterdir() if item.name.endswith(".json")}
