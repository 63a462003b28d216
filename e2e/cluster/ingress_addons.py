"""Traffic into the e2e cluster from this machine: the Gateway API CRDs and Traefik (addons.py builds its image), as
an Ingress controller (IngressClass `traefik`) and a Gateway API implementation (GatewayClass `traefik`, one shared
Gateway), on ports 80 and 443 of the node it runs on.

    curl --resolve tams.e2e.test:443:$(traefik_address) --cacert <ca_pem> https://tams.e2e.test/
"""

from __future__ import annotations

import re

import httpx

import addons
from addons import READ, Manifest, apply, apply_all, container, deployment, meta, rule, wait_condition
from certificate_addons import certificate
from operator_harness import wait

TRAEFIK = "traefik"
TRAEFIK_NAMESPACE = "traefik"
INGRESS_CLASS = "traefik"
GATEWAY_CLASS = "traefik"
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
GATEWAY = "tams-gateway"  # in TRAEFIK_NAMESPACE; routes of every namespace may attach
GATEWAY_TLS_SECRET = "tams-gateway-tls"  # its HTTPS listener's certificate, from certificate_addons.CA_ISSUER
DOMAIN = "e2e.test"  # hosts under it resolve to traefik_address() in the tests (curl --resolve)
HTTP_PORT = 80  # on the node's address (hostPort), the entrypoint `web` and the Gateway's listener `http`
HTTPS_PORT = 443  # the same for `websecure` and `https`
GATEWAY_API = "gateway.networking.k8s.io/v1"
LABELS = {"app.kubernetes.io/name": TRAEFIK}


def gateway_api_crds() -> list[Manifest]:
    """The standard channel's CRDs at addons.GATEWAY_API_VERSION (their upgrade guard, a ValidatingAdmissionPolicy
    against older or experimental CRDs, is left out: this cluster installs them once)."""
    traefik = (addons.module_dir(addons.TRAEFIK_MODULE, addons.TRAEFIK_VERSION) / "go.mod").read_text()
    required = re.search(rf"^\s*{re.escape(addons.GATEWAY_API_MODULE)} (\S+)", traefik, flags=re.MULTILINE)
    assert required and required[1] == addons.GATEWAY_API_VERSION, f"Traefik requires Gateway API {required}"
    return addons.module_documents(addons.GATEWAY_API_MODULE, addons.GATEWAY_API_VERSION, "config/crd/standard")


def install_gateway_api(admin: httpx.Client) -> None:
    apply_all(admin, gateway_api_crds())


