"""The operator's promise on a real cluster: apply a TamsStore, get a running TAMS service.

Real pods run the real image (non-root, read-only root filesystem) behind real Services, the operator runs in the
cluster from the Helm chart under the chart's own service account, and S3 is SeaweedFS in a pod. The samples in
samples/ are applied as written, into the namespace `media`. The tests run in file order, each a step of the
story (ISSUE: the scenario of `make e2e`): later steps use what earlier ones made.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig

import images
import kind_cluster
from cluster_access import Cluster, first_answer, resolve
from cluster_setup import OPERATOR_NAMESPACE, RELEASE, S3_NAMESPACE, WAIT_S, sample_keys, wait_available
from helpers import new_id, video_flow
from operator_harness import GROUP, ROOT, apply, condition, documents, path, wait
from spec import assert_valid, event_schema
from test_operator import get, wait_condition, wait_status

pytestmark = pytest.mark.cluster
Manifest = dict[str, Any]
NAMESPACE = "media"
SAMPLES = ROOT / "samples"
STORES = {"embedded": "http://embedded-tams.media.svc", "media": "http://media-tams.media.svc"}
RECEIVER_PORT = 8080
# A webhook receiver in the cluster (the image's Python): it keeps what is POSTed to it and lists it on GET.
RECEIVER = """
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
received = []
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(200); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(json.dumps(received).encode())
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


def ref(name: str, kind: str = "TamsStore") -> Manifest:
    """What names one of our custom objects in the namespace, for get, wait_condition and wait_status."""
    return {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}}


def step_store(name: str, **spec: object) -> Manifest:
    """An embedded store that one step makes for itself (reclaimed with it), with more of `spec`."""
    embedded = {"metadata": {"backend": "sqlite"}, "media": {"backend": "filesystem"}, "reclaimPolicy": "Delete"}
    return {**ref(name), "spec": {**embedded, **spec}}


def get_store(admin: httpx.Client, name: str) -> Manifest:
    return get(admin, ref(name))


def wait_store_condition(admin: httpx.Client, name: str, type_: str, status: str = "True") -> Manifest:
    return wait_condition(admin, ref(name), type_, status, WAIT_S)


def kubectl_ok(cluster: Cluster, *args: str) -> str:
    result = cluster.kubectl(*args)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def store_pods(admin: httpx.Client, name: str, namespace: str = NAMESPACE) -> list[Manifest]:
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component=api"
    return admin.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}).json()["items"]


