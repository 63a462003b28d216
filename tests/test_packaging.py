"""What `make run` installs on a fresh clone: the service's packages, none of the test tools (the test extra
weighs more than the service itself)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NEEDED_ANYWAY = {"pyyaml"}  # named by the test extra for the tests' own use; the operator's kopf needs it too


def test_make_run_installs_the_project_without_its_test_extra(tmp_path: Path) -> None:
    planned = subprocess.run(["make", "-n", "-B", "run", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    installs = [line.split("pip install", 1)[1].split() for line in planned.splitlines() if "pip install" in line]
    assert [words[-1] for words in installs] == ["pip", "."], installs  # pip itself, then the project, no extras


def test_the_project_alone_pulls_in_no_test_tool(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                    "--report", str(report), str(ROOT)], check=True, timeout=600)  # fmt: skip
    planned = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    test_tools = {Requirement(text).name.lower() for text in PROJECT["optional-dependencies"]["test"]}
    assert "fastapi" in planned and "uvicorn" in planned
    assert planned & (test_tools - {PROJECT["name"], *NEEDED_ANYWAY}) == set()
