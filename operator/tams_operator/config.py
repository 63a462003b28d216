"""The operator's own configuration, from `TAMS_OPERATOR_*` environment variables (documented in the README)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .tamsstore import DEFAULT_IMAGE


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_OPERATOR_", extra="ignore")

    default_image: str = Field(DEFAULT_IMAGE, description="TAMS API image of TamsStores that name none.")
    namespace: str | None = Field(
        None, description="Namespace the operator runs in (the chart sets it): stores' NetworkPolicies admit it."
    )
    resync_interval: float = Field(60.0, gt=0, description="Seconds between drift checks of each TamsStore.")
    poll_interval: float = Field(10.0, gt=0, description="Seconds between looks at TAMS webhooks and deletions.")
    api_url_template: str = Field(
        "http://{service}.{namespace}.svc:{port}",
        description="How the operator reaches a store's TAMS API ({service}, {namespace}, {port}).",
    )
    metrics_port: int = Field(8081, ge=0, le=65535, description="Port of the Prometheus metrics (0: none).")
    metrics_address: str = Field("0.0.0.0", description="Address the metrics are served on.")
    retry_initial: float = Field(5.0, gt=0, description="Seconds before retrying what may heal; doubles each time.")
    retry_max: float = Field(300.0, gt=0, description="Longest wait between two retries.")
    rollout_delay: float = Field(
        30.0,
        ge=0,
        description="Seconds between one store's move to a new operator image being rolled out and the next store's.",
    )
    peering: str = Field(
        "",
        description="Name of the ClusterKopfPeering (watching some namespaces: the KopfPeering in each) through which "
        "replicas agree on the one that works (the oldest); empty: a single replica, no peering.",
    )
    peering_lifetime: int = Field(
        15,
        ge=5,
        description="Seconds a replica's peering record stays valid unrenewed: the longest a standby waits to take "
        "over from a replica that died without a word.",
    )
    kube_context: str = Field(
        "",
        description="Kubeconfig context the operator logs in with, out of the cluster (empty: the current context).",
    )

    def retry_delay(self, retry: int) -> float:
        """Backoff for `kopf.TemporaryError`, so a broken store never spins."""
        return min(self.retry_max, self.retry_initial * 2 ** min(retry, 30))
