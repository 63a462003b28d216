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

API_PORT = 8000
WORKER_METRICS_PORT = 9090
DATA_PATH = "/data"
MEDIA_PATH = "/media"
DEFAULT_IMAGE = "tams-operator:latest"
SHARED_METADATA_BACKENDS = ("vast", "postgres")  # the metadata stores several API replicas can share
POSTGRES_URI_KEY = "uri"  # the key of the libpq URI in the Secret CloudNativePG makes for an application database
CONFIG_HASH_ANNOTATION = "tams-operator.io/config-hash"
OPERATOR_TOKEN_KEY = "token"
OPERATOR_TOKEN_VARIABLE = "TAMS_AUTH_OPERATOR_TOKEN"

Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Store:
    """The parts of a TamsStore object the builders read."""

    name: str
    namespace: str
    spec: dict[str, Any]
    default_image: str = DEFAULT_IMAGE  # the operator's, for stores that name no image

    @classmethod
    def from_body(cls, body: dict[str, Any], default_image: str = DEFAULT_IMAGE) -> Store:
        return cls(body["metadata"]["name"], body["metadata"]["namespace"], body.get("spec", {}), default_image)

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
        return self.spec.get("reclaimPolicy", "Retain") == "Delete"

    @property
    def metadata_backend(self) -> str:
        return self.spec.get("metadata", {}).get("backend", "sqlite")

    @property
    def shared_metadata(self) -> bool:
        return self.metadata_backend in SHARED_METADATA_BACKENDS

    @property
    def service_port(self) -> int:
        return int(self.spec.get("service", {}).get("port", 80))

    @property
    def endpoint(self) -> str:
        return f"http://{self.child_name}.{self.namespace}.svc:{self.service_port}"

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
    "deleteSyncLimit": "TAMS_DELETE_SYNC_LIMIT",
    "maxBodyBytes": "TAMS_MAX_BODY_BYTES",
    "maxBulkSegments": "TAMS_MAX_BULK_SEGMENTS",
}


def settings(store: Store) -> dict[str, str]:
    """The service's plain TAMS_* settings (no credentials), for the ConfigMap."""
    spec = store.spec
    metadata = spec.get("metadata", {})
    media = spec.get("media", {})
    values = {
        "TAMS_PUBLIC_URL": store.endpoint,
        "TAMS_DATA_DIR": DATA_PATH,
        "TAMS_METADATA_BACKEND": store.metadata_backend,
        "TAMS_MEDIA_BACKEND": media.get("backend", "filesystem"),
        "TAMS_PRESIGNED_URL_TIMEOUT": str(spec.get("presignedUrlTimeout", 3600)),
        "TAMS_RUN_WORKER": "false" if store.shared_metadata else "true",
    }
    for field, variable in OPTIONAL_SETTINGS.items():
        if field in spec:
            values[variable] = str(spec[field])
    if values["TAMS_MEDIA_BACKEND"] == "filesystem":
        values["TAMS_MEDIA_DIR"] = MEDIA_PATH
    if store.metadata_backend == "vast":
        vast = metadata["vast"]
        values |= {
            "TAMS_VAST_ENDPOINT": vast["endpoint"],
            "TAMS_VAST_BUCKET": vast["bucket"],
            "TAMS_VAST_SCHEMA": vast.get("schema", "tams"),
        }
    if store.metadata_backend == "postgres":
        postgres = metadata["postgres"]
        values["TAMS_POSTGRES_SCHEMA"] = postgres.get("schema", "tams")
        optional = {"poolSize": "TAMS_POSTGRES_POOL_SIZE", "timeoutSeconds": "TAMS_POSTGRES_TIMEOUT"}
        values |= {variable: str(postgres[field]) for field, variable in optional.items() if field in postgres}
    s3 = media.get("s3")
    if values["TAMS_MEDIA_BACKEND"] == "s3" and s3:
        values |= {"TAMS_S3_BUCKET": s3["bucket"], "TAMS_S3_REGION": s3.get("region", "us-east-1")}
        optional = {"endpoint": "TAMS_S3_ENDPOINT_URL", "publicEndpoint": "TAMS_S3_PUBLIC_ENDPOINT_URL"}
        optional |= {"prefix": "TAMS_S3_PREFIX"}
        values |= {variable: s3[field] for field, variable in optional.items() if s3.get(field)}
    auth = spec.get("auth", {})
    if auth.get("modes"):
        values["TAMS_AUTH_MODES"] = ",".join(auth["modes"])
        values["TAMS_AUTH_STRICT_SCOPES"] = str(auth.get("strictScopes", False)).lower()
        jwt = auth.get("jwt", {})
        optional = {"jwksUrl": "TAMS_AUTH_JWKS_URL", "issuer": "TAMS_AUTH_JWT_ISSUER"}
        optional |= {"audience": "TAMS_AUTH_JWT_AUDIENCE"}
        values |= {variable: jwt[field] for field, variable in optional.items() if jwt.get(field)}
    return values


