"""A TamsStore as a platform team runs it in production, on the real cluster with the real ecosystem around it:
Traefik in front (its Ingress and Gateway API providers), cert-manager issuing the certificate, metrics-server feeding
the autoscaler. A filesystem store is reached from this machine only at https://tams.e2e.test, as a client outside
the cluster reaches it: the README walk-through and a large upload through its public URL, every URL the API hands
out on it; then the same store through an HTTPRoute. A shared store on PostgreSQL scales up under a bounded load and
back down, and its disruption budget lets one eviction of two through. The tests run in file order."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cluster_setup
import images
import ingress_addons
from cluster_access import Cluster
from cluster_setup import WAIT_S
from helpers import new_id, video_flow
from operator_harness import GROUP, ROOT, apply, documents, path, wait
from test_readme import walkthrough
from test_scenario import kubectl_ok, store_pods

pytestmark = pytest.mark.cluster
Manifest = dict[str, Any]
NAMESPACE = "public"
STORE = "public"
HOST = f"tams.{ingress_addons.DOMAIN}"
ROUTE_HOST = f"tams-route.{ingress_addons.DOMAIN}"
UPLOAD_BYTES = 48 * 1024 * 1024  # larger than any default body limit a proxy might have
POSTGRES_SAMPLE = ROOT / "samples" / "tamsstore-postgres-s3.yaml"
SCALED = "scaled"
SCALED_NAMESPACE = "newsroom"  # beside the PostgreSQL pod the sample's URI names
LOAD_S = 150  # the load's bound: far longer than metrics-server and the autoscaler need to react
SCALE_S = 300


def store_ref(name: str = STORE, namespace: str = NAMESPACE) -> Manifest:
    return {"apiVersion": GROUP, "kind": "TamsStore", "metadata": {"name": name, "namespace": namespace}}


def condition(admin: httpx.Client, ref: Manifest, type_: str) -> Manifest | None:
    body = admin.get(path(ref)).json()
    return next((item for item in (body.get("status") or {}).get("conditions", []) if item["type"] == type_), None)


class Curl:
    """curl as a client outside the cluster runs it: host names of the e2e domain resolved to Traefik's node, the e2e
    CA trusted (a curlrc, so that the README's own commands run unchanged)."""

    def __init__(self, folder: Path, address: str, ca: str) -> None:
        (folder / "ca.pem").write_text(ca)
        resolve = "".join(f'resolve = "{host}:443:{address}"\n' for host in (HOST, ROUTE_HOST))
        (folder / ".curlrc").write_text(f'{resolve}cacert = "{folder / "ca.pem"}"\n')
        self.environment = {**os.environ, "CURL_HOME": str(folder)}
        self.folder = folder

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["curl", "--silent", "--show-error", "--fail-with-body", *args], env=self.environment,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args))

    def walkthrough(self, url: str) -> str:
        environment = {**self.environment, "TAMS": url, "TMPDIR": str(self.folder)}
        command = ["bash", "-c", walkthrough()]
        done = subprocess.run(command, cwd=self.folder, env=environment, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout


@pytest.fixture(scope="module")
def curl(traefik: str, cert_manager: str, tmp_path_factory: pytest.TempPathFactory) -> Curl:
    return Curl(tmp_path_factory.mktemp("curl"), traefik, cert_manager)


@pytest.fixture(scope="module")
def public_store(cluster: Cluster, admin: httpx.Client, operator: str, traefik: str, figures: dict[str, object]) -> str:
    """A filesystem store behind an Ingress of class traefik with a certificate from the e2e CA; its public URL."""
    apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    started = time.monotonic()
    spec = {
        "ingress": {
            "className": ingress_addons.INGRESS_CLASS,
            "host": HOST,
            "tls": {"issuer": {"name": "e2e-ca", "kind": "ClusterIssuer"}},
        },
        "reclaimPolicy": "Delete",
    }
    apply(admin, {**store_ref(), "spec": spec})
    kubectl_ok(cluster, "wait", "-n", NAMESPACE, "--for=condition=Ready", f"tamsstore/{STORE}", f"--timeout={WAIT_S}s")
    secret = f"/api/v1/namespaces/{NAMESPACE}/secrets/{STORE}-tams-tls"
    wait(lambda: admin.get(secret).status_code == 200, "the certificate issued by cert-manager", WAIT_S)
    figures["public store applied -> Ready with its certificate (s)"] = round(time.monotonic() - started, 1)
    return f"https://{HOST}"


def served(curl: Curl, url: str) -> bool:
    return curl.run(f"{url}/service").returncode == 0


def check_public_urls(curl: Curl, url: str) -> None:
    """A BBC-style ingest of one large object through the public URL only: every URL the API hands out is on it, and
    the bytes come back whole."""
    flow_id = new_id()
    flow = video_flow(flow_id, new_id())
    headers = ["-H", "Content-Type: application/json"]
    curl.json("-X", "PUT", f"{url}/flows/{flow_id}", *headers, "-d", json.dumps(flow))
    allocated = curl.json("-X", "POST", f"{url}/flows/{flow_id}/storage", *headers, "-d", '{"limit": 2}')
    media = curl.folder / "large.ts"
    media.write_bytes(os.urandom(UPLOAD_BYTES))
    for n, media_object in enumerate(allocated["media_objects"]):
        put = media_object["put_url"]
        assert put["url"].startswith(f"{url}/"), put["url"]
        curl.ok("-X", "PUT", "-H", f"Content-Type: {put['content-type']}", "--upload-file", str(media), put["url"])
        segment = {"object_id": media_object["object_id"], "timerange": f"[{n * 10}:0_{n * 10 + 10}:0)"}
        curl.ok("-X", "POST", f"{url}/flows/{flow_id}/segments", *headers, "-d", json.dumps(segment))
    head, body = curl.ok("-D", "-", f"{url}/flows/{flow_id}/segments?limit=1&presigned=true").split("\n\n", 1)
    [link] = [line for line in head.splitlines() if line.lower().startswith("link:")]
    assert f"<{url}/flows/{flow_id}/segments?" in link, link
    [segment] = json.loads(body)
    [get_url] = [item["url"] for item in segment["get_urls"]]
    assert get_url.startswith(f"{url}/"), get_url
    downloaded = curl.folder / "back.ts"
    curl.ok("--output", str(downloaded), get_url)
    assert hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(media.read_bytes()).digest()
    service = curl.json(f"{url}/service")
    assert service["type"].startswith("urn:x-tams:service"), service


def test_a_store_is_reached_over_https_at_its_public_url_only(
    admin: httpx.Client, public_store: str, curl: Curl
) -> None:
    wait(lambda: served(curl, public_store), f"{public_store} served through Traefik", WAIT_S)
    exposed = condition(admin, store_ref(), "Exposed") or {}
    assert (exposed.get("status"), exposed.get("reason")) == ("True", "Exposed"), exposed
    status = admin.get(path(store_ref())).json()["status"]
    assert (status["url"], status["uiUrl"]) == (public_store, f"{public_store}/ui")
    assert "media round trip OK" in curl.walkthrough(public_store)
    check_public_urls(curl, public_store)
    # The store's page and its player's script, from the image, through the proxy.
    assert 'src="ui/assets/vendor/hls.js/hls.min.js"' in curl.ok(status["uiUrl"])
    assert "Hls" in curl.ok(f"{public_store}/ui/assets/vendor/hls.js/hls.min.js")


def test_the_same_store_through_an_http_route(
    cluster: Cluster, admin: httpx.Client, public_store: str, curl: Curl
) -> None:
    route_url = f"https://{ROUTE_HOST}"
    parent = {"name": ingress_addons.GATEWAY, "namespace": ingress_addons.TRAEFIK_NAMESPACE, "sectionName": "https"}
    change = {"ingress": None, "publicUrl": route_url, "httpRoute": {"parentRefs": [parent], "hostnames": [ROUTE_HOST]}}
    response = admin.patch(path(store_ref()), json={"spec": change},
                           headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert response.status_code == 200, response.text
    wait(lambda: admin.get(f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/ingresses/{STORE}-tams").status_code
         == 404, "the Ingress gone with its field")  # fmt: skip
    route = f"/apis/{ingress_addons.GATEWAY_API}/namespaces/{NAMESPACE}/httproutes/{STORE}-tams"

    def accepted() -> bool:
        parents = (admin.get(route).json().get("status") or {}).get("parents") or []
        return any(item["type"] == "Accepted" and item["status"] == "True"
                   for parent in parents for item in parent.get("conditions", []))  # fmt: skip

    wait(accepted, "the HTTPRoute accepted by the Gateway", WAIT_S)
    kubectl_ok(cluster, "wait", "-n", NAMESPACE, "--for=condition=Ready", f"tamsstore/{STORE}", f"--timeout={WAIT_S}s")

    def new_url_served() -> bool:  # the pods roll for the new public URL
        listed = curl.run(f"{route_url}/flows?limit=1")
        return (
            listed.returncode == 0
            and all(not pod["metadata"].get("deletionTimestamp") for pod in store_pods(admin, STORE, NAMESPACE))
            and admin.get(path(store_ref())).json()["status"].get("url") == route_url
        )

    wait(new_url_served, f"{route_url} served through the Gateway", WAIT_S)
    assert "media round trip OK" in curl.walkthrough(route_url)
    check_public_urls(curl, route_url)
    deleted(cluster, admin, store_ref())


def deleted(cluster: Cluster, admin: httpx.Client, ref: Manifest) -> None:
    """The store deleted (its data with it: reclaimPolicy Delete) and its pods gone, so later tests have the nodes."""
    metadata = ref["metadata"]
    kubectl_ok(cluster, "delete", "tamsstore", metadata["name"], "-n", metadata["namespace"], f"--timeout={WAIT_S}s")
    wait(lambda: not store_pods(admin, metadata["name"], metadata["namespace"]), "the store's pods gone", WAIT_S)


def scaled_spec(bucket: str) -> Manifest:
    """The PostgreSQL sample's store, autoscaled on CPU between 2 and 4 replicas (2: its budget has pods to keep)."""
    [sample] = [doc for doc in documents(POSTGRES_SAMPLE) if doc["kind"] == "TamsStore"]
    spec = sample["spec"]
    spec.pop("replicas")
    spec["metadata"]["postgres"]["schema"] = SCALED
    spec["media"]["s3"]["bucket"] = bucket
    spec["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    spec["autoscaling"] = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 50,
                           "scaleDownStabilizationSeconds": 30}  # fmt: skip
    spec["reclaimPolicy"] = "Delete"
    return spec


LOAD = """
import threading, time, urllib.request
deadline = time.monotonic() + {seconds}
def hammer():
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen("{url}/flows?limit=100", timeout=5).read()
        except OSError:
            pass
threads = [threading.Thread(target=hammer) for _ in range(6)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("load done")
"""


def load_pod(url: str, seconds: int) -> Manifest:
    """A bounded load: six threads of GETs for `seconds`, from a pod of the TAMS image."""
    script = LOAD.format(url=url, seconds=seconds)
    container = {"name": "load", "image": images.TAMS_IMAGE, "imagePullPolicy": "Never",
                 "command": ["python3", "-c", script]}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "load", "namespace": SCALED_NAMESPACE},
            "spec": {"restartPolicy": "Never", "containers": [container]}}  # fmt: skip


def replicas(admin: httpx.Client) -> int:
    return admin.get(path(store_ref(SCALED, SCALED_NAMESPACE)) + "/scale").json()["spec"]["replicas"]


def test_a_shared_store_scales_with_its_load_and_its_budget_takes_one_eviction_at_a_time(
    cluster: Cluster, admin: httpx.Client, operator: str, seaweedfs: str, metrics: str, figures: dict[str, object]
) -> None:
    cluster_setup.deploy_postgres(admin)
    for secret in [doc for doc in documents(POSTGRES_SAMPLE) if doc["kind"] == "Secret"]:
        apply(admin, {**secret, "metadata": {**secret["metadata"], "namespace": SCALED_NAMESPACE}})
    spec = scaled_spec(f"{SCALED}-media")
    apply(admin, {**store_ref(SCALED, SCALED_NAMESPACE), "spec": spec})
    kubectl_ok(cluster, "wait", "-n", SCALED_NAMESPACE, "--for=condition=Ready", f"tamsstore/{SCALED}",
               f"--timeout={WAIT_S}s")  # fmt: skip
    wait(lambda: replicas(admin) == 2, "the autoscaler's minimum", WAIT_S)

    started = time.monotonic()
    url = f"http://{SCALED}-tams.{SCALED_NAMESPACE}.svc"
    apply(admin, load_pod(url, LOAD_S))
    peak = wait(lambda: replicas(admin) if replicas(admin) >= 3 else None, "scaled up under load", SCALE_S)
    figures["autoscaler: load start -> first scale-up (s)"] = round(time.monotonic() - started, 1)
    pod = f"/api/v1/namespaces/{SCALED_NAMESPACE}/pods/load"
    wait(lambda: admin.get(pod).json()["status"].get("phase") == "Succeeded", "the load over", LOAD_S + WAIT_S)
    peak = max(peak, replicas(admin))
    figures["autoscaler: replicas at the peak (min 2, max 4)"] = peak
    ended = time.monotonic()
    wait(lambda: replicas(admin) == 2, "scaled back down to the minimum", SCALE_S + 120)
    figures["autoscaler: load end -> back to 2 replicas (s)"] = round(time.monotonic() - ended, 1)
    admin.delete(pod)

    budget = f"/apis/policy/v1/namespaces/{SCALED_NAMESPACE}/poddisruptionbudgets/{SCALED}-tams"

    def live() -> list[str]:
        pods = store_pods(admin, SCALED, SCALED_NAMESPACE)
        return sorted(pod["metadata"]["name"] for pod in pods if not pod["metadata"].get("deletionTimestamp"))

    def settled() -> bool:
        status = admin.get(budget).json().get("status") or {}
        return len(live()) == 2 and status.get("currentHealthy") == 2 and status.get("disruptionsAllowed") == 1

    wait(settled, "two healthy pods, one disruption allowed", WAIT_S)
    first, second = live()
    evictions = [evict(admin, first), evict(admin, second)]
    figures["PodDisruptionBudget: evictions of two pods (HTTP status)"] = evictions
    assert evictions == [201, 429], "the first eviction goes through, the second waits for the budget"
    wait(settled, "two healthy pods again", WAIT_S)
    deleted(cluster, admin, store_ref(SCALED, SCALED_NAMESPACE))


def evict(admin: httpx.Client, name: str) -> int:
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": SCALED_NAMESPACE},
    }
    return admin.post(f"/api/v1/namespaces/{SCALED_NAMESPACE}/pods/{name}/eviction", json=eviction).status_code
