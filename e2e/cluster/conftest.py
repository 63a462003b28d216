"""What `make e2e` runs its scenario on: a kind cluster (kind_cluster.py), the project's image built and loaded into
it (images.py), the operator installed with the Helm chart as a user would install it, and SeaweedFS running as a
pod behind a Service for the S3 stores (cluster_setup.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

import addons
import certificate_addons
import cluster_setup
import images
import ingress_addons
import kind_cluster
from cluster_access import Cluster

# Figures the scenario measures, printed at the end of `make e2e` (bench/README.md quotes them).
FIGURES: dict[str, object] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "e2e figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The GitOps steps first: their operator is the one Argo CD installs from the chart (and removes at their end),
    so they run before any test installs it with Helm (the `operator` fixture)."""
    items.sort(key=lambda item: item.path.name != "test_gitops.py")  # a stable sort: each file's order stays


@pytest.fixture(scope="session")
def figures() -> dict[str, object]:
    return FIGURES


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The images built, a fresh cluster with them loaded; torn down after the session unless E2E_KEEP=1, and then
    nothing of it is left on the host."""
    keep = os.environ.get("E2E_KEEP") == "1"
    before = kind_cluster.host_state()
    started = time.monotonic()
    with cluster_setup.running_cluster(keep) as running:
        FIGURES["images built, cluster up, images loaded (s)"] = round(time.monotonic() - started, 1)
        FIGURES["TAMS image size (MB)"] = round(images.image_size(images.TAMS_IMAGE) / 1e6, 1)
        FIGURES["nodes"] = len(running.kubectl("get", "nodes", "--no-headers").stdout.splitlines())
        yield running
    if not keep:
        assert kind_cluster.leftovers(before) == [], "the cluster's teardown left these on the host"


@pytest.fixture(scope="session")
def admin(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.admin() as client:
        yield client


@pytest.fixture(scope="session")
def operator(cluster: Cluster, admin: httpx.Client) -> str:
    """The operator installed by the chart and running; the release name."""
    cluster_setup.install_operator(cluster.kubeconfig, admin)
    return cluster_setup.RELEASE


@pytest.fixture(scope="session")
def seaweedfs(admin: httpx.Client) -> str:
    """SeaweedFS in the cluster; its S3 endpoint by Service name."""
    return cluster_setup.deploy_seaweedfs(admin)


@pytest.fixture(scope="session")
def cert_manager(admin: httpx.Client) -> str:
    """cert-manager's controller with the e2e ClusterIssuers (certificate_addons.CA_ISSUER among them) Ready; the PEM
    of the CA that CA_ISSUER signs with, for clients to trust."""
    certificate_addons.deploy_cert_manager(admin)
    return certificate_addons.ca_pem(admin)


@pytest.fixture(scope="session")
def traefik(admin: httpx.Client, cert_manager: str) -> str:
    """Traefik (IngressClass and GatewayClass `traefik`, the Gateway ingress_addons.GATEWAY) serving; the address of
    its node, where ports 80 and 443 reach it."""
    return ingress_addons.deploy_traefik(admin)


@pytest.fixture(scope="session")
def metrics(admin: httpx.Client) -> str:
    """metrics-server serving the metrics API (`kubectl top`, HPAs on CPU); the APIService's name."""
    addons.deploy_metrics_server(admin)
    return addons.METRICS_API
