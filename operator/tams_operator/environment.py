"""The service's environment in a TamsStore's pods: its `TAMS_*` settings (tams_api/config.py) from the spec, plain
ones for the ConfigMap, credentials as references to the user's Secrets (never copied), and the spec's own `env`.

OPERATOR_VARIABLES lists every variable the operator sets: the CRD refuses them in spec.env (a test keeps its CEL list
and this one equal, and another checks the builders set no other).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from .spec import BackupDestination, KeysSecretRef, Resources, S3Spec, TamsStoreSpec, dumped
from .tamsstore import Store

DATA_PATH = "/data"
MEDIA_PATH = "/media"
WORKER_METRICS_PORT = 9090
OPERATOR_TOKEN_KEY = "token"
OPERATOR_TOKEN_VARIABLE = "TAMS_AUTH_OPERATOR_TOKEN"
EXTRA_BACKEND_PREFIX = "TAMS_EXTRA_BACKEND_"  # the keys of spec.media.extraBackends[i]: TAMS_EXTRA_BACKEND_<i>_...
BACKUP_PREFIX = "TAMS_BACKUP_"  # where a backup is written (TamsBackup's Job) or read (bootstrap.fromBackup)
OPERATOR_PREFIXES = (EXTRA_BACKEND_PREFIX, BACKUP_PREFIX)
OPERATOR_VARIABLES = frozenset(
    [
        "TAMS_PUBLIC_URL",
        "TAMS_DATA_DIR",
        "TAMS_MEDIA_DIR",
        "TAMS_METADATA_BACKEND",
        "TAMS_MEDIA_BACKEND",
        "TAMS_RUN_WORKER",
        "TAMS_WORKER_METRICS_PORT",
        "TAMS_PRESIGNED_URL_TIMEOUT",
        "TAMS_DELETE_SYNC_LIMIT",
        "TAMS_MAX_BODY_BYTES",
        "TAMS_MAX_BULK_SEGMENTS",
        "TAMS_SQLITE_PATH",
        "TAMS_VAST_ENDPOINT",
        "TAMS_VAST_BUCKET",
        "TAMS_VAST_SCHEMA",
        "TAMS_VAST_ACCESS_KEY",
        "TAMS_VAST_SECRET_KEY",
        "TAMS_POSTGRES_URL",
        "TAMS_POSTGRES_SCHEMA",
        "TAMS_POSTGRES_POOL_SIZE",
        "TAMS_POSTGRES_TIMEOUT",
        "TAMS_S3_BUCKET",
        "TAMS_S3_REGION",
        "TAMS_S3_ENDPOINT_URL",
        "TAMS_S3_PUBLIC_ENDPOINT_URL",
        "TAMS_S3_PREFIX",
        "TAMS_S3_ACCESS_KEY_ID",
        "TAMS_S3_SECRET_ACCESS_KEY",
        "TAMS_EXTRA_STORAGE_BACKENDS",
        "TAMS_AUTH_MODES",
        "TAMS_AUTH_USERS",
        "TAMS_AUTH_TOKENS",
        "TAMS_AUTH_JWKS_URL",
        "TAMS_AUTH_JWT_ISSUER",
        "TAMS_AUTH_JWT_AUDIENCE",
        "TAMS_AUTH_STRICT_SCOPES",
        "TAMS_AUTH_OPERATOR_TOKEN",
        "TAMS_SOFT_DELETE",
        "TAMS_SOFT_DELETE_RETENTION",
        "TAMS_WEBHOOK_TIMEOUT",
        "TAMS_WEBHOOK_MAX_ATTEMPTS",
        "TAMS_WEBHOOK_RETRY_INITIAL",
        "TAMS_WEBHOOK_RETRY_MAX",
        "TAMS_WEBHOOK_ALLOW_LINK_LOCAL",
        "TAMS_LOG_LEVEL",
        "TAMS_ACCESS_LOG",
        "TAMS_WORKERS",
        "TAMS_OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_SERVICE_NAME",
    ]
)


def operator_owned(variable: str) -> bool:
    return variable in OPERATOR_VARIABLES or variable.startswith(OPERATOR_PREFIXES)


# Service settings the spec may set; unset, the service's defaults apply.
OPTIONAL_SETTINGS = {
    "delete_sync_limit": "TAMS_DELETE_SYNC_LIMIT",
    "max_body_bytes": "TAMS_MAX_BODY_BYTES",
    "max_bulk_segments": "TAMS_MAX_BULK_SEGMENTS",
}
WEBHOOK_SETTINGS = {
    "timeout_seconds": "TAMS_WEBHOOK_TIMEOUT",
    "max_attempts": "TAMS_WEBHOOK_MAX_ATTEMPTS",
    "retry_initial_seconds": "TAMS_WEBHOOK_RETRY_INITIAL",
    "retry_max_seconds": "TAMS_WEBHOOK_RETRY_MAX",
}


def _flag(value: bool) -> str:
    return str(value).lower()


def _present(values: dict[str, str | int | float | None]) -> dict[str, str]:
    """The settings that have a value, as the strings of environment variables."""
    return {variable: str(value) for variable, value in values.items() if value is not None and value != ""}


def server_processes(spec: TamsStoreSpec) -> int:
    """The API pods' TAMS_WORKERS: spec.workers, else one per CPU of the container's limit (rounded up): a process
    runs Python on one CPU at a time, so a pod allowed more serves more with more of them."""
    if spec.workers is not None:
        return spec.workers
    return max(1, math.ceil(_cpus(spec.resources)))


def _cpus(resources: Resources) -> Decimal:
    """The CPU limit in CPUs (a Kubernetes quantity: 2, 1.5, "500m"); 1 without one, or one not understood here (the
    API server refuses it when the Deployment is applied)."""
    limit = str((resources.get("limits") or {}).get("cpu", "1"))
    try:
        cpus = Decimal(limit[:-1]) / 1000 if limit.endswith("m") else Decimal(limit)
    except InvalidOperation:
        return Decimal(1)
    return cpus if cpus.is_finite() else Decimal(1)


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
        "TAMS_PUBLIC_URL": store.public_url,
        "TAMS_DATA_DIR": DATA_PATH,
        "TAMS_METADATA_BACKEND": spec.metadata.backend,
        "TAMS_MEDIA_BACKEND": spec.media.backend,
        "TAMS_PRESIGNED_URL_TIMEOUT": str(spec.presigned_url_timeout),
        "TAMS_RUN_WORKER": "false" if store.shared_metadata else "true",
        "TAMS_LOG_LEVEL": spec.log_level,
        "TAMS_ACCESS_LOG": _flag(spec.access_log),
        "TAMS_WORKERS": str(server_processes(spec)),
        "TAMS_SOFT_DELETE": _flag(spec.soft_delete.enabled),
        "TAMS_SOFT_DELETE_RETENTION": str(spec.soft_delete.retention_seconds),
        "TAMS_WEBHOOK_ALLOW_LINK_LOCAL": _flag(spec.webhooks.allow_link_local),
    }
    values |= _present({variable: getattr(spec, field) for field, variable in OPTIONAL_SETTINGS.items()})
    values |= _present({variable: getattr(spec.webhooks, field) for field, variable in WEBHOOK_SETTINGS.items()})
    if (tracing := spec.tracing) is not None:
        values |= {
            "TAMS_OTEL_EXPORTER_OTLP_ENDPOINT": tracing.otlp_endpoint,
            # The OpenTelemetry SDK's own variables: keep a share of the traces this service starts, follow callers'.
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(tracing.sampling_ratio),
            "OTEL_SERVICE_NAME": f"tams-{store.namespace}-{store.name}",
        }
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
            access, secret = (
                f"{EXTRA_BACKEND_PREFIX}{index}_{field}" for field in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
            )
            env += _keys_env(access, secret, ref)
            entry |= {"access_key_id": f"$({access})", "secret_access_key": f"$({secret})"}
        entries.append(entry)
    if entries:
        env.append({"name": "TAMS_EXTRA_STORAGE_BACKENDS", "value": json.dumps(entries, sort_keys=True)})
    return env


def container_env(store: Store) -> list[dict[str, Any]]:
    """The container's `env`: credentials by reference, then what refers to them, then the spec's own."""
    own = [dumped(variable) for variable in store.spec.env]
    return secret_env(store) + extra_backends_env(store) + own


def backup_env(location: BackupDestination, store_label: str) -> list[dict[str, Any]]:
    """The folder of one backup (location.path) for `tams-api backup` and `tams-api restore`, keys by reference."""
    values = {
        "S3_BUCKET": location.bucket,
        "S3_PATH": location.path or "",
        "S3_ENDPOINT_URL": location.endpoint,
        "S3_REGION": location.region,
        "STORE": store_label,
    }
    env = [{"name": f"{BACKUP_PREFIX}{name}", "value": value} for name, value in values.items() if value is not None]
    if (ref := location.credentials_secret_ref) is not None:
        env += _keys_env(f"{BACKUP_PREFIX}S3_ACCESS_KEY_ID", f"{BACKUP_PREFIX}S3_SECRET_ACCESS_KEY", ref)
    return env


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
