"""Writing a resource's status: conditions and fields together, an event for every condition that moved."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf

from .conditions import Condition, condition, parse_time, set_condition
from .kube import KubeApi, Manifest
from .metrics import CONDITION_CHANGES, TIME_TO_READY


@dataclass(frozen=True, slots=True)
class Finding:
    """One condition to set (`ok` None: Unknown)."""

    type: str
    ok: bool | None
    reason: str
    message: str


async def write_status(
    api: KubeApi,
    body: Manifest,
    findings: list[Finding],
    fields: dict[str, Any],
    derived: Callable[[dict[str, Any]], Finding] | None = None,
    generation: int | None = None,
) -> None:
    """Set `findings`, then the condition `derived` computes from the resulting status, and `fields` (None: the
    field goes); the conditions describe `generation` (default: the body's)."""
    generation = generation if generation is not None else body["metadata"].get("generation")
    moved: list[tuple[Finding, Condition | None]] = []  # with the condition as it was

    def change(current: Manifest, status: dict[str, Any]) -> None:
        moved.clear()
        for finding in findings:
            _note(status, finding, generation, moved)
        if derived is not None:
            _note(status, derived(status), generation, moved)
        # A None that stays in `status` is sent as null, which removes the field; one for a field that is not
        # there would make every write look like a change.
        status.update({name: value for name, value in fields.items() if value is not None or name in status})

    await api.update_status(body, change)
    for finding, _ in moved:
        (kopf.info if finding.ok is not False else kopf.warn)(body, reason=finding.reason, message=finding.message)
    count(body["kind"], moved)


def count(kind: str, moved: list[tuple[Finding, Condition | None]]) -> None:
    for finding, before in moved:
        status = "Unknown" if finding.ok is None else str(finding.ok)
        CONDITION_CHANGES.labels(kind, finding.type, status, finding.reason).inc()
        if finding.type == "Ready" and finding.ok and before is not None and before.get("lastTransitionTime"):
            TIME_TO_READY.labels(kind).observe(max(0.0, time.time() - parse_time(before["lastTransitionTime"])))


def _note(
    status: dict[str, Any], finding: Finding, generation: int | None, moved: list[tuple[Finding, Condition | None]]
) -> None:
    before = condition(status, finding.type)
    set_condition(status, finding.type, finding.ok, finding.reason, finding.message, generation)
    after = condition(status, finding.type) or {}
    if before is None or (before["status"], before.get("reason")) != (after["status"], after["reason"]):
        moved.append((finding, before))
