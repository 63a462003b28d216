"""Status conditions, the Kubernetes way: one entry per type, lastTransitionTime moves only when the status does."""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Any

Condition = dict[str, Any]


class ConditionType(StrEnum):
    """The conditions the operator sets on its resources."""

    READY = "Ready"  # every kind: the summary Argo CD and `kubectl wait` read
    AVAILABLE = "Available"  # TamsStore: the API Deployment(s) roll up
    METADATA_PROVISIONED = "MetadataProvisioned"
    MEDIA_PROVISIONED = "MediaProvisioned"
    EXPOSED = "Exposed"  # TamsStore: the Ingress / HTTPRoute the spec asks for
    RECONCILIATION_PAUSED = "ReconciliationPaused"  # TamsStore: the tams-operator.io/paused annotation
    COMPLETE = "Complete"  # TamsDeletionRequest
    FAILED = "Failed"  # TamsDeletionRequest


class Reason(StrEnum):
    """Machine-readable reasons of the conditions (and of the events that report their changes)."""

    # Progress and success
    READY = "Ready"
    PENDING = "Pending"
    PROVISIONED = "Provisioned"
    AVAILABLE = "Available"
    ROLLING_OUT = "RollingOut"
    UNAVAILABLE = "Unavailable"
    DEPLOYMENT_MISSING = "DeploymentMissing"
    PODS_STOPPING = "PodsStopping"
    EXPOSED = "Exposed"
    CLUSTER_ONLY = "ClusterOnly"
    CRD_NOT_INSTALLED = "CrdNotInstalled"  # the Gateway API CRDs an httpRoute needs are missing
    PAUSED = "Paused"
    RESUMED = "Resumed"
    REGISTERED = "Registered"
    IN_PROGRESS = "InProgress"
    DONE = "Done"
    # Outside the spec, may heal
    UNREACHABLE = "Unreachable"
    UNAUTHORIZED = "Unauthorized"
    TAMS_ERROR = "TamsError"
    STORE_NOT_FOUND = "StoreNotFound"
    STORE_NOT_READY = "StoreNotReady"
    BACKUP_NOT_READY = "BackupNotReady"  # the TamsBackup a store restores is missing or not yet completed
    # A person must act
    INVALID_SPEC = "InvalidSpec"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
    VAST_FAILED = "VastFailed"
    POSTGRES_FAILED = "PostgresFailed"
    S3_FAILED = "S3Failed"
    WEBHOOK_ERROR = "WebhookError"
    REFUSED = "Refused"
    FAILED = "Failed"
    BACKUP_FAILED = "BackupFailed"  # the TamsBackup a store restores failed
    # Pod states that will not heal by waiting (the kubelet's own reasons, passed on)
    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    INVALID_IMAGE_NAME = "InvalidImageName"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    CREATE_CONTAINER_ERROR = "CreateContainerError"


STUCK_POD_REASONS = frozenset(
    {
        Reason.ERR_IMAGE_PULL,
        Reason.IMAGE_PULL_BACK_OFF,
        Reason.INVALID_IMAGE_NAME,
        Reason.CRASH_LOOP_BACK_OFF,
        Reason.CREATE_CONTAINER_CONFIG_ERROR,
        Reason.CREATE_CONTAINER_ERROR,
    }
)
# Reasons of a TamsStore's Ready False that waiting will not fix: Argo CD's health (argocd/health) says Degraded for
# exactly these (a test compares them), Progressing for the others.
STORE_TERMINAL_REASONS = STUCK_POD_REASONS | {
    Reason.INVALID_SPEC,
    Reason.SECRET_NOT_FOUND,
    Reason.SECRET_KEY_NOT_FOUND,
    Reason.VAST_FAILED,
    Reason.POSTGRES_FAILED,
    Reason.S3_FAILED,
    Reason.BACKUP_FAILED,
}
WEBHOOK_TERMINAL_REASONS = frozenset({Reason.WEBHOOK_ERROR, Reason.REFUSED, Reason.SECRET_NOT_FOUND})


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> float:
    """Seconds since the epoch of a condition's lastTransitionTime."""
    return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.UTC).timestamp()


def set_condition(
    status: dict[str, Any], type_: str, ok: bool | None, reason: str, message: str, generation: int | None
) -> None:
    """Set one condition in `status` (True, False, or Unknown when `ok` is None)."""
    value = "Unknown" if ok is None else str(ok)
    conditions = [dict(condition) for condition in status.get("conditions") or []]
    previous = next((condition for condition in conditions if condition["type"] == type_), None)
    condition = {"type": type_, "status": value, "reason": reason, "message": message}
    if generation is not None:
        condition["observedGeneration"] = generation
    moved = previous is None or previous.get("status") != value
    condition["lastTransitionTime"] = now() if moved else previous.get("lastTransitionTime", now())
    status["conditions"] = [c for c in conditions if c["type"] != type_] + [condition]
    status["conditions"].sort(key=lambda c: c["type"])


def condition(status: dict[str, Any], type_: str) -> Condition | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def is_true(status: dict[str, Any], type_: str, generation: int | None = None) -> bool:
    """The condition holds (for `generation`, when given)."""
    found = condition(status, type_)
    if found is None or found["status"] != "True":
        return False
    return generation is None or found.get("observedGeneration") == generation
