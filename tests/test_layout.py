"""How the code is laid out: small modules, so that each reads as one concept."""

from __future__ import annotations

from pathlib import Path

import tams_api

MAX_MODULE_LINES = 600


def test_no_module_of_the_service_is_over_600_lines() -> None:
    root = Path(tams_api.__file__).parent
    sizes = {path.relative_to(root.parent): len(path.read_text().splitlines()) for path in root.rglob("*.py")}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
