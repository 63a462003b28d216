"""The operator against the real kube-apiserver and controller-manager, running as its own service account
with exactly the ClusterRole of rbac/operator.yaml: S3 buckets really made in SeaweedFS, VAST tables made
through the SDK fake, children owned and rolled out, status and events telling what happens."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kopf
import pytest
import vastdb
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

import vms_server
from control_plane import ControlPlane, free_port, kubernetes_binaries
from helpers import VAST_SETTINGS, new_fake_vast
from operator_harness import (
    GROUP,
    ROOT,
    condition,
    create,
    documents,
    new_namespace,
    operated,
    path,
    play_kubelet,
    wait,
)
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from vast_fake import FakeVast
from vms_server import fake_vms

Manifest = dict[str, Any]
METRICS_PORT = free_port()
REMOVABLE_CHILDREN = {
    "serviceaccounts",
    "ingresses",
    "networkpolicies",
    "httproutes",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
    "podmonitors",
}


@pytest.fixture(scope="module")
def fake_vast() -> Iterator[FakeVast]:
    fake = new_fake_vast()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vastdb, "connect", fake.connect)
        yield fake


@pytest.fixture(scope="module")
def admin(kube: ControlPlane, fake_vast: FakeVast) -> Iterator[httpx.Client]:
    with operated(
        kube, TAMS_OPERATOR_METRICS_PORT=str(METRICS_PORT), TAMS_OPERATOR_METRICS_ADDRESS="127.0.0.1"
    ) as client:
        yield client


@pytest.fixture
def namespace(admin: httpx.Client) -> str:
    return new_namespace(admin)


def secret(namespace: str, name: str, **data: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


def tams_store(namespace: str, spec: Manifest, name: str = "news") -> Manifest:
    return {"apiVersion": GROUP, "kind": "TamsStore", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def s3_spec(server: S3Server, bucket: str, **options: Any) -> Manifest:
    s3 = {"endpoint": server.endpoint_url, "bucket": bucket, "credentialsSecretRef": {"name": "s3-keys"}}
    return {"backend": "s3", "s3": {**s3, **options}}


VAST_SPEC = {
    "backend": "vast",
    "vast": {
        "endpoint": VAST_SETTINGS["vast_endpoint"],
        "bucket": VAST_SETTINGS["vast_bucket"],
        "credentialsSecretRef": {"name": "vast-keys"},
    },
}


def with_keys(admin: httpx.Client, namespace: str) -> None:
    create(admin, secret(namespace, "s3-keys", accessKey=ACCESS_KEY, secretKey=SECRET_KEY))
    access, secret_key = VAST_SETTINGS["vast_access_key"], VAST_SETTINGS["vast_secret_key"]
    create(admin, secret(namespace, "vast-keys", accessKey=access, secretKey=secret_key))


def get(admin: httpx.Client, manifest: Manifest) -> Manifest:
    response = admin.get(path(manifest))
    assert response.status_code == 200, response.text
    return response.json()


def wait_condition(
    admin: httpx.Client, manifest: Manifest, type_: str, status: str = "True", timeout: float = 30.0
) -> Manifest:
    def holds() -> Manifest | None:
        body = get(admin, manifest)
        found = condition(body, type_)
        return body if found and found["status"] == status else None

    return wait(holds, f"{type_}={status} on {manifest['metadata']['name']}", timeout)


def wait_status(admin: httpx.Client, manifest: Manifest, field: str, *values: str, timeout: float = 30.0) -> Manifest:
    """The object once status.`field` is one of `values`."""

    def reached() -> Manifest | None:
        body = get(admin, manifest)
        return body if (body.get("status") or {}).get(field) in values else None

    return wait(reached, f"status.{field} of {manifest['metadata']['name']} in {values}", timeout)


def bucket_exists(server: S3Server, bucket: str) -> bool:
    try:
        server.client().head_bucket(Bucket=bucket)
        return True
    except ClientError:
        return False


def kubectl(kube: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(kubernetes_binaries() / "kubectl"), f"--kubeconfig={kube.kubeconfig()}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_store_on_vast_and_s3_is_provisioned_rolled_out_and_ready(
    kube: ControlPlane, admin: httpx.Client, namespace: str, s3_server: S3Server, fake_vast: FakeVast
) -> None:
    with_keys(admin, namespace)
    bucket = f"tams-{uuid.uuid4().hex[:12]}"
    schema = f"s{uuid.uuid4().hex[:8]}"
    spec = {
        "replicas": 2,
        "metadata": {**VAST_SPEC, "vast": {**VAST_SPEC["vast"], "schema": schema}},
        "media": s3_spec(s3_server, bucket, createBucket=True),
        "reclaimPolicy": "Delete",
    }
    store = create(admin, tams_store(namespace, spec))

    body = wait_condition(admin, store, "MediaProvisioned")
    assert condition(body, "MetadataProvisioned")["status"] == "True"
    assert bucket_exists(s3_server, bucket), "the bucket is really made"
    assert fake_vast.read_committed(VAST_SETTINGS["vast_bucket"], schema, "flows").num_rows == 0
    uid = body["metadata"]["uid"]
    for kind, name in [
        ("ConfigMap", "news-tams"),
        ("Service", "news-tams"),
        ("ServiceAccount", "news-tams"),
        ("Deployment", "news-tams"),
        ("Deployment", "news-tams-worker"),
        ("Secret", "news-tams-operator"),
    ]:
        api_version = "apps/v1" if kind == "Deployment" else "v1"
        child = get(
            admin, {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        )
        assert [owner["uid"] for owner in child["metadata"]["ownerReferences"]] == [uid], (kind, name)

    assert condition(body, "Ready")["status"] == "False"
    wait(lambda: play_kubelet(admin, namespace, "app.kubernetes.io/instance=news") == 3, "3 pods")
    body = wait_condition(admin, store, "Ready")
    assert body["status"]["endpoint"] == f"http://news-tams.{namespace}.svc:80"
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    waited = kubectl(kube, "wait", "--for=condition=Ready", "tamsstore/news", "-n", namespace, "--timeout=30s")
    assert waited.returncode == 0, waited.stderr


def deployment_ref(namespace: str, name: str = "news-tams") -> Manifest:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace}}


def merge_patch(admin: httpx.Client, manifest: Manifest, patch: Manifest) -> Manifest:
    response = admin.patch(path(manifest), json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert response.status_code == 200, response.text
    return response.json()


def embedded_store(admin: httpx.Client, namespace: str, **spec: Any) -> Manifest:
    """An embedded (sqlite + filesystem) store, once Ready with the kubelet's part played."""
    store = create(admin, tams_store(namespace, spec))
    wait(lambda: play_kubelet(admin, namespace, "app.kubernetes.io/instance=news"), "a pod")
    wait_condition(admin, store, "Ready")
    return store


