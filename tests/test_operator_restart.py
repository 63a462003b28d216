"""The operator as its own process (`python -m tams_operator`, as the image runs it), killed with SIGKILL in the
middle of its work and started again: it converges, and keeps the token its store's pods already use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from control_plane import OPERATOR, ControlPlane, free_port
from operator_harness import OPERATOR_ENV, condition, create, install, path, play_kubelet, wait
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from test_operator import s3_spec, secret, tams_store, wait_condition


@contextmanager
def operator_process(
    kube: ControlPlane, namespace: str, log: Path, kubeconfig: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`tams-operator` watching `namespace`, logged in with `kubeconfig` (by default the operator's token)."""
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    command = [sys.executable, "-m", "tams_operator", "--namespace", namespace, "--liveness", liveness]
    env = {**os.environ, **OPERATOR_ENV, "KUBECONFIG": str(kubeconfig or kube.kubeconfig(OPERATOR))}
    with open(log, "ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def admin(kube: ControlPlane) -> Iterator[httpx.Client]:
    with kube.client() as client:
        install(client)
        yield client


def test_killed_mid_reconcile_the_operator_converges_after_restart(
    kube: ControlPlane, admin: httpx.Client, s3_server: S3Server, tmp_path: Path
) -> None:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    create(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    bucket = f"tams-{uuid.uuid4().hex[:12]}"
    store = create(admin, tams_store(namespace, {"media": s3_spec(s3_server, bucket, createBucket=True)}))
    token_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "news-tams-operator",
                                                                      "namespace": namespace}}  # fmt: skip
    log = tmp_path / "operator.log"

    # Killed while it cannot finish (the S3 keys' Secret does not exist yet): its token is made, nothing else.
    with operator_process(kube, namespace, log) as first:
        wait_condition(admin, store, "MediaProvisioned", "False")
        token = admin.get(path(token_secret)).json()["data"]["token"]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    assert admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/news-tams").status_code == 404

    create(admin, secret(namespace, "s3-keys", accessKey=ACCESS_KEY, secretKey=SECRET_KEY))
    # Killed again at once after starting over; then left to finish.
    with operator_process(kube, namespace, log) as second:
        wait(lambda: admin.get(path(store)).json()["metadata"].get("finalizers"), "the operator at work")
        os.killpg(second.pid, signal.SIGKILL)
        second.wait(10)
    with operator_process(kube, namespace, log) as third:
        wait(lambda: play_kubelet(admin, namespace, "app.kubernetes.io/instance=news"), "a pod", timeout=60)
        body = wait_condition(admin, store, "Ready")
        assert condition(body, "MediaProvisioned")["status"] == "True"
        assert admin.get(path(token_secret)).json()["data"]["token"] == token, "the pods' token is kept"

        # A graceful stop (SIGTERM, as Kubernetes stops pods) exits cleanly.
        os.killpg(third.pid, signal.SIGTERM)
        assert third.wait(30) == 0, log.read_text()[-3000:]
