"""This machine's commands and Debian packages: what tests/ (PostgreSQL for the tests) and e2e/cluster/ (the
kind cluster and its images, through e2e/cluster/host.py) install on a fresh machine, in one place."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence


def run(
    command: Sequence[str], *, check: bool = True, env: dict[str, str] | None = None, input: str | None = None
) -> str:
    """A command's output; with `check`, an error naming the command and the tail of what it said when it fails.
    Without `input` its stdin is empty, so nothing waits on the terminal."""
    result = subprocess.run(
        command, env=env, input=input, stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def install_debian_packages(packages: Sequence[str]) -> None:
    """apt-get install of those not installed yet (CI starts on a fresh machine)."""
    # dpkg-query exits non-zero when a package is not installed: its output is what counts.
    listed = run(["dpkg-query", "--show", "--showformat", "${Package} ${db:Status-Status}\n", *packages], check=False)
    installed = {line.split()[0] for line in listed.splitlines() if line.endswith(" installed")}
    missing = [package for package in packages if package not in installed]
    if missing:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], env=environment)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=environment)