def test_a_spec_change_rolls_the_pods_and_the_status_follows(admin: httpx.Client, namespace: str) -> None:
    store = embedded_store(admin, namespace)
    stale = get(admin, store)
    template = get(admin, deployment_ref(namespace))["spec"]["template"]
    before = template["metadata"]["annotations"]["tams-operator.io/config-hash"]

    changed = merge_patch(admin, store, {"spec": {"presignedUrlTimeout": 600}})
    assert changed["metadata"]["generation"] == 2
    wait(lambda: get(admin, store)["status"].get("observedGeneration") == 2, "observedGeneration 2")
    config = get(
        admin, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "news-tams", "namespace": namespace}}
    )
    assert config["data"]["TAMS_PRESIGNED_URL_TIMEOUT"] == "600"
    template = get(admin, deployment_ref(namespace))["spec"]["template"]
    assert template["metadata"]["annotations"]["tams-operator.io/config-hash"] != before, "pods roll"
    # The new ReplicaSet's pod becomes ready: Ready again, for generation 2.
    wait(lambda: play_kubelet(admin, namespace, "app.kubernetes.io/instance=news") and is_ready(admin, store), "Ready")
    assert condition(get(admin, store), "Ready")["observedGeneration"] == 2

    # A resync that began from the body of generation 1 (a daemon's snapshot, waiting for the lock while the change
    # was reconciled) works from the store as it is now: it neither applies the old spec's children nor stamps the
    # status with the old generation. The ConfigMap is not even written (a re-apply of the same content is no write).
    config_ref = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "news-tams", "namespace": namespace}}
    written = get(admin, config_ref)["metadata"]["resourceVersion"]
    resync_from(stale)
    assert get(admin, config_ref)["metadata"]["resourceVersion"] == written
    assert get(admin, store)["status"]["observedGeneration"] == 2


