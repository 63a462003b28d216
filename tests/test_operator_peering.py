"""Two replicas of the operator against the real kube-apiserver and controller-manager, peering through Kopf as the
chart runs them: the older works, the younger stands by; when the older stops, or falls silent as a crashed pod
does, the younger takes over and reconciles new TamsStores to Ready. The hand-over times are printed."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from control_plane import ControlPlane
from operator_harness import (
    GROUP,
    OPERATOR_ENV,
    apply,
    condition,
    create,
    install,
    new_namespace,
    play_kubelet,
    running_operator,
    wait,
)

PEERING = "tams-operator"
LIFETIME = 5  # seconds: the longest a standby waits for a silent replica
ENV = {"TAMS_OPERATOR_PEERING": PEERING, "TAMS_OPERATOR_PEERING_LIFETIME": str(LIFETIME)}
PEERING_PATH = f"/apis/kopf.dev/v1/clusterkopfpeerings/{PEERING}"


@pytest.fixture(scope="module")
def admin(kube: ControlPlane) -> Iterator[httpx.Client]:
    with kube.client() as client:
        install(client)
        apply(client, {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}})
        yield client


def records(admin: httpx.Client) -> dict[str, dict]:
    return admin.get(PEERING_PATH).json().get("status") or {}


def store_made_ready(admin: httpx.Client, namespace: str, name: str) -> float:
    """A new embedded TamsStore, reconciled by whichever replica works, Ready with the kubelet's part played; the
    seconds that took."""
    started = time.monotonic()
    body = {"apiVersion": GROUP, "kind": "TamsStore", "metadata": {"name": name, "namespace": namespace}, "spec": {}}
    store = create(admin, body)

    def ready() -> bool:
        play_kubelet(admin, namespace, f"app.kubernetes.io/instance={name}")
        found = condition(admin.get(f"/apis/{GROUP}/namespaces/{namespace}/tamsstores/{name}").json(), "Ready")
        return bool(found and found["status"] == "True")

    wait(ready, f"TamsStore {store['metadata']['name']} Ready", 60)
    return time.monotonic() - started


@pytest.fixture
def environment() -> Iterator[None]:
    """The replicas stop in the order they started, not the reverse, so each one's restoring of the environment
    would leave the other's behind: put back as it was."""
    names = (*ENV, *OPERATOR_ENV, "KUBECONFIG")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_the_standby_takes_over_when_the_working_replica_goes(
    kube: ControlPlane, admin: httpx.Client, environment: None
) -> None:
    namespace = new_namespace(admin)
    with ExitStack() as older, ExitStack() as younger:
        older.enter_context(running_operator(kube, priority=2, **ENV))
        younger.enter_context(running_operator(kube, priority=1, **ENV))
        wait(lambda: set(records(admin)) == {"replica-2", "replica-1"}, "both replicas in the peering")
        store_made_ready(admin, namespace, "first")

        stopped = time.monotonic()
        older.close()  # a replica that stops normally withdraws its record: the other works at once
        assert "replica-2" not in records(admin)
        handed_over = store_made_ready(admin, namespace, "second")
        print(f"\nhand-over after a normal stop: a new store Ready {time.monotonic() - stopped:.1f} s after the stop")

        # A replica that dies without a word (a killed pod) leaves its record to expire; meanwhile the standby waits.
        lastseen = datetime.datetime.now(datetime.UTC).isoformat()
        ghost = {"status": {"crashed": {"priority": 10, "lifetime": LIFETIME, "lastseen": lastseen}}}
        patched = admin.patch(PEERING_PATH, json=ghost, headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200, patched.text
        silent = store_made_ready(admin, namespace, "third")
        print(f"hand-over after a silent death: a new store Ready {silent:.1f} s after it was made "
              f"(peering lifetime {LIFETIME} s)")  # fmt: skip
        assert silent >= LIFETIME - 1 > handed_over, "the standby waited for the silent replica's record to expire"
        wait(lambda: "crashed" not in records(admin), "the expired record cleaned away")