def run_pod(admin: httpx.Client, cluster: Cluster, name: str, script: str) -> str:
    """A one-off pod of the TAMS image running a Python script; its output once it succeeded."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "client",
                    "image": images.TAMS_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", script],
                }
            ],
        },
    }
    apply(admin, pod)

    def finished() -> str | None:
        phase = admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}").json()["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait(finished, f"pod {name} finished", WAIT_S)
    logs = kubectl_ok(cluster, "logs", "-n", NAMESPACE, name)
    assert phase == "Succeeded", logs
    return logs


# 1. The samples become Ready and answer through their Services --------------------------------------------------


@pytest.fixture(scope="module")
def stores(
    cluster: Cluster, admin: httpx.Client, operator: str, seaweedfs: str, figures: dict[str, object]
) -> dict[str, str]:
    """The embedded and the S3 sample, applied with kubectl as written; their in-cluster URLs."""
    apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    started = time.monotonic()
    for sample in ("tamsstore-embedded.yaml", "tamsstore-s3.yaml"):
        kubectl_ok(cluster, "apply", "-n", NAMESPACE, "-f", str(SAMPLES / sample))
    kubectl_ok(
        cluster, "wait", "-n", NAMESPACE, "--for=condition=Ready", *(f"tamsstore/{name}" for name in STORES),
        f"--timeout={WAIT_S}s",
    )  # fmt: skip
    figures["the two samples applied -> Ready (s)"] = round(time.monotonic() - started, 1)
    return STORES


@pytest.fixture(scope="module")
def services(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.services(timeout=30) as client:
        yield client


def test_the_samples_become_ready_and_answer_through_their_services(
    cluster: Cluster, admin: httpx.Client, stores: dict[str, str], services: httpx.Client
) -> None:
    for name, url in stores.items():
        assert get_store(admin, name)["status"]["endpoint"] == f"{url}:80"
        # From this machine, through the ClusterIP, by the Service's name.
        answer = first_answer(services, f"{url}/service")
        assert answer.status_code == 200, answer.text
        assert answer.json()["api_version"] == "8.2"
    # From a pod, through the cluster's DNS and the Service.
    script = "import urllib.request\n" + "\n".join(
        f"print(urllib.request.urlopen('{url}/service').status)" for url in stores.values()
    )
    assert run_pod(admin, cluster, "client", script).split() == ["200", "200"]


def test_the_tams_pods_run_non_root_on_a_read_only_root(cluster: Cluster, admin: httpx.Client, stores: dict) -> None:
    [pod] = store_pods(admin, "embedded")
    script = (
        "import os\nprint(os.getuid())\n"
        "try:\n    open('/usr/x', 'w')\nexcept OSError as error:\n    print(error.strerror)\n"
        "open('/data/.probe', 'w').close(); os.remove('/data/.probe'); print('data writable')"
    )
    output = kubectl_ok(cluster, "exec", "-n", NAMESPACE, pod["metadata"]["name"], "--", "python3", "-c", script)
    assert output.splitlines() == ["10001", "Read-only file system", "data writable"]


# 2. A write/read cycle through the Service ---------------------------------------------------------------------


def add_segments(services: httpx.Client, url: str, flow_id: str, *timeranges: str) -> list[bytes]:
    """A video flow with one uploaded object per timerange, registered as its segments; the objects' bytes."""
    created = services.put(f"{url}/flows/{flow_id}", json=video_flow(flow_id, new_id()))
    assert created.status_code in (201, 204), created.text
    allocated = services.post(f"{url}/flows/{flow_id}/storage", json={"limit": len(timeranges)})
    assert allocated.status_code == 201, allocated.text
    media_objects = allocated.json()["media_objects"]
    contents = []
    for index, media_object in enumerate(media_objects):
        put_url, content = media_object["put_url"], f"segment {index} of {flow_id}".encode()
        uploaded = services.put(put_url["url"], content=content, headers={"Content-Type": put_url["content-type"]})
        assert uploaded.status_code in (200, 201, 204), uploaded.text
        contents.append(content)
    body = [
        {"object_id": media_object["object_id"], "timerange": timerange}
        for media_object, timerange in zip(media_objects, timeranges, strict=True)
    ]
    registered = services.post(f"{url}/flows/{flow_id}/segments", json=body)
    assert registered.status_code == 201, registered.text
    return contents


@pytest.mark.parametrize("store", list(STORES))
def test_a_flow_is_written_and_read_back_through_the_service(
    stores: dict[str, str], services: httpx.Client, store: str
) -> None:
    url, flow_id = stores[store], new_id()
    timeranges = ["[0:0_5:0)", "[5:0_10:0)"]
    contents = add_segments(services, url, flow_id, *timeranges)

    segments = services.get(f"{url}/flows/{flow_id}/segments", params={"presigned": "true"})
    assert segments.status_code == 200, segments.text
    assert [segment["timerange"] for segment in segments.json()] == timeranges
    fetched = [services.get(segment["get_urls"][0]["url"]) for segment in segments.json()]
    assert [(response.status_code, response.content) for response in fetched] == [(200, c) for c in contents]


# 3. A TamsWebhook's events reach a receiver in the cluster; a TamsDeletionRequest deletes ----------------------


@pytest.fixture(scope="module")
def receiver(admin: httpx.Client, stores: dict[str, str]) -> str:
    """The receiver, as the Service the webhook sample names (media-events.media.svc:8080)."""
    return deploy_receiver(admin, NAMESPACE, "media-events")


def deploy_receiver(admin: httpx.Client, namespace: str, name: str) -> str:
    """A webhook receiver running behind a Service `name`; its URL."""
    labels = {"app.kubernetes.io/name": name}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    container = {
        "name": "receiver",
        "image": images.TAMS_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", RECEIVER],
        "ports": [{"name": "http", "containerPort": RECEIVER_PORT}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
    }
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
    apply(
        admin,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod},
        },
    )
    ports = [{"name": "http", "port": RECEIVER_PORT, "targetPort": "http"}]
    apply(
        admin, {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"selector": labels, "ports": ports}}
    )
    wait_available(admin, namespace, name)
    return f"http://{name}.{namespace}.svc:{RECEIVER_PORT}"