def resync_from(body: Manifest) -> None:
    """The operator's periodic resync of `body` as given, run here with a memo of its own and no events posted
    (Kopf's posting reads its settings from a context variable that only its own tasks have)."""
    from kopf._core.engines.posting import settings_var
    from tams_operator import stores
    from tams_operator.config import OperatorSettings
    from tams_operator.main import prepare

    async def resync() -> None:
        quiet = kopf.OperatorSettings()
        quiet.posting.level = logging.CRITICAL
        settings_var.set(quiet)
        memo = kopf.Memo()
        prepare(memo, OperatorSettings())
        try:
            await stores.resync(memo, body)
        finally:
            await memo["api"].aclose()

    asyncio.run(resync())


def is_ready(admin: httpx.Client, store: Manifest) -> bool:
    found = condition(get(admin, store), "Ready")
    return bool(found and found["status"] == "True")


def test_children_changed_or_deleted_behind_the_operators_back_come_back(admin: httpx.Client, namespace: str) -> None:
    store = embedded_store(admin, namespace)
    deployment = get(admin, deployment_ref(namespace))
    assert admin.delete(path(deployment)).status_code == 200
    wait(lambda: admin.get(path(deployment)).status_code == 200, "the Deployment back")
    assert get(admin, deployment)["metadata"]["uid"] != deployment["metadata"]["uid"]

    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "news-tams", "namespace": namespace}}
    edited = get(admin, service)
    edited["spec"]["ports"][0]["port"] = 9999
    assert admin.put(path(service), json=edited).status_code == 200
    wait(lambda: get(admin, service)["spec"]["ports"][0]["port"] == 80, "the Service's port restored")
    wait(lambda: play_kubelet(admin, namespace, "app.kubernetes.io/instance=news") and is_ready(admin, store), "Ready")


