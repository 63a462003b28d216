"""Argo CD health of the operator's resources: the Lua scripts in argocd/health/, run by a real Lua (lupa) on
status fixtures the way Argo CD runs them (a global `obj`, the script's returned table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime
from tams_operator.conditions import STORE_TERMINAL_REASONS, WEBHOOK_TERMINAL_REASONS, Reason

HEALTH = Path(__file__).resolve().parents[1] / "argocd" / "health"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((HEALTH / f"tams-operator.io_{kind}.lua").read_text())
    return result["status"], result["message"]


def resource(generation: int = 1, status: dict[str, Any] | None = None, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "news", "generation": generation}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-25T00:00:00Z"
    return {"metadata": metadata, **({"status": status} if status is not None else {})}


def ready(status: str, reason: str, message: str = "why", observed: int = 1, **fields: Any) -> dict[str, Any]:
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message}
    return {"observedGeneration": observed, "conditions": [condition], **fields}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (resource(), "Progressing"),  # no status yet
        (resource(2, ready("True", "Ready", observed=1)), "Progressing"),  # the new spec not yet seen
        (resource(1, ready("True", "Ready")), "Healthy"),
        (resource(1, ready("False", "RollingOut")), "Progressing"),
        (resource(1, ready("False", "SecretNotFound", "Secret 's3-keys' not found")), "Degraded"),
        (resource(1, ready("False", "ImagePullBackOff")), "Degraded"),
        (resource(1, ready("False", "InvalidSpec")), "Degraded"),
        (resource(1, ready("False", "PostgresFailed", "password authentication failed")), "Degraded"),
        (resource(1, ready("True", "Ready"), deleting=True), "Progressing"),
    ],
    ids=["new", "behind", "ready", "rolling", "secret", "image", "invalid", "postgres", "deleting"],
)
def test_tams_store_health(obj: dict[str, Any], expected: str) -> None:
    assert health("TamsStore", obj)[0] == expected


def test_a_degraded_store_says_why() -> None:
    assert health("TamsStore", resource(1, ready("False", "SecretNotFound", "Secret 's3-keys' not found"))) == (
        "Degraded",
        "Secret 's3-keys' not found",
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (resource(), "Progressing"),
        (resource(1, ready("True", "Registered", tamsStatus="started")), "Healthy"),
        (resource(1, ready("True", "Registered", tamsStatus="disabled")), "Suspended"),
        (resource(1, ready("False", "WebhookError", tamsStatus="error")), "Degraded"),
        (resource(1, ready("False", "Unreachable")), "Progressing"),
        (resource(2, ready("True", "Registered", tamsStatus="started")), "Progressing"),
        (resource(1, ready("True", "Registered"), deleting=True), "Progressing"),
    ],
    ids=["new", "started", "disabled", "error", "unreachable", "behind", "deleting"],
)
def test_tams_webhook_health(obj: dict[str, Any], expected: str) -> None:
    assert health("TamsWebhook", obj)[0] == expected


def deletion(state: str, complete: str, failed: str, message: str = "m") -> dict[str, Any]:
    conditions = [
        {"type": "Complete", "status": complete, "reason": state, "message": message},
        {"type": "Failed", "status": failed, "reason": state, "message": message},
    ]
    return resource(1, {"observedGeneration": 1, "state": state, "conditions": conditions})


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (resource(), "Progressing"),
        (deletion("started", "False", "False"), "Progressing"),
        (deletion("done", "True", "False"), "Healthy"),
        (deletion("error", "False", "True", "flow not found"), "Degraded"),
        (resource(deleting=True), "Progressing"),
    ],
    ids=["new", "started", "done", "error", "deleting"],
)
def test_tams_deletion_request_health(obj: dict[str, Any], expected: str) -> None:
    assert health("TamsDeletionRequest", obj)[0] == expected


@pytest.mark.parametrize("reason", list(Reason))
def test_degraded_exactly_for_the_reasons_a_person_must_fix(reason: Reason) -> None:
    """The Lua's lists and the operator's terminal reasons are one list: a new reason cannot show as Progressing
    forever by being forgotten in argocd/health."""
    store = health("TamsStore", resource(1, ready("False", reason)))[0]
    assert store == ("Degraded" if reason in STORE_TERMINAL_REASONS else "Progressing")
    webhook = health("TamsWebhook", resource(1, ready("False", reason)))[0]
    assert webhook == ("Degraded" if reason in WEBHOOK_TERMINAL_REASONS else "Progressing")


def backup(phase: str | None, **status: Any) -> dict[str, Any]:
    return resource(1, {"phase": phase, **status} if phase else None)


@pytest.mark.parametrize(
    ("obj", "expected", "message"),
    [
        (backup(None), "Progressing", "Waiting for the operator"),
        (backup("Running", url="s3://b/f"), "Progressing", "Backing up to s3://b/f"),
        (backup("Completed", url="s3://b/f"), "Healthy", "Backup written to s3://b/f"),
        (backup("Failed", error="tams-api: access denied"), "Degraded", "tams-api: access denied"),
        (resource(deleting=True), "Progressing", "Deleting"),
    ],
    ids=["new", "running", "completed", "failed", "deleting"],
)
def test_tams_backup_health(obj: dict[str, Any], expected: str, message: str) -> None:
    assert health("TamsBackup", obj) == (expected, message)


def schedule(suspend: bool = False, **status: Any) -> dict[str, Any]:
    return {**resource(1, status or None), "spec": {"schedule": "0 3 * * *", "suspend": suspend}}


@pytest.mark.parametrize(
    ("obj", "expected", "message"),
    [
        (schedule(), "Healthy", "Scheduled"),
        (schedule(nextScheduleTime="2026-12-07T03:00:00Z"), "Healthy", "Next backup at 2026-12-07T03:00:00Z"),
        (schedule(suspend=True), "Suspended", "Suspended"),
        (schedule(error="schedule '61 * * * *': Bad minute"), "Degraded", "schedule '61 * * * *': Bad minute"),
    ],
    ids=["new", "scheduled", "suspended", "bad-schedule"],
)
def test_tams_scheduled_backup_health(obj: dict[str, Any], expected: str, message: str) -> None:
    assert health("TamsScheduledBackup", obj) == (expected, message)