def test_a_webhook_object_delivers_events_to_a_receiver_in_the_cluster(
    cluster: Cluster, admin: httpx.Client, stores: dict[str, str], services: httpx.Client, receiver: str
) -> None:
    kubectl_ok(cluster, "apply", "-n", NAMESPACE, "-f", str(SAMPLES / "tamswebhook.yaml"))
    webhook = wait_status(admin, ref("new-segments", "TamsWebhook"), "tamsStatus", "started", timeout=WAIT_S)
    assert condition(webhook, "Ready")["status"] == "True"

    flow_id = new_id()
    add_segments(services, stores["embedded"], flow_id, "[0:0_1:0)")

    def delivered() -> list[Manifest]:
        received = services.get(f"{receiver}/").json()
        return [item for item in received if flow_id in json.dumps(item["body"])]

    mine = wait(lambda: len(delivered()) >= 2 and delivered(), "the flow's events at the receiver", WAIT_S)
    assert [item["body"]["event_type"] for item in mine] == ["flows/created", "flows/segments_added"]
    [key_secret] = [doc for doc in documents(SAMPLES / "tamswebhook.yaml") if doc["kind"] == "Secret"]
    for item in mine:
        assert item["path"] == "/tams"
        assert item["headers"]["X-Api-Key"] == key_secret["stringData"]["apiKey"]
        assert_valid(item["body"], event_schema(item["body"]["event_type"]))

    kubectl_ok(cluster, "delete", "-n", NAMESPACE, "tamswebhook/new-segments", f"--timeout={WAIT_S}s")
    assert services.get(f"{stores['embedded']}/service/webhooks").json() == [], "unregistered with its object"


def test_a_deletion_request_object_deletes_the_segments_of_its_timerange(
    cluster: Cluster, admin: httpx.Client, stores: dict[str, str], services: httpx.Client
) -> None:
    [request] = documents(SAMPLES / "tamsdeletionrequest.yaml")
    flow_id, url = request["spec"]["flowId"], stores["embedded"]
    add_segments(services, url, flow_id, "[0:0_1800:0)", "[1800:0_3600:0)", "[3600:0_3610:0)")

    kubectl_ok(cluster, "apply", "-n", NAMESPACE, "-f", str(SAMPLES / "tamsdeletionrequest.yaml"))
    body = wait_status(
        admin, ref(request["metadata"]["name"], "TamsDeletionRequest"), "state", "done", "error", timeout=WAIT_S
    )
    assert body["status"]["state"] == "done", body["status"]
    remaining = services.get(f"{url}/flows/{flow_id}/segments").json()
    assert [segment["timerange"] for segment in remaining] == ["[3600:0_3610:0)"]


# 4. A spec change rolls the pods; clients see no failed request ------------------------------------------------


