"""A kubelet for tests that runs a pod's containers as local processes.

The pod is the real one: made by the ReplicaSet controller from the operator's Deployment. Its containers run
with the command, args and environment a kubelet would give them: the image's entry point unless the
container names a command; `envFrom` ConfigMaps and Secrets, then `env` (plain values with `$(VAR)`
values, `valueFrom` ConfigMap and Secret keys), read from the API server at start. Once a container's
readinessProbe (tcpSocket or httpGet) answers, the pod is marked Running and Ready through the status
subresource, and the real Deployment controller takes it from there.

A process shares this machine's filesystem and network, where a container has its own view of both. That
view is translated, and this is the one liberty taken:
- filesystem: each volume is a local directory (one per PersistentVolumeClaim, kept across pods; one per
  emptyDir, per pod); environment values and args that are paths under a volume's mountPath name the
  directory instead; a volume mounted at /tmp becomes TMPDIR.
- network: the pod's address is 127.0.0.1 and a containerPort is the port of the Service that targets it, so
  the process listens where the Service would forward; args naming 0.0.0.0 or the containerPort say so
  instead, and probes go there.

Each process runs in its own process group, stopped (SIGTERM, then SIGKILL) when its pod's block ends.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from control_plane import process, wait_until
from operator_harness import mark_ready

Manifest = dict[str, Any]
POD_ADDRESS = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"


class ContainerConfigError(Exception):
    """What a kubelet reports as CreateContainerConfigError: a ConfigMap, Secret or key is missing."""


@dataclass(frozen=True, slots=True)
class ContainerView:
    """How one container's paths and ports map onto this machine."""

    mounts: dict[str, Path]  # mountPath -> local directory
    ports: dict[int, int]  # containerPort -> local port
    port_names: dict[str, int]  # port name -> containerPort

    def path(self, value: str) -> str:
        """A path under a mountPath (the longest that matches) as the local path; other values unchanged."""
        for mount_path in sorted(self.mounts, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                return str(self.mounts[mount_path]) + value[len(mount_path.rstrip("/")) :]
        return value

    def arg(self, value: str) -> str:
        if value == ANY_ADDRESS:
            return POD_ADDRESS
        if value.isdigit() and int(value) in self.ports:
            return str(self.ports[int(value)])
        return self.path(value)

    def port(self, port: int | str) -> int:
        """The local port of a probe's `port` (a number or a container port's name)."""
        container_port = self.port_names[port] if isinstance(port, str) else port
        return self.ports[container_port]


@dataclass(frozen=True, slots=True)
class ProcessKubelet:
    kube: httpx.Client  # the API server, as an identity that may read Secrets and write pod status
    workdir: Path
    entry_points: dict[str, list[str]]  # image -> the command it runs on this machine (its ENTRYPOINT)

    @contextmanager
    def running(self, pod: Manifest) -> Iterator[None]:
        """The pod's containers running and ready, and the pod marked Ready, until the block ends."""
        metadata = pod["metadata"]
        volumes = self._volumes(pod)
        services = self._services(pod)
        with ExitStack() as stack:
            for container in pod["spec"]["containers"]:
                stack.enter_context(self._container(metadata, container, volumes, services))
            mark_ready(self.kube, pod, podIP=POD_ADDRESS, hostIP=POD_ADDRESS)
            yield

    @contextmanager
    def _container(
        self, metadata: Manifest, container: Manifest, volumes: dict[str, Path], services: list[Manifest]
    ) -> Iterator[None]:
        view = ContainerView(
            mounts={
                mount["mountPath"]: volumes[mount["name"]] / mount.get("subPath", "")
                for mount in container.get("volumeMounts", [])
            },
            ports=self._local_ports(container, services),
            port_names={port["name"]: port["containerPort"] for port in container.get("ports", []) if "name" in port},
        )
        for directory in view.mounts.values():
            directory.mkdir(parents=True, exist_ok=True)
        environment = {name: view.path(value) for name, value in self.environment(metadata, container).items()}
        if "/tmp" in view.mounts:
            environment["TMPDIR"] = str(view.mounts["/tmp"])
        command = container.get("command") or self.entry_points[container["image"]]
        args = [view.arg(arg) for arg in container.get("args", [])]
        root = self.workdir / "pods" / metadata["uid"] / "containers" / container["name"]
        root.mkdir(parents=True, exist_ok=True)
        log = root / "output.log"
        with process([*command, *args], log, env=environment, cwd=root) as started:
            probe = container.get("readinessProbe", {})
            if "tcpSocket" in probe:
                port = view.port(probe["tcpSocket"]["port"])
                wait_until(lambda: accepts(port), f"container {container['name']} on port {port}", started, log)
            if "httpGet" in probe:
                url = f"http://{POD_ADDRESS}:{view.port(probe['httpGet']['port'])}{probe['httpGet'].get('path', '/')}"
                wait_until(lambda: answers(url), f"container {container['name']} ready at {url}", started, log)
            yield

    def environment(self, metadata: Manifest, container: Manifest) -> dict[str, str]:
        """The container's environment: envFrom in order, then env in order (later wins), as a kubelet makes it;
        with PATH and HOSTNAME, which the image and the runtime would give. (`$(VAR)` references in values are
        not expanded: the operator writes none.)"""
        namespace = metadata["namespace"]
        values = {"PATH": os.environ["PATH"], "HOSTNAME": metadata["name"]}
        for source in container.get("envFrom", []):
            kind, ref = referenced(source, "configMapRef", "secretRef")
            data = self._data(namespace, kind, ref["name"], ref.get("optional", False)) or {}
            values |= {source.get("prefix", "") + key: value for key, value in data.items()}
        for variable in container.get("env", []):
            if "valueFrom" not in variable:
                values[variable["name"]] = variable.get("value", "")
                continue
            kind, ref = referenced(variable["valueFrom"], "configMapKeyRef", "secretKeyRef")
            data = self._data(namespace, kind, ref["name"], ref.get("optional", False))
            if data is not None and ref["key"] in data:
                values[variable["name"]] = data[ref["key"]]
            elif not ref.get("optional", False):
                raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
        return values

    def _data(self, namespace: str, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        """A ConfigMap's data or a Secret's decoded data; None when it is missing and optional."""
        response = self.kube.get(f"/api/v1/namespaces/{namespace}/{kind.lower()}s/{name}")
        if response.status_code == 404 and optional:
            return None
        if response.status_code == 404:
            raise ContainerConfigError(f"{kind.lower()} {name!r} not found")
        response.raise_for_status()
        data = response.json().get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()} if kind == "Secret" else data

    def _volumes(self, pod: Manifest) -> dict[str, Path]:
        """A local directory per volume: a claim's outlives the pod, as the claim does."""
        directories = {}
        pod_dir = self.workdir / "pods" / pod["metadata"]["uid"]
        for volume in pod["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                directories[volume["name"]] = self.workdir / "claims" / volume["persistentVolumeClaim"]["claimName"]
            elif "emptyDir" in volume:
                directories[volume["name"]] = pod_dir / "volumes" / volume["name"]
            else:
                raise ContainerConfigError(f"volume {volume['name']}: only claims and emptyDir run as processes")
        return directories

    def _services(self, pod: Manifest) -> list[Manifest]:
        """The Services whose selector picks this pod."""
        namespace, labels = pod["metadata"]["namespace"], pod["metadata"].get("labels", {})
        services = self.kube.get(f"/api/v1/namespaces/{namespace}/services").json()["items"]
        return [
            service
            for service in services
            if service["spec"].get("selector") and service["spec"]["selector"].items() <= labels.items()
        ]

    @staticmethod
    def _local_ports(container: Manifest, services: list[Manifest]) -> dict[int, int]:
        """containerPort -> the port of the Service that targets it (by name or number)."""
        local = {}
        for port in container.get("ports", []):
            for service in services:
                for service_port in service["spec"]["ports"]:
                    target = service_port.get("targetPort", service_port["port"])
                    if target in (port.get("name"), port["containerPort"]):
                        local[port["containerPort"]] = service_port["port"]
            if port["containerPort"] not in local:
                raise ContainerConfigError(f"container port {port['containerPort']}: no Service targets it")
        return local


def referenced(source: Manifest, config_map_field: str, secret_field: str) -> tuple[str, Manifest]:
    """The kind and the reference of an envFrom entry or a valueFrom."""
    if config_map_field in source:
        return "ConfigMap", source[config_map_field]
    if secret_field in source:
        return "Secret", source[secret_field]
    raise ContainerConfigError(f"{sorted(source)}: only ConfigMaps and Secrets run as processes")


def answers(url: str) -> bool:
    """An httpGet probe: a status from 200 to 399, as a kubelet counts success."""
    try:
        return 200 <= httpx.get(url, timeout=1).status_code < 400
    except httpx.HTTPError:
        return False


def accepts(port: int) -> bool:
    """A tcpSocket probe: a connection is accepted."""
    try:
        with socket.create_connection((POD_ADDRESS, port), timeout=1):
            return True
    except OSError:
        return False
