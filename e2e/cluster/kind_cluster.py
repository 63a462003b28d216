"""The e2e cluster: kind (DESIGN.md §5).

Where Docker answers, kind runs on it with its stock node image, and the images under test are built by Docker.
Without Docker (as on this project's machines), kind runs with its podman provider on a node image assembled here
(node_image.py: nothing is pulled) and the images are those images.py builds with podman.

This machine reaches the cluster the way a kind user on Linux does: the API server through the kubeconfig kind
writes, and Services through the node's address: a route sends the Service range to the node, whose kube-proxy
takes it from there, so clients here use the names and ports pods use (presigned URLs, whose signature covers the
host, stay valid) and a rollout is seen through kube-proxy as pods see it.

    python e2e/cluster/kind_cluster.py up     # tears down leftovers first; prints the kubeconfig's path
    python e2e/cluster/kind_cluster.py down   # the cluster, its network, the route, and what `up` made on the host

State outlives `up` in the run folder (the kubeconfig, what `up` made), so `down` works from any shell and after a
crash; `up` always begins with `down`. It changes the host's routes and containers: root on Linux, `make e2e` only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

import images
import node_image
from cluster_access import Cluster
from host import run
from k8s_binaries import ensure

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("TAMS_E2E_RUN", "/run/tams-e2e"))
NAME = "tams-e2e"
SERVICE_SUBNET = "10.96.0.0/16"  # kind's default, named here because the host's route names it
DOCKER_BASE_IMAGE = "python:3.11-slim"  # the Dockerfile's default; Docker Hub is reachable where Docker runs
# kind's podman provider always mounts the host's kernel modules; this machine has none to offer.
MODULES = Path("/lib/modules")
MADE_MODULES = RUN / "made-lib-modules"


def kubeconfig_path() -> Path:
    return RUN / "kubeconfig"


def check_host() -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        raise SystemExit("the e2e cluster needs root on Linux (kind's containers, a route to the cluster's Services)")


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


class Provider:
    """kind on Docker where it answers, else on podman."""

    def __init__(self) -> None:
        self.docker = docker_answers()

    def kind(self, *arguments: str) -> str:
        if self.docker:
            kind = shutil.which("kind")
            if kind is None:
                raise SystemExit("the e2e cluster on Docker needs kind on the PATH")
            return run([kind, *arguments])
        environment = {**images.podman_environment(), "KIND_EXPERIMENTAL_PROVIDER": "podman"}
        return run([str(node_image.kind_binary()), *arguments], env=environment)

    def engine(self, *arguments: str) -> str:
        return run(["docker", *arguments]) if self.docker else images.podman(*arguments)

    def config(self) -> dict[str, object]:
        networking: dict[str, object] = {"serviceSubnet": SERVICE_SUBNET}
        if not self.docker:
            networking["disableDefaultCNI"] = True  # kindnetd is not served here: the node image brings its CNI
        return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "networking": networking}

    def build_images(self) -> None:
        """The TAMS and SeaweedFS images (images.CLUSTER_IMAGES)."""
        if not self.docker:
            for built in images.build(images.CLUSTER_IMAGES):
                print(built, file=sys.stderr)
            return
        run(["docker", "build", "-t", images.TAMS_IMAGE, str(ROOT)])
        with tempfile.TemporaryDirectory() as context:
            shutil.copy2(images.weed_path(), Path(context) / "weed")
            containerfile = str(images.HERE / "seaweedfs.Containerfile")
            run(["docker", "build", "--build-arg", f"BASE_IMAGE={DOCKER_BASE_IMAGE}", "-f", containerfile,
                 "-t", images.SEAWEEDFS_IMAGE, context])  # fmt: skip

    def create(self) -> None:
        config = RUN / "kind.yaml"
        config.write_text(yaml.safe_dump(self.config()))
        command = ["create", "cluster", "--name", NAME, "--kubeconfig", str(kubeconfig_path()), "--config", str(config)]
        if not self.docker:
            command += ["--image", node_image.build()]
            if not MODULES.exists():
                MODULES.mkdir(parents=True)
                MADE_MODULES.touch()
        self.kind(*command, "--wait", "180s")

    def load(self, *names: str) -> None:
        if self.docker:
            self.kind("load", "docker-image", *names, "--name", NAME)
            return
        with tempfile.TemporaryDirectory() as scratch:  # `kind load docker-image` asks `docker`, even under podman
            archive = Path(scratch) / "images.tar"
            images.podman("save", "--format", "docker-archive", "--multi-image-archive", "--output", str(archive),
                          *names)  # fmt: skip
            self.kind("load", "image-archive", str(archive), "--name", NAME)

    def delete(self) -> None:
        self.kind("delete", "cluster", "--name", NAME)
        if self.leftover_network():
            images.podman("network", "rm", "kind")  # on podman kind leaves its network behind (Docker's is shared)

    def containers(self) -> list[str]:
        labelled = f"label=io.x-k8s.kind.cluster={NAME}"
        return self.engine("ps", "--all", "--format", "{{.Names}}", "--filter", labelled).split()

    def leftover_network(self) -> bool:
        return not self.docker and "kind" in images.podman("network", "ls", "--format", "{{.Name}}").split()


def route() -> str:
    return run(["ip", "route", "show", SERVICE_SUBNET]).strip()


def node_address(admin: httpx.Client) -> str:
    [node] = admin.get("/api/v1/nodes").json()["items"]
    return next(item["address"] for item in node["status"]["addresses"] if item["type"] == "InternalIP")


def cluster(kubeconfig: Path = kubeconfig_path()) -> Cluster:
    """The running cluster, as the tests reach it: its DNS is the kube-dns Service."""
    kubectl = ensure(("kubectl",)) / "kubectl"
    reached = Cluster(kubeconfig, kubectl, dns_server="")
    with reached.admin() as admin:
        dns = admin.get("/api/v1/namespaces/kube-system/services/kube-dns").json()["spec"]["clusterIP"]
    return Cluster(kubeconfig, kubectl, dns_server=dns)


def up() -> Cluster:
    """The images built, a fresh cluster with them loaded, its Services routed to."""
    check_host()
    down()
    RUN.mkdir(parents=True)
    provider = Provider()
    provider.build_images()
    provider.create()
    provider.load(*images.CLUSTER_IMAGES)
    reached = cluster()
    with reached.admin() as admin:
        run(["ip", "route", "replace", SERVICE_SUBNET, "via", node_address(admin)])
    return reached


def down() -> None:
    """Whatever `up` left: the cluster, its network, the route, the modules folder it made, the run folder."""
    check_host()
    provider = Provider()
    provider.delete()
    if route():
        run(["ip", "route", "delete", SERVICE_SUBNET])
    if MADE_MODULES.exists() and MODULES.is_dir() and not any(MODULES.iterdir()):
        MODULES.rmdir()
    shutil.rmtree(RUN, ignore_errors=True)


def host_state() -> set[str]:
    """The host's mount points, processes (by pid and command line; kernel threads have none) and the modules
    folder: what `leftovers` compares with."""
    state = {f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:  # ended meanwhile
            continue
        if command and int(entry.name) != os.getpid():
            arguments = command.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            state.add(f"process {entry.name}: {arguments}")
    return state | ({f"folder {MODULES}"} if MODULES.exists() else set())


def leftovers(before: set[str]) -> list[str]:
    """What of the cluster is still on the host after `down`: its containers, network, route and run folder, and
    any mount, process or folder that was not there `before` (a `host_state()` taken before `up`)."""
    provider = Provider()
    found = [f"container {name}" for name in provider.containers()]
    found += ["network kind"] if provider.leftover_network() else []
    found += [f"route {line}" for line in route().splitlines()]
    found += [f"folder {RUN}"] if RUN.exists() else []
    return found + sorted(host_state() - before)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down"))
    if parser.parse_args(argv).command == "up":
        up()
        print(kubeconfig_path())
    else:
        down()


if __name__ == "__main__":
    main()