class Poller(threading.Thread):
    """Reads from a store through its Service, a fresh connection each time, until stopped; counts failures."""

    def __init__(self, cluster: Cluster, url: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.url = cluster, url
        self.requests, self.failures = 0, []  # type: ignore[var-annotated]
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.cluster.services(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self.stopping.is_set():
                self.requests += 1
                try:
                    response = client.get(self.url)
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                time.sleep(0.05)


def rolled_out(admin: httpx.Client, name: str, pods_before: set[str], namespace: str = NAMESPACE) -> bool:
    deployment = admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}").json()
    status, spec = deployment["status"], deployment["spec"]
    done = (
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == spec["replicas"] == status.get("readyReplicas")
        and status.get("replicas") == spec["replicas"]
    )
    pods = store_pods(admin, name.removesuffix("-tams"), namespace)
    return done and not pods_before & {pod["metadata"]["name"] for pod in pods}


def test_a_spec_change_rolls_the_pods_and_no_request_fails(
    cluster: Cluster, admin: httpx.Client, stores: dict[str, str], services: httpx.Client, figures: dict[str, object]
) -> None:
    flow_id = new_id()
    add_segments(services, stores["embedded"], flow_id, "[0:0_1:0)")
    pods_before = {pod["metadata"]["name"] for pod in store_pods(admin, "embedded")}
    poller = Poller(cluster, f"{stores['embedded']}/flows/{flow_id}/segments")
    poller.start()
    time.sleep(2)  # the poller under way before the change

    patch = {"spec": {"presignedUrlTimeout": 1800}}
    changed = admin.patch(path(ref("embedded")), json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert changed.status_code == 200, changed.text
    wait(lambda: rolled_out(admin, "embedded-tams", pods_before), "the rollout done, the old pod gone", WAIT_S)
    time.sleep(2)  # and a little after
    poller.stopping.set()
    poller.join()

    figures["requests during the rolling update"] = poller.requests
    figures["failed requests during the rolling update"] = len(poller.failures)
    assert poller.requests > 50, "the poller kept polling through the rollout"
    assert poller.failures == [], poller.failures[:5]
    wait_store_condition(admin, "embedded", "Ready")
    [pod] = store_pods(admin, "embedded")
    env_from = admin.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/embedded-tams").json()["data"]
    assert env_from["TAMS_PRESIGNED_URL_TIMEOUT"] == "1800", "the new pod runs the new settings"
    assert pod["metadata"]["name"] not in pods_before


# 5. The working operator replica killed mid-reconcile: the standby takes over; a deleted child comes back -------


def operator_pods(admin: httpx.Client) -> list[Manifest]:
    selector = f"app.kubernetes.io/instance={RELEASE}"
    pods = admin.get(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods", params={"labelSelector": selector}).json()
    return [pod for pod in pods["items"] if "deletionTimestamp" not in pod["metadata"]]


def peers(admin: httpx.Client) -> dict[str, Manifest]:
    """The operator's replicas in Kopf's peering (the chart's ClusterKopfPeering, named as the release), by pod
    name (POD_ID): each one's priority, lifetime and when it was last seen."""
    response = admin.get(f"/apis/kopf.dev/v1/clusterkopfpeerings/{RELEASE}")
    assert response.status_code == 200, response.text
    return response.json().get("status") or {}


def running_peers(admin: httpx.Client) -> dict[str, Manifest]:
    """The running operator pods that are in the peering, by name."""
    recorded = peers(admin)
    return {pod["metadata"]["name"]: pod for pod in operator_pods(admin) if pod["metadata"]["name"] in recorded}


def working_operator_pod(admin: httpx.Client) -> Manifest:
    """The replica that works: of the running pods in the peering, the one of the highest priority, which is the
    oldest (the operator's priority is its start time, negated); the others stand by."""
    recorded = peers(admin)
    running = running_peers(admin)
    assert running, f"no running operator pod in the peering: {recorded}"
    return running[max(running, key=lambda name: recorded[name]["priority"])]


def test_the_operator_runs_under_its_own_role_not_as_cluster_admin(cluster: Cluster, admin: httpx.Client) -> None:
    [account] = {pod["spec"]["serviceAccountName"] for pod in operator_pods(admin)}
    identity = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account}"
    assert cluster.kubectl("auth", "can-i", "create", "tamsstores", "--as", identity).stdout.strip() == "no"
    assert cluster.kubectl("auth", "can-i", "delete", "pods", "--as", identity).stdout.strip() == "no"
    assert (
        cluster.kubectl("auth", "can-i", "create", "deployments", "-n", NAMESPACE, "--as", identity).stdout.strip()
        == "yes"
    )
    assert cluster.kubectl("auth", "can-i", "*", "*", "--as", identity).stdout.strip() == "no"


def configmap_setting(admin: httpx.Client, store: str, name: str) -> str | None:
    """A TAMS_* setting of a store's ConfigMap as the operator last wrote it; None before it wrote one."""
    response = admin.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{store}-tams")
    return response.json()["data"].get(name) if response.status_code == 200 else None


def test_the_working_operator_killed_mid_reconcile_hands_over_to_the_standby(
    cluster: Cluster, admin: httpx.Client, stores: dict[str, str], figures: dict[str, object]
) -> None:
    wait(lambda: len(running_peers(admin)) == 2, "both operator replicas in the peering", WAIT_S)
    working = working_operator_pod(admin)
    [standby] = [pod for pod in operator_pods(admin) if pod["metadata"]["uid"] != working["metadata"]["uid"]]
    reconciled_by_standby = operator_metric(admin, "tams_operator_reconciles_total", standby)
    apply(admin, step_store("interrupted"))
    wait(lambda: configmap_setting(admin, "interrupted", "TAMS_DATA_DIR"), "the reconcile under way", WAIT_S)
    killed = admin.delete(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{working['metadata']['name']}",
                          params={"gracePeriodSeconds": 0})  # fmt: skip
    assert killed.status_code == 200, killed.text
    stopped = time.monotonic()
    # The deleted pod's process stops a moment later (its record withdrawn on SIGTERM, else expired after the
    # peering's lifetime): a change made before may still be its own last reconcile.
    wait(lambda: working["metadata"]["name"] not in peers(admin), "the killed replica out of the peering", WAIT_S)
    figures["operator hand-over: working replica killed -> out of the peering (s)"] = round(
        time.monotonic() - stopped, 1
    )

    # Only the standby can reconcile this change while the killed pod is replaced (the replacement is younger, so
    # it stands by).
    patch = {"spec": {"presignedUrlTimeout": 1700}}
    changed = admin.patch(path(ref("interrupted")), json=patch,
                          headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert changed.status_code == 200, changed.text
    wait(lambda: configmap_setting(admin, "interrupted", "TAMS_PRESIGNED_URL_TIMEOUT") == "1700",
         "the change reconciled", WAIT_S)  # fmt: skip
    handed_over = time.monotonic() - stopped
    figures["operator hand-over: working replica killed -> a store change reconciled (s)"] = round(handed_over, 1)
    replacement = [pod for pod in operator_pods(admin) if pod["metadata"]["uid"] != standby["metadata"]["uid"]]
    ready = [pod for pod in replacement if (condition(pod, "Ready") or {}).get("status") == "True"]
    figures["operator hand-over: the replacement pod was ready by then"] = bool(ready)
    # A reconcile is counted when it ends, after the ConfigMap is written (and the status after it).
    wait(lambda: operator_metric(admin, "tams_operator_reconciles_total", standby) > reconciled_by_standby,
         "the standby's reconcile counted", WAIT_S)  # fmt: skip

    wait(lambda: len(running_peers(admin)) == 2, "the killed pod replaced, in the peering", WAIT_S)
    wait_available(admin, OPERATOR_NAMESPACE, RELEASE)
    assert working_operator_pod(admin)["metadata"]["uid"] == standby["metadata"]["uid"], "the replacement stands by"
    wait_store_condition(admin, "interrupted", "Ready")
    for name in STORES:
        wait_store_condition(admin, name, "Ready")
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, "tamsstore/interrupted", f"--timeout={WAIT_S}s")


def test_a_deleted_child_deployment_is_restored(cluster: Cluster, admin: httpx.Client, stores: dict[str, str]) -> None:
    before = admin.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/media-tams").json()["metadata"]["uid"]
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, "deployment/media-tams", "--wait=false")

    def restored() -> bool:
        response = admin.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/media-tams")
        return response.status_code == 200 and response.json()["metadata"]["uid"] != before

    wait(restored, "the Deployment made again", WAIT_S)
    wait_available(admin, NAMESPACE, "media-tams")
    wait_store_condition(admin, "media", "Ready")


# 6. Bad input: a condition that says what to fix, no crash loop, no hot loop ------------------------------------


def operator_metric(admin: httpx.Client, name: str, pod: Manifest | None = None, **labels: str) -> float:
    """A counter of an operator replica (the working one unless `pod`), from its /metrics (through the API server's
    proxy to the pod)."""
    pod = pod or working_operator_pod(admin)
    text = admin.get(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{pod['metadata']['name']}:8081/proxy/metrics").text
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    # No labels given: the counter's every series.
    prefixes = (f"{name}{{{selector}}} ",) if selector else (f"{name} ", f"{name}{{")
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefixes))


