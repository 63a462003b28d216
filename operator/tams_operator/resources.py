"""Pure builders of a TamsStore's child manifests: the same TamsStore always gives the same children.

The service is configured through `TAMS_*` environment variables (tams_api/config.py): plain settings in a
ConfigMap, credentials as references to the user's Secrets (never copied). A hash of both goes into the pod
template, so a change of either rolls the pods.

With the embedded stores (sqlite metadata, filesystem media) the data lives on ReadWriteOnce volumes: one
replica (a second only while a rollout surges, on the same node), and the background worker inside the API
process. With shared metadata (VAST Database or PostgreSQL) the API scales, and the worker runs in a Deployment
of its own with exactly one replica.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .spec import KeysSecretRef, S3Spec, TamsStoreSpec, VolumeSpec

API_PORT = 8000
WORKER_METRICS_PORT = 9090
DATA_PATH = "/data"
MEDIA_PATH = "/media"
DEFAULT_IMAGE = "tams-operator:latest"
SHARED_METADATA_BACKENDS = ("vast", "postgres")  # the metadata stores several API replicas can share
CONFIG_HASH_ANNOTATION = "tams-operator.io/config-hash"
OPERATOR_TOKEN_KEY = "token"
OPERATOR_TOKEN_VARIABLE = "TAMS_AUTH_OPERATOR_TOKEN"

Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Store:
    """The parts of a TamsStore object the builders read."""

    name: str
    namespace: str
    spec: TamsStoreSpec
    default_image: str = DEFAULT_IMAGE  # the operator's, for stores that name no image

    @classmethod
    def from_body(cls, body: dict[str, Any], default_image: str = DEFAULT_IMAGE) -> Store:
        """The store as the API server holds it."""
        spec = TamsStoreSpec.model_validate(body.get("spec") or {})
        return cls(body["metadata"]["name"], body["metadata"]["namespace"], spec, default_image)

    @property
    def child_name(self) -> str:
        return f"{self.name}-tams"

    @property
    def worker_name(self) -> str:
        return f"{self.name}-tams-worker"

    @property
    def operator_secret_name(self) -> str:
        return f"{self.name}-tams-operator"

    @property
    def reclaims_data(self) -> bool:
        """reclaimPolicy Delete: volumes, buckets and tables go with the TamsStore."""
        return self.spec.reclaim_policy == "Delete"

    @property
    def shared_metadata(self) -> bool:
        return self.spec.metadata.backend in SHARED_METADATA_BACKENDS

    @property
    def endpoint(self) -> str:
        return f"http://{self.child_name}.{self.namespace}.svc:{self.spec.service.port}"

    def labels(self, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "tams",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "tams-operator",
        }

    def meta(self, name: str, component: str) -> dict[str, Any]:
        return {"name": name, "namespace": self.namespace, "labels": self.labels(component)}


# Service settings the spec may set; unset, the service's defaults apply.
OPTIONAL_SETTINGS = {
    "delete_sync_limit": "TAMS_DELETE_SYNC_LIMIT",
    "max_body_bytes": "TAMS_MAX_BODY_BYTES",
    "max_bulk_segments": "TAMS_MAX_BULK_SEGMENTS",
}


def _present(values: dict[str, str | int | float | None]) -> dict[str, str]:
    """The settings that have a value, as the strings of environment variables."""
    return {variable: str(value) for variable, value in values.items() if value is not None and value != ""}


def s3_settings(s3: S3Spec) -> dict[str, str]:
    """The TAMS_S3_* settings of the default S3 backend."""
    return _present(
        {
            "TAMS_S3_BUCKET": s3.bucket,
            "TAMS_S3_REGION": s3.region,
            "TAMS_S3_ENDPOINT_URL": s3.endpoint,
            "TAMS_S3_PUBLIC_ENDPOINT_URL": s3.public_endpoint,
            "TAMS_S3_PREFIX": s3.prefix,
        }
    )


def settings(store: Store) -> dict[str, str]:
    """The service's plain TAMS_* settings (no credentials), for the ConfigMap."""
    spec = store.spec
    values = {
        "TAMS_PUBLIC_URL": store.endpoint,
        "TAMS_DATA_DIR": DATA_PATH,
        "TAMS_METADATA_BACKEND": spec.metadata.backend,
        "TAMS_MEDIA_BACKEND": spec.media.backend,
        "TAMS_PRESIGNED_URL_TIMEOUT": str(spec.presigned_url_timeout),
        "TAMS_RUN_WORKER": "false" if store.shared_metadata else "true",
    }
    values |= _present({variable: getattr(spec, field) for field, variable in OPTIONAL_SETTINGS.items()})
    if spec.media.backend == "filesystem":
        values["TAMS_MEDIA_DIR"] = MEDIA_PATH
    if (vast := spec.metadata.vast_store) is not None:
        values |= {
            "TAMS_VAST_ENDPOINT": vast.endpoint,
            "TAMS_VAST_BUCKET": vast.bucket,
            "TAMS_VAST_SCHEMA": vast.schema_name,
        }
    if (postgres := spec.metadata.postgres_store) is not None:
        values["TAMS_POSTGRES_SCHEMA"] = postgres.schema_name
        values |= _present(
            {"TAMS_POSTGRES_POOL_SIZE": postgres.pool_size, "TAMS_POSTGRES_TIMEOUT": postgres.timeout_seconds}
        )
    if (s3 := spec.media.s3_store) is not None:
        values |= s3_settings(s3)
    auth = spec.auth
    if auth.modes:
        values["TAMS_AUTH_MODES"] = ",".join(auth.modes)
        values["TAMS_AUTH_STRICT_SCOPES"] = str(auth.strict_scopes).lower()
        if auth.jwt is not None:
            jwt = {"TAMS_AUTH_JWKS_URL": auth.jwt.jwks_url, "TAMS_AUTH_JWT_ISSUER": auth.jwt.issuer}
            values |= _present(jwt | {"TAMS_AUTH_JWT_AUDIENCE": auth.jwt.audience})
    return values


