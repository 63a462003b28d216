"""The image's Dockerfile, read statically (`make e2e` builds and runs the image itself, through
e2e/cluster/images.py), and `make image`'s choice of builder and flags.

What is checked is what the pods rely on: a numeric non-root user (`runAsNonRoot` can only verify a number),
`tams-api` as the entry point (the operator's pods pass only args), nothing written outside /tmp, the base
image coming in as a build argument, and no test extras in the image."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from operator_harness import ROOT
from tams_api.__main__ import main as api_cli

Instruction = tuple[str, str]  # (INSTRUCTION, its arguments)


def instructions(dockerfile: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    joined = dockerfile.read_text().replace("\\\n", " ")
    parsed = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            parsed.append((keyword.upper(), " ".join(arguments.split())))
    return parsed


INSTRUCTIONS = instructions(ROOT / "Dockerfile")
FINAL_STAGE = INSTRUCTIONS[max(i for i, (keyword, _) in enumerate(INSTRUCTIONS) if keyword == "FROM") :]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def final(keyword: str) -> list[str]:
    return [arguments for found, arguments in FINAL_STAGE if found == keyword]


def environment() -> dict[str, str]:
    return dict(pair.split("=", 1) for arguments in final("ENV") for pair in shlex.split(arguments))


def test_the_base_image_is_a_build_argument_every_stage_uses() -> None:
    keyword, arguments = INSTRUCTIONS[0]
    assert (keyword, arguments.split("=")[0]) == ("ARG", "BASE_IMAGE"), "ARG BASE_IMAGE comes first"
    stages = [arguments.split()[0] for keyword, arguments in INSTRUCTIONS if keyword == "FROM"]
    # Build and final stage on the same base: the venv's interpreter links point into it.
    assert len(stages) >= 2 and set(stages) == {"${BASE_IMAGE}"}


def test_the_final_stage_runs_as_a_numeric_non_root_user() -> None:
    [user] = final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert int(uid) == 10001 and int(gid) == 10001, "the pods' fsGroup"


def test_the_entry_point_is_the_api_and_the_operator_is_in_the_image() -> None:
    [entrypoint] = final("ENTRYPOINT")
    assert json.loads(entrypoint) == ["tams-api"]
    assert {"tams-api", "tams-operator"} <= set(SCRIPTS), "the chart runs command: [tams-operator]"


def test_the_default_command_serves_on_every_interface(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    [command] = final("CMD")
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    monkeypatch.setenv("TAMS_DATA_DIR", str(tmp_path))
    api_cli(json.loads(command))  # the real CLI parses the image's default arguments
    assert (served[0]["host"], served[0]["port"]) == ("0.0.0.0", 8000)
    assert "8000" in final("EXPOSE")


def test_python_writes_nothing_outside_tmp() -> None:
    variables = environment()
    assert variables["PYTHONDONTWRITEBYTECODE"] == "1"
    assert variables["PYTHONUNBUFFERED"] == "1"
    assert Path(variables["HOME"]).is_relative_to("/tmp"), "the pods mount an emptyDir at /tmp only"


def test_only_the_service_is_installed() -> None:
    installs = [arguments for keyword, arguments in INSTRUCTIONS if keyword == "RUN" and "pip install" in arguments]
    assert installs and all("[" not in command for command in installs), "no extras (the test extras)"
    assert not [arguments for arguments in final("RUN") if "pip" in arguments], "no installing in the final stage"
    assert any(arguments.startswith("--from=build") for arguments in final("COPY"))


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    included = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    copied = {
        arguments.split()[0]
        for keyword, arguments in INSTRUCTIONS
        if keyword == "COPY" and not arguments.startswith("--from")
    }
    assert copied <= included


def run_make_image(path: str, *variables: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make
    return subprocess.run(
        [make, "-C", str(ROOT), "image", "IMAGE=tams-operator:test", "BASE_IMAGE=local/debian-python:3.11", *variables],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )


def fake_podman(folder: Path) -> str:
    podman = folder / "podman"
    podman.write_text('#!/bin/sh\necho "podman was asked: $*"\n')
    podman.chmod(0o755)
    return str(folder)


def test_make_image_builds_with_podman_when_present(tmp_path: Path) -> None:
    built = run_make_image(fake_podman(tmp_path))
    assert built.returncode == 0, built.stderr
    expected = "build --build-arg BASE_IMAGE=local/debian-python:3.11 -t tams-operator:test ."
    assert f"podman was asked: {expected}" in built.stdout


def test_make_image_passes_the_extra_builder_flags(tmp_path: Path) -> None:
    built = run_make_image(fake_podman(tmp_path), "IMAGE_BUILD_FLAGS=--network=host --volume /a:/b:ro")
    assert built.returncode == 0, built.stderr
    expected = (
        "build --build-arg BASE_IMAGE=local/debian-python:3.11 --network=host --volume /a:/b:ro -t tams-operator:test ."
    )
    assert f"podman was asked: {expected}" in built.stdout


def test_make_image_says_what_is_missing_without_a_builder(tmp_path: Path) -> None:
    refused = run_make_image(str(tmp_path))  # a PATH with neither podman nor docker
    assert refused.returncode != 0
    assert "needs podman, or docker with a running daemon" in refused.stderr
