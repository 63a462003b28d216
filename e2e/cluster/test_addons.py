"""The ecosystem around TAMS in the cluster, each piece on its own, without the operator: an Ingress of class
`traefik` gets its certificate from cert-manager's CA and serves HTTPS on the node's port 443; an HTTPRoute on the
shared Gateway does the same; metrics-server reports a pod's CPU and memory. The backend is a tiny web server (the
TAMS image's Python, already in the nodes) behind a Service."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

import addons
import certificate_addons
import images
import ingress_addons
from addons import Manifest, apply, apply_all, container, deployment, meta, wait_condition
from operator_harness import wait

pytestmark = pytest.mark.cluster
NAMESPACE = "addons-echo"
ECHO = "echo"
ECHO_PORT = 8080
PAGE = "echo from the addons test\n"
ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"  # ingress-shim's: a Certificate for the Ingress's TLS hosts
SERVE_S = 60  # from a route applied (or a certificate issued) to Traefik serving it


def echo_manifests() -> list[Manifest]:
    """A web server answering PAGE at /, behind the Service `echo`."""
    serve = ["python3", "-m", "http.server", str(ECHO_PORT), "--directory", "/srv"]
    server = container(ECHO, images.TAMS_IMAGE, [], command=serve, ports=[{"name": "http", "containerPort": ECHO_PORT}],
                       readinessProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 2},
                       volumeMounts=[{"name": "page", "mountPath": "/srv", "readOnly": True}])  # fmt: skip
    pod = {
        "automountServiceAccountToken": False,
        "serviceAccountName": "default",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [server],
        "volumes": [{"name": "page", "configMap": {"name": ECHO}}],
    }
    labels = {"app.kubernetes.io/name": ECHO}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(NAMESPACE)},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(ECHO, NAMESPACE), "data": {"index.html": PAGE}},
        deployment(ECHO, NAMESPACE, pod),
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(ECHO, NAMESPACE, **labels),
         "spec": {"selector": labels, "ports": [{"name": "http", "port": ECHO_PORT, "targetPort": "http"}]}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def echo(admin: httpx.Client) -> Manifest:
    """The echo backend running; its Deployment."""
    manifests = echo_manifests()
    apply_all(admin, manifests)
    wait_condition(admin, manifests[2], "Available")
    return manifests[2]


@pytest.fixture
def ca_file(cert_manager: str, tmp_path: Path) -> Path:
    path = tmp_path / "e2e-ca.pem"
    path.write_text(cert_manager)
    return path


def https_get(host: str, address: str, ca_file: Path) -> tuple[int, str]:
    """GET https://HOST/ with HOST resolved to `address` (SNI and Host stay HOST), trusting only `ca_file`; the
    status (0 when curl fails: no route yet, a certificate not yet served) and the body."""
    command = ["curl", "--silent", "--show-error", "--max-time", "10", "--resolve", f"{host}:443:{address}",
               "--cacert", str(ca_file), "--write-out", "\n%{http_code}", f"https://{host}/"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    body, _, status = result.stdout.rpartition("\n")
    return (int(status) if result.returncode == 0 else 0), body


def serves_page(host: str, address: str, ca_file: Path) -> bool:
    return https_get(host, address, ca_file) == (200, PAGE)


def test_an_ingress_gets_a_certificate_from_the_ca_and_serves_https(
    admin: httpx.Client, echo: Manifest, traefik: str, ca_file: Path
) -> None:
    host, secret = f"echo.{ingress_addons.DOMAIN}", "echo-tls"
    backend = {"service": {"name": ECHO, "port": {"number": ECHO_PORT}}}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(ECHO, NAMESPACE)
        | {"annotations": {"cert-manager.io/cluster-issuer": certificate_addons.CA_ISSUER}},
        "spec": {
            "ingressClassName": ingress_addons.INGRESS_CLASS,
            "tls": [{"hosts": [host], "secretName": secret}],
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }
    apply(admin, ingress)
    secret_path = f"/api/v1/namespaces/{NAMESPACE}/secrets/{secret}"
    wait(lambda: admin.get(secret_path).status_code == 200, f"ingress-shim's certificate in {secret}", addons.ISSUE_S)
    wait(lambda: serves_page(host, traefik, ca_file), f"https://{host}/ through Traefik at {traefik}", SERVE_S)


def test_an_httproute_on_the_shared_gateway_serves_https(
    admin: httpx.Client, echo: Manifest, traefik: str, ca_file: Path
) -> None:
    host = f"echo-route.{ingress_addons.DOMAIN}"
    gateway = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": ingress_addons.GATEWAY,
               "namespace": ingress_addons.TRAEFIK_NAMESPACE}  # fmt: skip
    route = {
        "apiVersion": ingress_addons.GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": meta(ECHO, NAMESPACE),
        "spec": {"parentRefs": [gateway], "hostnames": [host],
                 "rules": [{"backendRefs": [{"name": ECHO, "port": ECHO_PORT}]}]},
    }  # fmt: skip
    apply(admin, route)

    def accepted() -> bool:
        parents = admin.get(addons.resource_path(route)).json().get("status", {}).get("parents", [])
        conditions = [item for parent in parents for item in parent.get("conditions", [])]
        return any(item["type"] == "Accepted" and item["status"] == "True" for item in conditions)

    wait(accepted, f"HTTPRoute {NAMESPACE}/{ECHO} accepted by {ingress_addons.GATEWAY}", SERVE_S)
    wait(lambda: serves_page(host, traefik, ca_file), f"https://{host}/ through the Gateway at {traefik}", SERVE_S)


def test_metrics_server_reports_the_echo_pods_usage(admin: httpx.Client, echo: Manifest, metrics: str) -> None:
    def usage() -> dict[str, Any] | None:
        response = admin.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/pods")
        items = response.json().get("items", []) if response.status_code == 200 else []
        found = [box["usage"] for item in items if item["metadata"]["name"].startswith(f"{ECHO}-")
                 for box in item["containers"]]  # fmt: skip
        return found[0] if found else None

    # metrics-server reports a pod after two scrapes (METRIC_RESOLUTION apart) of its node's kubelet.
    measured = wait(usage, f"the metrics API's figures for {NAMESPACE}'s echo pod", addons.WAIT_S)
    assert set(measured) == {"cpu", "memory"}
    assert measured["memory"] != "0"
