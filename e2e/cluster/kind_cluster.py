"""The e2e cluster: kind (DESIGN.md §5).

Where Docker answers, kind runs on it with its stock node image, and the images under test are built by Docker.
Without Docker (as on this project's machines), kind runs with its podman provider on a node image assembled here
(node_image.py: nothing is pulled), its pod network is flannel (pod_network.py: kind's own is not served), and the
images are those images.py builds with podman. The cluster has a control plane and TAMS_E2E_WORKERS workers (2),
so that placement and drains can be seen.

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
from typing import Any

import httpx
import yaml

import addons
import images
import node_image
import pod_network
from cluster_access import Cluster
from host import install_debian_packages, run
from k8s_binaries import ensure
from operator_harness import apply, wait

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("TAMS_E2E_RUN", "/run/tams-e2e"))
NAME = "tams-e2e"
SERVICE_SUBNET = "10.96.0.0/16"  # kind's default, named here because the host's route names it
DOCKER_BASE_IMAGE = "python:3.11-slim"  # the Dockerfile's default; Docker Hub is reachable where Docker runs
# kind's podman provider always mounts the host's kernel modules; this machine has none to offer.
MODULES = Path("/lib/modules")
MADE_MODULES = RUN / "made-lib-modules"
WORKERS = int(os.environ.get("TAMS_E2E_WORKERS", "2"))  # beside the control plane, whose taint keeps pods off it
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
SETTLE_S = 240
# What runs on the host for the cluster, besides its containers' processes: what teardown must not leave running.
CLUSTER_TOOLS = {"kind", "kubectl", "podman", "conmon", "docker", "containerd-shim-runc-v2", "runc", "catatonit"}
CLUSTER_TOOLS |= {"dnsmasq"}  # the podman network's DNS
# The nodes join the control plane by its container's name: podman's CNI networks resolve names with this plugin.
PODMAN_NETWORK_DNS = ("golang-github-containernetworking-plugin-dnsname",)
NETNS_FOLDER = "/run/netns"


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
            networking["disableDefaultCNI"] = True  # kindnetd is not served here: flannel instead (pod_network.py)
        nodes = [{"role": "control-plane"}] + [{"role": "worker"}] * WORKERS
        return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "networking": networking, "nodes": nodes}

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
            install_debian_packages(PODMAN_NETWORK_DNS)
            command += ["--image", node_image.build()]
            if not MODULES.exists():
                MODULES.mkdir(parents=True)
                MADE_MODULES.touch()
        # On podman the nodes are Ready only once the pod network runs (`up` applies it): not waited for here.
        self.kind(*command, *(["--wait", "180s"] if self.docker else []))

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
        if not self.docker and shutil.which("podman") is None:
            return  # a fresh machine: podman comes with the images' packages, and no cluster runs without it
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


def nodes(admin: httpx.Client) -> list[dict[str, Any]]:
    return admin.get("/api/v1/nodes").json()["items"]


def control_plane_address(admin: httpx.Client) -> str:
    [node] = [node for node in nodes(admin) if CONTROL_PLANE_ROLE in node["metadata"]["labels"]]
    return next(item["address"] for item in node["status"]["addresses"] if item["type"] == "InternalIP")


def settled(admin: httpx.Client) -> bool:
    """Every node there and Ready, and the cluster's DNS available."""
    ready = [node for node in nodes(admin) if condition(node, "Ready") == "True"]
    dns = admin.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns").json().get("status", {})
    return len(ready) == 1 + WORKERS and dns.get("availableReplicas") == dns.get("replicas")


def condition(node: dict[str, Any], type_: str) -> str | None:
    return next((item["status"] for item in node["status"].get("conditions", []) if item["type"] == type_), None)


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
    ecosystem = [] if provider.docker else addons.build()  # Traefik, cert-manager, metrics-server (podman-built)
    provider.create()
    provider.load(*images.CLUSTER_IMAGES, *ecosystem)
    reached = cluster()
    with reached.admin() as admin:
        if not provider.docker:
            for manifest in pod_network.manifests(node_image.FLANNEL_IMAGE):
                apply(admin, manifest)
        wait(lambda: settled(admin), f"{1 + WORKERS} nodes Ready and the cluster's DNS available", SETTLE_S)
        run(["ip", "route", "replace", SERVICE_SUBNET, "via", control_plane_address(admin)])
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
    """The host's mount points, the processes of containers and of the tools the cluster runs (by pid and command
    line), and the modules folder: what `leftovers` compares with."""
    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    # The host's first network namespace (podman's first container on a fresh machine) bind-mounts /run/netns on
    # itself until reboot; the namespaces' own mounts under it still count.
    state = {f"mount {point}" for point in mounts - {NETNS_FOLDER}}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
            in_container = "libpod" in (entry / "cgroup").read_text()
        except OSError:  # ended meanwhile
            continue
        arguments = command.rstrip(b"\0").split(b"\0")
        if in_container or Path(arguments[0].decode(errors="replace")).name in CLUSTER_TOOLS:
            state.add(f"process {entry.name}: {b' '.join(arguments).decode(errors='replace')}")
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
