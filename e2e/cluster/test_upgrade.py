"""An operator upgrade on a real cluster, as a user makes it: `helm upgrade` to a new image tag.

Three embedded TamsStores that name no image follow the operator's: they move to the new release one at a time,
each only once the previous one's rollout is available and the rollout delay has passed. One of them has a
migration pending (its database set back a schema version): its new pod's `migrate` init container brings the
schema up before the server starts. A fourth store, updatePolicy Manual, keeps the image it runs until its spec
changes. The new release is the image under test tagged anew, so the upgrade changes nothing but the image's name.
The release is rolled back at the end, the stores deleted first, so later modules find the operator as installed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

import httpx
import pytest

import images
import kind_cluster
from cluster_access import Cluster, first_answer
from cluster_setup import (
    OPERATOR_NAMESPACE,
    RELEASE,
    WAIT_S,
    rollback_operator,
    rollout_complete,
    upgrade_operator,
    wait_rolled_out,
)
from operator_harness import GROUP, apply, condition, path, wait
from test_operator import wait_status
from test_scenario import NAMESPACE, get_store, kubectl_ok, ref, step_store, store_pods

pytestmark = pytest.mark.cluster
Manifest = dict[str, object]
NEXT_IMAGE = "localhost/tams-operator:e2e-next"  # "the new release": the image under test under a second tag
FOLLOWING = ("upgrade-a", "upgrade-b", "upgrade-c")
PENDING = "upgrade-b"  # its database set back to schema version 2 before the upgrade
MANUAL = "upgrade-manual"
ROLLOUT_DELAY_S = 5
# Our sightings come up to one poll (0.1 s) plus a request late; the operator sees the rollout's events at once.
SIGHTING_SLACK_S = 1.0
MOVES_S = 3 * (WAIT_S + 15 + ROLLOUT_DELAY_S)  # each store: its rollout, the next resync, the delay
# Run in a store's pod (the image's Python, the database where the server's settings put it): its database as it
# was before migration 3 (soft delete); then what its schema is.
SET_BACK_SCHEMA = """
import sqlite3
from tams_api.config import Settings
db = sqlite3.connect(Settings().resolved_sqlite_path, isolation_level=None)
db.executescript("DROP INDEX IF EXISTS deleted_flows_deleted; DROP TABLE deleted_flows; PRAGMA user_version = 2;")
"""
SCHEMA_STATE = """
import json, sqlite3
from tams_api.config import Settings
db = sqlite3.connect(Settings().resolved_sqlite_path)
tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
print(json.dumps({"version": db.execute("PRAGMA user_version").fetchone()[0], "tables": tables}))
"""


@dataclass(frozen=True, slots=True)
class Move:
    """When (seconds after `helm upgrade`) we first saw a store's Deployment template name the new image, and its
    rollout complete."""

    changed: float
    available: float


@pytest.fixture(scope="module")
def next_image(cluster: Cluster) -> str:
    """The new release in the cluster: the TAMS image tagged anew and loaded into the nodes as kind_cluster.up loads
    the images under test (nothing is pulled)."""
    provider = kind_cluster.Provider()
    provider.engine("tag", images.TAMS_IMAGE, NEXT_IMAGE)
    provider.load(NEXT_IMAGE)
    return NEXT_IMAGE


@pytest.fixture(scope="module")
def installed_revision(cluster: Cluster, admin: httpx.Client, operator: str) -> Iterator[dict[str, int]]:
    """The release's revision before the upgrade (set by `upgrade`), rolled back to after the module. The stores'
    fixture depends on this one, so the stores are gone first and nothing moves back."""
    revision: dict[str, int] = {}
    yield revision
    if "before" in revision:
        rollback_operator(cluster.kubeconfig, admin, revision["before"])


@pytest.fixture(scope="module")
def upgrade_stores(
    cluster: Cluster, admin: httpx.Client, installed_revision: dict[str, int]
) -> Iterator[tuple[str, ...]]:
    """The three stores that follow the operator and the Manual one, Ready on the installed image; deleted after."""
    apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    names = (*FOLLOWING, MANUAL)
    for name in FOLLOWING:
        apply(admin, step_store(name))
    apply(admin, step_store(MANUAL, updatePolicy="Manual"))
    kubectl_ok(cluster, "wait", "-n", NAMESPACE, "--for=condition=Ready", *(f"tamsstore/{name}" for name in names),
               f"--timeout={WAIT_S}s")  # fmt: skip
    yield names
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, *(f"tamsstore/{name}" for name in names), f"--timeout={WAIT_S}s")


def template_image(deployment: dict) -> str:
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def deployments(admin: httpx.Client) -> dict[str, dict]:
    items = admin.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments").json()["items"]
    return {item["metadata"]["name"]: item for item in items}


def pod_exec(cluster: Cluster, pod: dict, script: str) -> str:
    return kubectl_ok(cluster, "exec", "-n", NAMESPACE, pod["metadata"]["name"], "-c", "tams-api", "--",
                      "python3", "-c", script)  # fmt: skip


def live_pods(admin: httpx.Client, name: str) -> list[dict]:
    """A store's API pods, without those on their way out (a rollout's old pod stops for seconds)."""
    return [pod for pod in store_pods(admin, name) if "deletionTimestamp" not in pod["metadata"]]


def watch_moves(admin: httpx.Client, names: tuple[str, ...], image: str, started: float) -> dict[str, Move]:
    """Polls the stores' Deployments until each one's template names `image` and its rollout is complete."""
    changed: dict[str, float] = {}
    available: dict[str, float] = {}

    def all_moved() -> bool:
        found, now = deployments(admin), time.monotonic() - started
        for name in names:
            deployment = found.get(f"{name}-tams")
            if deployment is None or template_image(deployment) != image:
                continue
            changed.setdefault(name, now)
            if rollout_complete(deployment):
                available.setdefault(name, now)
        return len(available) == len(names)

    try:
        wait(all_moved, f"{', '.join(names)} moved to {image}", MOVES_S)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; moved {available}, the stores: {stores_seen(admin)}") from None
    return {name: Move(changed[name], available[name]) for name in names}


def stores_seen(admin: httpx.Client) -> list[str]:
    """Every TamsStore in the cluster as a rollout sees it: its image, its conditions, its pods' phases and why
    they wait (one store that does not become available holds the others back)."""
    seen = []
    for store in admin.get(f"/apis/{GROUP}/tamsstores").json()["items"]:
        metadata, status = store["metadata"], store.get("status") or {}
        conditions = [
            f"{c['type']}={c['status']} {c.get('reason')}: {c.get('message')}" for c in status.get("conditions", [])
        ]
        pods = []
        for pod in store_pods(admin, metadata["name"], metadata["namespace"]):
            waits = [c["message"] for c in pod["status"].get("conditions", []) if c.get("message")]
            pods.append(f"{pod['metadata']['name']} {pod['status'].get('phase')} {waits}")
        seen.append(f"{metadata['namespace']}/{metadata['name']} image={status.get('image')} "
                    f"deleting={'deletionTimestamp' in metadata} {conditions} pods={pods}")  # fmt: skip
    return seen


@pytest.fixture(scope="module")
def upgrade(
    cluster: Cluster,
    admin: httpx.Client,
    next_image: str,
    upgrade_stores: tuple[str, ...],
    installed_revision: dict[str, int],
    figures: dict[str, object],
) -> dict[str, Move]:
    """A migration made pending in PENDING's running pod, then the operator upgraded to the new release with a
    short rollout delay; each following store's move as seen."""
    [pod] = store_pods(admin, PENDING)
    pod_exec(cluster, pod, SET_BACK_SCHEMA)
    assert json.loads(pod_exec(cluster, pod, SCHEMA_STATE))["version"] == 2

    repository, tag = next_image.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag},
        "operator": {"settings": {"rolloutDelay": ROLLOUT_DELAY_S}},
    }
    started = time.monotonic()
    installed_revision["before"] = upgrade_operator(cluster.kubeconfig, values)
    moves = watch_moves(admin, FOLLOWING, next_image, started)
    for rank, (name, move) in enumerate(sorted(moves.items(), key=lambda item: item[1].changed), 1):
        figures[f"upgrade: store {rank} ({name}) template changed / rollout available (s after helm upgrade)"] = (
            f"{move.changed:.1f} / {move.available:.1f}"
        )
    return moves


