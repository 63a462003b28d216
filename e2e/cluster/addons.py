"""The ecosystem around TAMS in the e2e cluster, each built here from the Go module proxy (no image registry can
be reached): Traefik (Ingress and Gateway API), the Gateway API CRDs, cert-manager's controller and metrics-server.

Binaries are cached by version under $TAMS_OPERATOR_CACHE, as node_image.py's are; images are made with podman
(rebuilt only when their inputs change) and kind_cluster.py loads them into the nodes, so pods never pull. This
module builds them all, holds what deploying them shares (server-side apply, waits on conditions, manifest parts)
and deploys metrics-server; certificate_addons.py deploys cert-manager, ingress_addons.py Traefik.

    python e2e/cluster/addons.py build    # builds what is missing; prints time and size per image
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

import images  # first: it puts scripts/ (the binaries' cache and Go) and tests/ on the path
from k8s_binaries import go
from node_image import installed, static_image, wrapped
from operator_harness import wait

Manifest = dict[str, Any]

# Versions ---------------------------------------------------------------------------------------------------------

TRAEFIK_MODULE = "github.com/traefik/traefik/v3"
# The newest Traefik built from the dependencies it was released with: every v3.7 (v3.7.11 to v3.7.13) requires a
# version of Traefik's go-http-auth fork that the Go proxy refuses (403; v3.7.13 seven more), and a nested module of
# its own (dynamic/ext) that is not served at all. v3.6 is still maintained.
TRAEFIK_VERSION = "v3.6.12"
# Gateway API at the version Traefik's go.mod requires (its Go types and the CRDs agree; checked when installed).
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
GATEWAY_API_VERSION = "v1.4.0"
CERT_MANAGER_MODULE = "github.com/cert-manager/cert-manager"
CERT_MANAGER_VERSION = "v1.21.2"
METRICS_SERVER_MODULE = "sigs.k8s.io/metrics-server"
METRICS_SERVER_VERSION = "v0.8.1"  # v0.9 is not approved here

TRAEFIK_IMAGE = f"localhost/traefik:{TRAEFIK_VERSION}"
CERT_MANAGER_IMAGE = f"localhost/cert-manager-controller:{CERT_MANAGER_VERSION}"
METRICS_SERVER_IMAGE = f"localhost/metrics-server:{METRICS_SERVER_VERSION}"
ADDON_IMAGES = (TRAEFIK_IMAGE, CERT_MANAGER_IMAGE, METRICS_SERVER_IMAGE)


# Binaries -------------------------------------------------------------------------------------------------------------


@functools.cache  # a version's source never changes; asked again by each builder and manifest reader of a module
def module_dir(module: str, version: str, **env: str) -> Path:
    """A module's source as the Go proxy serves it (extracted into Go's module cache); `env` is Go's (a module
    whose go.mod names a newer Go than this machine's is extracted only with GOTOOLCHAIN naming that Go)."""
    with tempfile.TemporaryDirectory() as scratch:
        info = go("mod", "download", "-json", f"{module}@{version}", cwd=Path(scratch), **env)
    return Path(json.loads(info)["Dir"])


def inherited_directives(module: str, version: str, **env: str) -> str:
    """A module's `replace` (of other modules' versions) and `exclude` lines: a module that requires it ignores
    them, so its build must repeat them to get the same dependencies. Replaces by a local folder are left out
    (a nested module's source is not in the module's zip: its own version from the proxy is required instead)."""
    go_mod = (module_dir(module, version, **env) / "go.mod").read_text()
    replaces = re.findall(r"^\s*(?:replace\s+)?(\S+(?: \S+)?\s+=>\s+\S+\s+v\S+)\s*$", go_mod, flags=re.MULTILINE)
    excludes = re.findall(r"^exclude\s+(\S+ \S+)\s*$", go_mod, flags=re.MULTILINE)
    return "".join(f"replace {line}\n" for line in replaces) + "".join(f"exclude {line}\n" for line in excludes)