def test_a_store_whose_secret_does_not_exist_says_so_without_crash_or_hot_loop(
    admin: httpx.Client, stores: dict[str, str], figures: dict[str, object]
) -> None:
    store = {
        "apiVersion": GROUP,
        "kind": "TamsStore",
        "metadata": {"name": "no-keys", "namespace": NAMESPACE},
        "spec": {
            "metadata": {"backend": "sqlite"},
            "media": {
                "backend": "s3",
                "s3": {
                    "endpoint": "http://seaweedfs.s3.svc.cluster.local:8333",
                    "bucket": "no-keys",
                    "credentialsSecretRef": {"name": "keys-nobody-made"},
                },
            },
        },
    }
    operator_pod = working_operator_pod(admin)
    restarts = operator_pod["status"]["containerStatuses"][0]["restartCount"]
    apply(admin, store)
    body = wait_store_condition(admin, "no-keys", "Ready", "False")
    wait(lambda: "keys-nobody-made" in condition(get_store(admin, "no-keys"), "Ready")["message"],
         "the Secret named in Ready", WAIT_S)  # fmt: skip
    body = get_store(admin, "no-keys")
    assert "keys-nobody-made" in condition(body, "MediaProvisioned")["message"]

    counted = operator_metric(admin, "tams_operator_reconciles_total", outcome="not_ready")
    time.sleep(20)
    retries = operator_metric(admin, "tams_operator_reconciles_total", outcome="not_ready") - counted
    figures["reconciles of a store with a missing Secret in 20 s"] = retries
    assert retries <= 8, "retried with backoff, not in a loop"
    same = working_operator_pod(admin)
    assert same["metadata"]["uid"] == operator_pod["metadata"]["uid"], "the operator did not crash"
    assert same["status"]["containerStatuses"][0]["restartCount"] == restarts
    assert admin.delete(path(ref("no-keys"))).status_code == 200


