"""Pure builders of a TamsStore's child manifests: the same TamsStore always gives the same children.

The service is configured through `TAMS_*` environment variables (tams_api/config.py): plain settings in a
ConfigMap, credentials as references to the user's Secrets (never copied) (environment.py). A hash of both, and of
the versions of the Secrets referenced, goes into the pod template, so a change of either, or a rotated Secret, rolls
the pods.

With the embedded stores (sqlite metadata, filesystem media) the data lives on ReadWriteOnce volumes: one
replica (a second only while a rollout surges, on the same node), and the background worker inside the API
process. With shared metadata (VAST Database or PostgreSQL) the API scales, and the worker runs in a Deployment
of its own with exactly one replica.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from .environment import (
    DATA_PATH,
    MEDIA_PATH,
    OPERATOR_TOKEN_KEY,
    WORKER_METRICS_PORT,
    backup_env,
    container_env,
    settings,
)
from .exposure import http_route, ingress, network_policy
from .scaling import horizontal_pod_autoscaler, pod_disruption_budget, pod_monitor
from .spec import BackupDestination, PodTemplateSpec, ServiceAccountSpec, VolumeSpec, dumped
from .tamsstore import MANAGED_BY, Store

API_PORT = 8000
CONFIG_HASH_ANNOTATION = "tams-operator.io/config-hash"

Manifest = dict[str, Any]


def config_map(store: Store) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": store.meta(store.child_name, "api"),
        "data": settings(store),
    }


def config_hash(store: Store) -> str:
    """Changes when the settings, the credential references or the referenced Secrets' versions change."""
    document = json.dumps(
        {"settings": settings(store), "env": container_env(store), "secrets": store.secret_versions}, sort_keys=True
    )
    return hashlib.sha256(document.encode()).hexdigest()[:16]


def _claim(store: Store, name: str, volume: VolumeSpec) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": volume.storage_size}},
    }
    if volume.storage_class_name:
        spec["storageClassName"] = volume.storage_class_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": store.meta(name, "storage"), "spec": spec}


def volume_claims(store: Store) -> list[Manifest]:
    """Volumes of the embedded stores: the SQLite database (and signing key), the media objects."""
    claims = []
    if not store.shared_metadata:
        claims.append(_claim(store, f"{store.child_name}-data", store.spec.metadata.sqlite))
    if store.spec.media.backend == "filesystem":
        claims.append(_claim(store, f"{store.child_name}-media", store.spec.media.filesystem))
    return claims


Role = Literal["api", "worker", "backup"]
CONTAINER_NAMES: dict[Role, str] = {"api": "tams-api", "worker": "tams-worker", "backup": "backup"}


def _pod_spec(store: Store, command: list[str], resources: dict[str, Any], role: Role) -> dict[str, Any]:
    """The pod as the operator makes it; the spec's placement is added by _placed."""
    api = role == "api"
    container: dict[str, Any] = {
        "name": CONTAINER_NAMES[role],
        "image": store.spec.image or store.default_image,
        "imagePullPolicy": store.spec.image_pull_policy,
        "args": command,
        "envFrom": [{"configMapRef": {"name": store.child_name}}],
        "env": container_env(store),
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    for claim in volume_claims(store):
        name = claim["metadata"]["name"]
        path = MEDIA_PATH if name.endswith("-media") else DATA_PATH
        container["volumeMounts"].append({"name": name.rsplit("-", 1)[1], "mountPath": path})
        volumes.append({"name": name.rsplit("-", 1)[1], "persistentVolumeClaim": {"claimName": name}})
    # As the server, without its ports and probes; its one-line error is the message of its terminated state.
    migrate = {**container, "name": "migrate", "args": ["migrate"], "terminationMessagePolicy": "FallbackToLogsOnError"}
    if role == "backup":  # its summary, or its one-line error, is the message of its terminated state
        container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    if role == "worker":  # the worker's own /metrics (webhook deliveries are counted where the worker runs)
        container["env"] = [*container["env"], {"name": "TAMS_WORKER_METRICS_PORT", "value": str(WORKER_METRICS_PORT)}]
        container["ports"] = [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}]
    if api:
        container["ports"] = [{"name": "http", "containerPort": API_PORT}]
        # The Service stops sending new requests before the server stops taking them.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
        # Neither path needs credentials, whatever the auth. Ready: the stores answer (a store that does not may
        # take seconds to say so); alive: the process answers, so a store outage takes pods out of the Service
        # but never restarts them. Readiness is asked often (the API caches its answer for 2 s, so this costs
        # little): a started pod serves, and a rollout moves on, within 2 s rather than up to 10.
        container["readinessProbe"] = {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 2,
            "timeoutSeconds": 5,
        }
        container["livenessProbe"] = {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        }
    pod: dict[str, Any] = {
        "serviceAccountName": _service_account_name(store, role != "worker"),
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
        "containers": [container],
        "volumes": volumes,
    }
    if api:
        # Before the server starts, the metadata store's schema is brought to this image's version (`tams-api
        # migrate`, idempotent) in a container of its own: a failed or refused migration is the pod's Init error,
        # saying why in one line, and no server starts on a store it cannot use. Safe with several replicas: each
        # migration reads the version in its own transaction and the loser of a race retries, and migrations keep
        # the previous release working, whose pods serve until the rollout replaces them. The worker migrates as it
        # opens the store.
        pod["initContainers"] = [migrate]
        if store.restore_from is not None:
            # A new store restored from a backup (`tams-api restore`, which does nothing once it is done) before
            # its schema is brought to this image's version.
            env = [*container["env"], *backup_env(store.restore_from, store.label)]
            pod["initContainers"] = [{**migrate, "name": "restore", "args": ["restore"], "env": env}, migrate]
    return pod