def traefik_binary() -> Path:
    """Traefik's command, built from a module of ours requiring Traefik's (`go install` refuses a module with
    replaces; ours repeats them). Its web UI's embedded folder ships with a placeholder file only: the dashboard is
    empty, which nobody here uses."""
    requirements = f"require {TRAEFIK_MODULE} {TRAEFIK_VERSION}\n\n" + inherited_directives(
        TRAEFIK_MODULE, TRAEFIK_VERSION
    )
    command = f"{TRAEFIK_MODULE}/cmd/traefik"
    tools = f'//go:build tools\n\npackage tools\n\nimport _ "{command}"\n'
    stamp = f"-X {TRAEFIK_MODULE}/pkg/version.Version={TRAEFIK_VERSION}"
    return wrapped("traefik", TRAEFIK_VERSION, requirements, {"tools.go": tools}, command, f"-ldflags=-s -w {stamp}")


# cert-manager's commands are nested modules (cmd/controller is `.../controller-binary`) that the proxy does not
# serve; its control loops are in the main module's pkg/controller and register themselves when imported. This
# main runs the ones this cluster needs: issuers (self-signed and CA), certificates, approval and ingress-shim. No
# webhook, no cainjector, no leader election (one replica), no ACME.
CERT_MANAGER_MAIN = """package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	"k8s.io/klog/v2"
)

func main() {
	var options controller.ContextOptions
	flag.StringVar(&options.ClusterResourceNamespace, "cluster-resource-namespace", "cert-manager",
		"where the Secrets ClusterIssuers name are")
	flag.DurationVar(&options.CertificateRequestMinimumBackoffDuration, "min-backoff", 30*time.Second,
		"first wait before a failed issuance is tried again")
	flag.DurationVar(&options.CertificateRequestMaximumBackoffDuration, "max-backoff", 5*time.Minute,
		"longest wait before a failed issuance is tried again")
	flag.Parse()
	options.KubernetesAPIQPS, options.KubernetesAPIBurst = 20, 50
	options.DefaultAutoCertificateAnnotations = []string{"kubernetes.io/tls-acme"}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	factory, err := controller.NewContextFactory(ctx, options)
	if err != nil {
		klog.Fatalf("connecting to the API server: %v", err)
	}
	var loops sync.WaitGroup
	for name, construct := range controller.Known() {
		loop, err := construct(factory)
		if err != nil {
			klog.Fatalf("controller %s: %v", name, err)
		}
		klog.Infof("starting controller %s", name)
		loops.Go(func() {
			if err := loop.Run(5, ctx); err != nil {
				klog.Fatalf("controller %s: %v", name, err)
			}
		})
	}
	// The informers the controllers asked for while being made, started only now.
	shared, err := factory.Build()
	if err != nil {
		klog.Fatalf("controller context: %v", err)
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	shared.GWShared.Start(ctx.Done())
	loops.Wait()
}
"""


def cert_manager_binary() -> Path:
    """cert-manager's controller (the main above), built against the main module at CERT_MANAGER_VERSION."""
    requirements = f"require {CERT_MANAGER_MODULE} {CERT_MANAGER_VERSION}\n\n"
    requirements += inherited_directives(CERT_MANAGER_MODULE, CERT_MANAGER_VERSION)
    stamp = f"-X {CERT_MANAGER_MODULE}/pkg/util.AppVersion={CERT_MANAGER_VERSION}"
    return wrapped("cert-manager-controller", CERT_MANAGER_VERSION, requirements, {"main.go": CERT_MANAGER_MAIN}, ".",
                   f"-ldflags=-s -w {stamp}")  # fmt: skip


def metrics_server_binary() -> Path:
    return installed(f"{METRICS_SERVER_MODULE}/cmd/metrics-server", METRICS_SERVER_VERSION)


# Images -------------------------------------------------------------------------------------------------------------

# Static Go binaries on scratch: they reach only the API server (through the service account's CA) and kubelets.
BINARIES = {
    TRAEFIK_IMAGE: (traefik_binary, "traefik"),
    CERT_MANAGER_IMAGE: (cert_manager_binary, "cert-manager-controller"),
    METRICS_SERVER_IMAGE: (metrics_server_binary, "metrics-server"),
}


