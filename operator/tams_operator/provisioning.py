"""A TamsStore's stores, provisioned with the very settings its pods will run with.

The service's settings are the ConfigMap's plain values plus the credentials from the user's Secrets
(resources.settings + resources.secret_env); the provisioning functions are the service's own
(tams_api.provision), run in a thread because boto3, psycopg and the vastdb SDK block. Those SDKs (vastdb with
pyarrow and ibis, boto3: about 90 MB) are imported when a store first needs them, so an operator of embedded stores
stays small.
"""

from __future__ import annotations

import asyncio
import re

from pydantic import ValidationError

from tams_api.config import Settings
from tams_api.errors import ConfigurationError

from .conditions import Reason
from .kube import KubeApi
from .resources import (
    OPERATOR_TOKEN_VARIABLE,
    Store,
    container_env,
    created_buckets,
    management_secret_env,
    management_settings,
    settings,
)

REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")  # $(NAME) in an env value, as Kubernetes expands it


class NotReady(Exception):
    """Something outside the spec is missing or failing (a Secret, a bucket, a cluster): it may heal."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidSpec(Exception):
    """The spec itself cannot work: only a change of it helps."""


async def credentials(api: KubeApi, store: Store, operator_token: bool = True) -> dict[str, str]:
    """The container's `env` as a kubelet would resolve it (Secrets read, $(NAME) references expanded), plus
    what only provisioning reads (VMS); a missing Secret or key is named. Without `operator_token`, the operator's
    own token is left out: the stores do not need it, and on deletion its Secret may already be collected."""
    values: dict[str, str] = {}
    secrets: dict[str, dict[str, str] | None] = {}
    for variable in container_env(store) + management_secret_env(store):
        if variable["name"] == OPERATOR_TOKEN_VARIABLE and not operator_token:
            continue
        if "value" in variable:
            values[variable["name"]] = REFERENCE.sub(lambda match: values.get(match[1], match[0]), variable["value"])
            continue
        ref = variable["valueFrom"]["secretKeyRef"]
        if ref["name"] not in secrets:
            secrets[ref["name"]] = await api.secret_data(store.namespace, ref["name"])
        data = secrets[ref["name"]]
        if data is None:
            raise NotReady(
                Reason.SECRET_NOT_FOUND, f"Secret {ref['name']!r} not found in namespace {store.namespace!r}"
            )
        if ref["key"] not in data:
            raise NotReady(Reason.SECRET_KEY_NOT_FOUND, f"Secret {ref['name']!r} has no key {ref['key']!r}")
        values[variable["name"]] = data[ref["key"]]
    return values


def service_settings(store: Store, credentials: dict[str, str]) -> Settings:
    """The service's Settings, exactly as its pods will parse them (plus the VMS settings of provisioning)."""
    variables = settings(store) | management_settings(store) | credentials
    try:
        return Settings(**{name.removeprefix("TAMS_").lower(): value for name, value in variables.items()})
    except ValidationError as error:
        problems = "; ".join(problem["msg"].removeprefix("Value error, ") for problem in error.errors())
        raise InvalidSpec(problems) from None


async def provision_metadata(store: Store, service: Settings) -> str:
    if service.metadata_backend == "sqlite":
        return f"embedded SQLite on PersistentVolumeClaim {store.child_name}-data"
    from tams_api.provision import provision_postgres, provision_vast  # their SDKs only when a store uses them

    provision, reason = {
        "vast": (provision_vast, Reason.VAST_FAILED),
        "postgres": (provision_postgres, Reason.POSTGRES_FAILED),
    }[service.metadata_backend]
    try:
        return await asyncio.to_thread(provision, service)
    except ConfigurationError as error:
        raise NotReady(reason, str(error)) from None


async def provision_media(store: Store, service: Settings) -> str:
    if service.media_backend == "filesystem":
        return f"filesystem on PersistentVolumeClaim {store.child_name}-media"
    from tams_api.provision import provision_s3  # boto3 only when a store uses it

    create = created_buckets(store, service.default_media_backend.label)
    try:
        return await asyncio.to_thread(provision_s3, service, create)
    except ConfigurationError as error:
        raise NotReady(Reason.S3_FAILED, str(error)) from None


def deprovision(service: Settings) -> str:
    """reclaimPolicy Delete: the bucket's objects and the bucket, the tables and the schema. Blocking."""
    from tams_api.provision import deprovision_postgres, deprovision_s3, deprovision_vast  # as above

    outcomes = []
    if service.media_backend == "s3":
        outcomes.append(deprovision_s3(service))
    if service.metadata_backend == "vast":
        outcomes.append(deprovision_vast(service))
    if service.metadata_backend == "postgres":
        outcomes.append(deprovision_postgres(service))
    return "; ".join(outcomes) or "volumes go with the TamsStore"
