"""The operator against the real kube-apiserver and controller-manager, running as its own service account
with exactly the ClusterRole of rbac/operator.yaml: S3 buckets really made in SeaweedFS, VAST tables made
through the SDK fake, children owned and rolled out, status and events telling what happens."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import vastdb
from botocore.exceptions import ClientError

from control_plane import ControlPlane, kubernetes_binaries
from helpers import VAST_SETTINGS, new_fake_vast
from operator_harness import GROUP, condition, create, install, path, play_kubelet, running_operator, wait
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from vast_fake import FakeVast

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def fake_vast() -> Iterator[FakeVast]:
    fake = new_fake_vast()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vastdb, "connect", fake.connect)
        yield fake


@pytest.fixture(scope="module")
def admin(kube: ControlPlane, fake_vast: FakeVast) -> Iterator[httpx.Client]:
    with kube.client() as client:
        install(client)
        with running_operator(kube):
            yield client


@pytest.fixture
def namespace(admin: httpx.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    create(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


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


def wait_condition(admin: httpx.Client, manifest: Manifest, type_: str, status: str = "True") -> Manifest:
    def holds() -> Manifest | None:
        body = get(admin, manifest)
        found = condition(body, type_)
        return body if found and found["status"] == status else None

    return wait(holds, f"{type_}={status} on {manifest['metadata']['name']}")


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
