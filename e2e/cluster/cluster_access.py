"""How the e2e tests reach the cluster: the API server as its admin (credentials from the kubeconfig), kubectl
with the same kubeconfig, Services by their in-cluster names, and `kubectl port-forward` as a user's tools do.

Services are reached the way a pod reaches them, but from this machine: names under `.svc` are resolved by the
cluster's DNS (the kube-dns Service) and the request goes to the ClusterIP, which the host routes to a node, where
kube-proxy's rules take it; the Host header keeps the name, so presigned URLs (whose signature covers the host)
stay valid.
"""

from __future__ import annotations

import base64
import secrets
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from control_plane import free_port
from operator_harness import wait

CLUSTER_DOMAIN = "cluster.local"
# A connection to a new Service opened before kube-proxy programmed its rules is not translated, and the kernel's
# SYN retries follow the first (one conntrack entry): it never arrives. A short connect timeout and a new
# connection get through once the rules are there.
SERVICE_CONNECT_S = 3.0


@dataclass(frozen=True, slots=True)
class Cluster:
    kubeconfig: Path
    kubectl_binary: Path
    dns_server: str  # where the cluster's DNS answers

    def admin(self) -> httpx.Client:
        """A client of the API server as the kubeconfig's user: a token (ours), or a client certificate (kind's)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        tls = ssl.create_default_context(cafile=self.credential(cluster, "certificate-authority"))
        if "client-certificate-data" in user:
            certificate = self.credential(user, "client-certificate")
            tls.load_cert_chain(certificate, self.credential(user, "client-key"))
        headers = {"Authorization": f"Bearer {user['token']}"} if "token" in user else {}
        return httpx.Client(base_url=cluster["server"], headers=headers, verify=tls, timeout=30)

    def credential(self, entry: dict[str, str], field: str) -> str:
        """The file of a kubeconfig credential, written beside the kubeconfig when it is inline (`FIELD-data`)."""
        if field in entry:
            return entry[field]
        path = self.kubeconfig.with_name(f"{self.kubeconfig.name}.{field}")
        path.write_bytes(base64.b64decode(entry[f"{field}-data"]))
        path.chmod(0o600)
        return str(path)

    def kubectl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command = [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def services(self, limits: httpx.Limits | None = None, **options: object) -> httpx.Client:
        """An HTTP client that reaches `http://NAME.NAMESPACE.svc[.cluster.local]:PORT/...` like a pod does. `limits`
        are its transport's (a client given a transport ignores its own): with no keep-alive, each request opens a
        connection, which the Service balances anew."""
        transport = ServiceTransport(self.dns_server, **({} if limits is None else {"limits": limits}))
        seconds = float(options.pop("timeout", 30))  # type: ignore[arg-type]
        timeout = httpx.Timeout(seconds, connect=min(seconds, SERVICE_CONNECT_S))
        return httpx.Client(transport=transport, timeout=timeout, **options)  # type: ignore[arg-type]

    @contextmanager
    def port_forward(self, namespace: str, service: str, port: int, timeout: float = 240) -> Iterator[str]:
        """`kubectl port-forward` to a Service; its local URL once it answers."""
        local = free_port()
        command = [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", "port-forward", "-n", namespace,
                   f"svc/{service}", f"{local}:{port}"]  # fmt: skip
        forward = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait(lambda: forward.poll() is None and accepts(local), f"port-forward to {namespace}/{service}", timeout)
            yield f"http://127.0.0.1:{local}"
        finally:
            forward.terminate()
            forward.wait(10)


class ServiceTransport(httpx.HTTPTransport):
    def __init__(self, dns_server: str, **options: Any) -> None:
        super().__init__(**options)
        self.dns_server = dns_server

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host.endswith(".svc"):
            host += f".{CLUSTER_DOMAIN}"
        if host.endswith(f".svc.{CLUSTER_DOMAIN}"):
            request.url = request.url.copy_with(host=resolve(host, self.dns_server))  # the Host header stays
        return super().handle_request(request)


def first_answer(client: httpx.Client, url: str, timeout: float = 30) -> httpx.Response:
    """The answer to GET `url` once a connection is made: a Service's rules reach kube-proxy on every node a moment
    after its pod is ready (connections are refused or lost until then)."""

    def answer() -> httpx.Response | None:
        try:
            return client.get(url)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return None

    return wait(answer, f"{url} answering", timeout)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def resolve(name: str, server: str) -> str:
    """The first A record of `name` from the DNS server `server` (a minimal resolver: one UDP query)."""
    query_id = secrets.token_bytes(2)
    question = b"".join(len(label).to_bytes(1, "big") + label.encode() for label in name.split(".")) + b"\0"
    query = query_id + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2)
        udp.sendto(query, (server, 53))
        answer = udp.recv(4096)
    if answer[:2] != query_id or answer[3] & 0x0F or int.from_bytes(answer[6:8], "big") == 0:
        raise httpx.ConnectError(f"{name}: the cluster's DNS has no address for it")
    offset = len(query)  # the question comes back as asked; then the answers
    while offset < len(answer):
        offset += 2 if answer[offset] & 0xC0 == 0xC0 else answer.index(b"\0", offset) + 1 - offset
        record_type = int.from_bytes(answer[offset : offset + 2], "big")
        length = int.from_bytes(answer[offset + 8 : offset + 10], "big")
        data = answer[offset + 10 : offset + 10 + length]
        offset += 10 + length
        if record_type == 1 and length == 4:
            return socket.inet_ntoa(data)
    raise httpx.ConnectError(f"{name}: the cluster's DNS answered without an A record")