def test_the_upgrade_reached_the_operator_through_the_chart(admin: httpx.Client, upgrade: dict[str, Move]) -> None:
    deployment = admin.get(f"/apis/apps/v1/namespaces/{OPERATOR_NAMESPACE}/deployments/{RELEASE}").json()
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["image"] == env["TAMS_OPERATOR_DEFAULT_IMAGE"] == NEXT_IMAGE
    assert env["TAMS_OPERATOR_ROLLOUT_DELAY"] == str(ROLLOUT_DELAY_S)
    assert env["TAMS_OPERATOR_RESYNC_INTERVAL"] == "15", "the installed values kept (--reuse-values)"
    wait_rolled_out(admin, OPERATOR_NAMESPACE, RELEASE)


def test_the_following_stores_move_one_at_a_time(upgrade: dict[str, Move], figures: dict[str, object]) -> None:
    ordered = sorted(upgrade.values(), key=lambda move: move.changed)
    gaps = [round(later.changed - earlier.available, 1) for earlier, later in pairwise(ordered)]
    figures[f"upgrade: a rollout available -> the next store's template changed (s; delay {ROLLOUT_DELAY_S})"] = gaps
    for gap in gaps:
        assert gap >= ROLLOUT_DELAY_S - SIGHTING_SLACK_S, f"a store moved before the last one was available: {ordered}"


