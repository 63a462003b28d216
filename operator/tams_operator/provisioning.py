"""A TamsStore's stores, provisioned with the very settings its pods will run with.

The service's settings are the ConfigMap's plain values plus the credentials from the user's Secrets
(environment.settings + environment.container_env); the provisioning functions are the service's own
(tams_api.provision), run in a thread because boto3, psycopg and the vastdb SDK block. Those SDKs (vastdb with
pyarrow and ibis, boto3: about 90 MB) are imported when a store first needs them, so an operator of embedded stores
stays small.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from functools import partial

from pydantic import ValidationError

from tams_api.config import Settings
from tams_api.errors import ConfigurationError

from .conditions import Reason
from .environment import (
    OPERATOR_TOKEN_VARIABLE,
    container_env,
    created_buckets,
    management_secret_env,
    management_settings,
    settings,
)
from .kube import KubeApi, decoded
from .tamsstore import Store

REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")  # $(NAME) in an env value, as Kubernetes expands it


class NotReady(Exception):
    """Something outside the spec is missing or failing (a Secret, a bucket, a cluster): it may heal."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidSpec(Exception):
    """The spec itself cannot work: only a change of it helps."""


@dataclass(slots=True)
class Credentials:
    """The container's `env` as a kubelet would resolve it, and the versions of the Secrets it was read from."""

    values: dict[str, str] = field(default_factory=dict)
    secret_versions: dict[str, str] = field(default_factory=dict)


def _expanded(values: dict[str, str], match: re.Match[str]) -> str:
    """$(NAME) as the kubelet expands it: a variable defined before, else left as it is."""
    return values.get(match[1], match[0])


async def credentials(api: KubeApi, store: Store, operator_token: bool = True) -> Credentials:
    """The container's `env` as a kubelet would resolve it (Secrets read, $(NAME) references expanded), plus
    what only provisioning reads (VMS); a missing Secret or key is named. Without `operator_token`, the operator's
    own token is left out: the stores do not need it, and on deletion its Secret may already be collected. Values
    from elsewhere than Secrets (spec.env's ConfigMap or field references) are the kubelet's alone."""
    found = Credentials()
    secrets: dict[str, dict[str, str] | None] = {}
    for variable in container_env(store) + management_secret_env(store):
        if variable["name"] == OPERATOR_TOKEN_VARIABLE and not operator_token:
            continue
        if "value" in variable:
            found.values[variable["name"]] = REFERENCE.sub(partial(_expanded, found.values), variable["value"])
            continue
        ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            continue
        if ref["name"] not in secrets:
            secret = await api.get("v1", "Secret", store.namespace, ref["name"])
            secrets[ref["name"]] = None if secret is None else decoded(secret)
            if secret is not None:
                found.secret_versions[ref["name"]] = secret["metadata"]["resourceVersion"]
        data = secrets[ref["name"]]
        if data is None:
            message = f"Secret {ref['name']!r} not found in namespace {store.namespace!r}"
            raise NotReady(Reason.SECRET_NOT_FOUND, message)
        if ref["key"] not in data:
            raise NotReady(Reason.SECRET_KEY_NOT_FOUND, f"Secret {ref['name']!r} has no key {ref['key']!r}")
        found.values[variable["name"]] = data[ref["key"]]
    return found


def service_settings(store: Store, credentials: Credentials) -> Settings:
    """The service's Settings, exactly as its pods will parse them (plus the VMS settings of provisioning)."""
    variables = settings(store) | management_settings(store) | credentials.values
    own = {name.removeprefix("TAMS_").lower(): value for name, value in variables.items() if name.startswith("TAMS_")}
    try:
        return Settings(**own)
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