def test_a_pod_that_cannot_pull_its_image_shows_on_the_store(admin: httpx.Client, namespace: str) -> None:
    store = embedded_store(admin, namespace)
    pods = admin.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "tams:nope"'}
    status = {"containerStatuses": [{**pods[0]["status"]["containerStatuses"][0], "ready": False,
                                     "state": {"waiting": waiting}}]}  # fmt: skip
    response = admin.patch(
        f"/api/v1/namespaces/{namespace}/pods/{pods[0]['metadata']['name']}/status",
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    body = wait_condition(admin, store, "Ready", "False")
    assert condition(body, "Available")["reason"] == "ImagePullBackOff"
    assert 'Back-off pulling image "tams:nope"' in condition(body, "Ready")["message"]


def test_a_pod_whose_migration_fails_shows_on_the_store_saying_why(admin: httpx.Client, namespace: str) -> None:
    """The migrate init container crash-loops (a store newer than the image): its one-line error, which the
    kubelet keeps as its termination message, is the store's reason, not the back-off."""
    store = embedded_store(admin, namespace)
    pods = admin.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
    refused = "tams-api: bad configuration: TAMS_SQLITE_PATH: SQLite /data/tams.sqlite has schema version 9, newer"
    migrate = {
        "name": "migrate",
        "image": pods[0]["spec"]["initContainers"][0]["image"],
        "imageID": "",
        "ready": False,
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": f"{refused}\n"}},
    }
    response = admin.patch(
        f"/api/v1/namespaces/{namespace}/pods/{pods[0]['metadata']['name']}/status",
        json={"status": {"initContainerStatuses": [migrate]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    body = wait_condition(admin, store, "Ready", "False")
    assert condition(body, "Available")["reason"] == "CrashLoopBackOff"
    assert condition(body, "Available")["message"].endswith(f"{pods[0]['metadata']['name']}: {refused}")


def test_a_missing_secret_is_named_retried_without_spinning_and_healed(
    admin: httpx.Client, namespace: str, s3_server: S3Server
) -> None:
    bucket = f"tams-{uuid.uuid4().hex[:12]}"
    store = create(admin, tams_store(namespace, {"media": s3_spec(s3_server, bucket, createBucket=True)}))
    body = wait_condition(admin, store, "MediaProvisioned", "False")
    ready = condition(body, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound")
    assert ready["message"] == f"Secret 's3-keys' not found in namespace '{namespace}'"

    # Retries back off (0.5 s doubling to 2 s here): a few writes in 4 s, not a hot loop.
    versions = set()
    for _ in range(40):
        versions.add(get(admin, store)["metadata"]["resourceVersion"])
        time.sleep(0.1)
    assert len(versions) <= 8, f"{len(versions)} versions of the TamsStore in 4 s"
    assert admin.get(path(deployment_ref(namespace))).status_code == 404, "no pods before the stores exist"

    create(admin, secret(namespace, "s3-keys", accessKey=ACCESS_KEY, secretKey=SECRET_KEY))
    wait_condition(admin, store, "MediaProvisioned")
    assert bucket_exists(s3_server, bucket)


def test_wrong_keys_and_a_missing_bucket_say_what_to_fix(
    admin: httpx.Client, namespace: str, s3_server: S3Server
) -> None:
    create(admin, secret(namespace, "s3-keys", accessKey=ACCESS_KEY, secretKey="wrong"))
    store = create(admin, tams_store(namespace, {"media": s3_spec(s3_server, "tams-absent")}))
    body = wait_condition(admin, store, "MediaProvisioned", "False")
    assert "TAMS_S3_ACCESS_KEY_ID / TAMS_S3_SECRET_ACCESS_KEY" in condition(body, "MediaProvisioned")["message"]

    create_secret = secret(namespace, "s3-keys", accessKey=ACCESS_KEY, secretKey=SECRET_KEY)
    assert admin.put(path(create_secret), json=create_secret).status_code == 200
    wait(
        lambda: "does not exist" in condition(get(admin, store), "MediaProvisioned")["message"],
        "the missing bucket named",
    )
    assert not bucket_exists(s3_server, "tams-absent"), "createBucket is off"


@pytest.mark.parametrize(
    ("broken", "condition_type", "message"),
    [
        ({"vast-keys": {"secretKey": "wrong"}}, "MetadataProvisioned", "TAMS_VAST_ACCESS_KEY / TAMS_VAST_SECRET_KEY"),
        (
            {"endpoint": "http://vast.elsewhere"},
            "MetadataProvisioned",
            "cannot connect to VAST at http://vast.elsewhere",
        ),
        (
            {"s3": "http://127.0.0.1:9"},
            "MediaProvisioned",
            "TAMS_S3_ENDPOINT_URL: cannot connect to http://127.0.0.1:9",
        ),
    ],
    ids=["vast-keys", "vast-unreachable", "s3-unreachable"],
)
def test_store_failures_are_conditions_naming_what_to_fix(
    admin: httpx.Client,
    namespace: str,
    s3_server: S3Server,
    broken: dict[str, Any],
    condition_type: str,
    message: str,
) -> None:
    with_keys(admin, namespace)
    if "vast-keys" in broken:
        keys = secret(namespace, "vast-keys", accessKey=VAST_SETTINGS["vast_access_key"], **broken["vast-keys"])
        assert admin.put(path(keys), json=keys).status_code == 200
    vast = {**VAST_SPEC["vast"], **({"endpoint": broken["endpoint"]} if "endpoint" in broken else {})}
    media = s3_spec(s3_server, f"tams-{uuid.uuid4().hex[:12]}", createBucket=True)
    if "s3" in broken:
        media["s3"]["endpoint"] = broken["s3"]
    store = create(admin, tams_store(namespace, {"metadata": {**VAST_SPEC, "vast": vast}, "media": media}))
    body = wait_condition(admin, store, condition_type, "False")
    assert message in condition(body, condition_type)["message"]
    assert condition(body, "Ready")["status"] == "False"


def test_a_spec_the_service_would_refuse_is_reported(admin: httpx.Client, namespace: str) -> None:
    store = create(admin, tams_store(namespace, {"presignedUrlTimeout": 10_000}))
    body = wait_condition(admin, store, "Ready", "False")
    ready = condition(body, "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "TAMS_PRESIGNED_URL_TIMEOUT must not exceed TAMS_OBJECT_TIMEOUT" in ready["message"]


# Foreground: the owner waits for its dependents, which garbage collection deletes while the operator reclaims
# (Argo CD prunes that way); its own token Secret may be gone by then.
@pytest.mark.parametrize(
    ("policy", "propagation"), [("Delete", "Background"), ("Delete", "Foreground"), ("Retain", "Background")]
)
def test_deleting_a_store_reclaims_its_data_only_when_asked(
    admin: httpx.Client, namespace: str, s3_server: S3Server, fake_vast: FakeVast, policy: str, propagation: str
) -> None:
    with_keys(admin, namespace)
    bucket, schema = f"tams-{uuid.uuid4().hex[:12]}", f"s{uuid.uuid4().hex[:8]}"
    spec = {
        "metadata": {**VAST_SPEC, "vast": {**VAST_SPEC["vast"], "schema": schema}},
        "media": s3_spec(s3_server, bucket, createBucket=True),
        "reclaimPolicy": policy,
    }
    store = create(admin, tams_store(namespace, spec))
    wait_condition(admin, store, "MediaProvisioned")
    s3_server.client().put_object(Bucket=bucket, Key="media-object", Body=b"bytes")

    assert admin.delete(path(store), params={"propagationPolicy": propagation}).status_code in (200, 202)
    wait(lambda: admin.get(path(store)).status_code == 404, "the TamsStore gone")
    tables = VAST_SETTINGS["vast_bucket"], schema, "flows"
    if policy == "Delete":
        assert not bucket_exists(s3_server, bucket)
        with pytest.raises(vastdb.errors.MissingTable):
            fake_vast.read_committed(*tables)
    else:
        assert s3_server.client().get_object(Bucket=bucket, Key="media-object")["Body"].read() == b"bytes"
        fake_vast.read_committed(*tables)
    # Children go by garbage collection, through their owner references (the controller-manager's work).
    wait(lambda: admin.get(path(deployment_ref(namespace))).status_code == 404, "the Deployment collected")


def test_the_operators_role_is_least_privilege() -> None:
    role = next(doc for doc in documents(ROOT / "rbac" / "operator.yaml") if doc["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert "deletecollection" not in rule["verbs"], rule
        if "delete" in rule["verbs"]:
            # Children a field takes away, the backups a schedule's retention expires, a backup's ended Job.
            allowed = REMOVABLE_CHILDREN | {"tamsbackups", "jobs"}
            assert set(rule["resources"]) <= allowed, f"deletes only what it owns and lets go: {rule}"
        if "secrets" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "create"}, "Secrets: read credentials, create its token"


def test_the_operator_exports_its_metrics(admin: httpx.Client, namespace: str) -> None:
    embedded_store(admin, namespace)
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("tams_operator_reconciles_total", (("outcome", "ok"),))] >= 1
    assert samples[("tams_operator_reconcile_duration_seconds_count", ())] >= 1
    assert samples[("tams_operator_time_to_ready_seconds_count", (("kind", "TamsStore"),))] >= 1
    ready = ("tams_operator_condition_changes_total", (("kind", "TamsStore"), ("reason", "Ready"), ("status", "True"),
                                                       ("type", "Ready")))  # fmt: skip
    assert samples[ready] >= 1


def test_a_missing_vast_bucket_is_created_through_vms(
    admin: httpx.Client, namespace: str, s3_server: S3Server, fake_vast: FakeVast, tmp_path: Path
) -> None:
    with_keys(admin, namespace)
    with fake_vms(tmp_path, fake_vast.create_bucket) as vms:
        create(admin, secret(namespace, "vms-admin", username=vms_server.USERNAME, password=vms_server.PASSWORD))
        bucket = f"db-{uuid.uuid4().hex[:8]}"
        management = {
            "endpoint": f"https://{vms.address}",
            "bucketOwner": vms_server.BUCKET_OWNER,
            "credentialsSecretRef": {"name": "vms-admin"},
        }
        vast = {**VAST_SPEC["vast"], "bucket": bucket, "management": management}
        spec = {"metadata": {**VAST_SPEC, "vast": vast}, "media": s3_spec(s3_server, bucket, createBucket=True)}
        store = create(admin, tams_store(namespace, spec))
        body = wait_condition(admin, store, "MetadataProvisioned")
        assert f"created bucket {bucket} (VMS view)" in condition(body, "MetadataProvisioned")["message"]
        assert [view["bucket"] for view in vms.creations()] == [bucket]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "news-tams", "namespace": namespace}}
    assert not [name for name in get(admin, config_map)["data"] if "MANAGEMENT" in name], (
        "VMS settings stay with the operator"
    )


def test_an_extra_s3_backend_is_provisioned_with_its_own_keys(
    admin: httpx.Client, namespace: str, s3_server: S3Server
) -> None:
    with_keys(admin, namespace)
    create(admin, secret(namespace, "archive-keys", accessKey=ACCESS_KEY, secretKey=SECRET_KEY))
    hot, cold = f"tams-{uuid.uuid4().hex[:12]}", f"tams-{uuid.uuid4().hex[:12]}"
    media = s3_spec(s3_server, hot, createBucket=True)
    media["extraBackends"] = [
        {
            "label": "archive",
            "endpoint": s3_server.endpoint_url,
            "bucket": cold,
            "createBucket": True,
            "credentialsSecretRef": {"name": "archive-keys"},
        }
    ]
    store = create(admin, tams_store(namespace, {"media": media}))
    body = wait_condition(admin, store, "MediaProvisioned")
    assert bucket_exists(s3_server, hot) and bucket_exists(s3_server, cold)
    assert f"bucket {cold!r}" in condition(body, "MediaProvisioned")["message"]
    env = get(admin, deployment_ref(namespace))["spec"]["template"]["spec"]["containers"][0]["env"]
    assert SECRET_KEY not in str(env), "keys by reference only"

    # Wrong keys for the archive are named as the archive's.
    keys = secret(namespace, "archive-keys", accessKey=ACCESS_KEY, secretKey="wrong")
    assert admin.put(path(keys), json=keys).status_code == 200
    merge_patch(admin, store, {"spec": {"presignedUrlTimeout": 900}})  # a new generation provisions again
    body = wait_condition(admin, store, "MediaProvisioned", "False")
    assert "TAMS_EXTRA_STORAGE_BACKENDS (backend 'archive')" in condition(body, "MediaProvisioned")["message"]
