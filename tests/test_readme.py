"""The README's walk-through, run verbatim against a live server started like `make run` starts it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from tams_operator.config import OperatorSettings

from background import api_process
from control_plane import ControlPlane, kubernetes_binaries
from tams_api.config import BackupSettings, Settings

ROOT = Path(__file__).resolve().parent.parent


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walk-through", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the README has no walk-through block"
    return match.group(1)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    with api_process(tmp_path / "data") as url:
        yield url


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl, which is not installed")
def test_walkthrough_works_verbatim(live_server: str, tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        cwd=tmp_path,
        env={**os.environ, "TAMS": live_server},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "media round trip OK" in result.stdout
    assert result.stdout.rstrip().endswith("204")
    # The segment is gone.
    segments = httpx.get(f"{live_server}/flows/5fbec3b1-1b0f-417d-9059-8b94a47197ed/segments").json()
    assert segments == []


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    variables = [f"TAMS_{name.upper()}" for name in Settings.model_fields]
    variables += [f"TAMS_OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields]
    variables += [f"TAMS_BACKUP_{name.upper()}" for name in BackupSettings.model_fields]
    assert [variable for variable in variables if f"`{variable}`" not in readme] == []


def test_where_the_code_lives_names_modules_that_exist() -> None:
    section = (ROOT / "README.md").read_text().split("## Where the code lives", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    named = set(re.findall(r"`([a-z_/]+\.py)`", table))
    assert "domain/flows.py" in named
    assert [module for module in sorted(named) if not (ROOT / "tams_api" / module).is_file()] == []


def operator_section() -> str:
    return (ROOT / "README.md").read_text().split("## The operator", 1)[1].split("\n## ", 1)[0]


def test_the_operators_install_commands_and_example_work(kube: ControlPlane) -> None:
    """The kubectl lines of "The operator", run verbatim (with the test cluster's kubeconfig), and its example
    TamsStore accepted by the API server as written."""
    section = operator_section()
    commands = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert commands and example
    kubectl = [str(kubernetes_binaries() / "kubectl"), f"--kubeconfig={kube.kubeconfig()}"]
    lines = [line.split("#", 1)[0].split() for line in commands.group(1).splitlines()]
    for line in [line for line in lines if line and line[0] == "kubectl"]:
        ran = subprocess.run([*kubectl, *line[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0 or "AlreadyExists" in ran.stderr, ran.stderr
    namespace = yaml.safe_load(example.group(1))["metadata"]["namespace"]
    subprocess.run([*kubectl, "create", "namespace", namespace], capture_output=True, timeout=60)
    ran = subprocess.run([*kubectl, "apply", "--dry-run=server", "-f", "-"], input=example.group(1),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
