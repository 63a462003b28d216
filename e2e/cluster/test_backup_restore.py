"""Backup and restore on the real cluster: an embedded store with flows, segments and media is backed up by a
TamsBackup to SeaweedFS while a client keeps writing, deleted (reclaimPolicy Delete: its volumes go), and a new
TamsStore made from the backup answers the same flows, segments and bytes; every segment restored of the flow the
client was writing has its object."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cluster_access import Cluster, first_answer
from cluster_setup import S3_NAMESPACE, WAIT_S, sample_keys
from helpers import new_id
from operator_harness import GROUP, apply, path, wait
from test_operator import get, wait_condition
from test_scenario import add_segments, kubectl_ok, s3_client

pytestmark = pytest.mark.cluster
Manifest = dict[str, Any]
NAMESPACE = "backups"
BUCKET = "tams-backups"
WRITES = 5000  # the most segments the writing client adds: bounded, and far more than a backup's duration allows


def ref(kind: str, name: str) -> Manifest:
    return {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}}


def store(name: str, **spec: Any) -> Manifest:
    embedded = {"metadata": {"backend": "sqlite"}, "media": {"backend": "filesystem"}, "reclaimPolicy": "Delete"}
    return {**ref("TamsStore", name), "spec": {**embedded, **spec}}


def url(name: str) -> str:
    return f"http://{name}-tams.{NAMESPACE}.svc"


@pytest.fixture(scope="module")
def services(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.services(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def destination(cluster: Cluster, admin: httpx.Client, operator: str, seaweedfs: str) -> Iterator[Manifest]:
    """The namespace, the S3 keys, and a bucket of SeaweedFS for the backups; after the module, the stores and the
    backup deleted (the backup's folder with it), so later modules find the cluster as they expect."""
    apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    keys = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backup-keys", "namespace": NAMESPACE},
            "stringData": sample_keys()}  # fmt: skip
    apply(admin, keys)
    s3 = s3_client(cluster)
    if BUCKET not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    endpoint = f"http://seaweedfs.{S3_NAMESPACE}.svc.cluster.local:8333"
    yield {"bucket": BUCKET, "endpoint": endpoint, "credentialsSecretRef": {"name": "backup-keys"}}
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, "--ignore-not-found", "tamsstore/newsroom", "tamsstore/restored",
               "tamsbackup/nightly", f"--timeout={WAIT_S}s")  # fmt: skip


def held(services: httpx.Client, base: str) -> dict[str, Any]:
    """What clients see of a store: its flows, and each flow's segments (timerange, object id, SHA-256 of the bytes
    its get_urls serve)."""
    flows = services.get(f"{base}/flows").json()
    seen: dict[str, Any] = {"flows": sorted((flow["id"], flow["source_id"]) for flow in flows), "segments": {}}
    for flow in flows:
        segments = services.get(f"{base}/flows/{flow['id']}/segments", params={"limit": 1000}).json()
        seen["segments"][flow["id"]] = [
            (segment["timerange"], segment["object_id"], sha256(services, segment)) for segment in segments
        ]
    return seen


def sha256(services: httpx.Client, segment: Manifest) -> str:
    response = services.get(segment["get_urls"][0]["url"])
    assert response.status_code == 200, f"object {segment['object_id']}: {response.status_code}"
    return hashlib.sha256(response.content).hexdigest()


def ready(admin: httpx.Client, services: httpx.Client, name: str) -> None:
    """The store Ready and its Service answering from here."""
    wait_condition(admin, ref("TamsStore", name), "Ready", "True", WAIT_S)
    first_answer(services, f"{url(name)}/service")


def phase(admin: httpx.Client, name: str) -> str | None:
    return (get(admin, ref("TamsBackup", name)).get("status") or {}).get("phase")


