"""Vendor the TAMS 8.2 JSON schemas into the package, keeping only their normative structure.

The service validates request bodies against the spec's own schemas at run time, so it needs them
inside the package (the container has no ../shared). Prose (`description`, `title`, `examples`) is
dropped; a test checks the vendored copy still equals what this script makes from the spec.

    python scripts/vendor_spec.py [SPEC_DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC_DIR = ROOT.parent / "shared" / "tams-spec"
TARGET = ROOT / "tams_api" / "spec_schemas"
PROSE_KEYWORDS = {"description", "title", "examples", "example", "deprecated"}
# Keywords whose value maps property names to subschemas: their keys are data, not keywords.
NAME_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}


def strip_prose(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strip_prose(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in PROSE_KEYWORDS:
            continue
        if key in NAME_MAPS and isinstance(value, dict):
            result[key] = {name: strip_prose(sub) for name, sub in value.items()}
        else:
            result[key] = strip_prose(value)
    return result


def vendored_schemas(spec_dir: Path) -> dict[str, str]:
    """File name -> normalised JSON text of every schema in the spec."""
    return {
        path.name: json.dumps(strip_prose(json.loads(path.read_text())), indent=1, sort_keys=True) + "\n"
        for path in sorted((spec_dir / "schemas").glob("*.json"))
    }


def main() -> None:
    spec_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC_DIR
    TARGET.mkdir(parents=True, exist_ok=True)
    for stale in TARGET.glob("*.json"):
        stale.unlink()
    for name, text in vendored_schemas(spec_dir).items():
        (TARGET / name).write_text(text)
    shutil.copy(spec_dir / "LICENCE.md", TARGET / "LICENCE.md")
    print(f"vendored {len(list(TARGET.glob('*.json')))} schemas from {spec_dir}")


if __name__ == "__main__":
    main()