def _secret_env(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def secret_env(store: Store) -> list[dict[str, Any]]:
    """Credentials, straight from the user's Secrets."""
    spec = store.spec
    env = []
    if store.metadata_backend == "vast":
        ref = spec["metadata"]["vast"]["credentialsSecretRef"]
        env += [
            _secret_env("TAMS_VAST_ACCESS_KEY", ref["name"], ref.get("accessKeyKey", "accessKey")),
            _secret_env("TAMS_VAST_SECRET_KEY", ref["name"], ref.get("secretKeyKey", "secretKey")),
        ]
    if store.metadata_backend == "postgres":
        ref = spec["metadata"]["postgres"]["uriSecretRef"]
        env.append(_secret_env("TAMS_POSTGRES_URL", ref["name"], ref.get("key", POSTGRES_URI_KEY)))
    s3 = spec.get("media", {}).get("s3") or {}
    if spec.get("media", {}).get("backend") == "s3" and "credentialsSecretRef" in s3:
        ref = s3["credentialsSecretRef"]
        env += [
            _secret_env("TAMS_S3_ACCESS_KEY_ID", ref["name"], ref.get("accessKeyKey", "accessKey")),
            _secret_env("TAMS_S3_SECRET_ACCESS_KEY", ref["name"], ref.get("secretKeyKey", "secretKey")),
        ]
    env.append(_secret_env(OPERATOR_TOKEN_VARIABLE, store.operator_secret_name, OPERATOR_TOKEN_KEY))
    auth = spec.get("auth", {})
    for field, variable, default_key in (
        ("usersSecretRef", "TAMS_AUTH_USERS", "users"),
        ("tokensSecretRef", "TAMS_AUTH_TOKENS", "tokens"),
    ):
        if field in auth:
            env.append(_secret_env(variable, auth[field]["name"], auth[field].get("key", default_key)))
    return env


def extra_backends_env(store: Store) -> list[dict[str, Any]]:
    """More S3 buckets served as storage backends (TAMS_EXTRA_STORAGE_BACKENDS). Their keys come from the user's
    Secrets into variables of their own, which the JSON references as $(NAME): Kubernetes expands references in
    `env` values (never in a ConfigMap's), so no key is ever written down."""
    env: list[dict[str, Any]] = []
    entries = []
    for index, backend in enumerate(store.spec.get("media", {}).get("extraBackends", [])):
        entry = {"label": backend["label"], "backend": "s3", "bucket": backend["bucket"]}
        entry["region"] = backend.get("region", "us-east-1")
        optional = {"endpoint": "endpoint_url", "publicEndpoint": "public_endpoint_url", "prefix": "prefix"}
        entry |= {field: backend[name] for name, field in optional.items() if backend.get(name)}
        if "credentialsSecretRef" in backend:
            ref = backend["credentialsSecretRef"]
            for field, key, default_key in (
                ("access_key_id", "accessKeyKey", "accessKey"),
                ("secret_access_key", "secretKeyKey", "secretKey"),
            ):
                variable = f"TAMS_EXTRA_BACKEND_{index}_{field.upper()}"
                env.append(_secret_env(variable, ref["name"], ref.get(key, default_key)))
                entry[field] = f"$({variable})"
        entries.append(entry)
    if entries:
        env.append({"name": "TAMS_EXTRA_STORAGE_BACKENDS", "value": json.dumps(entries, sort_keys=True)})
    return env


def container_env(store: Store) -> list[dict[str, Any]]:
    """The container's `env`: credentials by reference, then what refers to them."""
    return secret_env(store) + extra_backends_env(store)


def created_buckets(store: Store, default_label: str) -> list[str]:
    """Labels of the S3 backends whose missing bucket provisioning creates (createBucket)."""
    media = store.spec.get("media", {})
    labels = [default_label] if media.get("s3", {}).get("createBucket", False) else []
    return labels + [backend["label"] for backend in media.get("extraBackends", []) if backend.get("createBucket")]


def management_settings(store: Store) -> dict[str, str]:
    """Settings of the VAST management API (VMS), which only provisioning uses: never in the pods."""
    vast = store.metadata_backend == "vast"
    management = store.spec.get("metadata", {}).get("vast", {}).get("management") if vast else None
    if not management:
        return {}
    values = {
        "TAMS_VAST_MANAGEMENT_ENDPOINT": management["endpoint"],
        "TAMS_VAST_BUCKET_OWNER": management["bucketOwner"],
        "TAMS_VAST_VIEW_POLICY": management.get("viewPolicy", "s3_default_policy"),
    }
    optional = {"tenant": "TAMS_VAST_MANAGEMENT_TENANT", "viewPath": "TAMS_VAST_VIEW_PATH"}
    return values | {variable: management[field] for field, variable in optional.items() if management.get(field)}


def management_secret_env(store: Store) -> list[dict[str, Any]]:
    """The VMS user and password, by reference, for provisioning only."""
    if not management_settings(store):
        return []
    ref = store.spec["metadata"]["vast"]["management"]["credentialsSecretRef"]
    return [
        _secret_env("TAMS_VAST_MANAGEMENT_USERNAME", ref["name"], ref.get("usernameKey", "username")),
        _secret_env("TAMS_VAST_MANAGEMENT_PASSWORD", ref["name"], ref.get("passwordKey", "password")),
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


def _claim(store: Store, name: str, options: dict[str, Any], default_size: str) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": options.get("storageSize", default_size)}},
    }
    if options.get("storageClassName"):
        spec["storageClassName"] = options["storageClassName"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": store.meta(name, "storage"), "spec": spec}


def volume_claims(store: Store) -> list[Manifest]:
    """Volumes of the embedded stores: the SQLite database (and signing key), the media objects."""
    claims = []
    if not store.shared_metadata:
        claims.append(
            _claim(store, f"{store.child_name}-data", store.spec.get("metadata", {}).get("sqlite", {}), "1Gi")
        )
    media = store.spec.get("media", {})
    if media.get("backend", "filesystem") == "filesystem":
        claims.append(_claim(store, f"{store.child_name}-media", media.get("filesystem", {}), "10Gi"))
    return claims


def _pod_spec(store: Store, command: list[str], resources: dict[str, Any], api: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "tams-api" if api else "tams-worker",
        "image": store.spec.get("image") or store.default_image,
        "imagePullPolicy": store.spec.get("imagePullPolicy", "IfNotPresent"),
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
    pod = _pod_spec(
        store, ["serve", "--host", "0.0.0.0", "--port", str(API_PORT)], store.spec.get("resources", {}), True
    )
    return _deployment(store, store.child_name, "api", store.spec.get("replicas", 1), pod, API_PORT)


def worker_deployment(store: Store) -> Manifest | None:
    """The background worker, alone in its Deployment, when the API replicas share the metadata store."""
    if not store.shared_metadata:
        return None
    resources = store.spec.get("worker", {}).get("resources", {})
    pod = _pod_spec(store, ["worker"], resources, api=False)
    return _deployment(store, store.worker_name, "worker", 1, pod, WORKER_METRICS_PORT)


def service(store: Store) -> Manifest:
    options = store.spec.get("service", {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": store.meta(store.child_name, "api"),
        "spec": {
            "type": options.get("type", "ClusterIP"),
            "selector": store.labels("api"),
            "ports": [{"name": "http", "port": store.service_port, "targetPort": "http"}],
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
