"""TLS in the e2e cluster: cert-manager's controller (addons.py builds its image) with its CRDs, a self-signed
ClusterIssuer, and a CA ClusterIssuer whose certificate clients on this machine trust (ca_pem): Ingresses annotated
`cert-manager.io/cluster-issuer: e2e-ca` get their TLS Secret, and Certificates naming it theirs."""

from __future__ import annotations

import base64

import httpx

from addons import (
    CERT_MANAGER_IMAGE,
    CERT_MANAGER_MODULE,
    CERT_MANAGER_VERSION,
    ISSUE_S,
    READ,
    WRITE,
    Manifest,
    apply,
    apply_all,
    container,
    deployment,
    meta,
    module_documents,
    rule,
    service_account_role,
    wait_condition,
)

CERT_MANAGER_NAMESPACE = "cert-manager"  # also where ClusterIssuers' Secrets are (its cluster resource namespace)
SELF_SIGNED_ISSUER = "e2e-selfsigned"
CA_ISSUER = "e2e-ca"  # a ClusterIssuer signing with CA_SECRET: what Ingresses and Certificates in the e2e name
CA_SECRET = "e2e-ca"
CERT_MANAGER = "cert-manager"
CERT_MANAGER_GROUP = "cert-manager.io/v1"


def cert_manager_crds() -> list[Manifest]:
    """The CRDs the main module carries in deploy/crds: plain YAML there (the Helm chart templates its own copy)."""
    return module_documents(CERT_MANAGER_MODULE, CERT_MANAGER_VERSION, "deploy/crds")


def cert_manager_manifests(image: str = CERT_MANAGER_IMAGE) -> list[Manifest]:
    """The controller, its identity and role; no webhook (nothing checks what is applied but the CRDs' schemas)."""
    groups = ["cert-manager.io", "acme.cert-manager.io"]
    rules = [
        rule(groups, ["*"], WRITE),  # issuers, certificates, their requests, and their status subresources
        rule([""], ["secrets"], WRITE),
        rule([""], ["events"], ["create", "patch"]),
        rule(["networking.k8s.io"], ["ingresses"], READ),  # ingress-shim
        rule(["networking.k8s.io"], ["ingresses/finalizers"], ["update"]),  # its Certificates are owned by them
        # Approval of requests for cert-manager's own issuers (the approver controller).
        rule(
            ["certificates.k8s.io"],
            ["signers"],
            ["approve"],
            resourceNames=["issuers.cert-manager.io/*", "clusterissuers.cert-manager.io/*"],
        ),
    ]
    args = [f"--cluster-resource-namespace={CERT_MANAGER_NAMESPACE}"]
    pod = {"containers": [container(CERT_MANAGER, image, args)]}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(CERT_MANAGER_NAMESPACE)},
        *service_account_role(CERT_MANAGER, CERT_MANAGER_NAMESPACE, rules),
        deployment(CERT_MANAGER, CERT_MANAGER_NAMESPACE, pod, strategy={"type": "Recreate"}),
    ]


def issuer_manifests() -> list[Manifest]:
    """A self-signed ClusterIssuer, a CA certificate it issues, and the CA ClusterIssuer signing with that: one CA
    for clients on the host to trust (ca_pem)."""
    ca = {
        "apiVersion": CERT_MANAGER_GROUP,
        "kind": "Certificate",
        "metadata": meta(CA_SECRET, CERT_MANAGER_NAMESPACE),
        "spec": {
            "isCA": True,
            "commonName": "TAMS e2e CA",
            "secretName": CA_SECRET,
            "privateKey": {"algorithm": "ECDSA", "size": 256},
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": SELF_SIGNED_ISSUER},
        },
    }
    return [
        {"apiVersion": CERT_MANAGER_GROUP, "kind": "ClusterIssuer", "metadata": meta(SELF_SIGNED_ISSUER),
         "spec": {"selfSigned": {}}},
        ca,
        {"apiVersion": CERT_MANAGER_GROUP, "kind": "ClusterIssuer", "metadata": meta(CA_ISSUER),
         "spec": {"ca": {"secretName": CA_SECRET}}},
    ]  # fmt: skip


def deploy_cert_manager(admin: httpx.Client, image: str = CERT_MANAGER_IMAGE) -> None:
    """cert-manager's CRDs and controller, then the e2e issuers, each waited for until Ready."""
    apply_all(admin, cert_manager_crds() + cert_manager_manifests(image))
    wait_condition(admin, cert_manager_manifests(image)[-1], "Available")
    for manifest in issuer_manifests():
        apply(admin, manifest)
        wait_condition(admin, manifest, "Ready", ISSUE_S)


def ca_pem(admin: httpx.Client) -> str:
    """The e2e CA's certificate (PEM): what a client trusts for every certificate CA_ISSUER issues."""
    response = admin.get(f"/api/v1/namespaces/{CERT_MANAGER_NAMESPACE}/secrets/{CA_SECRET}")
    response.raise_for_status()
    data = response.json()["data"]
    return base64.b64decode(data.get("ca.crt") or data["tls.crt"]).decode()


def certificate(name: str, namespace: str, secret: str, dns_names: list[str], issuer: str = CA_ISSUER) -> Manifest:
    """A Certificate from a ClusterIssuer (the e2e CA by default), stored in `secret`."""
    return {
        "apiVersion": CERT_MANAGER_GROUP,
        "kind": "Certificate",
        "metadata": meta(name, namespace),
        "spec": {
            "secretName": secret,
            "dnsNames": dns_names,
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer},
        },
    }