def _placed(pod: dict[str, Any], template: PodTemplateSpec, labels: dict[str, str], same_node: bool) -> dict[str, Any]:
    """The pod with the spec's placement: node selection, tolerations, affinity, spread, priority, pull secrets.
    Embedded stores sit on ReadWriteOnce volumes, which two pods share only on one node: their pods keep to the node
    their running pods are on (the first goes anywhere), a required term kept beside the spec's own."""
    placed = dict(pod)
    affinity = dumped(template.affinity) if template.affinity else {}
    if same_node:
        term = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
        pod_affinity = dict(affinity.get("podAffinity") or {})
        required = [*(pod_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []), term]
        affinity["podAffinity"] = {**pod_affinity, "requiredDuringSchedulingIgnoredDuringExecution": required}
    if affinity:
        placed["affinity"] = affinity
    if template.node_selector:
        placed["nodeSelector"] = dict(template.node_selector)
    if template.tolerations:
        placed["tolerations"] = [dumped(toleration) for toleration in template.tolerations]
    if template.topology_spread_constraints:
        # Without a selector of its own, a constraint spreads the pods of this Deployment.
        own = {"labelSelector": {"matchLabels": labels}}
        placed["topologySpreadConstraints"] = [own | dumped(item) for item in template.topology_spread_constraints]
    if template.priority_class_name:
        placed["priorityClassName"] = template.priority_class_name
    if template.image_pull_secrets:
        placed["imagePullSecrets"] = [{"name": secret.name} for secret in template.image_pull_secrets]
    return placed


def _deployment(
    store: Store, name: str, component: str, replicas: int, pod: dict[str, Any], metrics_port: int
) -> Manifest:
    labels = store.labels(component)
    template = store.spec.pod_template if component == "api" else store.spec.worker.pod_template
    # A new pod is ready before an old one goes, so clients never meet fewer ready pods; the old and the new process
    # of an embedded store share the SQLite file safely (WAL locks, and the worker lease lets one worker work).
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    annotations = {
        **template.annotations,
        CONFIG_HASH_ANNOTATION: config_hash(store),
        # The usual discovery annotations of Prometheus' Kubernetes pod scraping.
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port),
        "prometheus.io/path": "/metrics",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": store.meta(name, component),
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**template.labels, **labels}, "annotations": annotations},
                "spec": _placed(pod, template, labels, same_node=not store.shared_metadata),
            },
        },
    }


def api_deployment(store: Store) -> Manifest:
    pod = _pod_spec(store, ["serve", "--host", "0.0.0.0", "--port", str(API_PORT)], store.spec.resources, "api")
    return _deployment(store, store.child_name, "api", store.spec.replicas, pod, API_PORT)


def worker_deployment(store: Store) -> Manifest | None:
    """The background worker, alone in its Deployment, when the API replicas share the metadata store."""
    if not store.shared_metadata:
        return None
    pod = _pod_spec(store, ["worker"], store.spec.worker.resources, "worker")
    return _deployment(store, store.worker_name, "worker", 1, pod, WORKER_METRICS_PORT)


BACKUP_LABEL = "tams-operator.io/backup"
STORE_LABEL = "tams-operator.io/store"
SUMMARY_PATH = "/dev/termination-log"  # where `tams-api backup` leaves its summary for the operator to read


