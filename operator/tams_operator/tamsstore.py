"""A TamsStore as the builders see it: its name, its typed spec, and what the operator adds (its default image, its
own namespace, the versions of the Secrets the pods read). Names of its children and their labels are derived here,
once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .spec import BackupDestination, TamsStoreSpec

GROUP, VERSION = "tams-operator.io", "v1alpha1"
TAMS_STORE_API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_IMAGE = "tams-operator:latest"
SHARED_METADATA_BACKENDS = ("vast", "postgres")  # the metadata stores several API replicas can share
MANAGED_BY = {"app.kubernetes.io/managed-by": "tams-operator"}
INSTANCE_LABEL = "app.kubernetes.io/instance"


@dataclass(frozen=True, slots=True)
class Store:
    """The parts of a TamsStore object the builders read."""

    name: str
    namespace: str
    spec: TamsStoreSpec
    default_image: str = DEFAULT_IMAGE  # the operator's, for stores that name no image
    operator_namespace: str | None = None  # where the operator runs: its NetworkPolicy admits it
    # (name, resourceVersion) of each Secret the pods read: a rotated Secret changes the pod template
    secret_versions: tuple[tuple[str, str], ...] = ()
    # The folder of the backup spec.bootstrap.fromBackup names, resolved: restored before the first server starts.
    restore_from: BackupDestination | None = None

    @classmethod
    def from_body(
        cls, body: dict[str, Any], default_image: str = DEFAULT_IMAGE, operator_namespace: str | None = None
    ) -> Store:
        """The store as the API server holds it."""
        spec = TamsStoreSpec.model_validate(body.get("spec") or {})
        metadata = body["metadata"]
        return cls(metadata["name"], metadata["namespace"], spec, default_image, operator_namespace)

    @property
    def child_name(self) -> str:
        return f"{self.name}-tams"

    @property
    def label(self) -> str:
        """The store for people: NAMESPACE/NAME."""
        return f"{self.namespace}/{self.name}"

    @property
    def worker_name(self) -> str:
        return f"{self.name}-tams-worker"

    @property
    def operator_secret_name(self) -> str:
        return f"{self.name}-tams-operator"

    @property
    def tls_secret_name(self) -> str:
        tls = self.spec.ingress.tls if self.spec.ingress else None
        return (tls.secret_name if tls else None) or f"{self.name}-tams-tls"

    @property
    def reclaims_data(self) -> bool:
        """reclaimPolicy Delete: volumes, buckets and tables go with the TamsStore."""
        return self.spec.reclaim_policy == "Delete"

    @property
    def shared_metadata(self) -> bool:
        return self.spec.metadata.backend in SHARED_METADATA_BACKENDS

    @property
    def endpoint(self) -> str:
        """The in-cluster URL of the API."""
        return f"http://{self.child_name}.{self.namespace}.svc:{self.spec.service.port}"

    @property
    def public_url(self) -> str:
        """The URL clients use: spec.publicUrl, else the Ingress's, else the in-cluster one."""
        if self.spec.public_url:
            return self.spec.public_url.rstrip("/")
        if (ingress := self.spec.ingress) is not None:
            scheme = "https" if ingress.tls is not None else "http"
            return f"{scheme}://{ingress.host}{ingress.path.rstrip('/')}"
        return self.endpoint

    @property
    def min_replicas(self) -> int:
        """The fewest API pods the store runs with: what a PodDisruptionBudget protects."""
        autoscaling = self.spec.autoscaling
        return autoscaling.min_replicas if autoscaling is not None else self.spec.replicas

    def labels(self, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "tams",
            INSTANCE_LABEL: self.name,
            "app.kubernetes.io/component": component,
            **MANAGED_BY,
        }

    def selector(self, component: str) -> str:
        """`labels(component)` as a label selector string (the scale subresource's status.selector)."""
        return ",".join(f"{key}={value}" for key, value in self.labels(component).items())

    def meta(self, name: str, component: str) -> dict[str, Any]:
        return {"name": name, "namespace": self.namespace, "labels": self.labels(component)}
