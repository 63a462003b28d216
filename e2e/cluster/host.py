"""This machine, as the e2e cluster and its images use it: commands and Debian packages. They live in
tests/debian.py, which the tests' PostgreSQL installs with too; this module puts tests/ on the path for the
scripts run directly (`python e2e/cluster/kind_cluster.py`), where pytest's `pythonpath` does not apply."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from debian import install_debian_packages, run

__all__ = ["install_debian_packages", "run"]