def _secret_env(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _keys_env(access_variable: str, secret_variable: str, ref: KeysSecretRef) -> list[dict[str, Any]]:
    return [
        _secret_env(access_variable, ref.name, ref.access_key_key),
        _secret_env(secret_variable, ref.name, ref.secret_key_key),
    ]


def secret_env(store: Store) -> list[dict[str, Any]]:
    """Credentials, straight from the user's Secrets."""
    spec = store.spec
    env = []
    if (vast := spec.metadata.vast_store) is not None:
        env += _keys_env("TAMS_VAST_ACCESS_KEY", "TAMS_VAST_SECRET_KEY", vast.credentials_secret_ref)
    if (postgres := spec.metadata.postgres_store) is not None:
        env.append(_secret_env("TAMS_POSTGRES_URL", postgres.uri_secret_ref.name, postgres.uri_secret_ref.key))
    if (s3 := spec.media.s3_store) is not None and s3.credentials_secret_ref is not None:
        env += _keys_env("TAMS_S3_ACCESS_KEY_ID", "TAMS_S3_SECRET_ACCESS_KEY", s3.credentials_secret_ref)
    env.append(_secret_env(OPERATOR_TOKEN_VARIABLE, store.operator_secret_name, OPERATOR_TOKEN_KEY))
    for variable, ref in (
        ("TAMS_AUTH_USERS", spec.auth.users_secret_ref),
        ("TAMS_AUTH_TOKENS", spec.auth.tokens_secret_ref),
    ):
        if ref is not None:
            env.append(_secret_env(variable, ref.name, ref.key))
    return env


def extra_backends_env(store: Store) -> list[dict[str, Any]]:
    """More S3 buckets served as storage backends (TAMS_EXTRA_STORAGE_BACKENDS). Their keys come from the user's
    Secrets into variables of their own, which the JSON references as $(NAME): Kubernetes expands references in
    `env` values (never in a ConfigMap's), so no key is ever written down."""
    env: list[dict[str, Any]] = []
    entries = []
    for index, backend in enumerate(store.spec.media.extra_backends):
        entry: dict[str, Any] = {"label": backend.label, "backend": "s3", "bucket": backend.bucket}
        entry["region"] = backend.region
        optional = {"endpoint_url": backend.endpoint, "public_endpoint_url": backend.public_endpoint}
        entry |= {field: value for field, value in (optional | {"prefix": backend.prefix}).items() if value}
        if (ref := backend.credentials_secret_ref) is not None:
            access, secret = (f"TAMS_EXTRA_BACKEND_{index}_{field}" for field in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY"))
            env += _keys_env(access, secret, ref)
            entry |= {"access_key_id": f"$({access})", "secret_access_key": f"$({secret})"}
        entries.append(entry)
    if entries:
        env.append({"name": "TAMS_EXTRA_STORAGE_BACKENDS", "value": json.dumps(entries, sort_keys=True)})
    return env


def container_env(store: Store) -> list[dict[str, Any]]:
    """The container's `env`: credentials by reference, then what refers to them."""
    return secret_env(store) + extra_backends_env(store)


def created_buckets(store: Store, default_label: str) -> list[str]:
    """Labels of the S3 backends whose missing bucket provisioning creates (createBucket)."""
    media = store.spec.media
    labels = [default_label] if media.s3 is not None and media.s3.create_bucket else []
    return labels + [backend.label for backend in media.extra_backends if backend.create_bucket]


def management_settings(store: Store) -> dict[str, str]:
    """Settings of the VAST management API (VMS), which only provisioning uses: never in the pods."""
    vast = store.spec.metadata.vast_store
    if vast is None or vast.management is None:
        return {}
    management = vast.management
    return _present(
        {
            "TAMS_VAST_MANAGEMENT_ENDPOINT": management.endpoint,
            "TAMS_VAST_BUCKET_OWNER": management.bucket_owner,
            "TAMS_VAST_VIEW_POLICY": management.view_policy,
            "TAMS_VAST_MANAGEMENT_TENANT": management.tenant,
            "TAMS_VAST_VIEW_PATH": management.view_path,
        }
    )


def management_secret_env(store: Store) -> list[dict[str, Any]]:
    """The VMS user and password, by reference, for provisioning only."""
    vast = store.spec.metadata.vast_store
    if vast is None or vast.management is None:
        return []
    ref = vast.management.credentials_secret_ref
    return [
        _secret_env("TAMS_VAST_MANAGEMENT_USERNAME", ref.name, ref.username_key),
        _secret_env("TAMS_VAST_MANAGEMENT_PASSWORD", ref.name, ref.password_key),
    ]


def config_map(store: Store) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": store.meta(store.child_name, "api"),
        "data": settings(store),
    }


def config_hash(store: Store) -> str:
    """Changes when the settings or the credential references change (not when a Secret's value does)."""
    document = json.dumps({"settings": settings(store), "env": container_env(store)}, sort_keys=True)
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


def _pod_spec(store: Store, command: list[str], resources: dict[str, Any], api: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "tams-api" if api else "tams-worker",
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
    if not api:  # the worker's own /metrics (webhook deliveries are counted where the worker runs)
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
        "serviceAccountName": store.child_name,
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
    return pod


def _deployment(
    store: Store, name: str, component: str, replicas: int, pod: dict[str, Any], metrics_port: int
) -> Manifest:
    labels = store.labels(component)
    # A new pod is ready before an old one goes, so clients never meet fewer ready pods. Embedded stores sit on
    # ReadWriteOnce volumes, which two pods share only on one node: their pods keep to the node their running pods
    # are on (the first goes anywhere); the old and the new process then share the SQLite file safely (WAL locks,
    # and the worker lease lets one worker work).
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    if not store.shared_metadata:
        same_node = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
        pod = {**pod, "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [same_node]}}}
    annotations = {
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
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod,
            },
        },
    }


def api_deployment(store: Store) -> Manifest:
    pod = _pod_spec(store, ["serve", "--host", "0.0.0.0", "--port", str(API_PORT)], store.spec.resources, True)
    return _deployment(store, store.child_name, "api", store.spec.replicas, pod, API_PORT)


def worker_deployment(store: Store) -> Manifest | None:
    """The background worker, alone in its Deployment, when the API replicas share the metadata store."""
    if not store.shared_metadata:
        return None
    pod = _pod_spec(store, ["worker"], store.spec.worker.resources, api=False)
    return _deployment(store, store.worker_name, "worker", 1, pod, WORKER_METRICS_PORT)


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


def service_account(store: Store) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": store.meta(store.child_name, "api")}


def children(store: Store) -> list[Manifest]:
    """Everything a TamsStore owns, in the order to apply it: what pods need before the pods (the Service too,
    so that a pod is never up without the name clients reach it by)."""
    worker = worker_deployment(store)
    return [
        service_account(store),
        config_map(store),
        *volume_claims(store),
        service(store),
        api_deployment(store),
        *([worker] if worker else []),
    ]
