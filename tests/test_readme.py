"""The README's walk-through, run verbatim against a live server started like `make run` starts it."""

from __future__ import annotations

import json
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
from control_plane import ControlPlane, free_port, kubernetes_binaries
from helpers import new_id, video_flow
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


WALKTHROUGH_FLOW = "5fbec3b1-1b0f-417d-9059-8b94a47197ed"


def run_walkthrough(server: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The block as a person pastes it into bash (it sets its own options), its temporary folder made in `cwd`."""
    environment = {**os.environ, "TAMS": server, "TMPDIR": str(cwd)}
    return subprocess.run(["bash", "-c", walkthrough()], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl, not installed")


@needs_curl
def test_walkthrough_works_verbatim(live_server: str, tmp_path: Path) -> None:
    result = run_walkthrough(live_server, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "media round trip OK" in result.stdout
    assert result.stdout.rstrip().endswith("204")
    # It worked in the temporary folder it named, and left the current one as it was.
    folder = Path(re.search(r"working in (\S+)", result.stdout).group(1))
    assert sorted(path.name for path in folder.iterdir()) == ["downloaded.ts", "segment.ts", "segments.json",
                                                               "storage.json"]  # fmt: skip
    assert [path for path in tmp_path.iterdir() if path.name != "data"] == [folder], "nothing else written here"
    # The segment is gone.
    assert httpx.get(f"{live_server}/flows/{WALKTHROUGH_FLOW}/segments").json() == []


@needs_curl
def test_the_walkthrough_stops_at_a_failing_step_with_the_apis_error(live_server: str, tmp_path: Path) -> None:
    """The flow exists already, read-only: step 1 is refused, the API's error is shown and nothing after it ran."""
    flow = video_flow(WALKTHROUGH_FLOW, new_id(), read_only=True)
    created = httpx.put(f"{live_server}/flows/{WALKTHROUGH_FLOW}", json=flow)
    assert created.status_code == 201, created.text
    result = run_walkthrough(live_server, tmp_path)
    assert result.returncode != 0
    assert json.loads(result.stdout.splitlines()[-1])["type"] == "Forbidden", result.stdout
    assert "stopped: the step above failed" in result.stderr
    folder = Path(re.search(r"working in (\S+)", result.stdout).group(1))
    assert list(folder.iterdir()) == [], "no step after the first ran"


@needs_curl
def test_the_walkthrough_without_a_server_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_walkthrough(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert result.returncode != 0
    assert "Failed to connect" in result.stderr and "Traceback" not in result.stderr, result.stderr


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