def test_an_image_that_cannot_be_pulled_shows_on_the_store(admin: httpx.Client, stores: dict[str, str]) -> None:
    apply(admin, step_store("bad-image", image=f"localhost/tams-operator:does-not-exist-{uuid.uuid4().hex[:6]}"))

    def pull_failure_named() -> Manifest | None:
        available = condition(get_store(admin, "bad-image"), "Available")
        message = (available or {}).get("message", "")
        return available if any(word in message for word in ("ImagePullBackOff", "ErrImagePull")) else None

    available = wait(pull_failure_named, "the pull failure in the TamsStore's Available condition", WAIT_S)
    assert available["status"] == "False"
    assert condition(get_store(admin, "bad-image"), "Ready")["status"] == "False"
    assert admin.delete(path(ref("bad-image"))).status_code == 200


# 7. Deleting the stores: Delete reclaims the bucket and the data, Retain keeps them, nothing is orphaned ---------


def s3_client(cluster: Cluster) -> Any:
    keys = sample_keys()
    address = resolve(f"seaweedfs.{S3_NAMESPACE}.svc.cluster.local", cluster.dns_server)
    return boto3.client(
        "s3",
        endpoint_url=f"http://{address}:8333",
        region_name="us-east-1",
        aws_access_key_id=keys["accessKey"],
        aws_secret_access_key=keys["secretKey"],
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def managed_objects(admin: httpx.Client) -> list[str]:
    """What the operator made in the namespace that is still there (claims of Retain stores are meant to stay)."""
    selector = {"labelSelector": "app.kubernetes.io/managed-by=tams-operator"}
    found = []
    for collection in ("apis/apps/v1/deployments", "apis/apps/v1/replicasets", "api/v1/pods", "api/v1/services",
                       "api/v1/configmaps", "api/v1/serviceaccounts", "api/v1/secrets",
                       "api/v1/persistentvolumeclaims"):  # fmt: skip
        group, kind = collection.rsplit("/", 1)
        items = admin.get(f"/{group}/namespaces/{NAMESPACE}/{kind}", params=selector).json()["items"]
        found += [f"{kind}/{item['metadata']['name']}" for item in items]
    return sorted(found)


def test_deleting_the_stores_reclaims_what_delete_says_and_keeps_what_retain_keeps(
    cluster: Cluster, admin: httpx.Client, stores: dict[str, str]
) -> None:
    s3 = s3_client(cluster)
    [bucket_store] = [doc for doc in documents(SAMPLES / "tamsstore-s3.yaml") if doc["kind"] == "TamsStore"]
    bucket = bucket_store["spec"]["media"]["s3"]["bucket"]
    assert bucket in {found["Name"] for found in s3.list_buckets()["Buckets"]}
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) > 0, "the written media is in the bucket"
    claims = {
        claim["metadata"]["name"]: claim["spec"]["volumeName"]
        for claim in admin.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims").json()["items"]
    }
    kept = {claim: volume for claim, volume in claims.items() if claim.startswith("embedded-")}
    reclaimed = [volume for claim, volume in claims.items() if claim.startswith("media-")]
    assert len(kept) == 2 and len(reclaimed) == 1, claims

    # The S3 store in the foreground, as Argo CD prunes (its children go first, while the operator reclaims).
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, "tamsstore/media", "--cascade=foreground", f"--timeout={WAIT_S}s")
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, "tamsstore/embedded", f"--timeout={WAIT_S}s")

    assert bucket not in {found["Name"] for found in s3.list_buckets()["Buckets"]}, "Delete: the bucket is gone"
    wait(lambda: managed_objects(admin) == [f"persistentvolumeclaims/{claim}" for claim in sorted(kept)],
         "only the Retain store's claims left", WAIT_S)  # fmt: skip
    for volume in reclaimed:  # the claim collected with its store, its volume and folder deleted
        wait(lambda volume=volume: admin.get(f"/api/v1/persistentvolumes/{volume}").status_code == 404,
             f"volume {volume} deleted", WAIT_S)  # fmt: skip
    for claim, volume in kept.items():
        body = admin.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{claim}").json()
        assert (body["status"]["phase"], body["spec"]["volumeName"]) == ("Bound", volume), "Retain: the data stays"
        assert "ownerReferences" not in body["metadata"]


