"""An operator upgrade reaching the stores: the image rules (upgrades.py) on their own, then on the real
kube-apiserver and controller-manager an operator restarted with a new image moving three stores one at a time, and
a store with updatePolicy Manual staying until its spec changes."""

from __future__ import annotations

import itertools
import time

import httpx
import kopf
import pytest
from tams_operator.config import OperatorSettings
from tams_operator.spec import TamsStoreSpec
from tams_operator.stores import PAUSED_ANNOTATION, store_to_run
from tams_operator.upgrades import RolloutGate, image_to_run

from control_plane import ControlPlane
from operator_harness import GROUP, condition, create, install, new_namespace, play_kubelet, running_operator, wait

OLD, NEW = "tams:1.0", "tams:1.1"
AUTOMATIC = TamsStoreSpec()
MANUAL = TamsStoreSpec(update_policy="Manual")


@pytest.mark.parametrize(
    ("spec", "running", "spec_changed", "admitted", "expected"),
    [
        (TamsStoreSpec(image="mine:3"), OLD, False, False, "mine:3"),  # its own image, always
        (AUTOMATIC, None, False, False, NEW),  # a new store starts on the operator's
        (AUTOMATIC, NEW, False, False, NEW),  # nothing to move
        (AUTOMATIC, OLD, False, False, OLD),  # waits for the gate
        (AUTOMATIC, OLD, False, True, NEW),
        (MANUAL, OLD, False, True, OLD),  # stays until its spec changes
        (MANUAL, OLD, True, False, NEW),
    ],
    ids=["own", "new", "current", "waiting", "admitted", "manual", "manual-changed"],
)
def test_the_image_a_store_runs(
    spec: TamsStoreSpec, running: str | None, spec_changed: bool, admitted: bool, expected: str
) -> None:
    assert image_to_run(spec, running, NEW, spec_changed, admitted) == expected


def test_the_gate_admits_one_store_at_a_time_with_a_delay_between() -> None:
    gate = RolloutGate(delay=30)
    assert gate.admit(("media", "a"), now=0) and gate.admit(("media", "a"), now=1)
    assert not gate.admit(("media", "b"), now=1)
    gate.release(("media", "b"), now=2)  # not the holder: nothing changes
    assert not gate.admit(("media", "b"), now=3)
    gate.release(("media", "a"), now=10)
    assert not gate.admit(("media", "b"), now=39)
    assert gate.admit(("media", "b"), now=40)


def test_a_paused_store_does_not_take_the_gate() -> None:
    """Nothing moves a paused store: holding the gate, it would hold every other store back until resumed."""
    memo = kopf.Memo(config=OperatorSettings(default_image=NEW), rollout=RolloutGate(delay=0))
    body = {
        "metadata": {"name": "a", "namespace": "media", "generation": 1, "annotations": {PAUSED_ANNOTATION: "true"}},
        "spec": {},
        "status": {"image": OLD, "observedGeneration": 1},
    }
    assert store_to_run(memo, body).default_image == OLD
    assert memo["rollout"].holder is None
    del body["metadata"]["annotations"]
    assert store_to_run(memo, body).default_image == NEW
    assert memo["rollout"].holder == ("media", "a")


DELAY = 2.0
STORES = ("north", "south", "west")


def deployment_image(admin: httpx.Client, namespace: str, name: str) -> str:
    deployment = admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}-tams").json()
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def ready_on(admin: httpx.Client, namespace: str, name: str, image: str) -> bool:
    body = admin.get(f"/apis/{GROUP}/namespaces/{namespace}/tamsstores/{name}").json()
    found = condition(body, "Ready")
    return bool(found and found["status"] == "True" and body["status"].get("image") == image)