def test_a_store_backed_up_while_written_is_restored_into_a_new_store(
    admin: httpx.Client, services: httpx.Client, destination: Manifest, figures: dict[str, object]
) -> None:
    apply(admin, store("newsroom"))
    ready(admin, services, "newsroom")
    quiet = [new_id(), new_id()]
    for flow_id in quiet:
        add_segments(services, url("newsroom"), flow_id, *(f"[{second}:0_{second + 1}:0)" for second in range(8)))
    before = held(services, url("newsroom"))

    # A client writes a third flow, a segment at a time (upload, then register), while the backup runs.
    live, stop, written = new_id(), threading.Event(), []

    def write() -> None:
        for second in range(WRITES):
            if stop.is_set():
                return
            add_segments(services, url("newsroom"), live, f"[{second}:0_{second + 1}:0)")
            written.append(second)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait(lambda: len(written) >= 5, "the client writing", WAIT_S)
        started = time.monotonic()
        apply(admin, {**ref("TamsBackup", "nightly"), "spec": {"storeRef": {"name": "newsroom"},
                                                                "destination": destination}})  # fmt: skip
        wait(lambda: phase(admin, "nightly") in ("Completed", "Failed"), "the backup done", WAIT_S)
        figures["TamsBackup created -> Completed (s)"] = round(time.monotonic() - started, 1)
        during = len(written)
    finally:
        stop.set()
        writer.join(60)
    backup = get(admin, ref("TamsBackup", "nightly"))["status"]
    assert backup["phase"] == "Completed", backup
    figures["segments written by the client during the backup"] = during - 5
    figures["backup: segments, media objects, bytes"] = [backup["segments"], backup["mediaObjects"], backup["size"]]
    assert backup["missingMediaObjects"] == 0

    # The store goes, its volumes with it; a new store comes from the backup.
    assert admin.delete(f"/apis/{GROUP}/namespaces/{NAMESPACE}/tamsstores/newsroom").status_code == 200
    wait(lambda: admin.get(path(ref("TamsStore", "newsroom"))).status_code == 404, "the store deleted", WAIT_S)

    def claims() -> list[str]:
        found = admin.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims").json()["items"]
        return [claim["metadata"]["name"] for claim in found if claim["metadata"]["name"].startswith("newsroom-")]

    wait(lambda: claims() == [], "the store's volumes deleted (garbage collection)", WAIT_S)
    started = time.monotonic()
    apply(admin, store("restored", bootstrap={"fromBackup": {"name": "nightly"}}))
    ready(admin, services, "restored")
    figures["restored store applied -> Ready and answering (s)"] = round(time.monotonic() - started, 1)

    after = held(services, url("restored"))
    assert {flow for flow in after["segments"] if flow in quiet} == set(quiet)
    for flow_id in quiet:
        assert after["segments"][flow_id] == before["segments"][flow_id]
    # The flow being written: a consistent prefix of what the client wrote, each segment with its bytes (held()
    # fetched every one), as many as the backup counted.
    restored_live = after["segments"][live]
    assert [timerange for timerange, _, _ in restored_live] == [f"[{s}:0_{s + 1}:0)" for s in range(len(restored_live))]
    assert 5 <= len(restored_live) <= during
    assert len(restored_live) < WRITES, "the snapshot was taken while the client was still writing"
    assert sum(len(segments) for segments in after["segments"].values()) == backup["segments"]
    figures["restored segments of the flow being written"] = len(restored_live)

    # The restored store is a store like any other: it takes writes, and its next pod does not restore again.
    add_segments(services, url("restored"), new_id(), "[0:0_1:0)")
    selector = {"labelSelector": "app.kubernetes.io/instance=restored,app.kubernetes.io/component=api"}
    [pod] = admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params=selector).json()["items"]
    assert admin.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}").status_code == 200

    def replaced_and_ready() -> bool:
        pods = admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params=selector).json()["items"]
        return any(
            other["metadata"]["uid"] != pod["metadata"]["uid"]
            and any(c["type"] == "Ready" and c["status"] == "True" for c in other["status"].get("conditions", []))
            for other in pods
        )

    wait(replaced_and_ready, "the restored store's next pod ready", WAIT_S)
    assert len(held(services, url("restored"))["flows"]) == len(after["flows"]) + 1
