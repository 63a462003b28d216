"""The operator's typed specs (TamsStore, TamsBackup, TamsScheduledBackup) mirror their CRDs: the same fields,
the same required ones, the same defaults, at every level. A field added to one and not the other, or a default
changed in one, fails here."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel
from tams_operator.spec import TamsBackupSpec, TamsScheduledBackupSpec, TamsStoreSpec

from operator_harness import ROOT, documents

MODELS = {"tamsstores": TamsStoreSpec, "tamsbackups": TamsBackupSpec, "tamsscheduledbackups": TamsScheduledBackupSpec}


def spec_schema(plural: str) -> dict[str, Any]:
    crd = documents(ROOT / "crds" / f"{plural}.yaml")[0]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


UNSET = (None, {}, (), [])  # what the model holds for a field the CRD leaves unset


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (itself, optional, or as the items of a tuple); None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple):
        found = [model_of(argument) for argument in typing.get_args(annotation)]
        return next((model for model in found if model is not None), None)
    return None


def fields_of(schema: dict[str, Any], model: type[BaseModel], where: str = "spec") -> list[tuple[str, dict, Any, bool]]:
    """(path, CRD schema, model field, required by the CRD) for every field at every level, checking on the way that
    the names match."""
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    declared = schema.get("properties", {})
    assert set(declared) == set(fields), f"{where}: CRD {sorted(declared)} vs model {sorted(fields)}"
    found = []
    for name, field in fields.items():
        child, path = declared[name], f"{where}.{name}"
        found.append((path, child, field, name in schema.get("required", [])))
        nested = model_of(field.annotation)
        if nested is not None and not child.get("x-kubernetes-preserve-unknown-fields"):
            found += fields_of(child.get("items", child), nested, path)
    return found


FIELDS = [
    (f"{plural}:{path}", *found)
    for plural, model in MODELS.items()
    for path, *found in fields_of(spec_schema(plural), model)
]


@pytest.mark.parametrize(("path", "schema", "field", "required"), FIELDS, ids=[item[0] for item in FIELDS])
def test_each_field_has_the_crds_default_and_requiredness(path: str, schema: dict, field: Any, required: bool) -> None:
    assert field.is_required() == required, f"{path}: required in the CRD: {required}"
    if required:
        return
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):  # an object absent or {}: what its fields' defaults make (checked on their own)
        assert default == type(default).model_validate(schema.get("default", {})), path
    elif "default" in schema:
        assert default == schema["default"], f"{path}: the model defaults to {default!r}"
    else:
        assert default in UNSET, f"{path}: the model defaults to {default!r}, the CRD leaves it unset"


def test_a_spec_as_the_api_server_stores_it_is_read_whole() -> None:
    spec = TamsStoreSpec.model_validate(
        {
            "replicas": 3,
            "metadata": {"backend": "postgres", "postgres": {"uriSecretRef": {"name": "db-app"}, "schema": "news"}},
            "media": {"backend": "s3", "s3": {"bucket": "media"}, "extraBackends": [{"label": "cold", "bucket": "c"}]},
        }
    )
    assert spec.metadata.postgres is not None and spec.metadata.postgres.uri_secret_ref.key == "uri"
    assert spec.metadata.postgres.schema_name == "news"
    assert spec.media.extra_backends[0].region == "us-east-1"
    assert spec.metadata.sqlite.storage_size == "1Gi" and spec.reclaim_policy == "Retain"


def test_a_field_of_a_newer_crd_is_ignored() -> None:
    assert TamsStoreSpec.model_validate({"replicas": 2, "somethingNew": {"a": 1}}).replicas == 2