def traefik_manifests(image: str = addons.TRAEFIK_IMAGE) -> list[Manifest]:
    """Traefik with its role, the classes it implements, the Gateway and its certificate (cert-manager's CRDs must
    be there), and a Service for clients inside the cluster."""
    # What its Gateway provider watches on the standard channel.
    gateway_resources = [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "grpcroutes",
        "referencegrants",
        "backendtlspolicies",
    ]
    rules = [
        rule([""], ["namespaces"], ["list", "watch"]),  # for listeners' allowedRoutes selectors
        rule([""], ["services", "secrets", "configmaps"], READ),
        rule([""], ["nodes"], READ),  # its Ingress provider waits for a node informer (for NodePort services)
        rule(["discovery.k8s.io"], ["endpointslices"], READ),
        rule(["networking.k8s.io"], ["ingresses", "ingressclasses"], READ),
        rule(["networking.k8s.io"], ["ingresses/status"], ["update"]),
        rule(["gateway.networking.k8s.io"], gateway_resources, READ),
        rule(["gateway.networking.k8s.io"], [f"{kind}/status" for kind in gateway_resources], ["update"]),
    ]
    args = [
        f"--entryPoints.web.address=:{HTTP_PORT}",
        f"--entryPoints.websecure.address=:{HTTPS_PORT}",
        # Every router on websecure terminates TLS: an Ingress's spec.tls only lends Traefik its certificates.
        "--entryPoints.websecure.http.tls=true",
        # No limit on reading a request (Traefik's default is 60 s): uploads of large media segments take longer.
        # Bodies are streamed to the backend, never buffered (no buffering middleware), so no size limit applies.
        "--entryPoints.web.transport.respondingTimeouts.readTimeout=0",
        "--entryPoints.websecure.transport.respondingTimeouts.readTimeout=0",
        "--providers.kubernetesIngress=true",
        "--providers.kubernetesGateway=true",
        "--ping=true",  # /ping on the `traefik` entrypoint (:8080), the readiness probe
        "--global.checkNewVersion=false",  # nothing outside the cluster is reachable
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
    ]
    ports = [
        {"name": "web", "containerPort": HTTP_PORT, "hostPort": HTTP_PORT},
        {"name": "websecure", "containerPort": HTTPS_PORT, "hostPort": HTTPS_PORT},
        {"name": "traefik", "containerPort": 8080},
    ]
    probe = {"httpGet": {"path": "/ping", "port": "traefik"}, "periodSeconds": 2}
    proxy = container(TRAEFIK, image, args, ports=ports, readinessProbe=probe,
                      volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}])  # fmt: skip
    # Non-root, yet binding 80 and 443: in the pod's own network namespace (hostPort, not hostNetwork) this sysctl
    # is one of Kubernetes' safe ones.
    unprivileged_ports = {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "sysctls": [unprivileged_ports]},
        "containers": [proxy],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    everywhere = {"namespaces": {"from": "All"}}
    listeners = [
        {"name": "http", "protocol": "HTTP", "port": HTTP_PORT, "allowedRoutes": everywhere},
        {
            "name": "https",
            "protocol": "HTTPS",
            "port": HTTPS_PORT,
            "hostname": f"*.{DOMAIN}",
            "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": GATEWAY_TLS_SECRET}]},
            "allowedRoutes": everywhere,
        },
    ]
    service_ports = [{"name": name, "port": port, "targetPort": name} for name, port in
                     (("web", HTTP_PORT), ("websecure", HTTPS_PORT))]  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(TRAEFIK_NAMESPACE)},
        *addons.service_account_role(TRAEFIK, TRAEFIK_NAMESPACE, rules),
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta(INGRESS_CLASS),
         "spec": {"controller": "traefik.io/ingress-controller"}},
        {"apiVersion": GATEWAY_API, "kind": "GatewayClass", "metadata": meta(GATEWAY_CLASS),
         "spec": {"controllerName": GATEWAY_CONTROLLER}},
        certificate(GATEWAY_TLS_SECRET, TRAEFIK_NAMESPACE, GATEWAY_TLS_SECRET, [f"*.{DOMAIN}"]),
        {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": meta(GATEWAY, TRAEFIK_NAMESPACE),
         "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": listeners}},
        # Recreate: the next pod needs the ports the old one holds on its node.
        deployment(TRAEFIK, TRAEFIK_NAMESPACE, pod, strategy={"type": "Recreate"}),
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(TRAEFIK, TRAEFIK_NAMESPACE, **LABELS),
         "spec": {"selector": LABELS, "ports": service_ports}},
    ]  # fmt: skip


def deploy_traefik(admin: httpx.Client, image: str = addons.TRAEFIK_IMAGE) -> str:
    """The Gateway API CRDs, then Traefik running with its Gateway programmed; the address of its node. Needs
    certificate_addons.deploy_cert_manager first (the Gateway's certificate)."""
    install_gateway_api(admin)
    manifests = traefik_manifests(image)
    for manifest in manifests:
        apply(admin, manifest)
    by_kind = {manifest["kind"]: manifest for manifest in manifests}
    wait_condition(admin, by_kind["Certificate"], "Ready", addons.ISSUE_S)
    wait_condition(admin, by_kind["Deployment"], "Available")
    wait_condition(admin, by_kind["GatewayClass"], "Accepted")
    wait_condition(admin, by_kind["Gateway"], "Programmed")
    return traefik_address(admin)


def traefik_address(admin: httpx.Client) -> str:
    """The address of the node Traefik runs on, where HTTP_PORT and HTTPS_PORT reach it from this machine."""

    def running() -> str | None:
        pods = admin.get(
            f"/api/v1/namespaces/{TRAEFIK_NAMESPACE}/pods", params={"labelSelector": "app.kubernetes.io/name=traefik"}
        )
        addresses = [
            pod["status"].get("hostIP") for pod in pods.json()["items"] if pod["status"].get("phase") == "Running"
        ]
        return addresses[0] if len(addresses) == 1 else None

    return wait(running, "one Traefik pod running", addons.WAIT_S)
