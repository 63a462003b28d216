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


def dumped(model: SpecModel) -> dict[str, Any]:
    """A part of the spec as it goes into a manifest: camelCase, JSON types, unset fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


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


class IssuerRef(SpecModel):
    name: str
    kind: Literal["Issuer", "ClusterIssuer"] = "ClusterIssuer"


class IngressTlsSpec(SpecModel):
    secret_name: str | None = None
    issuer: IssuerRef | None = None


class IngressSpec(SpecModel):
    host: str
    class_name: str | None = None
    path: str = "/"
    annotations: dict[str, str] = {}
    tls: IngressTlsSpec | None = None


class ParentRef(SpecModel):
    name: str
    namespace: str | None = None
    section_name: str | None = None
    port: int | None = None


class HttpRouteSpec(SpecModel):
    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...] = ()
    annotations: dict[str, str] = {}


class Toleration(SpecModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class AffinitySpec(SpecModel):
    """As in a Pod spec; the terms themselves are the API server's to check (they go into the Deployment)."""

    node_affinity: dict[str, Any] | None = None
    pod_affinity: dict[str, Any] | None = None
    pod_anti_affinity: dict[str, Any] | None = None


class TopologySpreadConstraint(SpecModel):
    max_skew: int
    topology_key: str
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    min_domains: int | None = None
    label_selector: dict[str, Any] | None = None
    match_label_keys: tuple[str, ...] = ()
    node_affinity_policy: Literal["Honor", "Ignore"] | None = None
    node_taints_policy: Literal["Honor", "Ignore"] | None = None


class LocalObjectReference(SpecModel):
    name: str


class PodTemplateSpec(SpecModel):
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    node_selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    affinity: AffinitySpec | None = None
    topology_spread_constraints: tuple[TopologySpreadConstraint, ...] = ()
    priority_class_name: str | None = None
    image_pull_secrets: tuple[LocalObjectReference, ...] = ()


class ServiceAccountSpec(SpecModel):
    name: str | None = None  # an existing one; else the operator makes NAME-tams
    annotations: dict[str, str] = {}


class WorkerSpec(SpecModel):
    resources: Resources = {}
    pod_template: PodTemplateSpec = PodTemplateSpec()
    service_account: ServiceAccountSpec = ServiceAccountSpec()


class AutoscalingSpec(SpecModel):
    max_replicas: int
    min_replicas: int = 1
    target_cpu_utilization_percentage: int = Field(80, alias="targetCPUUtilizationPercentage")
    scale_down_stabilization_seconds: int | None = None


class PodDisruptionBudgetSpec(SpecModel):
    enabled: bool | None = None  # unset: when more than one replica runs
    max_unavailable: int | str = 1


class NetworkPolicyPeer(SpecModel):
    pod_selector: dict[str, Any] | None = None
    namespace_selector: dict[str, Any] | None = None
    ip_block: dict[str, Any] | None = None


class NetworkPolicySpec(SpecModel):
    enabled: bool = False
    ingress_controller_namespace: str | None = None
    peers: tuple[NetworkPolicyPeer, ...] = Field((), alias="from")


class SoftDeleteSpec(SpecModel):
    enabled: bool = False
    retention_seconds: int = 604800


class TracingSpec(SpecModel):
    otlp_endpoint: str
    sampling_ratio: float = 1


class WebhookDeliverySpec(SpecModel):
    """Unset fields keep the service's defaults."""

    timeout_seconds: float | None = None
    max_attempts: int | None = None
    retry_initial_seconds: float | None = None
    retry_max_seconds: float | None = None
    allow_link_local: bool = False


class EnvVar(SpecModel):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


class MonitoringSpec(SpecModel):
    pod_monitor: bool = False


LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class BackupDestination(SpecModel):
    """A folder of an S3 bucket holding backups (TamsBackup), or one backup (bootstrap.fromBackup)."""

    bucket: str
    path: str | None = None
    endpoint: str | None = None
    region: str = "us-east-1"
    credentials_secret_ref: KeysSecretRef | None = None  # unset: the pod's own identity (boto3's chain)


class FromBackupSpec(SpecModel):
    """A TamsBackup of the namespace by name, or the folder of a backup (destination.path is the backup's own)."""

    name: str | None = None
    destination: BackupDestination | None = None


class BootstrapSpec(SpecModel):
    from_backup: FromBackupSpec


class TamsStoreSpec(SpecModel):
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    update_policy: Literal["Automatic", "Manual"] = "Automatic"
    replicas: int = 1
    resources: Resources = {}
    workers: int | None = None  # unset: from the API container's CPU limit (environment.server_processes)
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
    public_url: str | None = None
    ingress: IngressSpec | None = None
    http_route: HttpRouteSpec | None = None
    pod_template: PodTemplateSpec = PodTemplateSpec()
    service_account: ServiceAccountSpec = ServiceAccountSpec()
    autoscaling: AutoscalingSpec | None = None
    pod_disruption_budget: PodDisruptionBudgetSpec = PodDisruptionBudgetSpec()
    network_policy: NetworkPolicySpec = NetworkPolicySpec()
    log_level: LogLevel = "info"
    access_log: bool = False
    soft_delete: SoftDeleteSpec = SoftDeleteSpec()
    tracing: TracingSpec | None = None
    webhooks: WebhookDeliverySpec = WebhookDeliverySpec()
    env: tuple[EnvVar, ...] = ()
    monitoring: MonitoringSpec = MonitoringSpec()
    bootstrap: BootstrapSpec | None = None


class StoreRef(SpecModel):
    name: str


class TamsBackupSpec(SpecModel):
    store_ref: StoreRef
    destination: BackupDestination
    reclaim_policy: Literal["Retain", "Delete"] = "Retain"  # Delete: the backup's folder goes with the TamsBackup


class ScheduledBackupTemplate(TamsBackupSpec):
    reclaim_policy: Literal["Retain", "Delete"] = "Delete"  # what the retention deletes goes from the bucket too


class RetentionSpec(SpecModel):
    """Completed backups of a schedule kept: the newest `count`, none older than `max_age` (e.g. 30d, 12h)."""

    count: int | None = None
    max_age: str | None = None


class TamsScheduledBackupSpec(SpecModel):
    schedule: str
    suspend: bool = False
    retention: RetentionSpec = RetentionSpec()
    backup: ScheduledBackupTemplate