def test_an_operator_upgrade_moves_the_stores_one_at_a_time(kube: ControlPlane) -> None:
    with kube.client() as admin:
        install(admin)
        namespace = new_namespace(admin)
        # Watching this namespace only: stores other tests left on other images would be in the queue too.
        with running_operator(kube, namespace, TAMS_OPERATOR_DEFAULT_IMAGE=OLD):
            for name, spec in [*((name, {}) for name in STORES), ("archive", {"updatePolicy": "Manual"})]:
                create(admin, {"apiVersion": GROUP, "kind": "TamsStore",
                               "metadata": {"name": name, "namespace": namespace}, "spec": spec})  # fmt: skip

            def all_ready() -> bool:
                play_kubelet(admin, namespace, "app.kubernetes.io/managed-by=tams-operator")
                return all(ready_on(admin, namespace, name, OLD) for name in (*STORES, "archive"))

            wait(all_ready, "every store Ready on the old image", 60)

        moved: dict[str, float] = {}  # when each store's pods were given the new image
        settled: dict[str, float] = {}  # when it was Ready on it
        upgraded = {"TAMS_OPERATOR_DEFAULT_IMAGE": NEW, "TAMS_OPERATOR_ROLLOUT_DELAY": str(DELAY)}
        with running_operator(kube, namespace, **upgraded):

            def observe() -> bool:
                play_kubelet(admin, namespace, "app.kubernetes.io/managed-by=tams-operator")
                now = time.monotonic()
                for name in STORES:
                    if name not in moved and deployment_image(admin, namespace, name) == NEW:
                        moved[name] = now
                    if name in moved and name not in settled and ready_on(admin, namespace, name, NEW):
                        settled[name] = now
                return len(settled) == len(STORES)

            wait(observe, "every Automatic store moved", 120)
            order = sorted(STORES, key=moved.__getitem__)
            for before, after in itertools.pairwise(order):
                assert moved[after] >= settled[before], f"{after} moved before {before} was Ready on the new image"
            print("\nmoves (s after the first):", {name: round(moved[name] - moved[order[0]], 1) for name in order})
            assert deployment_image(admin, namespace, "archive") == OLD, "Manual: stays while its spec is unchanged"
            response = admin.patch(f"/apis/{GROUP}/namespaces/{namespace}/tamsstores/archive",
                                   json={"spec": {"presignedUrlTimeout": 600}},
                                   headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
            assert response.status_code == 200, response.text
            wait(lambda: deployment_image(admin, namespace, "archive") == NEW, "Manual: moved with its spec change")


def test_a_store_deleted_while_its_move_stalls_lets_the_next_one_move(kube: ControlPlane) -> None:
    """The store holding the gate never becomes available on the new image (its new pods never ready) and is
    deleted: the next store moves, rather than wait for a store that is gone."""
    pair = ("first", "second")
    with kube.client() as admin:
        install(admin)
        namespace = new_namespace(admin)
        with running_operator(kube, namespace, TAMS_OPERATOR_DEFAULT_IMAGE=OLD):
            for name in pair:
                create(admin, {"apiVersion": GROUP, "kind": "TamsStore",
                               "metadata": {"name": name, "namespace": namespace}, "spec": {}})  # fmt: skip

            def all_ready() -> bool:
                play_kubelet(admin, namespace, "app.kubernetes.io/managed-by=tams-operator")
                return all(ready_on(admin, namespace, name, OLD) for name in pair)

            wait(all_ready, "both stores Ready on the old image", 60)

        with running_operator(kube, namespace, TAMS_OPERATOR_DEFAULT_IMAGE=NEW, TAMS_OPERATOR_ROLLOUT_DELAY="0"):

            def holder() -> str | None:
                return next((name for name in pair if deployment_image(admin, namespace, name) == NEW), None)

            stalled = wait(holder, "one store moving")
            [waiting] = [name for name in pair if name != stalled]
            assert deployment_image(admin, namespace, waiting) == OLD
            response = admin.delete(f"/apis/{GROUP}/namespaces/{namespace}/tamsstores/{stalled}")
            assert response.status_code == 200, response.text

            def moved() -> bool:
                play_kubelet(admin, namespace, f"app.kubernetes.io/instance={waiting}")
                return ready_on(admin, namespace, waiting, NEW)

            wait(moved, f"{waiting} moved once {stalled} was deleted", 60)
