"""How the code is laid out: small modules, so that each reads as one concept."""

from __future__ import annotations

import ast
import inspect
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import tams_api
from tams_api import errors
from tams_api.errors import TamsError
from tams_api.stores import metadata

MAX_MODULE_LINES = 600


def test_no_module_of_the_service_is_over_600_lines() -> None:
    root = Path(tams_api.__file__).parent
    sizes = {path.relative_to(root.parent): len(path.read_text().splitlines()) for path in root.rglob("*.py")}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


def _errors_raised(tree: ast.AST) -> Iterator[str]:
    """The messages of the spec errors a module makes, placeholders written `{}`."""
    kinds = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, TamsError)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in kinds and node.args:
            message = node.args[0]
            if isinstance(message, ast.Constant) and isinstance(message.value, str):
                yield message.value
            elif isinstance(message, ast.JoinedStr):
                yield "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in message.values)


def test_each_error_message_is_written_in_one_module() -> None:
    root = Path(tams_api.__file__).parent
    modules: dict[str, set[str]] = defaultdict(set)
    for path in root.rglob("*.py"):
        for message in _errors_raised(ast.parse(path.read_text())):
            modules[message].add(str(path.relative_to(root)))
    assert len(modules) > 50, "the messages are found"
    assert {message: where for message, where in modules.items() if len(where) > 1} == {}


def test_the_metadata_stores_decide_nothing_the_spec_says() -> None:
    stores = Path(tams_api.__file__).parent / "stores"
    for backend in ("sql", "sqlite", "postgres", "vast"):
        raised = {
            message
            for path in (stores / backend).rglob("*.py")
            for message in _errors_raised(ast.parse(path.read_text()))
        }
        assert {message for message in raised if not message.startswith(_STORE_CONDITIONS)} == set(), backend


# What a store may still say: its own condition (busy, unreachable), never a rule of the spec.
_STORE_CONDITIONS = (
    *("the metadata store", "every metadata store", "concurrent writers"),
    *("TAMS_VAST_", "VAST ", "TAMS_POSTGRES_", "PostgreSQL ", "text with a NUL"),
)


def test_the_repository_interface_is_documented_and_narrow() -> None:
    methods = [
        node
        for node in ast.parse(inspect.getsource(metadata)).body
        if isinstance(node, ast.ClassDef) and node.name == "MetadataStore"
        for node in node.body
        if isinstance(node, ast.FunctionDef)
    ]
    assert [method.name for method in methods if ast.get_docstring(method) is None] == []
    assert len(methods) < 58, "smaller than before the domain layer (issue 16)"
