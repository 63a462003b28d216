"""Every method and path of the spec's ENDPOINTS.txt is served, and nothing else."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from tams_api import EXTENSION_PREFIX
from tams_api.app import create_app
from tams_api.config import Settings

SPEC = Path(__file__).resolve().parents[2] / "shared" / "tams-spec"


def spec_routes() -> set[tuple[str, str]]:
    routes = set()
    for line in (SPEC / "ENDPOINTS.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        method, path = line.split()[:2]
        routes.add((method, re.sub(r"\{[^}]+\}", "{}", path)))
    return routes


def served_routes() -> set[tuple[str, str]]:
    """Operations of the app's own OpenAPI document (generated from its routes)."""
    document = create_app(Settings(data_dir=Path(tempfile.mkdtemp()))).openapi()
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
        for path, operations in document["paths"].items()
        for method in operations
    }


def test_every_spec_route_is_served() -> None:
    missing = spec_routes() - served_routes()
    assert not missing, f"spec routes not served: {sorted(missing)}"


def test_nothing_beyond_the_spec_but_the_extensions() -> None:
    spec_paths = {path for _, path in spec_routes()}
    extensions = {(method, path) for method, path in served_routes() if path.startswith(f"{EXTENSION_PREFIX}/")}
    assert extensions, "the extensions are served"
    assert not any(path.startswith(EXTENSION_PREFIX) for path in spec_paths), "the prefix is off the spec's paths"
    assert served_routes() - extensions <= spec_routes()
