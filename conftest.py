"""Servers that tests/ and e2e/ share, started once per session on first use (a conftest here at the root is
seen by both folders; pyproject's `pythonpath` puts tests/ on sys.path for the helper modules)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from control_plane import KUBE_USERS, ControlPlane, control_plane
from postgres_server import PostgresServer, postgres
from s3_server import S3Server, seaweedfs


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """Debian's PostgreSQL, with the role and database `tams`."""
    with postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real kube-apiserver and controller-manager on etcd."""
    with control_plane(tmp_path_factory.mktemp("kube"), users=KUBE_USERS) as plane:
        yield plane