def build_images() -> list[images.Built]:
    """Each addon's binary (built once per version) in its image (made again only when the binary changed), with
    the seconds it took and the image's size."""
    built = []
    for image, (binary, command) in BINARIES.items():
        started = time.monotonic()
        static_image(image, binary(), command)
        built.append(images.Built(image, time.monotonic() - started, images.image_size(image)))
    return built


def build() -> list[str]:
    """The addons' images, made or reused (each with its time and size on stderr): what kind_cluster loads."""
    made = build_images()
    for line in made:
        print(line, file=sys.stderr)
    return [line.image for line in made]


# Applying and waiting ---------------------------------------------------------------------------------------------

WAIT_S = 240  # a loaded 2-core machine starts pods that pull nothing within this
ISSUE_S = 120  # a certificate, from its Ingress or Certificate to its Secret
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "APIService",
                  "IngressClass", "GatewayClass", "ClusterIssuer"}  # fmt: skip
PLURALS = {"Ingress": "ingresses", "IngressClass": "ingressclasses", "GatewayClass": "gatewayclasses"}


def resource_path(manifest: Manifest) -> str:
    """The object's URL path (operator_harness's `path` knows only the kinds the operator's tests create)."""
    api_version, kind, meta = manifest["apiVersion"], manifest["kind"], manifest["metadata"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = "" if kind in CLUSTER_SCOPED else f"/namespaces/{meta.get('namespace', 'default')}"
    return f"{prefix}{scope}/{PLURALS.get(kind, kind.lower() + 's')}/{meta['name']}"


def apply(admin: httpx.Client, manifest: Manifest) -> Manifest:
    """Server-side apply, refusing fields the schema does not know."""
    response = admin.patch(
        resource_path(manifest),
        params={"fieldManager": "tams-e2e-addons", "force": "true", "fieldValidation": "Strict"},
        content=json.dumps(manifest),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert response.status_code in (200, 201), f"{manifest['kind']} {manifest['metadata']['name']}: {response.text}"
    return response.json()


def condition(admin: httpx.Client, path: str, type_: str) -> str | None:
    """The status of a condition of the object at `path` (None while the object or the condition is missing)."""
    response = admin.get(path)
    status = (response.json().get("status") or {}) if response.status_code == 200 else {}
    return next((item["status"] for item in status.get("conditions") or [] if item["type"] == type_), None)


def wait_condition(admin: httpx.Client, manifest: Manifest, type_: str, timeout: float = WAIT_S) -> None:
    path = resource_path(manifest)
    wait(lambda: condition(admin, path, type_) == "True", f"{type_} of {path}", timeout)


def apply_all(admin: httpx.Client, manifests: list[Manifest]) -> None:
    """Applies them in order; a CustomResourceDefinition is waited for until established, so later ones may use it."""
    for manifest in manifests:
        apply(admin, manifest)
        if manifest["kind"] == "CustomResourceDefinition":
            wait_condition(admin, manifest, "Established", 60)


def module_documents(
    module: str, version: str, folder: str, kinds: frozenset[str] = frozenset({"CustomResourceDefinition"}), **env: str
) -> list[Manifest]:
    """The objects of `kinds` (CustomResourceDefinitions unless told) in the YAML files of a module's folder."""
    files = sorted((module_dir(module, version, **env) / folder).glob("*.yaml"))
    loaded = [document for path in files for document in yaml.safe_load_all(path.read_text()) if document]
    return [document for document in loaded if document.get("kind") in kinds]


def meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name} | ({"namespace": namespace} if namespace else {})
    return found | ({"labels": labels} if labels else {})


def service_account_role(name: str, namespace: str, rules: list[Manifest]) -> list[Manifest]:
    """A service account bound cluster-wide to a role of its own with `rules`."""
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, namespace)},
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": meta(name), "rules": rules},
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def rule(groups: list[str], resources: list[str], verbs: list[str], **more: list[str]) -> Manifest:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs, **more}


READ = ["get", "list", "watch"]
WRITE = [*READ, "create", "update", "patch", "delete"]
RESTRICTED = {  # what every addon's container gives up
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def deployment(name: str, namespace: str, pod: Manifest, **spec: Any) -> Manifest:
    """One replica of `pod` (its labels the app's name), its security context non-root unless the pod sets one."""
    labels = {"app.kubernetes.io/name": name}
    pod = {"serviceAccountName": name, "securityContext": {"runAsNonRoot": True, "runAsUser": 65532}} | pod
    template = {"metadata": {"labels": labels}, "spec": pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, namespace, **labels),
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template, **spec},
    }