def test_the_stores_status_names_the_image_each_runs(admin: httpx.Client, upgrade: dict[str, Move]) -> None:
    for name in FOLLOWING:
        wait_status(admin, ref(name), "image", NEXT_IMAGE, timeout=WAIT_S)
    assert get_store(admin, MANUAL)["status"]["image"] == images.TAMS_IMAGE
    assert template_image(deployments(admin)[f"{MANUAL}-tams"]) == images.TAMS_IMAGE, "Manual: the old image still"


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_the_pending_migration_ran_in_the_new_pod_before_its_server(
    cluster: Cluster, admin: httpx.Client, upgrade: dict[str, Move]
) -> None:
    [pod] = live_pods(admin, PENDING)
    assert pod["spec"]["containers"][0]["image"] == NEXT_IMAGE
    [migrate] = pod["status"]["initContainerStatuses"]
    [server] = pod["status"]["containerStatuses"]
    assert migrate["name"] == "migrate" and migrate["state"]["terminated"]["exitCode"] == 0, migrate
    said = kubectl_ok(cluster, "logs", "-n", NAMESPACE, pod["metadata"]["name"], "-c", "migrate")
    assert "migrated from schema version 2 to 3" in said, said
    migrated = parse_time(migrate["state"]["terminated"]["finishedAt"])
    assert migrated <= parse_time(server["state"]["running"]["startedAt"]), "the server started after the migration"
    assert migrated <= parse_time(condition(pod, "Ready")["lastTransitionTime"]), "and served after it"

    with cluster.services(timeout=30) as services:
        url = f"http://{PENDING}-tams.{NAMESPACE}.svc/flows"
        answer = first_answer(services, url)
        assert answer.status_code == 200, answer.text
    state = json.loads(pod_exec(cluster, pod, SCHEMA_STATE))
    assert state["version"] == 3 and "deleted_flows" in state["tables"], state

    # The others were at the image's schema already: their migrate container said so and changed nothing.
    [other] = live_pods(admin, next(name for name in FOLLOWING if name != PENDING))
    said = kubectl_ok(cluster, "logs", "-n", NAMESPACE, other["metadata"]["name"], "-c", "migrate")
    assert "already at schema version 3" in said, said


def test_the_manual_store_moves_at_its_next_spec_change(admin: httpx.Client, upgrade: dict[str, Move]) -> None:
    patch = {"spec": {"presignedUrlTimeout": 1500}}
    changed = admin.patch(path(ref(MANUAL)), json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert changed.status_code == 200, changed.text
    wait_status(admin, ref(MANUAL), "image", NEXT_IMAGE, timeout=WAIT_S)
    wait_rolled_out(admin, NAMESPACE, f"{MANUAL}-tams")
    assert template_image(deployments(admin)[f"{MANUAL}-tams"]) == NEXT_IMAGE