def backup_job(store: Store, backup: str, location: BackupDestination) -> Manifest:
    """The Job writing one backup of the store (TamsBackup `backup`) to `location`: the store's image, settings and
    volumes; on the node of the store's pods, whose ReadWriteOnce volumes it reads (SQLite's online backup reads the
    live database beside the server). Tried twice: a second try starts over (nothing counts until the manifest)."""
    pod = _pod_spec(store, ["backup", "--summary-file", SUMMARY_PATH], store.spec.resources, "backup")
    [container] = pod["containers"]
    container["env"] = [*container["env"], *backup_env(location, store.label)]
    pod["restartPolicy"] = "Never"
    # Not the store's instance label: the store's own pods are those of its Deployments (stores.pods).
    labels = {
        "app.kubernetes.io/name": "tams",
        "app.kubernetes.io/component": "backup",
        STORE_LABEL: store.name,
        BACKUP_LABEL: backup,
        **MANAGED_BY,
    }
    placed = _placed(pod, store.spec.pod_template, store.labels("api"), same_node=not store.shared_metadata)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{backup}-backup", "namespace": store.namespace, "labels": labels},
        "spec": {"backoffLimit": 1, "template": {"metadata": {"labels": labels}, "spec": placed}},
    }


def service(store: Store) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": store.meta(store.child_name, "api"),
        "spec": {
            "type": store.spec.service.type,
            "selector": store.labels("api"),
            "ports": [{"name": "http", "port": store.spec.service.port, "targetPort": "http"}],
        },
    }


def operator_secret(store: Store, token: str) -> Manifest:
    """The admin token the operator uses on this store's API (TamsWebhook, TamsDeletionRequest): created once,
    never rewritten, so restarts of the operator keep the pods' token."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": store.meta(store.operator_secret_name, "api"),
        "type": "Opaque",
        "stringData": {OPERATOR_TOKEN_KEY: token},
    }


def _service_account_name(store: Store, api: bool) -> str:
    """A ServiceAccount the spec names, else the operator's own for the Deployment."""
    account = store.spec.service_account if api else store.spec.worker.service_account
    return account.name or (store.child_name if api else store.worker_name)


def service_accounts(store: Store) -> list[Manifest]:
    """The operator-made ServiceAccounts (with the spec's annotations, e.g. a cloud identity), of the API and of the
    worker of a shared store, unless the spec names existing ones."""
    wanted: list[tuple[str, str, ServiceAccountSpec]] = [(store.child_name, "api", store.spec.service_account)]
    if store.shared_metadata:
        wanted.append((store.worker_name, "worker", store.spec.worker.service_account))
    accounts = []
    for name, component, spec in wanted:
        if spec.name:
            continue
        metadata = store.meta(name, component)
        if spec.annotations:
            metadata["annotations"] = dict(spec.annotations)
        accounts.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata})
    return accounts


def children(store: Store) -> list[Manifest]:
    """Everything a TamsStore owns, in the order to apply it: what pods need before the pods (the Service too,
    so that a pod is never up without the name clients reach it by), then what refers to the pods."""
    optional = [
        worker_deployment(store),
        pod_disruption_budget(store),
        horizontal_pod_autoscaler(store),
        network_policy(store),
        ingress(store),
        http_route(store),
        pod_monitor(store),
    ]
    return [
        *service_accounts(store),
        config_map(store),
        *volume_claims(store),
        service(store),
        api_deployment(store),
        *(child for child in optional if child is not None),
    ]


def removable_children(store: Store) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of every child a spec field brings that this spec has not: the operator deletes them,
    so a field removed from the spec takes its object with it. (The worker's Deployment comes with the metadata
    backend, which cannot change.)"""
    kept = {(child["kind"], child["metadata"]["name"]) for child in children(store)}
    candidates = [
        ("v1", "ServiceAccount", store.child_name),
        ("v1", "ServiceAccount", store.worker_name),
        ("policy/v1", "PodDisruptionBudget", store.child_name),
        ("autoscaling/v2", "HorizontalPodAutoscaler", store.child_name),
        ("networking.k8s.io/v1", "NetworkPolicy", store.child_name),
        ("networking.k8s.io/v1", "Ingress", store.child_name),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", store.child_name),
        ("monitoring.coreos.com/v1", "PodMonitor", store.child_name),
    ]
    return [candidate for candidate in candidates if candidate[1:] not in kept]