def container(name: str, image: str, args: list[str], **more: Any) -> Manifest:
    return {"name": name, "image": image, "imagePullPolicy": "Never", "args": args,
            "securityContext": RESTRICTED, **more}  # fmt: skip


# metrics-server -----------------------------------------------------------------------------------------------------

METRICS_SERVER = "metrics-server"
METRICS_SERVER_NAMESPACE = "kube-system"
METRICS_API = "v1beta1.metrics.k8s.io"
METRIC_RESOLUTION = "15s"  # a short scrape interval, so `kubectl top` and an HPA see load soon


def metrics_server_manifests(image: str = METRICS_SERVER_IMAGE) -> list[Manifest]:
    """metrics-server, its identity and roles, its Service and the APIService that makes it the metrics API."""
    namespace, name = METRICS_SERVER_NAMESPACE, METRICS_SERVER
    rbac = "rbac.authorization.k8s.io/v1"
    rules = [rule([""], ["nodes/metrics"], ["get"]), rule([""], ["pods", "nodes"], READ)]
    args = [
        "--cert-dir=/tmp",
        "--secure-port=10250",
        "--kubelet-insecure-tls",  # the kubelets' serving certificates are self-signed by kubeadm
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        f"--metric-resolution={METRIC_RESOLUTION}",
    ]
    probe = {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 5}
    server = container(name, image, args, ports=[{"name": "https", "containerPort": 10250}], readinessProbe=probe,
                       volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}])  # fmt: skip
    pod = {"containers": [server], "volumes": [{"name": "tmp", "emptyDir": {}}],
           "priorityClassName": "system-cluster-critical"}  # fmt: skip
    reader = {  # `kubectl top` for whoever may view (the aggregated view/edit/admin roles)
        "apiVersion": rbac,
        "kind": "ClusterRole",
        "metadata": meta("system:aggregated-metrics-reader", None, **{
            f"rbac.authorization.k8s.io/aggregate-to-{role}": "true" for role in ("view", "edit", "admin")}),
        "rules": [rule(["metrics.k8s.io"], ["pods", "nodes"], READ)],
    }  # fmt: skip
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    delegated = {  # it checks its clients' tokens and rights with the API server, as aggregated servers do
        "apiVersion": rbac,
        "kind": "ClusterRoleBinding",
        "metadata": meta(f"{name}:system:auth-delegator"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": subject,
    }
    auth_reader = {
        "apiVersion": rbac,
        "kind": "RoleBinding",
        "metadata": meta(f"{name}-auth-reader", namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "extension-apiserver-authentication-reader"},
        "subjects": subject,
    }  # fmt: skip
    labels = {"app.kubernetes.io/name": name}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace, **labels),
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": "https"}]},
    }
    api_service = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": meta(METRICS_API),
        "spec": {
            "service": {"name": name, "namespace": namespace},
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "insecureSkipTLSVerify": True,  # its serving certificate is self-signed at start (--cert-dir)
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    strategy = {"rollingUpdate": {"maxUnavailable": 0}}
    made = service_account_role(name, namespace, rules)
    return [*made, reader, delegated, auth_reader, deployment(name, namespace, pod, strategy=strategy), service,
            api_service]  # fmt: skip


def deploy_metrics_server(admin: httpx.Client, image: str = METRICS_SERVER_IMAGE) -> None:
    """metrics-server running and its APIService Available (the API server reaches it)."""
    manifests = metrics_server_manifests(image)
    apply_all(admin, manifests)
    [server] = [manifest for manifest in manifests if manifest["kind"] == "Deployment"]
    wait_condition(admin, server, "Available")
    wait_condition(admin, manifests[-1], "Available")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help=f"make or reuse {', '.join(ADDON_IMAGES)}; print times and sizes")
    parser.parse_args(argv)
    for built in build_images():
        print(built)


if __name__ == "__main__":
    main()