# 8. Placement and a drain: a store's pod where the scheduler put it, serving while another worker is drained ----


@pytest.mark.skipif(kind_cluster.WORKERS < 2, reason="TAMS_E2E_WORKERS < 2: no other worker to drain")
def test_a_store_keeps_serving_while_another_worker_is_drained(
    cluster: Cluster, admin: httpx.Client, operator: str, figures: dict[str, object]
) -> None:
    apply(admin, step_store("placed"))
    wait_store_condition(admin, "placed", "Ready")
    [pod] = store_pods(admin, "placed")
    node = pod["spec"]["nodeName"]
    workers = [item["metadata"]["name"] for item in kind_cluster.nodes(admin)
               if kind_cluster.CONTROL_PLANE_ROLE not in item["metadata"]["labels"]]  # fmt: skip
    assert node in workers, "the control plane's taint keeps stores off it"
    for claim in admin.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims").json()["items"]:
        if claim["metadata"]["name"].startswith("placed-"):  # local volumes, made where the scheduler put the pod
            volume = admin.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}").json()
            [term] = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
            assert term["matchExpressions"][0]["values"] == [node], volume["spec"]["nodeAffinity"]
    [other] = [worker for worker in workers if worker != node][:1]

    # Through the ClusterIP, not the name: the cluster's DNS may be on the drained worker, and moves too.
    address = admin.get(f"/api/v1/namespaces/{NAMESPACE}/services/placed-tams").json()["spec"]["clusterIP"]
    poller = Poller(cluster, f"http://{address}/service")
    poller.start()
    try:
        kubectl_ok(cluster, "drain", other, "--ignore-daemonsets", "--delete-emptydir-data", f"--timeout={WAIT_S}s")
        wait_available(admin, OPERATOR_NAMESPACE, RELEASE)
        wait_available(admin, S3_NAMESPACE, "seaweedfs")
    finally:
        poller.stopping.set()
        poller.join()
        kubectl_ok(cluster, "uncordon", other)
    figures["requests while a worker was drained"] = poller.requests
    figures["failed requests while a worker was drained"] = len(poller.failures)
    assert poller.failures == [], poller.failures[:5]
    [same] = store_pods(admin, "placed")
    assert same["metadata"]["uid"] == pod["metadata"]["uid"], "the store's pod was not on the drained worker"
    assert condition(get_store(admin, "placed"), "Ready")["status"] == "True"

    # The operator, wherever the drain moved it, still reconciles the store.
    patch = {"spec": {"presignedUrlTimeout": 1200}}
    changed = admin.patch(path(ref("placed")), json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert changed.status_code == 200, changed.text
    wait(lambda: rolled_out(admin, "placed-tams", {pod["metadata"]["name"]}), "the change rolled out", WAIT_S)
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, "tamsstore/placed", f"--timeout={WAIT_S}s")
