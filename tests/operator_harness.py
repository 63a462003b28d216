"""The operator on the real test control plane: CRDs and RBAC installed, the operator running in this process
(so the VAST fake can stand in for a cluster) under its own service account identity, and the kubelet's
part played where pods would run."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import kopf
import yaml
from tams_operator.kube import IRREGULAR_PLURALS

from control_plane import OPERATOR, ControlPlane

ROOT = Path(__file__).resolve().parents[1]
GROUP = "tams-operator.io/v1alpha1"
Manifest = dict[str, Any]


def documents(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def crds() -> list[Manifest]:
    return [document for path in sorted((ROOT / "crds").glob("*.yaml")) for document in documents(path)]


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "ClusterKopfPeering"}


def collection(manifest: Manifest) -> str:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = IRREGULAR_PLURALS.get(kind, kind.lower() + "s")
    if kind in CLUSTER_SCOPED:
        return f"{prefix}/{plural}"
    return f"{prefix}/namespaces/{manifest['metadata'].get('namespace', 'default')}/{plural}"


def path(manifest: Manifest) -> str:
    return f"{collection(manifest)}/{manifest['metadata']['name']}"


def create(client: httpx.Client, manifest: Manifest) -> Manifest:
    """Create, or leave as it is when it exists."""
    response = client.post(collection(manifest), json=manifest)
    assert response.status_code in (201, 409), response.text
    return response.json()


def apply(client: httpx.Client, manifest: Manifest, manager: str = "tams-tests") -> Manifest:
    """Server-side apply, as `kubectl apply --server-side` does, refusing fields the schema does not know (CRDs
    would otherwise prune them silently)."""
    response = client.patch(
        path(manifest),
        params={"fieldManager": manager, "force": "true", "fieldValidation": "Strict"},
        content=json.dumps(manifest),  # JSON is YAML
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def install(client: httpx.Client) -> None:
    """CRDs (waited for until established), the operator's namespace, service account and role."""
    for crd in crds():
        create(client, crd)
    for crd in crds():
        wait(lambda name=crd["metadata"]["name"]: established(client, name), f"CRD {crd['metadata']['name']}")
    create(client, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tams-system"}})
    for manifest in documents(ROOT / "rbac" / "operator.yaml"):
        create(client, manifest)


def established(client: httpx.Client, name: str) -> bool:
    status = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json().get("status") or {}
    # A CRD just applied again may answer `conditions: null` until the controller has looked at it.
    return any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or [])


def wait(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


OPERATOR_ENV = {
    "TAMS_OPERATOR_RESYNC_INTERVAL": "1",
    "TAMS_OPERATOR_POLL_INTERVAL": "0.3",
    "TAMS_OPERATOR_RETRY_INITIAL": "0.5",
    "TAMS_OPERATOR_RETRY_MAX": "2",
    "TAMS_OPERATOR_METRICS_PORT": "0",
}


@contextmanager
def running_operator(kube: ControlPlane, namespace: str | None = None, priority: int = 0, **env: str) -> Iterator[None]:
    """The operator, in a thread of this process, as the `tams-operator` service account; watching one
    `namespace` only when given (so that it leaves other tests' objects alone). With TAMS_OPERATOR_PEERING in `env`,
    a replica peering with `priority`, as `tams-operator` runs it."""
    import tams_operator.main  # noqa: F401  (registers the handlers)
    from tams_operator.__main__ import peered
    from tams_operator.config import OperatorSettings

    variables = {"KUBECONFIG": str(kube.kubeconfig(OPERATOR)), **OPERATOR_ENV, **env}
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            scope: dict[str, Any] = {"namespaces": [namespace]} if namespace else {"clusterwide": True}
            config = OperatorSettings()
            peering = {"peering_name": config.peering, "priority": priority, "identity": f"replica-{priority}"}
            scope |= peering if config.peering else {"standalone": True}
            settings = peered(kopf.OperatorSettings(), config)
            asyncio.run(kopf.operator(settings=settings, ready_flag=ready, stop_flag=stop, **scope))
        except BaseException as error:  # shown by the test that started it
            failure.append(error)
            ready.set()

    thread = threading.Thread(target=run, name="tams-operator", daemon=True)
    thread.start()
    try:
        ready.wait(30)
        assert not failure, failure
        yield
    finally:
        stop.set()
        thread.join(30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def operated(kube: ControlPlane, **env: str) -> Iterator[httpx.Client]:
    """An admin client of the API server with the CRDs installed and the operator running (clusterwide). The
    TamsStores made meanwhile are deleted while their operator still runs, so that no later test meets their
    finalizers."""
    with kube.client() as client:
        install(client)
        with running_operator(kube, **env):
            yield client
            for store in client.get(f"/apis/{GROUP}/tamsstores").json()["items"]:
                client.delete(path(store))
            wait(lambda: not client.get(f"/apis/{GROUP}/tamsstores").json()["items"], "every TamsStore gone", 60)


def new_namespace(client: httpx.Client) -> str:
    """A namespace of a name nobody used."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    create(client, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def play_kubelet(client: httpx.Client, namespace: str, selector: str) -> int:
    """Mark the selected pods Running and Ready, as a kubelet would once their containers pass the probes."""
    pods = client.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}).json()["items"]
    for pod in pods:
        mark_ready(client, pod)
    return len(pods)


def mark_ready(client: httpx.Client, pod: Manifest, **status: Any) -> None:
    """The pod Running with its containers started and ready, through the status subresource; `status`: more
    fields (podIP, ...). A pod deleted meanwhile (the old one of a rollout, say) is left alone."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status |= {
        "phase": "Running",
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": now}},
            }
            for container in pod["spec"]["containers"]
        ],
    }
    response = client.patch(
        f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}/status",
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code in (200, 404), response.text


def condition(body: Manifest, type_: str) -> Manifest | None:
    return next((c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == type_), None)
