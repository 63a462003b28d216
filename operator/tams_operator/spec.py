"""The TamsStore spec as one typed model: what crds/tamsstores.yaml declares, field for field, with the same defaults
(tests/test_operator_spec.py compares them), so that builders read `spec.media.s3.bucket` rather than dictionaries,
and a default is stated once here besides the CRD.

The API server has already validated and defaulted what it stores (types, enums, required fields, CEL rules); the
model reads it as it is. Field names are the CRD's (camelCase) on the wire and snake_case in Python.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Resources = dict[str, Any]  # as in a Pod spec; the API server checks them when the Deployment is applied


class SpecModel(BaseModel):
    """A part of the spec: camelCase on the wire, read-only. A field this model does not know (a newer CRD installed
    before the operator is upgraded) is ignored, as the API server prunes what a CRD does not declare."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(SpecModel):
    name: str
    key: str


class UsersSecretRef(SecretKeyRef):
    key: str = "users"


class TokensSecretRef(SecretKeyRef):
    key: str = "tokens"


class UriSecretRef(SecretKeyRef):
    key: str = "uri"  # CloudNativePG's key in the Secret of an application database


class KeysSecretRef(SpecModel):
    """A Secret holding an access key and a secret key (S3, VAST)."""

    name: str
    access_key_key: str = "accessKey"
    secret_key_key: str = "secretKey"


class LoginSecretRef(SpecModel):
    name: str
    username_key: str = "username"
    password_key: str = "password"


class VolumeSpec(SpecModel):
    storage_size: str
    storage_class_name: str | None = None


class SqliteSpec(VolumeSpec):
    storage_size: str = "1Gi"


class FilesystemSpec(VolumeSpec):
    storage_size: str = "10Gi"


class PostgresSpec(SpecModel):
    uri_secret_ref: UriSecretRef
    schema_name: str = Field("tams", alias="schema")
    pool_size: int = 10
    timeout_seconds: float = 10


class VastManagementSpec(SpecModel):
    endpoint: str
    bucket_owner: str
    credentials_secret_ref: LoginSecretRef
    view_policy: str = "s3_default_policy"
    view_path: str | None = None
    tenant: str | None = None


class VastSpec(SpecModel):
    endpoint: str
    bucket: str
    credentials_secret_ref: KeysSecretRef
    schema_name: str = Field("tams", alias="schema")
    management: VastManagementSpec | None = None


class MetadataSpec(SpecModel):
    backend: Literal["sqlite", "postgres", "vast"] = "sqlite"
    sqlite: SqliteSpec = SqliteSpec()
    postgres: PostgresSpec | None = None
    vast: VastSpec | None = None

    @property
    def postgres_store(self) -> PostgresSpec | None:
        """The PostgreSQL settings when the store is on PostgreSQL (a CEL rule of the CRD requires them then)."""
        return self.postgres if self.backend == "postgres" else None

    @property
    def vast_store(self) -> VastSpec | None:
        return self.vast if self.backend == "vast" else None


class S3Spec(SpecModel):
    bucket: str
    endpoint: str | None = None
    public_endpoint: str | None = None
    region: str = "us-east-1"
    prefix: str | None = None
    create_bucket: bool = False
    credentials_secret_ref: KeysSecretRef | None = None


class ExtraBackendSpec(S3Spec):
    label: str


class MediaSpec(SpecModel):
    backend: Literal["filesystem", "s3"] = "filesystem"
    filesystem: FilesystemSpec = FilesystemSpec()
    s3: S3Spec | None = None
    extra_backends: tuple[ExtraBackendSpec, ...] = ()

    @property
    def s3_store(self) -> S3Spec | None:
        """The default bucket's settings when media is on S3."""
        return self.s3 if self.backend == "s3" else None


class JwtSpec(SpecModel):
    jwks_url: str
    issuer: str | None = None
    audience: str | None = None


class AuthSpec(SpecModel):
    modes: tuple[Literal["basic", "token", "jwt"], ...] = ()
    users_secret_ref: UsersSecretRef | None = None
    tokens_secret_ref: TokensSecretRef | None = None
    jwt: JwtSpec | None = None
    strict_scopes: bool = False


class ServiceSpec(SpecModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = 80


class WorkerSpec(SpecModel):
    resources: Resources = {}


class TamsStoreSpec(SpecModel):
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    replicas: int = 1
    resources: Resources = {}
    service: ServiceSpec = ServiceSpec()
    auth: AuthSpec = AuthSpec()
    metadata: MetadataSpec = MetadataSpec()
    media: MediaSpec = MediaSpec()
    presigned_url_timeout: int = 3600
    delete_sync_limit: int | None = None  # unset: the service's default
    max_body_bytes: int | None = None
    max_bulk_segments: int | None = None
    reclaim_policy: Literal["Retain", "Delete"] = "Retain"
    worker: WorkerSpec = WorkerSpec()
