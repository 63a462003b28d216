"""Who reaches a TamsStore's API, and how: an Ingress or a Gateway API HTTPRoute in front of its Service (pure builders
of the spec), and the NetworkPolicy that lets only the named clients in."""

from __future__ import annotations

from typing import Any

from .spec import dumped
from .tamsstore import Store

Manifest = dict[str, Any]
SERVICE_PORT_NAME = "http"
GATEWAY_API = "gateway.networking.k8s.io/v1"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
# cert-manager's ingress-shim reads these and issues the Ingress's TLS Secret.
ISSUER_ANNOTATIONS = {"Issuer": "cert-manager.io/issuer", "ClusterIssuer": "cert-manager.io/cluster-issuer"}


def _backend(store: Store) -> dict[str, Any]:
    return {"name": store.child_name, "port": {"number": store.spec.service.port}}


def ingress(store: Store) -> Manifest | None:
    spec = store.spec.ingress
    if spec is None:
        return None
    metadata = store.meta(store.child_name, "api")
    annotations = dict(spec.annotations)
    rule = {
        "host": spec.host,
        "http": {"paths": [{"path": spec.path, "pathType": "Prefix", "backend": {"service": _backend(store)}}]},
    }
    body: dict[str, Any] = {"rules": [rule]}
    if spec.class_name:
        body["ingressClassName"] = spec.class_name
    if spec.tls is not None:
        body["tls"] = [{"hosts": [spec.host], "secretName": store.tls_secret_name}]
        if spec.tls.issuer is not None:
            annotations[ISSUER_ANNOTATIONS[spec.tls.issuer.kind]] = spec.tls.issuer.name
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": body}


def http_route(store: Store) -> Manifest | None:
    spec = store.spec.http_route
    if spec is None:
        return None
    metadata = store.meta(store.child_name, "api")
    if spec.annotations:
        metadata["annotations"] = dict(spec.annotations)
    backend = {"name": store.child_name, "port": store.spec.service.port}
    body: dict[str, Any] = {
        "parentRefs": [dumped(parent) for parent in spec.parent_refs],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [backend]}],
    }
    if spec.hostnames:
        body["hostnames"] = list(spec.hostnames)
    return {"apiVersion": GATEWAY_API, "kind": "HTTPRoute", "metadata": metadata, "spec": body}


def _namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def network_policy(store: Store) -> Manifest | None:
    """Ingress to the API pods from the operator's namespace (it manages webhooks and deletion requests through the
    API), the ingress controller's and the listed peers; kubelet probes come from the node and are not affected."""
    spec = store.spec.network_policy
    if not spec.enabled:
        return None
    peers = [_namespace(name) for name in (store.operator_namespace, spec.ingress_controller_namespace) if name]
    peers += [dumped(peer) for peer in spec.peers]
    # A rule with no peers would admit everyone: with none, no rule, and nobody is admitted.
    rules = [{"from": peers, "ports": [{"port": SERVICE_PORT_NAME, "protocol": "TCP"}]}] if peers else []
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": store.meta(store.child_name, "api"),
        "spec": {
            "podSelector": {"matchLabels": store.labels("api")},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
