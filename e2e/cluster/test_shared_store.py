"""A store shared by three API replicas, for real: samples/tamsstore-postgres-s3.yaml applied as written, its
metadata in a PostgreSQL pod (the e2e image of Debian's postgresql, behind the Service name the sample's
CloudNativePG-shaped Secret points at), its media in SeaweedFS. Writes through the Service land on every replica;
a replica killed while a client writes loses no acknowledged write; a rolling update fails no request; the one
worker delivers each event once. The tests run in file order, each a step of the story.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

import cluster_setup
from cluster_access import Cluster
from cluster_setup import WAIT_S, wait_available
from helpers import new_id, video_flow
from operator_harness import GROUP, ROOT, documents, path, wait
from test_scenario import deploy_receiver, kubectl_ok, rolled_out, store_pods

pytestmark = pytest.mark.cluster
Manifest = dict[str, Any]
SAMPLE = ROOT / "samples" / "tamsstore-postgres-s3.yaml"
NAMESPACE = "newsroom"
STORE = "newsroom"
URL = f"http://{STORE}-tams.{NAMESPACE}.svc"
REPLICAS = 3
MAX_WRITES = 5_000  # a writer's bound: far more than a rollout or a pod's replacement lasts
GRACE_S = 5.0  # after the Service stops naming a killed pod, until every node's kube-proxy has stopped using it


def store_ref() -> Manifest:
    return {"apiVersion": GROUP, "kind": "TamsStore", "metadata": {"name": STORE, "namespace": NAMESPACE}}


def sample_token() -> str:
    """The ingest client's bearer token, from the sample's tokens Secret (`NAME TOKEN SCOPES` lines)."""
    [tokens] = [doc for doc in documents(SAMPLE) if doc["kind"] == "Secret" and "tokens" in doc["stringData"]]
    [token] = [line.split()[1] for line in tokens["stringData"]["tokens"].splitlines() if line.startswith("ingest ")]
    return token


def fresh_connections(cluster: Cluster) -> httpx.Client:
    """A client opening a connection per request, as many clients do: each one is balanced by the Service anew."""
    headers = {"Authorization": f"Bearer {sample_token()}"}
    return cluster.services(timeout=10, limits=httpx.Limits(max_keepalive_connections=0), headers=headers)


def ready_pods(admin: httpx.Client) -> list[Manifest]:
    def ready(pod: Manifest) -> bool:
        conditions = (pod.get("status") or {}).get("conditions") or []
        return any(item["type"] == "Ready" and item["status"] == "True" for item in conditions)

    pods = store_pods(admin, STORE, NAMESPACE)
    return [pod for pod in pods if "deletionTimestamp" not in pod["metadata"] and ready(pod)]


@pytest.fixture(scope="module")
def shared_store(
    cluster: Cluster, admin: httpx.Client, operator: str, seaweedfs: str, figures: dict[str, object]
) -> str:
    """The PostgreSQL sample applied with kubectl as written, Ready with its three replicas; its URL."""
    database = cluster_setup.deploy_postgres(admin)
    assert database["metadata"]["namespace"] == NAMESPACE, "the sample's store and database in one namespace"
    started = time.monotonic()
    kubectl_ok(cluster, "apply", "-n", NAMESPACE, "-f", str(SAMPLE))
    kubectl_ok(cluster, "wait", "-n", NAMESPACE, "--for=condition=Ready", f"tamsstore/{STORE}", f"--timeout={WAIT_S}s")
    wait(lambda: len(ready_pods(admin)) == REPLICAS, f"{REPLICAS} API pods ready", WAIT_S)
    figures["PostgreSQL sample applied -> Ready, 3 replicas (s)"] = round(time.monotonic() - started, 1)
    return URL


def new_flow(client: httpx.Client) -> tuple[str, str]:
    """A flow and one object allocated for it (every segment of the writers uses it); their ids."""
    flow_id = new_id()
    created = client.put(f"{URL}/flows/{flow_id}", json=video_flow(flow_id, new_id()))
    assert created.status_code == 201, created.text
    allocated = client.post(f"{URL}/flows/{flow_id}/storage", json={"limit": 1})
    assert allocated.status_code == 201, allocated.text
    return flow_id, allocated.json()["media_objects"][0]["object_id"]


def stored_timeranges(client: httpx.Client, flow_id: str) -> set[str]:
    """Every segment's timerange, page by page (the Link header's next)."""
    found: set[str] = set()
    url: str | None = f"{URL}/flows/{flow_id}/segments?limit=1000"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        found |= {segment["timerange"] for segment in response.json()}
        url = response.links.get("next", {}).get("url")
    return found


class SegmentWriter(threading.Thread):
    """Registers one-second segments on a flow through the Service, each on a fresh connection, until stopped (at
    most MAX_WRITES): which were acknowledged (201: all of the request's segments registered), and which failed when
    they were sent."""

    def __init__(self, cluster: Cluster, flow_id: str, object_id: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.flow_id, self.object_id = cluster, flow_id, object_id
        self.acknowledged: list[str] = []
        self.failures: list[tuple[float, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with fresh_connections(self.cluster) as client:
            for n in range(MAX_WRITES):
                if self.stopping.is_set():
                    return
                timerange, sent = f"[{n}:0_{n + 1}:0)", time.monotonic()
                try:
                    # The one object, [0:0_1:0) on its own timeline, placed at n s.
                    body = [{"object_id": self.object_id, "timerange": timerange, "ts_offset": f"{n}:0"}]
                    response = client.post(f"{URL}/flows/{self.flow_id}/segments", json=body)
                    if response.status_code == 201:
                        self.acknowledged.append(timerange)
                    else:
                        self.failures.append((sent, f"{response.status_code}: {response.text[:200]}"))
                except httpx.HTTPError as error:
                    self.failures.append((sent, repr(error)))
                time.sleep(0.02)

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        assert len(self.acknowledged) + len(self.failures) < MAX_WRITES, "the writer wrote until stopped"


def served_by_pod(admin: httpx.Client, pod: str, method: str, route: str) -> float:
    """Requests a pod answered on a route with 2xx, from its own /metrics (through the API server's proxy)."""
    text = admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:8000/proxy/metrics").text
    prefix = f'tams_api_requests_total{{method="{method}",route="{route}",status="2'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_writes_through_the_service_land_on_every_replica(
    cluster: Cluster, admin: httpx.Client, shared_store: str, figures: dict[str, object]
) -> None:
    pods = [pod["metadata"]["name"] for pod in ready_pods(admin)]
    before = {pod: served_by_pod(admin, pod, "PUT", "/flows/{flow_id}") for pod in pods}
    flows: list[str] = []

    def served() -> dict[str, float]:
        return {pod: served_by_pod(admin, pod, "PUT", "/flows/{flow_id}") - before[pod] for pod in pods}

    # A pod is ready a moment before every node's kube-proxy sends to it: writes go on until each has taken some.
    with fresh_connections(cluster) as client:
        while not all(served().values()):
            assert len(flows) < 300, f"writes reached only some replicas: {served()}"
            flows += [new_flow(client)[0] for _ in range(10)]
        for flow_id in flows:  # each read on a fresh connection: any replica sees what another wrote
            assert client.get(f"{URL}/flows/{flow_id}").status_code == 200
    figures["flow creations by replica"] = sorted(served().values())
    assert sum(served().values()) == len(flows), "each write answered by one of the replicas"


def endpoint_addresses(admin: httpx.Client) -> set[str]:
    """The addresses the store's Service sends to now (its EndpointSlices' ready endpoints)."""
    selector = {"labelSelector": f"kubernetes.io/service-name={STORE}-tams"}
    slices = admin.get(f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices", params=selector).json()
    return {
        address
        for item in slices["items"]
        for endpoint in item.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    }


def test_a_replica_killed_while_a_client_writes_loses_no_acknowledged_write(
    cluster: Cluster, admin: httpx.Client, shared_store: str, figures: dict[str, object]
) -> None:
    with fresh_connections(cluster) as client:
        flow_id, object_id = new_flow(client)
    writer = SegmentWriter(cluster, flow_id, object_id)
    writer.start()
    try:
        wait(lambda: len(writer.acknowledged) >= 20, "the writer under way", WAIT_S)
        victim = ready_pods(admin)[0]
        address = victim["status"]["podIP"]
        pod = f"/api/v1/namespaces/{NAMESPACE}/pods/{victim['metadata']['name']}"
        killed = admin.delete(pod, params={"gracePeriodSeconds": 0})
        assert killed.status_code == 200, killed.text
        wait(lambda: address not in endpoint_addresses(admin), "the Service without the killed pod", WAIT_S)
        moved = time.monotonic()
        wait(lambda: len(ready_pods(admin)) == REPLICAS, f"{REPLICAS} API pods ready again", WAIT_S)
        written = len(writer.acknowledged)
        wait(lambda: len(writer.acknowledged) >= written + 50, "writes after the replacement", WAIT_S)
    finally:
        writer.stop()
    with cluster.services(timeout=30, headers={"Authorization": f"Bearer {sample_token()}"}) as client:
        lost = set(writer.acknowledged) - stored_timeranges(client, flow_id)
    figures["writes acknowledged while a replica was killed and replaced"] = len(writer.acknowledged)
    figures["failed writes while a replica was killed"] = len(writer.failures)
    figures["acknowledged writes lost"] = len(lost)
    assert lost == set()
    late = [failure for failure in writer.failures if failure[0] > moved + GRACE_S]
    assert late == [], f"requests failed after the Service had moved: {late[:5]}"


def test_a_rolling_update_of_the_replicas_fails_no_request(
    admin: httpx.Client, cluster: Cluster, shared_store: str, figures: dict[str, object]
) -> None:
    with fresh_connections(cluster) as client:
        flow_id, object_id = new_flow(client)
    pods_before = {pod["metadata"]["name"] for pod in store_pods(admin, STORE, NAMESPACE)}
    writer = SegmentWriter(cluster, flow_id, object_id)
    writer.start()
    try:
        wait(lambda: len(writer.acknowledged) >= 20, "the writer under way", WAIT_S)
        patch = {"spec": {"presignedUrlTimeout": 1800}}
        headers = {"Content-Type": "application/merge-patch+json"}
        assert admin.patch(path(store_ref()), json=patch, headers=headers).status_code == 200
        wait(lambda: rolled_out(admin, f"{STORE}-tams", pods_before, NAMESPACE), "the rollout done", WAIT_S)
        time.sleep(2)  # and a little after
    finally:
        writer.stop()
    figures["writes during the rolling update of 3 replicas"] = len(writer.acknowledged) + len(writer.failures)
    figures["failed writes during the rolling update of 3 replicas"] = len(writer.failures)
    assert writer.failures == [], writer.failures[:5]
    assert len(writer.acknowledged) > 50, "the writer kept writing through the rollout"


def test_the_one_worker_delivers_each_event_once_with_three_replicas_up(
    admin: httpx.Client, cluster: Cluster, shared_store: str
) -> None:
    settings = admin.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{STORE}-tams").json()["data"]
    assert settings["TAMS_RUN_WORKER"] == "false", "the API replicas leave the background work to the worker"
    wait_available(admin, NAMESPACE, f"{STORE}-tams-worker")
    receiver = deploy_receiver(admin, NAMESPACE, "newsroom-events")
    assert len(ready_pods(admin)) == REPLICAS
    with fresh_connections(cluster) as client:
        registered = client.post(f"{URL}/service/webhooks", json={"url": f"{receiver}/", "events": ["flows/created"]})
        assert registered.status_code == 201, registered.text
        flows = {new_flow(client)[0] for _ in range(20)}

        def created_events() -> Counter[str]:
            received = client.get(f"{receiver}/").json()
            ids = (item["body"]["event"]["flow"]["id"] for item in received)
            return Counter(flow_id for flow_id in ids if flow_id in flows)

        wait(lambda: set(created_events()) == flows, "an event for each flow", WAIT_S)
        time.sleep(5)  # several polls of the worker more: a second delivery would have come by now
        assert set(created_events().values()) == {1}, "each event delivered once"


def test_deleting_the_store_with_reclaim_policy_delete_drops_its_tables(
    admin: httpx.Client, cluster: Cluster, shared_store: str
) -> None:
    patch = {"spec": {"reclaimPolicy": "Delete"}}
    headers = {"Content-Type": "application/merge-patch+json"}
    assert admin.patch(path(store_ref()), json=patch, headers=headers).status_code == 200
    kubectl_ok(cluster, "delete", "-n", NAMESPACE, f"tamsstore/{STORE}", f"--timeout={WAIT_S}s")
    host, user, password, database = cluster_setup.sample_database()
    selector = {"labelSelector": f"app.kubernetes.io/name={host.split('.')[0]}"}
    [pod] = admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params=selector).json()["items"]
    query = "SELECT count(*) FROM pg_tables WHERE schemaname = 'newsroom'"
    output = kubectl_ok(
        cluster, "exec", "-n", NAMESPACE, pod["metadata"]["name"], "--", "env", f"PGPASSWORD={password}",
        "psql", "--host=/tmp", f"--username={user}", f"--dbname={database}", "--tuples-only", "--command", query,
    )  # fmt: skip
    assert output.strip() == "0", "the store's tables dropped"
